"""Transfers that go wrong: a worker killed mid-copy, a full disk, corrupted stored bytes,
a client retrying while the first request still runs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from artifacts.storage import StorageFull, blob_delete, blob_key, blob_storage, blob_write
from audit.models import AuditEvent, Outcome
from config import stack
from config.celery import app as celery_app
from core.actor import Actor
from core.errors import StowageError
from tests.conftest import worker_env
from transfers.models import Transfer, TransferKind, TransferState
from transfers.put import artifact_put
from transfers.sweeps import storage_sweep

FAULT_HOST = "faulthost"
# Redis hands an unacknowledged task to another worker only after this long; the fault
# workers get a short one (the product default is longer than the longest task).
VISIBILITY_TIMEOUT = 3
SIZE = 200 << 20


def run(owner, sid: str, command: str) -> dict:
    response = owner.post(f"/sandbox/{sid}/execute", {"command": command})
    assert response.status_code == 200, response.content
    return response.json()


def write(owner, sid: str, path: str, data: bytes) -> None:
    response = owner.post(
        f"/sandbox/{sid}/files", {"files": [{"path": path, "content": base64.b64encode(data).decode()}]}
    )
    assert response.status_code == 200, response.content


def storage_files(root: Path) -> list[str]:
    """Every regular file under the storage location, relative to it."""
    found = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            found.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(found)


def wait_transfer(owner, transfer_id: str, *, until, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = owner.get(f"/transfers/{transfer_id}").json()
        if until(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def start_fault_worker(log: Path, **extra_env: str):
    env = worker_env(STOWAGE_HOST=FAULT_HOST, STOWAGE_ARTIFACT_MAX_BYTES=str(1 << 30), **extra_env)
    process = stack.spawn(stack.worker_argv(FAULT_HOST, concurrency=2), env=env, log=log)
    try:
        stack.wait_for_worker(celery_app, FAULT_HOST, timeout=60, process=process)
    except RuntimeError:
        kill_group(process)
        raise RuntimeError("the fault worker did not start:\n" + log.read_text()[-4000:]) from None
    return process


def throttle_cpu(pid: int, percent: int) -> Path | None:
    """Put a process in a CPU cgroup limited to ``percent`` of one CPU, like a busy host; None if
    this machine has no writable cpu controller (v1 ``cpu`` or v2 ``cpu.max``)."""
    name = f"stowage-faults-{os.getpid()}"
    candidates = [
        (Path("/sys/fs/cgroup/cpu"), {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(percent * 1000)}),
        (Path("/sys/fs/cgroup"), {"cpu.max": f"{percent * 1000} 100000"}),
        (Path("/sys/fs/cgroup/unified"), {"cpu.max": f"{percent * 1000} 100000"}),
    ]
    for base, limits in candidates:
        probe = base / next(iter(limits))
        if not probe.exists() and not (base / "cgroup.subtree_control").exists():
            continue
        group = base / name
        try:
            group.mkdir(exist_ok=True)
            for key, value in limits.items():
                (group / key).write_text(value)
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:
            release_cgroup(group)
            continue
        return group
    return None


def release_cgroup(group: Path | None) -> None:
    if group is not None:
        try:
            group.rmdir()
        except OSError:
            pass


def kill_group(process) -> None:
    """SIGKILL the worker and everything in its process group (it is the group leader)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


# --- 1. a worker killed in the middle of an upload ---------------------------------------------


@pytest.mark.worker
def test_an_upload_whose_worker_is_killed_is_redelivered_and_leaves_one_artifact_and_no_debris(owner, live, settings):
    settings.STOWAGE_SANDBOX_HOSTS = [FAULT_HOST]
    log = settings.VAR_DIR / "log" / "faultworker.log"
    log.unlink(missing_ok=True)
    first = start_fault_worker(log)
    second = cgroup = None
    sid = artifact_id = None
    try:
        created = owner.post("/sandbox/create", {"timeout_seconds": 600})
        assert created.status_code == 201, created.content
        sandbox = created.json()
        sid = sandbox["sandbox_id"]
        made = run(owner, sid, f"head -c {SIZE} /dev/urandom > /workspace/big.bin && sha256sum /workspace/big.bin")
        assert made["exit_code"] == 0, made
        expected = made["stdout"].split()[0]

        # A slow host: the worker gets a twentieth of a CPU, so the copy takes seconds.
        cgroup = throttle_cpu(first.pid, 5)
        root = Path(blob_storage().location)
        temp_before = set(storage_files(root / "tmp")) if (root / "tmp").exists() else set()
        started = owner.post(
            f"/sandbox/{sid}/artifacts/upload?wait=false", {"path": "big.bin", "remote_path": "fault/big.bin"}
        )
        assert started.status_code == 202, started.content
        transfer_id = started.json()["transfer_id"]
        # Some bytes are in (a megabyte when the worker is slowed, the first read otherwise).
        enough = 1 << 20 if cgroup is not None else 1
        state = wait_transfer(
            owner,
            transfer_id,
            until=lambda s: s["bytes_done"] >= enough or s["state"] in ("succeeded", "failed"),
            timeout=60,
        )
        assert state["state"] == "running" and state["bytes_done"] >= enough, state

        kill_group(first)
        # What the killed attempt was writing is left behind under a temporary name.
        assert set(storage_files(root / "tmp")) - temp_before
        transfer = Transfer.objects.get(id=transfer_id)
        # The kill landed mid-copy: nothing was published, nothing is visible.
        assert transfer.state == TransferState.RUNNING, "the upload finished before the kill; use a bigger file"
        assert 0 < transfer.bytes_done < SIZE
        assert owner.get("/artifacts").json()["artifacts"] == []
        artifact_id = transfer.artifact_id
        assert Artifact.objects.get(id=artifact_id).state == ArtifactState.PENDING

        # A new worker for the host takes the unacknowledged task once its visibility
        # timeout has passed (it looks when it starts, then every couple of minutes).
        delivered_by = transfer.started_at + timedelta(seconds=VISIBILITY_TIMEOUT + 1)
        time.sleep(max(0.0, (delivered_by - timezone.now()).total_seconds()))
        second = start_fault_worker(log, STOWAGE_BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT))
        state = wait_transfer(owner, transfer_id, until=lambda s: s["state"] in ("succeeded", "failed"), timeout=60)
        assert state["state"] == "succeeded", state

        transfer.refresh_from_db()
        assert transfer.attempts == 2
        ready = list(Artifact.objects.filter(state=ArtifactState.READY))
        assert [a.id for a in ready] == [artifact_id]
        assert ready[0].checksum == f"sha256:{expected}"
        assert ready[0].size == SIZE
        listed = owner.get("/artifacts").json()["artifacts"]
        assert [(a["id"], a["checksum"]) for a in listed] == [(artifact_id, f"sha256:{expected}")]

        # The killed attempt's partial blob is debris for the sweeper.
        settings.ARTIFACT_STALE_PENDING_SECONDS = 60
        storage_sweep(now=timezone.now() + timedelta(days=30))
        assert storage_files(root) == [ready[0].storage_key]
        digest = hashlib.sha256()
        with open(root / ready[0].storage_key, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        assert digest.hexdigest() == expected
    finally:
        if sid is not None and second is not None:
            owner.delete(f"/sandbox/{sid}")
        for process in (first, second):
            if process is not None:
                kill_group(process)
        release_cgroup(cgroup)
        if artifact_id is not None:
            blob_delete(blob_key(owner.org_id, artifact_id))
        if sid is not None:
            shutil.rmtree(django_settings.SANDBOX_ROOT / sid, ignore_errors=True)


# --- 2. the disk fills up while a blob is written --------------------------------------------


@contextlib.contextmanager
def storage_on_tmpfs(tmp_path: Path, settings, options: str):
    """The artifact storage on a tmpfs of its own, as small as ``options`` say."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.fail(f"the disk-full tests mount a small tmpfs and need root: {mounted.stderr.decode().strip()}")
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(mount_point)},
        },
    }
    try:
        assert blob_storage().location == str(mount_point)
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture
def small_storage(tmp_path, settings):
    """The artifact storage on a 1 MiB tmpfs."""
    with storage_on_tmpfs(tmp_path, settings, "size=1m") as mount_point:
        yield mount_point


def chunks_of(total: int, size: int = 64 << 10):
    sent = 0
    while sent < total:
        yield os.urandom(min(size, total - sent))
        sent += size


def test_a_full_disk_raises_storage_full_and_leaves_no_file(small_storage):
    assert blob_storage().location == str(small_storage)
    with pytest.raises(StorageFull) as caught:
        blob_write("blobs/org_x/art_x", chunks_of(2 << 20), max_bytes=10 << 20)
    assert caught.value.code == "STORAGE_FULL"
    assert storage_files(small_storage) == []
    # The space is free again: a blob that fits is stored whole.
    stored = blob_write("blobs/org_x/art_y", [b"fits"], max_bytes=10 << 20)
    assert stored.size == 4
    assert storage_files(small_storage) == ["blobs/org_x/art_y"]


def test_no_inode_left_for_a_new_directory_is_storage_full_too(owner, tmp_path, settings):
    # Three inodes: the root, tmp/ and blobs/; the organization's directory cannot be made.
    with storage_on_tmpfs(tmp_path, settings, "size=1m,nr_inodes=3") as location:
        with pytest.raises(StorageFull):
            blob_write(blob_key(owner.org_id, "art_first"), [b"x"], max_bytes=1 << 20)
        assert storage_files(location) == []
        with pytest.raises(StowageError) as caught:
            artifact_put(
                actor=Actor(organization_id=owner.org_id, label="test"),
                stream=_Body(1000),
                remote_path="small.bin",
                content_length=1000,
            )
        assert (caught.value.code, caught.value.status) == ("STORAGE_FULL", 507)
        assert Transfer.objects.get().error_code == "STORAGE_FULL"
        assert Artifact.objects.get().state == ArtifactState.FAILED
        assert storage_files(location) == []


class _Body:
    def __init__(self, total: int) -> None:
        self.chunks = chunks_of(total)
        self.buffer = b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def test_a_put_into_a_full_storage_fails_clearly_and_leaves_nothing(owner, small_storage):
    with pytest.raises(StowageError) as caught:
        artifact_put(
            actor=Actor(organization_id=owner.org_id, label="test"),
            stream=_Body(2 << 20),
            remote_path="big.bin",
            content_length=2 << 20,
        )
    assert caught.value.code == "STORAGE_FULL"
    assert caught.value.status == 507
    assert "full" in caught.value.message
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    assert Artifact.objects.get().state == ArtifactState.FAILED
    transfer = Transfer.objects.get()
    assert (transfer.kind, transfer.state, transfer.error_code) == (
        TransferKind.PUT,
        TransferState.FAILED,
        "STORAGE_FULL",
    )
    assert storage_files(small_storage) == []

    # The same over HTTP: a JSON error with the code, and nothing listed.
    response = owner.client.put(
        "/api/v1/artifacts?remote_path=big2.bin",
        os.urandom(2 << 20),
        content_type="application/octet-stream",
        headers=owner.headers(),
    )
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "STORAGE_FULL" and error["message"]
    assert owner.get("/artifacts").json()["artifacts"] == []
    assert storage_files(small_storage) == []


# --- 3. stored bytes corrupted before a download -----------------------------------------------


@pytest.mark.worker
def test_a_corrupted_blob_is_not_written_into_the_sandbox(owner, sandbox):
    sid = sandbox["sandbox_id"]
    data = os.urandom(3 << 20)
    write(owner, sid, "out/data.bin", data)
    artifact = owner.post(
        f"/sandbox/{sid}/artifacts/upload", {"path": "out/data.bin", "remote_path": "corrupt/data.bin"}
    ).json()
    stored = Path(blob_storage().path(Artifact.objects.get(id=artifact["id"]).storage_key))
    with open(stored, "r+b") as handle:
        handle.seek(len(data) // 2)
        original = handle.read(16)
        handle.seek(len(data) // 2)
        handle.write(bytes(b ^ 0xFF for b in original))
    assert stored.stat().st_size == len(data)

    response = owner.post(
        f"/sandbox/{sid}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "/workspace/in/data.bin"}
    )
    assert 400 <= response.status_code < 600, response.content
    error = response.json()["error"]
    assert error["code"] == "CHECKSUM_MISMATCH", error
    assert error["message"]

    listing = owner.get(f"/sandbox/{sid}/files/list", {"path": "/workspace/in", "recursive": "true"})
    assert listing.status_code == 200, listing.content
    assert listing.json()["files"] == []
    host_dir = django_settings.SANDBOX_ROOT / sid / "workspace" / "in"
    assert list(host_dir.iterdir()) == []
    event = AuditEvent.objects.get(action="artifact.download", resource=f"artifact:{artifact['id']}")
    assert event.outcome == Outcome.FAILURE
    assert "CHECKSUM_MISMATCH" in event.error_message
    assert Transfer.objects.get(kind=TransferKind.DOWNLOAD).state == TransferState.FAILED


# --- 8. a retry while the first request still runs --------------------------------------------


@pytest.mark.worker
def test_a_retried_upload_joins_the_one_still_running(owner, sandbox):
    sid = sandbox["sandbox_id"]
    made = run(owner, sid, "head -c 15M /dev/urandom > /workspace/big.bin && sha256sum /workspace/big.bin")
    expected = "sha256:" + made["stdout"].split()[0]
    body = {"path": "/workspace/big.bin", "remote_path": "retry/big.bin"}
    first = owner.post(f"/sandbox/{sid}/artifacts/upload?wait=false", body)
    second = owner.post(f"/sandbox/{sid}/artifacts/upload?wait=false", body)
    assert first.status_code == second.status_code == 202
    ids = [first.json()["transfer_id"], second.json()["transfer_id"]]
    finals = [wait_transfer(owner, t, until=lambda s: s["state"] in ("succeeded", "failed"), timeout=60) for t in ids]
    assert [s["state"] for s in finals] == ["succeeded", "succeeded"], finals
    assert finals[0]["artifact_id"] == finals[1]["artifact_id"]
    if ids[0] != ids[1]:
        # Only a request that had already finished may be answered by a second transfer.
        one, two = Transfer.objects.get(id=ids[0]), Transfer.objects.get(id=ids[1])
        assert one.finished_at <= two.created_at
    ready = list(Artifact.objects.filter(state=ArtifactState.READY))
    assert [a.id for a in ready] == [finals[0]["artifact_id"]]
    assert ready[0].checksum == expected
    # A third, later retry (the first has finished) still answers with the same artifact.
    again = owner.post(f"/sandbox/{sid}/artifacts/upload", body)
    assert again.status_code == 200, again.content
    assert again.json()["id"] == ready[0].id
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 1
