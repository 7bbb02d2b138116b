"""Transfers run on the sandbox's host (the `host` keyword routes them); the rest on the shared queue."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_init


@worker_init.connect
def warm_object_store_client(**_) -> None:
    # Built once at start, so a first transfer neither waits for nor is charged with it.
    from artifacts.storage import blob_storage, is_s3, s3_client

    storage = blob_storage()
    if is_s3(storage):
        s3_client(storage)


@shared_task(name="artifacts.tasks.transfer_upload")
def transfer_upload(*, transfer_id: str, host: str) -> str:
    from artifacts.services import transfer_run_upload

    return transfer_run_upload(transfer_id=transfer_id)


@shared_task(name="artifacts.tasks.transfer_download")
def transfer_download(*, transfer_id: str, host: str) -> str:
    from artifacts.services import transfer_run_download

    return transfer_run_download(transfer_id=transfer_id)


@shared_task(name="artifacts.tasks.finish_direct_upload")
def finish_direct_upload(*, transfer_id: str) -> str:
    from artifacts.services import transfer_run_direct_finish

    return transfer_run_direct_finish(transfer_id=transfer_id)


@shared_task(name="artifacts.tasks.resume_direct_uploads")
def resume_direct_uploads() -> int:
    from artifacts.services import direct_uploads_resume

    return direct_uploads_resume()


@shared_task(name="artifacts.tasks.delete_blob", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def delete_blob(*, key: str) -> None:
    from artifacts.storage import blob_delete

    blob_delete(key)


@shared_task(name="artifacts.tasks.expire_artifacts")
def expire_artifacts() -> int:
    from artifacts.services import artifact_expire

    return artifact_expire()


@shared_task(name="artifacts.tasks.sweep_storage")
def sweep_storage() -> dict:
    from artifacts.services import storage_sweep

    return storage_sweep()
