"""Content-addressed blobs: an organization's bytes stored once, however many artifacts (or folder
entries) hold them, and removed only once nothing that needs them does.

How bytes become a blob. The writer streams them to a key of its own (an artifact's upload key,
or ``blob_upload_key`` for bytes that are not an artifact's), hashing as they pass
(``artifacts.storage.blob_write``). Then, in the transaction that records the reference (the
artifact turning ready, a folder entry's row), ``blob_adopt`` finds the organization's blob for
that SHA-256 under a row lock: a live one is reused and the new object dropped once the
transaction commits (no duplicate bytes stay stored); a missing one is created at the writer's
key, and one being removed is revived with the writer's object, so no move or copy of bytes is
ever needed (on S3 a 1 GiB server-side copy, on disk a rename, both avoided). ``blob_lock`` does
the same without bytes in hand: a checksum-first upload or a folder entry the organization
already has references a live blob it found locked, and sends the bytes when it finds none.

How a blob goes. ``blob_release`` (on an artifact's deletion or expiry) sends ``collect_blob``;
the collector locks the blob's row, then claims it with one conditional UPDATE (live → deleting
where nothing in ``blob_holders`` references it: a statement that starts after the lock, so on
PostgreSQL it sees every reference committed by a publish that held the lock before it), removes
the object, and deletes the row only if it is still the deleting one at that key. A publish that
took the lock first has committed its reference, so the claim fails; one that comes after finds
the blob deleting (or gone) and writes its own bytes in. Either way no published artifact points
at a removed object.

Call ``blob_lock`` and ``blob_adopt`` inside the transaction that records the reference: from
its commit the reference protects the blob. A model that references blobs adds itself to
``blob_holders``.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from artifacts.models import BLOB_HOLDING_STATES, Artifact, ArtifactEntry, Blob, BlobState
from artifacts.storage import StoredBlob, blob_delete
from core.ids import new_id, new_ids
from quotas.counters import usage_add

logger = logging.getLogger(__name__)


def blob_upload_key(organization_id: str) -> str:
    """A fresh key to write bytes that are not an artifact's own upload (a folder's files)."""
    return f"blobs/{organization_id}/{new_id('upl')}"


def blob_upload_keys(organization_id: str, count: int) -> list[str]:
    """``count`` fresh keys as ``blob_upload_key`` makes them, for a batch of a folder's files."""
    return [f"blobs/{organization_id}/{upload_id}" for upload_id in new_ids("upl", count)]


def blob_holders() -> list[QuerySet]:
    """Every kind of row that keeps a blob's bytes, each filtered to the blob of ``OuterRef("pk")``."""
    return [
        Artifact.objects.filter(blob_id=OuterRef("pk"), state__in=BLOB_HOLDING_STATES),
        ArtifactEntry.objects.filter(blob_id=OuterRef("pk"), artifact__state__in=BLOB_HOLDING_STATES),
    ]


def blob_lock(*, organization_id: str, sha256: str) -> Blob | None:
    """The organization's live blob with this SHA-256 (hex), locked until the transaction ends;
    None when it has none (or it is being removed): then the bytes must be sent and adopted.
    Another organization's blob never counts."""
    return (
        Blob.objects.select_for_update()
        .filter(organization_id=organization_id, sha256=sha256, state=BlobState.LIVE)
        .first()
    )


def blob_adopt(*, organization_id: str, stored: StoredBlob, key: str) -> Blob:
    """The organization's blob for the bytes just written at ``key``, locked until the transaction
    ends: the live one (the object at ``key`` is dropped once the transaction commits), the one
    being removed revived with the object at ``key``, or a new one there.

    Two first publishes of the same bytes at once: the second one's insert fails on the unique
    (organization, sha256) with an IntegrityError, and its retried transaction finds the first's.

    A new blob is counted in the organization's stored bytes (``added_bytes`` on the returned blob
    says how many this call added; a blob being removed is still counted, so reviving it adds none).
    """
    blob = Blob.objects.select_for_update().filter(organization_id=organization_id, sha256=stored.sha256).first()
    if blob is None:
        blob = Blob.objects.create(
            organization_id=organization_id, sha256=stored.sha256, size=stored.size, storage_key=key
        )
        usage_add(organization_id=organization_id, stored_bytes=stored.size)
        blob.added_bytes = stored.size
        return blob
    blob.added_bytes = 0
    if blob.state == BlobState.DELETING:
        # The collector removes the object it claimed and then only a row still at that key.
        Blob.objects.filter(id=blob.id).update(state=BlobState.LIVE, storage_key=key, size=stored.size)
        blob.state, blob.storage_key, blob.size = BlobState.LIVE, key, stored.size
        return blob
    if blob.storage_key != key:
        transaction.on_commit(lambda: upload_discard(key))
    return blob


def upload_discard(key: str) -> None:
    """Remove an upload's object unless it has become a blob (the first of its bytes, adopted)."""
    if Blob.objects.filter(storage_key=key).exists():
        return
    try:
        blob_delete(key)
    except Exception:  # the sweeper removes it later
        logger.warning("could not remove the upload object %s", key, exc_info=True)


def blob_release(*, blob_id: str | None) -> None:
    """Once the transaction that dropped a reference commits, see whether the blob can go."""
    if blob_id is None:
        return
    # Imported here: core.dispatch pulls in the Celery app, which the models' importers need not.
    from core.dispatch import enqueue

    transaction.on_commit(lambda: enqueue(collect_blob, blob_id=blob_id))


def blob_release_many(*, blob_ids) -> None:
    """blob_release for many blobs (a folder's files), sent as a few tasks of many ids each."""
    ids = sorted(set(blob_ids) - {None})
    if not ids:
        return
    from core.dispatch import enqueue

    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        transaction.on_commit(lambda batch=batch: enqueue(collect_blobs, blob_ids=batch))


def _unheld() -> list:
    return [~Exists(holders) for holders in blob_holders()]


def blob_collect(*, blob_id: str) -> bool:
    """Remove the blob if nothing that needs its bytes references it; True when it was removed.
    A blob left deleting by a collector that died is finished here too."""
    with transaction.atomic():
        blob = Blob.objects.select_for_update().filter(id=blob_id).first()
        if blob is None:
            return False
        # One statement after the lock, so it sees every reference committed before it.
        unclaimed = blob.state == BlobState.LIVE and not (
            Blob.objects.filter(id=blob_id, state=BlobState.LIVE).filter(*_unheld()).update(state=BlobState.DELETING)
        )
        if unclaimed:
            return False
        key = blob.storage_key
    blob_delete(key)
    with transaction.atomic():
        gone = Blob.objects.select_for_update().filter(id=blob_id, state=BlobState.DELETING, storage_key=key)
        if not gone.exists():
            return False  # revived by a publish with bytes of its own
        # Deleted and failed artifacts keep their checksum; they no longer need the row.
        Artifact.objects.filter(blob_id=blob_id).update(blob=None)
        ArtifactEntry.objects.filter(blob_id=blob_id).update(blob=None)
        gone.delete()
        usage_add(organization_id=blob.organization_id, stored_bytes=-blob.size)
    return True


def blobs_unheld(*, older_than, limit: int = 500) -> list[str]:
    """Ids of blobs nothing references (a collection that was lost) or left deleting, made before
    ``older_than``; for the sweeper."""
    live = Blob.objects.filter(state=BlobState.LIVE, created_at__lt=older_than).filter(*_unheld())
    deleting = Blob.objects.filter(state=BlobState.DELETING)
    return list(live.values_list("id", flat=True)[:limit]) + list(deleting.values_list("id", flat=True)[:limit])


@shared_task(name="artifacts.tasks.collect_blob", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def collect_blob(*, blob_id: str) -> bool:
    return blob_collect(blob_id=blob_id)


@shared_task(name="artifacts.tasks.collect_blobs", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def collect_blobs(*, blob_ids: list[str]) -> int:
    return sum(blob_collect(blob_id=blob_id) for blob_id in blob_ids)
