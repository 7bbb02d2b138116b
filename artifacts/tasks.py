"""Artifact tasks that run on the shared queue. Transfers' tasks live in transfers/worker.py,
transfers/direct.py and transfers/sweeps.py; expiry's beside its service in artifacts/services.py."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_init

from artifacts.models import BLOB_HOLDING_STATES, Artifact, Blob
from artifacts.storage import blob_delete, blob_storage, is_s3, s3_client


@worker_init.connect
def warm_object_store_client(**_) -> None:
    # Built once at start, so a first transfer neither waits for nor is charged with it.
    storage = blob_storage()
    if is_s3(storage):
        s3_client(storage)


@shared_task(name="artifacts.tasks.delete_blob", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def delete_blob(*, key: str) -> None:
    """Remove one artifact's own object. Sent for an artifact without a blob, and by web processes
    of the release before blobs for any deleted artifact, whose key may now be a shared blob's:
    a key that is a blob's, or that an artifact still needing its bytes owns, is kept (the blob
    collector decides about it)."""
    if Blob.objects.filter(storage_key=key).exists():
        return
    if Artifact.objects.filter(storage_key=key, blob__isnull=True, state__in=BLOB_HOLDING_STATES).exists():
        return
    blob_delete(key)
