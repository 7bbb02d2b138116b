"""What a sandbox host runs at once, and what it refuses: commands have a pool of their own, so
file calls are served while every command slot is taken; past the host's backlog the API answers
429 BACKLOG_FULL with Retry-After instead of letting the request wait."""

from __future__ import annotations

import base64
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from core import admission
from core.errors import TooBusy
from tests.conftest import COMMAND_SLOTS

pytestmark = pytest.mark.worker


def started_markers(sandbox_id: str) -> int:
    return len(list((Path(settings.SANDBOX_ROOT) / sandbox_id / "workspace").glob("started-*")))


def start_long_commands(pool: ThreadPoolExecutor, owner, sandbox_id: str, count: int) -> list:
    """``count`` commands that say they started and then sleep, each sent from a client of its own."""
    futures = []
    for index in range(count):
        client = dataclasses.replace(owner, client=Client())
        command = ["sh", "-c", f"touch /workspace/started-{index}; sleep 60"]
        futures.append(pool.submit(client.post, f"/sandbox/{sandbox_id}/execute", {"command": command}))
    deadline = time.monotonic() + 60
    while started_markers(sandbox_id) < count:
        assert time.monotonic() < deadline, "the commands did not start"
        assert not any(f.done() for f in futures), [f.result().content for f in futures if f.done()]
        time.sleep(0.1)
    return futures


def test_a_host_at_capacity_still_serves_file_calls_while_long_commands_run(owner, sandbox):
    sid = sandbox["sandbox_id"]
    with ThreadPoolExecutor(COMMAND_SLOTS) as pool:
        commands = start_long_commands(pool, owner, sid, COMMAND_SLOTS)
        content = base64.b64encode(b"written while every command slot is taken").decode()
        written = owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "/workspace/note.txt", "content": content}]})
        read = owner.get(f"/sandbox/{sid}/files", {"path": "/workspace/note.txt"})
        listed = owner.get(f"/sandbox/{sid}/files/list", {"path": "/workspace"})
        # Answered while the commands still run: they did not wait for a command slot.
        still_running = not any(f.done() for f in commands)
        assert owner.post(f"/sandbox/{sid}/stop").status_code == 200
    assert written.status_code == 200, written.content
    assert read.status_code == 200 and read.json()["content"] == content
    assert "note.txt" in {entry["name"] for entry in listed.json()["files"]}
    assert still_running


def test_a_burst_past_the_backlog_gets_429_with_retry_after(owner, sandbox, settings):
    settings.HOST_BACKLOG = 2
    sid = sandbox["sandbox_id"]
    with ThreadPoolExecutor(2) as pool:
        commands = start_long_commands(pool, owner, sid, 2)
        refused_command = owner.post(f"/sandbox/{sid}/execute", {"command": "true"})
        refused_read = owner.get(f"/sandbox/{sid}/files", {"path": "/workspace/started-0"})
        refused_upload = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "/workspace/started-0"})
        assert owner.post(f"/sandbox/{sid}/stop").status_code == 200
        finished = [f.result() for f in commands]
    for refused in (refused_command, refused_read, refused_upload):
        assert refused.status_code == 429, refused.content
        assert refused.json()["error"]["code"] == "BACKLOG_FULL"
        assert int(refused["Retry-After"]) >= 1
    # The refused upload left no artifact behind, and the ended commands gave their places back.
    assert owner.get("/artifacts", {"sandbox_id": sid}).json()["artifacts"] == []
    assert all(response.status_code == 200 for response in finished)
    assert admission.backlog_size(settings.STOWAGE_HOST) == 0


def test_an_organization_over_its_share_is_refused_before_the_others(broker, settings):
    settings.HOST_BACKLOG = 4
    host = "fair-share-host"
    for task in ("a1", "a2"):
        admission.admit(host=host, organization_id="org_a", task_id=task, hold_seconds=60)
    admission.admit(host=host, organization_id="org_b", task_id="b1", hold_seconds=60)
    # Half full and two organizations waiting: each may hold two.
    with pytest.raises(TooBusy):
        admission.admit(host=host, organization_id="org_a", task_id="a3", hold_seconds=60)
    admission.admit(host=host, organization_id="org_b", task_id="b2", hold_seconds=60)
    with pytest.raises(TooBusy):
        admission.admit(host=host, organization_id="org_c", task_id="c1", hold_seconds=60)
    admission.release(host=host, task_id="a1")
    admission.release(host=host, task_id="a1")
    assert admission.backlog_size(host) == 3
    admission.admit(host=host, organization_id="org_c", task_id="c1", hold_seconds=60)


def test_a_lost_task_stops_counting_when_its_wait_ends(broker, settings):
    settings.HOST_BACKLOG = 1
    host = "lost-task-host"
    admission.admit(host=host, organization_id="org_a", task_id="lost", hold_seconds=0.01)
    time.sleep(0.05)
    admission.admit(host=host, organization_id="org_a", task_id="next", hold_seconds=60)
    assert admission.backlog_size(host) == 1


@pytest.mark.parametrize("scripts_forgotten", [False, True], ids=["scripts-known", "redis-restarted"])
def test_a_task_ending_gives_its_place_back_with_its_answer(broker, settings, scripts_forgotten):
    # The worker's hand-back: the backlog place and the answer in one transaction, and still
    # both when Redis no longer knows the backlog's script (restarted since it was loaded).
    from config.celery import _give_back
    from config.redis import get_redis
    from core.answers import answer_key

    settings.HOST_BACKLOG = 1
    host = f"hand-back-host-{scripts_forgotten}"
    # Redis knows the backlog's scripts once each has run.
    admission.release(host=host, task_id="never-sent")
    admission.admit(host=host, organization_id="org_a", task_id="t1", hold_seconds=60)
    if scripts_forgotten:
        get_redis().script_flush()
    _give_back(host, "t1", {"exit_code": 0})
    assert admission.backlog_size(host) == 0
    assert get_redis().lindex(answer_key("t1"), 0) == b'{"exit_code": 0}'
    admission.admit(host=host, organization_id="org_b", task_id="t2", hold_seconds=60)
