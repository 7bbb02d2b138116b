"""The upgrade to blobs, from the schema the release before them has (artifacts 0005): every ready
artifact's object becomes a blob where it is, identical bytes within an organization share one,
and after the sweeper every ready artifact still reads back whole, while the objects the upgrade
left to nobody are gone. On SQLite, and on PostgreSQL when the suite runs there."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from artifacts.models import Artifact, Blob
from artifacts.storage import blob_iter_chunks, blob_storage, blob_write
from transfers.sweeps import storage_sweep

BEFORE = [("artifacts", "0005_transfer_moves_to_transfers")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def local_storage(tmp_path, settings):
    location = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    return location


def stored_keys(root) -> set[str]:
    return {
        os.path.relpath(os.path.join(directory, name), root)
        for directory, _dirs, files in os.walk(root)
        for name in files
        if not name.endswith(".partial")
    }


@pytest.mark.django_db(transaction=True)
def test_ready_artifacts_become_blobs_where_their_objects_are(local_storage):
    old = migrate(BEFORE)
    Organization = old.get_model("accounts", "Organization")
    OldArtifact = old.get_model("artifacts", "Artifact")
    acme, globex = Organization.objects.create(name="Acme"), Organization.objects.create(name="Globex")
    earlier = timezone.now() - timedelta(days=3)

    def made(org, name, data: bytes | None, state="ready", minutes=0):
        artifact = OldArtifact(
            id=f"art_{name}",
            organization=org,
            remote_path=f"out/{name}",
            version=1 if state == "ready" else None,
            state=state,
            size=len(data or b""),
            checksum=f"sha256:{hashlib.sha256(data).hexdigest()}" if data is not None and state != "pending" else "",
            storage_key=f"blobs/{org.id}/art_{name}",
            created_at=earlier + timedelta(minutes=minutes),
        )
        artifact.save()
        if data is not None:
            blob_write(artifact.storage_key, [data], max_bytes=1 << 20)
        return artifact

    same = b"the same build output\n"
    made(acme, "first", same, minutes=1)
    made(acme, "second", same, minutes=2)  # identical bytes: shares the first's blob
    made(acme, "other", b"other bytes\n", minutes=3)
    made(globex, "theirs", same, minutes=4)  # another organization: a blob of its own
    made(acme, "deleted", None, state="deleted")
    made(acme, "pending", b"half", state="pending")
    made(acme, "failed", None, state="failed")
    before = stored_keys(local_storage)

    migrate(latest())
    blobs = {(blob.organization_id, blob.sha256): blob for blob in Blob.objects.all()}
    same_sha = hashlib.sha256(same).hexdigest()
    assert set(blobs) == {
        (acme.id, same_sha),
        (acme.id, hashlib.sha256(b"other bytes\n").hexdigest()),
        (globex.id, same_sha),
    }
    # Where the objects were: the oldest of identical ones, nothing copied.
    assert blobs[(acme.id, same_sha)].storage_key == f"blobs/{acme.id}/art_first"
    assert stored_keys(local_storage) == before
    artifacts = Artifact.objects.in_bulk()
    assert artifacts["art_first"].blob_id == artifacts["art_second"].blob_id == blobs[(acme.id, same_sha)].id
    assert artifacts["art_theirs"].blob_id == blobs[(globex.id, same_sha)].id
    assert {artifacts[name].blob_id for name in ("art_deleted", "art_pending", "art_failed")} == {None}

    storage_sweep(now=timezone.now() + timedelta(days=1))
    # The second's own object was nobody's; the pending one's upload (stale by now) is gone too.
    assert stored_keys(local_storage) == {blob.storage_key for blob in blobs.values()}
    for artifact in Artifact.objects.filter(state="ready"):
        data = b"".join(blob_iter_chunks(artifact.content_key))
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == artifact.checksum, artifact.id
    assert blob_storage().exists(f"blobs/{acme.id}/art_first")

    # Back again (the rows forget their blobs), and forward to the latest state later tests expect.
    back = migrate(BEFORE)
    assert back.get_model("artifacts", "Artifact").objects.filter(state="ready").count() == 4
    migrate(latest())
