from __future__ import annotations

import base64
import json

import pytest

from audit.models import AuditEvent
from sandboxes.models import Sandbox, SandboxStatus

pytestmark = pytest.mark.worker


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]


def test_create_execute_and_stop_a_sandbox(owner, sandbox):
    assert sandbox["status"] == "running"
    assert sandbox["org_id"] == owner.org_id
    assert sandbox["session_id"]
    sid = sandbox["sandbox_id"]

    result = owner.post(f"/sandbox/{sid}/execute", {"command": ["echo", "hello"]}).json()
    assert result["exit_code"] == 0
    assert result["stdout"] == "hello\n"
    assert result["output_truncated"] is False

    shell = owner.post(f"/sandbox/{sid}/execute", {"command": "echo out; echo err >&2; exit 3"}).json()
    assert (shell["exit_code"], shell["stdout"], shell["stderr"]) == (3, "out\n", "err\n")

    assert owner.post(f"/sandbox/{sid}/stop").json() == {"success": True}
    assert owner.get(f"/sandbox/{sid}").json()["status"] == "terminated"
    # Stopping again is safe to retry.
    assert owner.post(f"/sandbox/{sid}/stop").json() == {"success": True}


def test_files_written_are_read_back_and_listed(owner, sandbox):
    sid = sandbox["sandbox_id"]
    payload = bytes(range(256)) * 10
    written = owner.post(
        f"/sandbox/{sid}/files",
        {
            "files": [
                {"path": "/workspace/data/blob.bin", "content": b64(payload)},
                {"path": "notes.txt", "content": b64(b"hi")},
            ]
        },
    )
    assert written.status_code == 200, written.content
    read = owner.get(f"/sandbox/{sid}/files", {"path": "/workspace/data/blob.bin"}).json()
    assert base64.b64decode(read["content"]) == payload
    assert read["size"] == len(payload)
    listing = owner.get(f"/sandbox/{sid}/files/list", {"path": "/workspace", "recursive": "true"}).json()["files"]
    by_path = {f["path"]: f for f in listing}
    assert by_path["/workspace/data"]["type"] == "directory"
    assert by_path["/workspace/data/blob.bin"]["size"] == len(payload)
    assert by_path["/workspace/notes.txt"]["type"] == "file"
    # The command inside sees the same files.
    assert owner.post(f"/sandbox/{sid}/execute", {"command": "cat /workspace/notes.txt"}).json()["stdout"] == "hi"


def test_streamed_execution_sends_output_then_exit_then_done(owner, sandbox):
    sid = sandbox["sandbox_id"]
    response = owner.post(f"/sandbox/{sid}/execute", {"command": "echo one; echo two >&2; exit 4", "stream": True})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = [
        json.loads(line[6:])
        for line in b"".join(response.streaming_content).decode().splitlines()
        if line.startswith("data: ")
    ]
    assert {"type": "stdout", "data": "one\n"} in events
    assert {"type": "stderr", "data": "two\n"} in events
    exit_event = next(e for e in events if e["type"] == "exit")
    assert exit_event["code"] == 4
    assert events[-1] == {"type": "done"}
    assert AuditEvent.objects.filter(sandbox_id=sid, action="command.execute", details__stream=True).count() == 1


def test_another_organizations_sandbox_is_indistinguishable_from_a_missing_one(owner, stranger, sandbox):
    sid = sandbox["sandbox_id"]
    theirs = stranger.get(f"/sandbox/{sid}")
    missing = stranger.get("/sandbox/sbx_doesnotexist")
    assert theirs.status_code == missing.status_code == 404
    a, b = error_of(theirs), error_of(missing)
    assert a["code"] == b["code"] == "SANDBOX_NOT_FOUND"
    assert a["message"].replace(sid, "X") == b["message"].replace("sbx_doesnotexist", "X")
    for method, path, body in [
        ("post", f"/sandbox/{sid}/execute", {"command": "true"}),
        ("post", f"/sandbox/{sid}/files", {"files": [{"path": "x", "content": ""}]}),
        ("get", f"/sandbox/{sid}/files/list", None),
        ("post", f"/sandbox/{sid}/stop", None),
        ("delete", f"/sandbox/{sid}", None),
        ("get", f"/sandbox/{sid}/audit/summary", None),
    ]:
        response = getattr(stranger, method)(path, body)
        assert response.status_code == 404, (method, path, response.content)
    assert sid not in [s["sandbox_id"] for s in stranger.get("/sandboxes").json()["sandboxes"]]
    assert Sandbox.objects.get(id=sid).status == SandboxStatus.RUNNING


def test_operations_on_a_stopped_sandbox_are_refused_with_409(owner, sandbox):
    sid = sandbox["sandbox_id"]
    owner.post(f"/sandbox/{sid}/stop")
    for method, path, body in [
        ("post", f"/sandbox/{sid}/execute", {"command": "true"}),
        ("post", f"/sandbox/{sid}/files", {"files": [{"path": "x", "content": ""}]}),
        ("get", f"/sandbox/{sid}/files?path=x", None),
        ("post", f"/sandbox/{sid}/extend", {"additional_seconds": 60}),
    ]:
        response = getattr(owner, method)(path, body)
        assert response.status_code == 409, (path, response.content)
        assert error_of(response)["code"] == "SANDBOX_NOT_RUNNING"


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "/workspace/../etc/passwd",
        "/etc/passwd",
        "/workspace/a\x00b",
        "/workspace/" + "x" * 300,
        "",
        "/workspace",
    ],
)
def test_bad_paths_are_rejected_before_anything_is_written(owner, sandbox, path):
    sid = sandbox["sandbox_id"]
    response = owner.post(
        f"/sandbox/{sid}/files",
        {"files": [{"path": "ok.txt", "content": b64(b"x")}, {"path": path, "content": b64(b"x")}]},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_PATH"
    listing = owner.get(f"/sandbox/{sid}/files/list").json()["files"]
    assert listing == []


def test_invalid_base64_and_oversized_files_are_refused(owner, sandbox, settings):
    sid = sandbox["sandbox_id"]
    response = owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "a.txt", "content": "not base64!!"}]})
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_BASE64"
    settings.SANDBOX_FILE_API_MAX_BYTES = 1000
    response = owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "big.bin", "content": b64(b"x" * 1001)}]})
    assert response.status_code == 413
    assert error_of(response)["code"] == "FILE_TOO_LARGE"
    assert owner.get(f"/sandbox/{sid}/files/list").json()["files"] == []


def test_a_symlink_planted_inside_the_sandbox_is_never_followed(owner, sandbox):
    sid = sandbox["sandbox_id"]
    owner.post(f"/sandbox/{sid}/execute", {"command": "ln -s /etc/passwd /workspace/passwd; ln -s / /workspace/root"})
    read = owner.get(f"/sandbox/{sid}/files", {"path": "/workspace/passwd"})
    assert read.status_code == 400, read.content
    assert error_of(read)["code"] == "INVALID_PATH"
    write = owner.post(
        f"/sandbox/{sid}/files", {"files": [{"path": "/workspace/root/tmp/escaped", "content": b64(b"x")}]}
    )
    assert write.status_code == 400
    listing = owner.get(f"/sandbox/{sid}/files/list", {"path": "/workspace/root"})
    assert listing.status_code == 400
    entries = {f["name"]: f["type"] for f in owner.get(f"/sandbox/{sid}/files/list").json()["files"]}
    assert entries == {"passwd": "symlink", "root": "symlink"}


def test_a_file_name_that_is_not_utf8_is_listed_escaped(owner, sandbox):
    sid = sandbox["sandbox_id"]
    plant = "open(b'/workspace/bad\\xff name', 'w').write('x')"
    made = owner.post(f"/sandbox/{sid}/execute", {"command": ["python3", "-c", plant]})
    assert made.json()["exit_code"] == 0, made.content
    listing = owner.get(f"/sandbox/{sid}/files/list", {"recursive": "true"})
    assert listing.status_code == 200
    files = json.loads(listing.content.decode("utf-8"))["files"]
    assert [(f["name"], f["path"]) for f in files] == [("bad\\xff name", "/workspace/bad\\xff name")]
    json.dumps(files, ensure_ascii=False).encode("utf-8")  # no lone surrogate in any string

    read = owner.get(f"/sandbox/{sid}/files", {"path": files[0]["path"]})
    assert read.status_code == 404 and error_of(read)["code"] == "FILE_NOT_FOUND"
    # The name Python reads for those bytes is not a path a caller may use.
    delete = owner.delete(f"/sandbox/{sid}/files", {"path": "/workspace/bad\udcff name"})
    assert delete.status_code == 400 and error_of(delete)["code"] == "INVALID_TEXT"
    assert owner.get(f"/sandbox/{sid}/files/list").json()["files"][0]["name"] == "bad\\xff name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cpus": "999"}, "cpus"),
        ({"cpus": "-1"}, "cpus"),
        ({"memory": "1Ti"}, "memory"),
        ({"memory": "lots"}, "memory"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 10**9}, "timeout_seconds"),
    ],
)
def test_absurd_resources_get_400_naming_the_allowed_range(owner, db, body, field):
    response = owner.post("/sandbox/create", body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert field in error["message"] and "between" in error["message"]
    assert not Sandbox.objects.exists()


def test_command_timeout_is_reported(owner, sandbox):
    sid = sandbox["sandbox_id"]
    result = owner.post(f"/sandbox/{sid}/execute", {"command": "sleep 30", "timeout": 500}).json()
    assert result["timed_out"] is True
    assert result["exit_code"] == 124
    event = AuditEvent.objects.filter(sandbox_id=sid, action="command.execute").first()
    assert event.outcome == "failure"


def test_extend_moves_expiry_and_rejects_out_of_range(owner, sandbox):
    sid = sandbox["sandbox_id"]
    before = Sandbox.objects.get(id=sid).expires_at
    extended = owner.post(f"/sandbox/{sid}/extend", {"additional_seconds": 120})
    assert extended.status_code == 200
    assert (Sandbox.objects.get(id=sid).expires_at - before).total_seconds() == pytest.approx(120, abs=1)
    bad = owner.post(f"/sandbox/{sid}/extend", {"additional_seconds": 0})
    assert bad.status_code == 400


def test_audit_lists_every_sandbox_action_with_outcome(owner, sandbox):
    sid = sandbox["sandbox_id"]
    owner.post(f"/sandbox/{sid}/execute", {"command": "true"})
    owner.post(f"/sandbox/{sid}/files", {"files": [{"path": "a.txt", "content": b64(b"a")}]})
    owner.get(f"/sandbox/{sid}/files", {"path": "missing.txt"})
    events = owner.get("/audit", {"sandbox_id": sid}).json()
    actions = [(e["action"], e["outcome"]) for e in events["events"]]
    assert ("sandbox.create", "success") in actions
    assert ("command.execute", "success") in actions
    assert ("file.write", "success") in actions
    assert ("file.read", "failure") in actions
    assert events["total"] == len(events["events"])
    summary = owner.get(f"/sandbox/{sid}/audit/summary").json()
    assert summary["commands_executed"] == 1
    assert summary["files_written"] == 1
    assert summary["errors"] == 1


def test_output_flood_is_capped_and_flagged(owner, sandbox, settings):
    sid = sandbox["sandbox_id"]
    result = owner.post(
        f"/sandbox/{sid}/execute", {"command": "yes stowage | head -c 50000000; echo done >&2", "timeout": 30000}
    ).json()
    assert result["exit_code"] == 0
    assert result["output_truncated"] is True
    # The worker's cap (STOWAGE_OUTPUT_LIMIT_BYTES, 1 MiB by default) bounds what travels back.
    assert 0 < len(result["stdout"]) <= 1 << 20
    assert result["stderr"] == "done\n"


def test_a_fork_bomb_and_a_memory_hog_do_not_take_down_the_worker(owner, live):
    sid = owner.post("/sandbox/create", {"memory": "256Mi"}).json()["sandbox_id"]
    bomb = owner.post(
        f"/sandbox/{sid}/execute", {"command": "f() { f | f & }; f; exec sleep 30", "timeout": 3000}
    ).json()
    # It ends at its timeout, or sooner when the sandbox's memory limit kills its processes;
    # either way it is stopped and answered, never left running.
    assert bomb["timed_out"] is True or bomb["exit_code"] != 0, bomb
    hog = owner.post(
        f"/sandbox/{sid}/execute",
        {"command": ["python3", "-c", "x = bytearray(1 << 31); print('allocated')"], "timeout": 20000},
    ).json()
    assert hog["exit_code"] != 0
    assert "allocated" not in hog["stdout"]
    after = owner.post(f"/sandbox/{sid}/execute", {"command": ["echo", "still here"]}).json()
    assert after["stdout"] == "still here\n"


def test_expired_sandboxes_are_stopped_by_the_periodic_task(owner, live):
    from sandboxes.worker import stop_expired_sandboxes

    sid = owner.post("/sandbox/create", {"timeout_seconds": 1}).json()["sandbox_id"]
    keep = owner.post("/sandbox/create", {"timeout_seconds": 600}).json()["sandbox_id"]
    import time

    time.sleep(1.2)
    assert stop_expired_sandboxes.delay().get(timeout=30) >= 1
    deadline = time.monotonic() + 20
    while Sandbox.objects.get(id=sid).status != SandboxStatus.TERMINATED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Sandbox.objects.get(id=sid).status == SandboxStatus.TERMINATED
    assert Sandbox.objects.get(id=keep).status == SandboxStatus.RUNNING
    event = AuditEvent.objects.get(sandbox_id=sid, action="sandbox.stop")
    assert event.details["reason"] == "expired" and event.actor == "system"


def test_environment_is_cleared_then_applied(owner, live, monkeypatch):
    sid = owner.post("/sandbox/create", {"env": {"GREETING": "hello", "SHARED": "create"}}).json()["sandbox_id"]
    result = owner.post(
        f"/sandbox/{sid}/execute",
        {"command": "echo $GREETING $SHARED $DJANGO_SETTINGS_MODULE", "env": {"SHARED": "command"}},
    ).json()
    assert result["stdout"] == "hello command\n"
    bad = owner.post(f"/sandbox/{sid}/execute", {"command": "true", "env": {"1BAD": "x"}})
    assert bad.status_code == 400


def test_unknown_sandbox_and_malformed_json_get_clear_errors(owner, db):
    response = owner.client.post(
        "/api/v1/sandbox/create", "{not json", content_type="application/json", headers=owner.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"]
    missing = owner.post("/sandbox/sbx_nope/execute", {"command": "true"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SANDBOX_NOT_FOUND"
    wrong_type = owner.post("/sandbox/create", {"timeout_seconds": "soon"})
    assert wrong_type.status_code == 400
    assert "timeout_seconds" in wrong_type.json()["error"]["message"]


def test_a_command_leaves_its_started_and_completed_events_in_order(owner, sandbox):
    import time

    from webhooks.models import WebhookEvent

    sid = sandbox["sandbox_id"]
    assert owner.post(f"/sandbox/{sid}/execute", {"command": ["true"]}).json()["exit_code"] == 0
    assert owner.post(f"/sandbox/{sid}/execute", {"command": "exit 4"}).json()["exit_code"] == 4

    # Both are written once the answers are on their way: wait for them, not for a fixed time.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = list(WebhookEvent.objects.filter(type__startswith="command.").order_by("created_at"))
        if len(events) >= 4:
            break
        time.sleep(0.05)
    by_command: dict[str, list] = {}
    for event in events:
        by_command.setdefault(event.payload["data"]["command_id"], []).append(event)
    # Each command's own events in order, the first command's first. The second may start before
    # the first one's completion is written, since that is written after its answer went back.
    first, second = by_command.values()
    assert [event.type for event in first] == ["command.started", "command.completed"]
    assert [event.type for event in second] == ["command.started", "command.failed"]
    assert second[1].payload["data"]["exit_code"] == 4
    assert all(event.payload["data"]["sandbox_id"] == sid for event in events)
