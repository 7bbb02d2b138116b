"""What beat runs to clean up after transfers: stale rows, temporary and orphan blobs, multipart
uploads whose writer died, and direct uploads whose finish was lost."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from artifacts.blobs import blob_adopt, blob_collect, blobs_unheld
from artifacts.models import BLOB_HOLDING_STATES, Artifact, ArtifactState, Blob
from artifacts.multipart import blob_abort_stale_uploads
from artifacts.storage import TEMP_PREFIX, StoredBlob, blob_delete, blob_walk
from core.errors import Unavailable
from quotas.counters import usage_add
from transfers.direct import DIRECT_FINISH_LEASE_SECONDS, direct_finish_enqueue
from transfers.models import UNFINISHED_STATES, Transfer, TransferKind, TransferState


def storage_sweep(*, now=None) -> dict[str, int]:
    """Remove what failed or interrupted transfers left: stale pending rows, temporary and orphan blobs."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ARTIFACT_STALE_PENDING_SECONDS)
    failed_transfers = Transfer.objects.filter(state__in=UNFINISHED_STATES, created_at__lt=stale_before).update(
        state=TransferState.FAILED,
        error_code="ABANDONED",
        error_message="the transfer did not finish in time",
        finished_at=now,
    )
    failed_artifacts = Artifact.objects.filter(state=ArtifactState.PENDING, created_at__lt=stale_before).update(
        state=ArtifactState.FAILED, error_message="the upload did not finish in time"
    )
    removed = 0
    candidates: list[str] = []
    for key, modified in blob_walk(""):
        if modified is not None and modified > stale_before:
            continue
        if key.startswith(TEMP_PREFIX):
            blob_delete(key)
            removed += 1
            continue
        candidates.append(key)
        if len(candidates) >= 1000:
            removed += _delete_orphans(candidates)
            candidates = []
    removed += _delete_orphans(candidates)
    # S3: multipart uploads whose writer died; never one a live direct upload still owns.
    live = set(
        Transfer.objects.filter(state__in=UNFINISHED_STATES).exclude(upload_id="").values_list("upload_id", flat=True)
    )
    removed += blob_abort_stale_uploads(stale_before, keep=live)
    adopted = _adopt_blobless(older_than=stale_before)
    # Blobs whose collection was lost (or sent by a release before blobs as an object removal).
    collected = sum(blob_collect(blob_id=blob_id) for blob_id in blobs_unheld(older_than=stale_before))
    return {
        "failed_transfers": failed_transfers,
        "failed_artifacts": failed_artifacts,
        "removed_blobs": removed + collected,
        "adopted_artifacts": adopted,
    }


def _adopt_blobless(*, older_than, batch: int = 500) -> int:
    """Give their blob to ready artifacts that a worker of the release before blobs published
    during an upgrade: their object becomes the blob, or is dropped when the organization already
    had those bytes."""
    adopted = 0
    candidates = Artifact.objects.filter(
        state=ArtifactState.READY, blob__isnull=True, checksum__startswith="sha256:", ready_at__lt=older_than
    ).values_list("id", flat=True)[:batch]
    for artifact_id in list(candidates):
        with transaction.atomic():
            artifact = (
                Artifact.objects.select_for_update()
                .filter(id=artifact_id, state=ArtifactState.READY, blob__isnull=True)
                .first()
            )
            if artifact is None:
                continue
            stored = StoredBlob(artifact.size, artifact.checksum.removeprefix("sha256:"))
            blob = blob_adopt(organization_id=artifact.organization_id, stored=stored, key=artifact.storage_key)
            Artifact.objects.filter(id=artifact.id).update(blob=blob)
            if not artifact.is_folder:
                # Its bytes were counted as its own; from now on they are its blob's, if anyone's.
                usage_add(organization_id=artifact.organization_id, stored_bytes=-artifact.size)
            adopted += 1
    return adopted


def _delete_orphans(keys: list[str]) -> int:
    """Delete the keys that are no blob's and no object of a pending artifact (or of a ready one
    published before blobs); checked a batch at a time. A blob's object is the collector's to remove."""
    if not keys:
        return 0
    owned = set(Blob.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    owned.update(
        Artifact.objects.filter(storage_key__in=keys, state__in=BLOB_HOLDING_STATES, blob__isnull=True).values_list(
            "storage_key", flat=True
        )
    )
    orphans = [key for key in keys if key not in owned]
    for key in orphans:
        blob_delete(key)
    return len(orphans)


def direct_uploads_resume(*, now=None) -> int:
    """Send the finish again for completed uploads whose finish the queue refused, whose task was
    lost, or whose worker died. A queued or running one is sent at most once a lease, and the
    finish is exclusive, so a duplicate only finds the work taken or done."""
    now = now or timezone.now()
    silent = now - timedelta(seconds=DIRECT_FINISH_LEASE_SECONDS)
    stalled = Transfer.objects.filter(kind=TransferKind.PUT, completed_at__isnull=False).filter(
        Q(state=TransferState.UNQUEUED)
        | Q(state__in=[TransferState.QUEUED, TransferState.RUNNING], heartbeat_at__lt=silent)
        | Q(state__in=[TransferState.QUEUED, TransferState.RUNNING], heartbeat_at__isnull=True)
    )
    resumed = 0
    for transfer in stalled.order_by("completed_at")[:100]:
        if Transfer.objects.filter(id=transfer.id, state=transfer.state, heartbeat_at=transfer.heartbeat_at).update(
            state=TransferState.QUEUED, heartbeat_at=now
        ):
            try:
                direct_finish_enqueue(transfer.id)
            except Unavailable:
                break  # unqueued again; the next run tries once the queue is back
            resumed += 1
    return resumed


# The task names are what web and worker processes of different releases agree on during a
# rolling upgrade: they keep the names they had in artifacts/tasks.py. Beat sends them by name
# (CELERY_BEAT_SCHEDULE); they run on the shared queue.


@shared_task(name="artifacts.tasks.sweep_storage")
def sweep_storage() -> dict:
    return storage_sweep()


@shared_task(name="artifacts.tasks.resume_direct_uploads")
def resume_direct_uploads() -> int:
    return direct_uploads_resume()
