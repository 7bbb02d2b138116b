"""Two sandbox hosts on one machine: a worker per host, a sandbox on each, an artifact uploaded
from host A's sandbox and downloaded into host B's, each step run by its own host's worker; and
with B's worker gone, a download into B's sandbox is not run by anyone else."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from config import stack
from config.celery import app as celery_app
from config.celery import sandbox_queue
from sandboxes.models import Sandbox
from tests.conftest import worker_env
from transfers.models import Transfer, TransferKind, TransferState

HOSTS = ("hosta", "hostb")


def start_host_worker(host: str, log: Path):
    log.unlink(missing_ok=True)
    process = stack.spawn(stack.worker_argv(host, concurrency=2), env=worker_env(STOWAGE_HOST=host), log=log)
    try:
        stack.wait_for_worker(celery_app, host, timeout=60, process=process)
    except RuntimeError:
        stack.stop([process])
        raise RuntimeError(f"the worker for {host} did not start:\n" + log.read_text()[-4000:]) from None
    return process


def create_on(owner, settings, host: str) -> str:
    settings.STOWAGE_SANDBOX_HOSTS = [host]
    created = owner.post("/sandbox/create", {"timeout_seconds": 600})
    assert created.status_code == 201, created.content
    sid = created.json()["sandbox_id"]
    assert Sandbox.objects.get(id=sid).host == host
    return sid


def execute(owner, sid: str, command: str) -> dict:
    response = owner.post(f"/sandbox/{sid}/execute", {"command": command})
    assert response.status_code == 200, response.content
    assert response.json()["exit_code"] == 0, response.json()
    return response.json()


def ran_on(logs: dict[str, Path], task_id: str) -> list[str]:
    """The hosts whose worker log shows the task."""
    return [host for host, log in logs.items() if task_id in log.read_text(errors="replace")]


def purge(queue: str) -> None:
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


@pytest.mark.worker
def test_an_artifact_goes_from_a_sandbox_on_host_a_to_one_on_host_b(
    broker, transactional_db, owner, settings, tmp_path
):
    logs = {host: tmp_path / f"worker-{host}.log" for host in HOSTS}
    for host in HOSTS:
        purge(sandbox_queue(host))
    workers = {}
    sids: list[str] = []
    try:
        for host in HOSTS:
            workers[host] = start_host_worker(host, logs[host])
        sid_a = create_on(owner, settings, "hosta")
        sids.append(sid_a)
        sid_b = create_on(owner, settings, "hostb")
        sids.append(sid_b)

        made = execute(
            owner,
            sid_a,
            "mkdir -p /workspace/out && head -c 2M /dev/urandom > /workspace/out/data.bin && sha256sum /workspace/out/data.bin",
        )
        expected = made["stdout"].split()[0]
        uploaded = owner.post(
            f"/sandbox/{sid_a}/artifacts/upload", {"path": "/workspace/out/data.bin", "remote_path": "hosts/data.bin"}
        )
        assert uploaded.status_code == 200, uploaded.content
        artifact = uploaded.json()
        assert artifact["checksum"] == f"sha256:{expected}"
        upload_id = Transfer.objects.get(kind=TransferKind.UPLOAD, artifact_id=artifact["id"]).id

        downloaded = owner.post(
            f"/sandbox/{sid_b}/artifacts/download",
            {"artifact_id": artifact["id"], "target_path": "/workspace/in/data.bin"},
        )
        assert downloaded.status_code == 200, downloaded.content
        download_id = downloaded.json()["transfer_id"]
        in_b = execute(owner, sid_b, "sha256sum /workspace/in/data.bin")
        assert in_b["stdout"].split()[0] == expected
        # The bytes are in B's sandbox directory, not A's.
        on_disk = django_settings.SANDBOX_ROOT / sid_b / "workspace" / "in" / "data.bin"
        assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == expected
        assert not (django_settings.SANDBOX_ROOT / sid_a / "workspace" / "in").exists()

        # Each step was run by the worker of the sandbox's host, and only by it.
        assert ran_on(logs, upload_id) == ["hosta"]
        assert ran_on(logs, download_id) == ["hostb"]

        # Host B's worker goes away: a download into B's sandbox waits for it and then answers
        # 504; host A's worker does not take it.
        stack.stop([workers.pop("hostb")])
        settings.TRANSFER_WAIT_SECONDS = 3
        started = time.monotonic()
        stuck = owner.post(
            f"/sandbox/{sid_b}/artifacts/download",
            {"artifact_id": artifact["id"], "target_path": "/workspace/in/again.bin"},
        )
        assert time.monotonic() - started < 20
        assert stuck.status_code == 504, stuck.content
        error = stuck.json()["error"]
        assert error["code"] == "WORKER_TIMEOUT" and "worker" in error["message"], error
        assert stuck["Content-Type"].startswith("application/json")
        pending = Transfer.objects.filter(kind=TransferKind.DOWNLOAD).exclude(id=download_id).get()
        time.sleep(1)
        pending.refresh_from_db()
        assert pending.state == TransferState.QUEUED, pending.state
        assert ran_on(logs, pending.id) == []
        assert not (django_settings.SANDBOX_ROOT / sid_b / "workspace" / "in" / "again.bin").exists()
    finally:
        stack.stop(list(workers.values()))
        for host in HOSTS:
            purge(sandbox_queue(host))
        for sid in sids:
            shutil.rmtree(django_settings.SANDBOX_ROOT / sid, ignore_errors=True)
