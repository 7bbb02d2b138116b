"""Bytes stored once per organization: blobs shared by versions, checksum-first uploads, honest
versions, and a blob's removal, never while anything holds it, on local disk and on S3 alike."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from artifacts import blobs
from artifacts.models import Artifact, ArtifactState, Blob, BlobState
from artifacts.storage import StoredBlob, blob_iter_chunks, blob_write
from core.actor import Actor
from transfers import sweeps, worker
from transfers.models import Transfer, TransferState
from transfers.put import artifact_put


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def keys(self) -> set[str]:
        found = set()
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                key = os.path.relpath(os.path.join(directory, name), self.root)
                if not key.startswith("tmp/"):
                    found.add(key)
        return found


class S3Store:
    def __init__(self, s3) -> None:
        self.s3 = s3

    def keys(self) -> set[str]:
        return self.s3.object_keys()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, settings):
    """The artifact storage, on local disk and on S3 (moto's server), with what it holds."""
    if request.param == "local":
        settings.STORAGES = {
            **settings.STORAGES,
            "artifacts": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(tmp_path / "storage")},
            },
        }
        return LocalStore(tmp_path / "storage")
    return S3Store(request.getfixturevalue("s3"))


@pytest.fixture
def commits(transactional_db, monkeypatch):
    """Committed data, so that what a commit runs (dropping a duplicate object) runs; nothing is
    sent to the task queue: what would be is listed here, and collections are run in-process."""
    sent = []
    monkeypatch.setattr("core.dispatch.enqueue", lambda task, **kwargs: sent.append((task.name, kwargs)))
    return sent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def put(owner, remote_path: str, data: bytes, *, metadata: str | None = None, **headers: str):
    extra = {"X-Artifact-Metadata": metadata} if metadata else {}
    return owner.client.put(
        f"/api/v1/artifacts?remote_path={remote_path}",
        data,
        content_type="application/octet-stream",
        headers=owner.headers(**extra, **headers),
    )


def stored_bytes(artifact: Artifact) -> bytes:
    return b"".join(blob_iter_chunks(Artifact.objects.get(id=artifact.id).content_key))


# --- one blob, many versions ---------------------------------------------------------------------


def test_the_same_bytes_with_new_metadata_are_a_new_version_sharing_one_blob(owner, store, commits):
    data = os.urandom(300_000)
    first = put(owner, "models/weights.bin", data, metadata='{"run": "1"}')
    second = put(owner, "models/weights.bin", data, metadata='{"run": "2"}')
    assert first.status_code == second.status_code == 201, second.content
    one, two = first.json(), second.json()
    assert (one["version"], two["version"]) == (1, 2)
    assert one["metadata"] == {"run": "1"} and two["metadata"] == {"run": "2"}
    assert one["deduplicated"] is False and two["deduplicated"] is True
    assert one["checksum"] == two["checksum"] == f"sha256:{sha(data)}"
    assert second.headers["Repr-Digest"] == f"sha-256=:{b64(data)}:"
    blob = Blob.objects.get()
    assert blob.sha256 == sha(data) and blob.size == len(data) and blob.organization_id == owner.org_id
    assert set(Artifact.objects.filter(state=ArtifactState.READY).values_list("blob_id", flat=True)) == {blob.id}
    # Stored once: the second upload's own object was dropped.
    assert store.keys() == {blob.storage_key}
    for artifact in Artifact.objects.filter(state=ArtifactState.READY):
        assert stored_bytes(artifact) == data


def test_a_new_content_type_or_expiry_is_a_new_version_and_only_a_true_retry_is_folded(owner, store, commits):
    data = b"same bytes\n" * 100
    first = put(owner, "out/report.txt", data).json()
    retry = put(owner, "out/report.txt", data).json()
    assert retry["id"] == first["id"]  # the SDK retrying the same request
    typed = owner.client.put(
        "/api/v1/artifacts?remote_path=out/report.txt", data, content_type="text/markdown", headers=owner.headers()
    ).json()
    expiring = owner.client.put(
        "/api/v1/artifacts?remote_path=out/report.txt&expires_in=3600",
        data,
        content_type="application/octet-stream",
        headers=owner.headers(),
    ).json()
    assert [first["version"], typed["version"], expiring["version"]] == [1, 2, 3]
    assert typed["content_type"] == "text/markdown" and expiring["expires_at"] is not None
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 3
    assert Blob.objects.count() == 1 and len(store.keys()) == 1


def test_blobs_are_per_organization(owner, stranger, store, commits):
    data = b"shared by chance\n"
    mine = put(owner, "a.txt", data).json()
    theirs = put(stranger, "a.txt", data).json()
    assert mine["deduplicated"] is False and theirs["deduplicated"] is False
    assert Blob.objects.count() == 2 and len(store.keys()) == 2
    assert {blob.organization_id for blob in Blob.objects.all()} == {owner.org_id, stranger.org_id}


# --- checksum-first uploads ----------------------------------------------------------------------


@pytest.mark.parametrize("header", ["repr", "hex"])
def test_a_declared_digest_of_stored_bytes_makes_the_artifact_without_the_body(owner, store, commits, header):
    data = os.urandom(100_000)
    put(owner, "data/input.bin", data)
    keys = store.keys()
    declared = {"Repr-Digest": f"sha-256=:{b64(data)}:"} if header == "repr" else {"X-Stowage-Sha256": sha(data)}
    response = put(owner, "data/copy.bin", b"", metadata='{"from": "digest"}', **declared)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["deduplicated"] is True and body["body_read"] is False
    assert body["size"] == len(data) and body["checksum"] == f"sha256:{sha(data)}"
    assert body["remote_path"] == "data/copy.bin" and body["version"] == 1 and body["metadata"] == {"from": "digest"}
    assert response.headers["Repr-Digest"] == f"sha-256=:{b64(data)}:"
    assert store.keys() == keys
    assert stored_bytes(Artifact.objects.get(id=body["id"])) == data
    transfer = Transfer.objects.get(artifact_id=body["id"])
    assert transfer.state == TransferState.SUCCEEDED and transfer.bytes_done == 0


def test_a_declared_digest_with_a_body_checks_the_bytes(owner, store, commits):
    data = b"fresh bytes\n"
    response = put(owner, "new.txt", data, **{"X-Stowage-Sha256": sha(data).upper()})
    assert response.status_code == 201, response.content
    assert response.json()["deduplicated"] is False and response.json()["body_read"] is True
    assert Blob.objects.get().sha256 == sha(data)


def test_a_declared_digest_that_is_not_the_bodys_stores_nothing(owner, store, commits):
    put(owner, "kept.txt", b"kept\n")
    keys, blob_ids = store.keys(), set(Blob.objects.values_list("id", flat=True))
    response = put(owner, "liar.txt", b"these bytes\n", **{"Repr-Digest": f"sha-256=:{b64(b'other bytes')}:"})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "DIGEST_MISMATCH"
    assert error["details"]["declared"] == sha(b"other bytes") and error["details"]["received"] == sha(b"these bytes\n")
    assert not Artifact.objects.filter(remote_path="liar.txt", state=ArtifactState.READY).exists()
    assert store.keys() == keys and set(Blob.objects.values_list("id", flat=True)) == blob_ids


def test_a_digest_of_another_organizations_blob_never_counts(owner, stranger, store, commits):
    data = os.urandom(50_000)
    put(stranger, "secret.bin", data)
    keys = store.keys()
    response = put(owner, "guess.bin", b"", **{"X-Stowage-Sha256": sha(data)})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "DIGEST_MISMATCH"
    assert "no stored bytes" in response.json()["error"]["message"]
    assert not Artifact.objects.filter(organization_id=owner.org_id, state=ArtifactState.READY).exists()
    assert store.keys() == keys and Blob.objects.filter(organization_id=owner.org_id).count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Stowage-Sha256": "abc"},
        {"X-Stowage-Sha256": "z" * 64},
        {"Repr-Digest": "sha-256=abc"},
        {"Repr-Digest": "sha-256=:AAAA:"},
        {"Repr-Digest": f"sha-256=:{b64(b'a')}:", "X-Stowage-Sha256": sha(b"b")},
    ],
)
def test_a_malformed_digest_is_refused_and_changes_nothing(owner, store, commits, headers):
    response = put(owner, "x.txt", b"x", **headers)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "INVALID_DIGEST"
    assert not Artifact.objects.exists() and not Blob.objects.exists() and store.keys() == set()


def test_other_repr_digest_algorithms_are_ignored(owner, store, commits):
    response = put(owner, "x.txt", b"x", **{"Repr-Digest": "sha-512=:AAAA:"})
    assert response.status_code == 201 and response.json()["body_read"] is True


# --- removal -------------------------------------------------------------------------------------


def test_a_shared_blob_goes_only_with_its_last_artifact(owner, store, commits):
    data = os.urandom(20_000)
    first = put(owner, "a.bin", data, metadata='{"n": "1"}').json()
    second = put(owner, "b.bin", data).json()
    blob = Blob.objects.get()
    assert owner.delete(f"/artifacts/{first['id']}").status_code == 200
    assert commits == []  # in the trash, it still holds its blob
    assert owner.delete(f"/trash/{first['id']}").status_code == 200
    assert commits == [("artifacts.tasks.collect_blobs", {"blob_ids": [blob.id]})]
    assert blobs.blob_collect(blob_id=blob.id) is False
    assert store.keys() == {blob.storage_key}
    assert owner.get(f"/artifacts/{second['id']}").status_code == 200
    assert stored_bytes(Artifact.objects.get(id=second["id"])) == data

    assert owner.delete(f"/artifacts/{second['id']}").status_code == 200
    assert owner.delete(f"/trash/{second['id']}").status_code == 200
    assert blobs.blob_collect(blob_id=blob.id) is True
    assert store.keys() == set() and not Blob.objects.exists()
    # The deleted rows stay, for the audit trail, with their checksum.
    assert Artifact.objects.filter(state=ArtifactState.DELETED, checksum=f"sha256:{sha(data)}").count() == 2


def test_a_publish_after_the_claim_revives_the_blob_with_its_own_bytes(owner, store, commits, monkeypatch):
    """The collector has claimed the blob (deleting) and is about to remove its object when an
    upload of the same bytes publishes: the upload's object becomes the blob's, and the
    collector removes only the old object, so the new artifact's bytes are there."""
    data = os.urandom(30_000)
    first = put(owner, "a.bin", data).json()
    blob = Blob.objects.get()
    old_key = blob.storage_key
    assert owner.delete(f"/artifacts/{first['id']}").status_code == 200
    assert owner.delete(f"/trash/{first['id']}").status_code == 200
    published = {}
    real_delete = blobs.blob_delete

    def delete_after_a_publish(key):
        assert Blob.objects.get(id=blob.id).state == BlobState.DELETING
        published.update(put(owner, "b.bin", data).json())
        real_delete(key)

    monkeypatch.setattr(blobs, "blob_delete", delete_after_a_publish)
    assert blobs.blob_collect(blob_id=blob.id) is False
    revived = Blob.objects.get(id=blob.id)
    assert revived.state == BlobState.LIVE and revived.storage_key != old_key
    assert published["deduplicated"] is False
    artifact = Artifact.objects.get(id=published["id"])
    assert artifact.blob_id == blob.id and stored_bytes(artifact) == data
    assert store.keys() == {revived.storage_key}


def test_a_checksum_first_upload_during_removal_must_send_the_bytes(owner, store, commits, monkeypatch):
    data = os.urandom(10_000)
    first = put(owner, "a.bin", data).json()
    blob = Blob.objects.get()
    assert owner.delete(f"/artifacts/{first['id']}").status_code == 200
    assert owner.delete(f"/trash/{first['id']}").status_code == 200
    answers = []
    real_delete = blobs.blob_delete

    def delete_after_a_digest_only_upload(key):
        answers.append(put(owner, "b.bin", b"", **{"X-Stowage-Sha256": sha(data)}))
        answers.append(put(owner, "b.bin", data, **{"X-Stowage-Sha256": sha(data)}))
        real_delete(key)

    monkeypatch.setattr(blobs, "blob_delete", delete_after_a_digest_only_upload)
    blobs.blob_collect(blob_id=blob.id)
    assert answers[0].status_code == 422 and answers[0].json()["error"]["code"] == "DIGEST_MISMATCH"
    assert answers[1].status_code == 201 and answers[1].json()["body_read"] is True
    artifact = Artifact.objects.get(id=answers[1].json()["id"])
    assert stored_bytes(artifact) == data and Blob.objects.get().state == BlobState.LIVE


def test_the_collector_keeps_a_blob_a_pending_artifact_holds(owner, store, commits):
    data = b"held\n"
    put(owner, "a.txt", data)
    blob = Blob.objects.get()
    Artifact.objects.filter(blob=blob).update(state=ArtifactState.PENDING)
    assert blobs.blob_collect(blob_id=blob.id) is False
    assert Blob.objects.get().state == BlobState.LIVE and store.keys() == {blob.storage_key}


def test_the_sweeper_keeps_blobs_collects_unheld_ones_and_removes_orphans(owner, store, commits, settings):
    settings.ARTIFACT_STALE_PENDING_SECONDS = 0
    kept = put(owner, "kept.bin", b"kept").json()
    gone = put(owner, "gone.bin", b"gone").json()
    # A release before blobs deleted it: its object removal was skipped, the blob left behind.
    Artifact.objects.filter(id=gone["id"]).update(state=ArtifactState.DELETED)
    orphan = f"blobs/{owner.org_id}/art_orphan"
    blob_write(orphan, [b"nobody's"], max_bytes=1 << 20)
    result = sweeps.storage_sweep()
    assert result["removed_blobs"] == 2
    assert store.keys() == {Artifact.objects.get(id=kept["id"]).content_key}
    assert list(Blob.objects.values_list("sha256", flat=True)) == [sha(b"kept")]


def test_the_old_releases_object_removal_keeps_a_shared_blob(owner, store, commits):
    from artifacts.tasks import delete_blob

    data = b"shared\n"
    first = put(owner, "a.txt", data).json()
    put(owner, "b.txt", data, metadata='{"n": "2"}')
    Artifact.objects.filter(id=first["id"]).update(state=ArtifactState.DELETED)
    delete_blob(key=Artifact.objects.get(id=first["id"]).storage_key)
    assert store.keys() == {Blob.objects.get().storage_key}


def test_a_second_adopt_of_the_same_bytes_finds_the_first_blob_and_drops_its_object(owner, store, commits):
    data = b"twice\n"
    first_key, second_key = blobs.blob_upload_key(owner.org_id), blobs.blob_upload_key(owner.org_id)
    first = blob_write(first_key, [data], max_bytes=1 << 20)
    blob_write(second_key, [data], max_bytes=1 << 20)
    with transaction.atomic():
        one = blobs.blob_adopt(organization_id=owner.org_id, stored=first, key=first_key)
    with transaction.atomic():
        two = blobs.blob_adopt(organization_id=owner.org_id, stored=StoredBlob(len(data), sha(data)), key=second_key)
    assert one.id == two.id and two.storage_key == first_key
    assert store.keys() == {first_key}


def test_an_artifact_put_through_the_service_reads_no_body_for_known_bytes(owner, store, commits):
    data = b"known\n"
    put(owner, "a.txt", data)

    class Unreadable(io.RawIOBase):
        def read(self, *_):
            raise AssertionError("the body was read")

    actor = Actor.system(owner.org_id)
    artifact = artifact_put(actor=actor, stream=Unreadable(), remote_path="b.txt", sha256=sha(data))
    assert artifact.size == len(data) and stored_bytes(artifact) == data


# --- the race, with two connections (PostgreSQL: SQLite runs one writer at a time) --------------

on_postgresql = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="two writers at once need PostgreSQL (the state machine is tested above on every database)",
)


class Racer(threading.Thread):
    """Runs ``work`` on a connection of its own and keeps its answer (or its error)."""

    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.pid = None
        self.ready = threading.Event()
        self.result = self.error = None

    def run(self) -> None:
        try:
            connection.ensure_connection()
            self.pid = connection.connection.info.backend_pid
            self.ready.set()
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.ready.set()
            connection.close()


def wait_until_blocked_on_a_lock(racer: Racer) -> None:
    """Until the racer's statement waits for a row lock another transaction holds."""
    racer.ready.wait(30)
    with connection.cursor() as cursor:
        for _ in range(3000):
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [racer.pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
            threading.Event().wait(0.01)
    raise AssertionError("the racer never waited for the lock")


def finish(*racers: Racer) -> None:
    for racer in racers:
        racer.join(60)
        assert not racer.is_alive()
        if racer.error is not None:
            raise racer.error


@on_postgresql
def test_a_collection_waits_for_a_publish_holding_the_blob_and_then_keeps_it(owner, store, commits, monkeypatch):
    data = os.urandom(40_000)
    first = put(owner, "a.bin", data).json()
    blob = Blob.objects.get()
    assert owner.delete(f"/artifacts/{first['id']}").status_code == 200  # nothing holds the blob now
    locked, go = threading.Event(), threading.Event()
    real_adopt = worker.blob_adopt

    def adopt_then_pause(**kwargs):
        adopted = real_adopt(**kwargs)
        locked.set()
        go.wait(30)
        return adopted

    monkeypatch.setattr(worker, "blob_adopt", adopt_then_pause)
    actor = Actor.system(owner.org_id)
    publish = Racer(lambda: artifact_put(actor=actor, stream=io.BytesIO(data), remote_path="b.bin"))
    publish.start()
    assert locked.wait(30)
    collect = Racer(lambda: blobs.blob_collect(blob_id=blob.id))
    collect.start()
    wait_until_blocked_on_a_lock(collect)
    go.set()
    finish(publish, collect)
    assert collect.result is False
    assert Blob.objects.get(id=blob.id).state == BlobState.LIVE
    artifact = Artifact.objects.get(id=publish.result.id)
    assert artifact.blob_id == blob.id and stored_bytes(artifact) == data
    assert store.keys() == {blob.storage_key}


@on_postgresql
def test_a_publish_waits_for_a_claim_and_then_brings_its_own_bytes(owner, store, commits, monkeypatch):
    data = os.urandom(40_000)
    first = put(owner, "a.bin", data).json()
    blob = Blob.objects.get()
    old_key = blob.storage_key
    assert owner.delete(f"/artifacts/{first['id']}").status_code == 200
    assert owner.delete(f"/trash/{first['id']}").status_code == 200
    claimed, go = threading.Event(), threading.Event()

    def pause_after_the_claim(execute, sql, params, many, context):
        answer = execute(sql, params, many, context)
        if sql.startswith('UPDATE "artifacts_blob" SET "state"') and BlobState.DELETING in (params or ()):
            claimed.set()
            go.wait(30)  # the claim's transaction, and its row lock, still open
        return answer

    def collect_slowly():
        with connection.execute_wrapper(pause_after_the_claim):
            return blobs.blob_collect(blob_id=blob.id)

    real_delete = blobs.blob_delete

    def delete_once_the_publish_is_through(key):
        # Once the claim commits, the waiting publish and the collector's second transaction both
        # reach for the row; the publish must get there first for the revival this test is about.
        if threading.current_thread() is collect:
            publish.join(30)
        real_delete(key)

    monkeypatch.setattr(blobs, "blob_delete", delete_once_the_publish_is_through)
    collect = Racer(collect_slowly)
    collect.start()
    assert claimed.wait(30)
    actor = Actor.system(owner.org_id)
    publish = Racer(lambda: artifact_put(actor=actor, stream=io.BytesIO(data), remote_path="b.bin"))
    publish.start()
    wait_until_blocked_on_a_lock(publish)
    go.set()
    finish(collect, publish)
    assert collect.result is False  # the blob was revived: only its old object went
    revived = Blob.objects.get(id=blob.id)
    assert revived.state == BlobState.LIVE and revived.storage_key != old_key
    artifact = Artifact.objects.get(id=publish.result.id)
    assert artifact.blob_id == blob.id and stored_bytes(artifact) == data
    assert store.keys() == {revived.storage_key}


def test_the_sweeper_gives_blobs_to_artifacts_published_by_the_release_before_blobs(owner, store, commits, settings):
    """During an upgrade a worker of the earlier release may still publish: ready, no blob."""
    settings.ARTIFACT_STALE_PENDING_SECONDS = 0
    data = b"published the old way\n"
    put(owner, "new.txt", data)
    old_ways = []
    for name in ("old-1.txt", "old-2.txt"):
        artifact = Artifact(
            organization_id=owner.org_id,
            remote_path=name,
            version=1,
            state=ArtifactState.READY,
            size=len(data),
            checksum=f"sha256:{sha(data)}",
            ready_at=timezone.now() - timedelta(hours=1),
        )
        artifact.storage_key = f"blobs/{owner.org_id}/{artifact.id}"
        artifact.save(force_insert=True)
        blob_write(artifact.storage_key, [data], max_bytes=1 << 20)
        old_ways.append(artifact)
    assert sweeps.storage_sweep()["adopted_artifacts"] == 2
    blob = Blob.objects.get()
    assert set(Artifact.objects.values_list("blob_id", flat=True)) == {blob.id}
    assert store.keys() == {blob.storage_key}
    for artifact in old_ways:
        assert stored_bytes(artifact) == data
