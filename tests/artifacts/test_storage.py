"""What keeps storage tidy and safe over time: the sweeper, retention, signing-key rotation,
and archives that never read outside the sandbox however its tree changes meanwhile."""

from __future__ import annotations

import gzip
import io
import os
import secrets
import tarfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from artifacts import signing
from artifacts.models import Artifact, ArtifactState
from artifacts.services import artifact_expire, expire_artifacts
from artifacts.storage import blob_exists, blob_key, blob_storage, blob_write
from audit.models import AuditEvent
from sandboxes.runtime import FileNotFound, InvalidPath, LocalRuntime, NotADirectory, NotAFile, SandboxRuntimeError
from transfers.models import Transfer, TransferKind, TransferState
from transfers.sweeps import storage_sweep

HOUR = 3600


@pytest.fixture
def tmp_storage(tmp_path, settings) -> Path:
    """The artifact storage in a directory of this test's own."""
    location = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    assert blob_storage().location == str(location)
    return location


def storage_files(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, name), root) for d, _dirs, files in os.walk(root) for name in files}


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- 4. the sweeper ------------------------------------------------------------------------------


def test_the_sweeper_fails_stale_uploads_and_removes_debris_but_keeps_live_blobs(owner, tmp_storage, settings):
    settings.ARTIFACT_STALE_PENDING_SECONDS = HOUR
    now = timezone.now()
    org = owner.org_id

    def artifact(state: str, created_ago: float, *, blob_age: float | None) -> Artifact:
        made = Artifact(
            organization_id=org,
            remote_path=f"{state}.bin",
            state=state,
            created_at=now - timedelta(seconds=created_ago),
        )
        made.storage_key = blob_key(org, made.id)
        if state == ArtifactState.READY:
            made.checksum = "sha256:" + "0" * 64
            made.version = 1
        made.save(force_insert=True)
        if blob_age is not None:
            blob_write(made.storage_key, [b"bytes of " + made.id.encode()], max_bytes=1 << 20)
            age(tmp_storage / made.storage_key, blob_age)
        return made

    stale = artifact(ArtifactState.PENDING, 2 * HOUR, blob_age=2 * HOUR)
    stale_transfer = Transfer.objects.create(
        organization_id=org,
        kind=TransferKind.UPLOAD,
        artifact=stale,
        state=TransferState.RUNNING,
        created_at=stale.created_at,
    )
    fresh = artifact(ArtifactState.PENDING, 60, blob_age=None)
    fresh_transfer = Transfer.objects.create(
        organization_id=org,
        kind=TransferKind.UPLOAD,
        artifact=fresh,
        state=TransferState.RUNNING,
        created_at=fresh.created_at,
    )
    ready = artifact(ArtifactState.READY, 30 * 86400, blob_age=30 * 86400)
    deleted = artifact(ArtifactState.DELETED, 3 * HOUR, blob_age=3 * HOUR)  # its delete task never ran

    blob_write(blob_key(org, "art_orphan_old"), [b"nobody owns me"], max_bytes=1 << 20)
    age(tmp_storage / blob_key(org, "art_orphan_old"), 2 * HOUR)
    # Just published, its row not yet committed: young blobs are never judged.
    blob_write(blob_key(org, "art_orphan_young"), [b"row on its way"], max_bytes=1 << 20)
    (tmp_storage / "tmp").mkdir(exist_ok=True)
    (tmp_storage / "tmp" / "dead.partial").write_bytes(b"half a file")
    age(tmp_storage / "tmp" / "dead.partial", 2 * HOUR)
    (tmp_storage / "tmp" / "writing.partial").write_bytes(b"being written")

    result = storage_sweep(now=timezone.now())

    assert result == {"failed_transfers": 1, "failed_artifacts": 1, "removed_blobs": 4, "adopted_artifacts": 0}
    assert storage_files(tmp_storage) == {ready.storage_key, blob_key(org, "art_orphan_young"), "tmp/writing.partial"}
    states = dict(Artifact.objects.values_list("id", "state"))
    assert states == {
        stale.id: ArtifactState.FAILED,
        fresh.id: ArtifactState.PENDING,
        ready.id: ArtifactState.READY,
        deleted.id: ArtifactState.DELETED,
    }
    stale_transfer.refresh_from_db()
    fresh_transfer.refresh_from_db()
    assert (stale_transfer.state, stale_transfer.error_code) == (TransferState.FAILED, "ABANDONED")
    assert fresh_transfer.state == TransferState.RUNNING
    assert (tmp_storage / ready.storage_key).read_bytes() == b"bytes of " + ready.id.encode()
    # The failed upload is not listed; the ready one is.
    assert [a["id"] for a in owner.get("/artifacts").json()["artifacts"]] == [ready.id]
    # A second pass finds nothing more to do.
    assert storage_sweep(now=timezone.now()) == {
        "failed_transfers": 0,
        "failed_artifacts": 0,
        "removed_blobs": 0,
        "adopted_artifacts": 0,
    }


# --- 5. retention --------------------------------------------------------------------------------


def put(owner, name: str, data: bytes) -> dict:
    response = owner.client.put(
        f"/api/v1/artifacts?remote_path={name}", data, content_type="application/octet-stream", headers=owner.headers()
    )
    assert response.status_code == 201, response.content
    return response.json()


def wait_gone(key: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while blob_exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not blob_exists(key)


def assert_expired(owner, artifact_id: str) -> None:
    row = Artifact.objects.get(id=artifact_id)
    assert row.state == ArtifactState.TRASHED and row.deleted_at is not None
    assert owner.get(f"/artifacts/{artifact_id}").status_code == 404
    assert blob_exists(row.storage_key), "a trashed artifact keeps its blob until it is purged"
    assert owner.delete(f"/trash/{artifact_id}").status_code == 200
    assert Artifact.objects.get(id=artifact_id).state == ArtifactState.DELETED
    assert wait_gone(row.storage_key), "the purged artifact's blob is still stored"
    event = AuditEvent.objects.get(action="artifact.delete", resource=f"artifact:{artifact_id}")
    assert event.details["reason"] == "expired"
    assert event.organization_id == owner.org_id


@pytest.mark.worker
def test_expired_artifacts_are_deleted_and_their_rows_kept(owner, live):
    expired = put(owner, "old.txt", b"old")
    kept = put(owner, "new.txt", b"new")
    forever = put(owner, "forever.txt", b"forever")
    Artifact.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    Artifact.objects.filter(id=kept["id"]).update(expires_at=timezone.now() + timedelta(hours=1))

    assert artifact_expire() == 1
    assert_expired(owner, expired["id"])
    for untouched in (kept, forever):
        row = Artifact.objects.get(id=untouched["id"])
        assert row.state == ArtifactState.READY and blob_exists(row.storage_key)
        assert not AuditEvent.objects.filter(action="artifact.delete", resource=f"artifact:{row.id}").exists()
    assert [a["id"] for a in owner.get("/artifacts").json()["artifacts"]] == [forever["id"], kept["id"]]
    # Running again changes nothing.
    assert artifact_expire() == 0

    # The scheduled task, by the name beat uses, run by the real worker.
    Artifact.objects.filter(id=kept["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_artifacts.delay().get(timeout=30) == 1
    assert_expired(owner, kept["id"])
    assert Artifact.objects.get(id=forever["id"]).state == ArtifactState.READY
    assert AuditEvent.objects.filter(action="artifact.delete").count() == 2


# --- 6. rotating the keys that sign presigned URLs ----------------------------------------------


@pytest.fixture
def fresh_signing_keys():
    signing.signing_keys.cache_clear()
    yield
    signing.signing_keys.cache_clear()


def use_keys(settings, keys: list[str]) -> None:
    settings.URL_SIGNING_KEYS = keys
    signing.signing_keys.cache_clear()


def presigned_path(owner, artifact_id: str) -> str:
    response = owner.get(f"/artifacts/{artifact_id}/url", {"expires_in": 3600})
    assert response.status_code == 200, response.content
    return response.json()["url"].split("testserver", 1)[1]


def test_rotated_signing_keys_keep_old_urls_until_the_old_key_is_removed(
    owner, tmp_storage, settings, fresh_signing_keys
):
    artifact = put(owner, "signed.txt", b"signed bytes")
    anonymous = Client()
    use_keys(settings, ["1:old-secret"])
    old_url = presigned_path(owner, artifact["id"])
    assert "kv=1" in old_url

    use_keys(settings, ["2:new-secret", "1:old-secret"])
    assert b"".join(anonymous.get(old_url).streaming_content) == b"signed bytes"
    new_url = presigned_path(owner, artifact["id"])
    assert "kv=2" in new_url
    assert b"".join(anonymous.get(new_url).streaming_content) == b"signed bytes"

    use_keys(settings, ["2:new-secret"])
    rotated_out = anonymous.get(old_url)
    assert rotated_out.status_code == 403
    assert b"".join(anonymous.get(new_url).streaming_content) == b"signed bytes"

    tampered = anonymous.get(new_url.replace("sig=", "sig=0"))
    # An old-key URL relabelled with the new key version is no better.
    relabelled = anonymous.get(old_url.replace("kv=1", "kv=2"))
    expired_params = signing.sign(artifact["id"], -60)
    expired = anonymous.get(reverse("presigned-download", args=[artifact["id"]]), expired_params)
    refusals = [rotated_out, tampered, relabelled, expired]
    assert [r.status_code for r in refusals] == [403] * 4
    assert len({r.content for r in refusals}) == 1
    assert len({r["Content-Type"] for r in refusals}) == 1
    assert artifact["id"].encode() not in rotated_out.content


# --- 7. a directory swapped for a link while an upload reads the tree ----------------------------


def test_a_link_swapped_in_during_an_upload_never_reads_outside_the_sandbox(tmp_path):
    runtime = LocalRuntime(tmp_path / "root")
    sid = "t_" + secrets.token_hex(6)
    runtime.create(sid, env={}, memory_bytes=None, cpus=None)
    marker = secrets.token_hex(32).encode()
    outside = tmp_path / "host-secrets"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(marker)
    (outside / "file.txt").write_bytes(marker)
    workspace = tmp_path / "root" / sid / "workspace"
    tree = workspace / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "secret.txt").write_bytes(b"inside secret")
    (tree / "file.txt").write_bytes(b"inside file")
    (tree / "a.txt").write_bytes(b"inside a")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            for name, target in (("sub", outside), ("file.txt", outside / "file.txt")):
                try:
                    os.rename(tree / name, tree / f".{name}.real")
                    os.symlink(target, tree / name)
                    time.sleep(0.0005)
                    os.unlink(tree / name)
                    os.rename(tree / f".{name}.real", tree / name)
                except OSError:
                    pass

    seen: dict[str, set] = {"sub": set(), "file.txt": set(), "read": set()}
    thread = threading.Thread(target=flip)
    thread.start()

    def race_seen() -> bool:
        return (
            "read" in seen["read"]
            and bool(seen["read"] - {"read"})
            and {"dir", "link"} <= seen["sub"]
            and {"file", "link"} <= seen["file.txt"]
        )

    # At least 300 rounds, and on until every side of the race was met (a loaded machine may
    # schedule the swapping thread rarely), within a minute.
    deadline = time.monotonic() + 60
    rounds = 0
    try:
        while rounds < 300 or (not race_seen() and time.monotonic() < deadline):
            rounds += 1
            archive = io.BytesIO()
            try:
                runtime.archive_directory(sid, "tree", archive)
            except (InvalidPath, FileNotFound, NotADirectory) as exc:
                seen["read"].add(type(exc).__name__)
                continue
            raw = archive.getvalue()
            assert marker not in gzip.decompress(raw)
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
                for member in tar.getmembers():
                    top = member.name.split("/")[0]
                    if top in seen and member.name == top:
                        seen[top].add("link" if member.issym() else "dir" if member.isdir() else "file")
                    if member.isfile():
                        assert tar.extractfile(member).read() in (b"inside secret", b"inside file", b"inside a")
            for path in ("tree/sub/secret.txt", "tree/file.txt"):
                try:
                    with runtime.open_read(sid, path) as handle:
                        content = handle.read()
                except (InvalidPath, FileNotFound, NotADirectory, NotAFile) as exc:
                    seen["read"].add(type(exc).__name__)
                    continue
                assert content in (b"inside secret", b"inside file")
                seen["read"].add("read")
    finally:
        stop.set()
        thread.join()
        runtime.destroy(sid)
    # The race really ran: the tree was archived and read both before and during swaps.
    assert "read" in seen["read"] and seen["read"] - {"read"}
    assert {"dir", "link"} <= seen["sub"], seen
    assert {"file", "link"} <= seen["file.txt"], seen
    assert sorted(p.name for p in outside.iterdir()) == ["file.txt", "secret.txt"]
    assert (outside / "secret.txt").read_bytes() == marker


def test_a_file_that_shrinks_while_its_directory_is_archived_fails_the_archive_cleanly(tmp_path):
    """A log rewritten by a process in the sandbox mid-upload: a clear runtime error, never a crash
    (a bare OSError would leave the transfer 'running' and answer the client 500)."""
    runtime = LocalRuntime(tmp_path / "root")
    sid = "t_" + secrets.token_hex(6)
    runtime.create(sid, env={}, memory_bytes=None, cpus=None)
    log = tmp_path / "root" / sid / "workspace" / "tree" / "log.bin"
    log.parent.mkdir()
    data = os.urandom(8 << 20)
    log.write_bytes(data)
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            os.truncate(log, 0)
            with open(log, "r+b") as handle:
                handle.write(data)

    thread = threading.Thread(target=rewrite)
    thread.start()
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and not ("FILE_CHANGED" in outcomes and "archived" in outcomes):
            archive = io.BytesIO()
            try:
                runtime.archive_directory(sid, "tree", archive)
            except SandboxRuntimeError as exc:
                assert exc.code == "FILE_CHANGED", exc
                assert "log.bin" in exc.message
                outcomes["FILE_CHANGED"] = outcomes.get("FILE_CHANGED", 0) + 1
                continue
            with tarfile.open(fileobj=io.BytesIO(archive.getvalue()), mode="r:gz") as tar:
                member = tar.getmember("log.bin")
                content = tar.extractfile(member).read()
            # Whatever was archived is a prefix of the file as it was being rewritten, whole to its recorded size.
            assert len(content) == member.size and data.startswith(content)
            outcomes["archived"] = outcomes.get("archived", 0) + 1
    finally:
        stop.set()
        thread.join()
        runtime.destroy(sid)
    assert "FILE_CHANGED" in outcomes, outcomes


def test_a_rotated_secret_key_keeps_old_urls_while_it_is_a_fallback(owner, tmp_storage, settings, fresh_signing_keys):
    artifact = put(owner, "rotated.txt", b"rotated bytes")
    anonymous = Client()
    use_keys(settings, [])
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a" * 50, []
    signing.signing_keys.cache_clear()
    old_url = presigned_path(owner, artifact["id"])

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "b" * 50, ["a" * 50]
    signing.signing_keys.cache_clear()
    assert b"".join(anonymous.get(old_url).streaming_content) == b"rotated bytes"
    new_url = presigned_path(owner, artifact["id"])
    assert new_url != old_url and b"".join(anonymous.get(new_url).streaming_content) == b"rotated bytes"

    settings.SECRET_KEY_FALLBACKS = []
    signing.signing_keys.cache_clear()
    assert anonymous.get(old_url).status_code == 403
    assert b"".join(anonymous.get(new_url).streaming_content) == b"rotated bytes"
