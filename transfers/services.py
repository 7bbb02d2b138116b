"""Starting transfers (the web side): copies from and into sandboxes, streamed PUTs, and the
steps of a direct browser upload. The work itself is enqueued to transfers.worker and
transfers.direct, which never import this module."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from artifacts.multipart import s3_multipart_abort, s3_multipart_begin, s3_multipart_parts, s3_presigned_part_url
from artifacts.storage import UploadGone, blob_key, is_s3
from artifacts.validation import (
    check_content_type,
    check_expires_in,
    check_metadata,
    check_remote_path,
)
from core.actor import Actor
from core.dispatch import await_task, enqueue, wait_for
from core.errors import Conflict, InvalidInput, PayloadTooLarge, StowageError, error_from_code
from core.threads import in_thread
from quotas.enforcement import quota_check_upload
from sandboxes.models import Sandbox
from sandboxes.services import check_sandbox_path, require_running
from transfers.direct import check_parts, direct_finish_enqueue, direct_part_bounds, direct_part_size
from transfers.models import Transfer, TransferKind, TransferState
from transfers.worker import fail_transfer, transfer_download, transfer_upload


def _default_remote_path(path: str) -> str:
    return path.removeprefix("/workspace/").strip("/")


def pending_artifact(
    *,
    actor: Actor,
    remote_path: str,
    content_type: str | None,
    metadata: dict[str, str],
    expires_in: int | None,
    session_id: str,
    sandbox_id: str = "",
    source_path: str = "",
    is_archive: bool = False,
) -> Artifact:
    """An unsaved pending artifact whose storage key the server makes from its own ids."""
    now = timezone.now()
    artifact = Artifact(
        organization_id=actor.organization_id,
        sandbox_id=sandbox_id,
        session_id=session_id,
        source_path=source_path,
        remote_path=remote_path,
        content_type=content_type or "",
        metadata=metadata,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        created_by_api_key_id=actor.api_key_id,
        created_by_user_id=actor.user_id,
        created_by_label=actor.label[:200],
        is_archive=is_archive,
    )
    artifact.storage_key = blob_key(artifact.organization_id, artifact.id)
    return artifact


def artifact_upload_from_sandbox(
    *,
    actor: Actor,
    sandbox: Sandbox,
    path: str,
    remote_path: str | None = None,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_in: int | None = None,
    session_id: str | None = None,
    wait: bool = True,
    as_archive: bool = False,
) -> Transfer:
    """Copy a file or a directory from a sandbox into storage. A directory becomes a folder
    artifact (a manifest of blobs, transfers/folders.py), or with ``as_archive`` one tar.gz (how an
    agent session saves its whole workspace, /workspace itself, when it rotates)."""
    path = check_sandbox_path(path, allow_root=True)
    remote_path = check_remote_path(remote_path if remote_path not in (None, "") else _default_remote_path(path))
    metadata = check_metadata(metadata)
    expires_in = check_expires_in(expires_in)
    content_type = check_content_type(content_type)
    require_running(sandbox)
    window_start = timezone.now() - timedelta(seconds=settings.ARTIFACT_RETRY_WINDOW_SECONDS)
    # A retry of a request whose upload is still running joins it instead of starting another;
    # the same file with other metadata, content type or expiry is another version.
    running = Transfer.objects.filter(
        organization_id=sandbox.organization_id,
        kind=TransferKind.UPLOAD,
        sandbox_id=sandbox.id,
        path=path,
        artifact__remote_path=remote_path,
        artifact__content_type=content_type or "",
        artifact__session_id=session_id or sandbox.session_id,
        artifact__created_by_api_key_id=actor.api_key_id,
        artifact__created_by_user_id=actor.user_id,
        state__in=[TransferState.QUEUED, TransferState.RUNNING],
        created_at__gte=window_start,
    ).select_related("artifact")[:20]
    lifetime = timedelta(seconds=expires_in) if expires_in else None
    transfer = next(
        (
            candidate
            for candidate in running
            if candidate.artifact.metadata == metadata
            and (
                candidate.artifact.expires_at - candidate.artifact.created_at if candidate.artifact.expires_at else None
            )
            == lifetime
        ),
        None,
    )
    if transfer is None:
        artifact = pending_artifact(
            actor=actor,
            remote_path=remote_path,
            content_type=content_type,
            metadata=metadata,
            expires_in=expires_in,
            session_id=session_id or sandbox.session_id,
            sandbox_id=sandbox.id,
            source_path=path,
            is_archive=as_archive,
        )
        now = artifact.created_at
        transfer = Transfer(
            organization_id=sandbox.organization_id,
            kind=TransferKind.UPLOAD,
            artifact=artifact,
            sandbox_id=sandbox.id,
            host=sandbox.host,
            path=path,
            actor=actor.to_dict(),
            created_at=now,
        )
        with transaction.atomic():
            artifact.save(force_insert=True)
            transfer.save(force_insert=True)
            _enqueue_on_commit(transfer_upload, transfer)
    if wait:
        transfer = transfer_wait(transfer)
    return transfer


def artifact_download_to_sandbox(
    *, actor: Actor, sandbox: Sandbox, artifact: Artifact, target_path: str, wait: bool = True
) -> Transfer:
    """Write an artifact's bytes into a sandbox at ``target_path``, verified before it appears."""
    target_path = check_sandbox_path(target_path, field="target_path")
    require_running(sandbox)
    transfer = Transfer(
        organization_id=sandbox.organization_id,
        kind=TransferKind.DOWNLOAD,
        artifact=artifact,
        sandbox_id=sandbox.id,
        host=sandbox.host,
        path=target_path,
        bytes_total=artifact.size,
        actor=actor.to_dict(),
    )
    with transaction.atomic():
        transfer.save(force_insert=True)
        _enqueue_on_commit(transfer_download, transfer)
    if wait:
        transfer = transfer_wait(transfer)
    return transfer


def _enqueue_on_commit(task, transfer: Transfer) -> None:
    """Send the transfer to its sandbox's host once the rows it needs are committed; the task id is
    the transfer id, so anyone can wait for its answer."""
    transaction.on_commit(
        lambda: enqueue(
            task,
            host=transfer.host,
            task_id=transfer.id,
            on_unavailable=lambda: _not_queued(transfer.id),
            admit_org=transfer.organization_id,
            hold_seconds=settings.TRANSFER_WAIT_SECONDS,
            transfer_id=transfer.id,
        )
    )


def _not_queued(transfer_id: str) -> None:
    """A transfer whose task never reached the queue fails at once, so that the client's retry
    of the request that got the 503 starts a new one instead of joining one nobody will run."""
    message = "the task queue was unavailable; the transfer was not started"
    if Transfer.objects.filter(id=transfer_id, state=TransferState.QUEUED).update(
        state=TransferState.FAILED, error_code="BROKER_UNAVAILABLE", error_message=message, finished_at=timezone.now()
    ):
        Artifact.objects.filter(transfers__id=transfer_id, state=ArtifactState.PENDING).update(
            state=ArtifactState.FAILED, error_message=message
        )


def transfer_wait(transfer: Transfer) -> Transfer:
    """Block until the transfer ends; a failed one raises the error it recorded."""
    wait_for(transfer_upload.AsyncResult(transfer.id), timeout=settings.TRANSFER_WAIT_SECONDS)
    return transfer_ended(transfer_id=transfer.id)


async def transfer_wait_async(transfer: Transfer) -> Transfer:
    """``transfer_wait`` for async callers: the wait for the worker's answer holds no thread."""
    await await_task(transfer.id, timeout=settings.TRANSFER_WAIT_SECONDS)
    return await in_thread(transfer_ended)(transfer_id=transfer.id)


def transfer_ended(*, transfer_id: str) -> Transfer:
    """The transfer as its worker left it; a failed one raises the error it recorded."""
    transfer = Transfer.objects.select_related("artifact").get(id=transfer_id)
    if transfer.state == TransferState.FAILED:
        raise transfer_error(transfer)
    return transfer


def transfer_error(transfer: Transfer) -> StowageError:
    code, message = transfer.error_code or "TRANSFER_FAILED", transfer.error_message or "the transfer failed"
    error = error_from_code(code, message, default_status=422)
    error.details = transfer.error_details or {}
    return error


# Parts signed in one request, at most: the page signs a few at a time to spare the web process.
DIRECT_SIGN_BATCH_MAX = 8


def direct_uploads_available() -> bool:
    return settings.DIRECT_UPLOADS and is_s3()


def direct_upload_begin(
    *,
    actor: Actor,
    remote_path: str,
    size: int,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Transfer:
    """A pending artifact, its transfer (receiving parts) and an open multipart upload for a file
    of ``size`` bytes."""
    if not direct_uploads_available():
        raise Conflict(
            "Direct uploads need S3 storage; send the file through Stowage instead.", code="DIRECT_UPLOAD_UNAVAILABLE"
        )
    remote_path = check_remote_path(remote_path)
    metadata = check_metadata(metadata)
    content_type = check_content_type(content_type)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput("size must be the file's size in bytes", details={"field": "size"})
    if size > settings.ARTIFACT_MAX_BYTES:
        raise PayloadTooLarge(
            f"the file is {size} bytes, more than the {settings.ARTIFACT_MAX_BYTES} bytes allowed",
            code="FILE_TOO_LARGE",
        )
    if size < settings.DIRECT_UPLOAD_MIN_BYTES:
        raise InvalidInput(
            f"files under {settings.DIRECT_UPLOAD_MIN_BYTES} bytes are sent through Stowage, not straight to storage",
            code="TOO_SMALL_FOR_DIRECT_UPLOAD",
            details={"field": "size"},
        )
    quota_check_upload(organization_id=actor.organization_id, size=size)
    artifact = pending_artifact(
        actor=actor,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        expires_in=None,
        session_id="",
    )
    upload_id = s3_multipart_begin(artifact.storage_key)
    now = artifact.created_at
    transfer = Transfer(
        organization_id=actor.organization_id,
        kind=TransferKind.PUT,
        artifact=artifact,
        state=TransferState.RECEIVING,
        bytes_total=size,
        actor=actor.to_dict(),
        created_at=now,
        started_at=now,
        attempts=1,
        upload_id=upload_id,
        part_size=direct_part_size(size),
    )
    try:
        with transaction.atomic():
            artifact.save(force_insert=True)
            transfer.save(force_insert=True)
    except BaseException:
        s3_multipart_abort(artifact.storage_key, upload_id)
        raise
    return transfer


def _closed(transfer: Transfer) -> Conflict:
    reason = f" ({transfer.error_message})" if transfer.state == TransferState.FAILED and transfer.error_message else ""
    return Conflict(
        f"This upload is no longer taking parts{reason}.", code="UPLOAD_CLOSED", details={"state": transfer.state}
    )


def direct_upload_sign_parts(*, transfer: Transfer, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each ``{"number", "sha256"}``: a URL for PUT of that part, valid for that part's length
    and bytes only, and the headers to send with it. All are checked before any is signed."""
    if transfer.state != TransferState.RECEIVING:
        raise _closed(transfer)
    if (
        not isinstance(parts, list)
        or not 1 <= len(parts) <= DIRECT_SIGN_BATCH_MAX
        or not all(isinstance(part, dict) for part in parts)
    ):
        raise InvalidInput(
            f"parts must be a list of 1 to {DIRECT_SIGN_BATCH_MAX} objects with a number and a sha256",
            details={"field": "parts"},
        )
    wanted = []
    for part in parts:
        number, sha256_b64 = part.get("number"), part.get("sha256")
        _start, size = direct_part_bounds(transfer, number)
        try:
            valid = isinstance(sha256_b64, str) and len(base64.b64decode(sha256_b64, validate=True)) == 32
        except ValueError:
            valid = False
        if not valid:
            raise InvalidInput("sha256 must be the part's SHA-256 digest in base64", details={"field": "sha256"})
        wanted.append((number, size, sha256_b64))
    expires_in = settings.DIRECT_UPLOAD_PART_URL_SECONDS
    return [
        {
            "number": number,
            "size": size,
            "url": s3_presigned_part_url(
                transfer.artifact.storage_key,
                transfer.upload_id,
                number=number,
                size=size,
                sha256_b64=sha256_b64,
                expires_in=expires_in,
            ),
            "method": "PUT",
            "headers": {"x-amz-checksum-sha256": sha256_b64},
            "expires_in": expires_in,
        }
        for number, size, sha256_b64 in wanted
    ]


def direct_upload_complete(*, transfer: Transfer) -> Transfer:
    """Close the upload once every part is stored at its length, and hand it to a worker to join
    and check. A missing or mis-sized part changes nothing: the client sends it again and
    retries. Retrying after any answer is safe: an upload is never joined or checked twice; a
    retry reports progress, and sends the finish again only if the queue refused it."""
    if transfer.state == TransferState.RECEIVING:
        _close_direct_upload(transfer)
        transfer.refresh_from_db()
    if transfer.state == TransferState.UNQUEUED and Transfer.objects.filter(
        id=transfer.id, state=TransferState.UNQUEUED
    ).update(state=TransferState.QUEUED, heartbeat_at=timezone.now()):
        direct_finish_enqueue(transfer.id)
        transfer.refresh_from_db()
    if transfer.state == TransferState.FAILED:
        raise _closed(transfer)
    return transfer


def _close_direct_upload(transfer: Transfer) -> None:
    try:
        parts = s3_multipart_parts(transfer.artifact.storage_key, transfer.upload_id)
    except UploadGone:
        if Transfer.objects.filter(id=transfer.id, state=TransferState.RECEIVING).exists():
            raise Conflict(
                "The upload is no longer open on the object store; start it again.", code="UPLOAD_CLOSED"
            ) from None
        return  # a retry that crossed the first completion: a worker has the parts
    check_parts(transfer, parts)
    # Only one completion wins; a concurrent one finds the upload already closed.
    now = timezone.now()
    if Transfer.objects.filter(id=transfer.id, state=TransferState.RECEIVING).update(
        state=TransferState.QUEUED, completed_at=now, heartbeat_at=now, bytes_done=transfer.bytes_total
    ):
        direct_finish_enqueue(transfer.id)


def direct_upload_abort(*, transfer: Transfer, reason: str = "the upload was cancelled") -> None:
    """Drop the parts sent so far; the artifact never appears. Once completed, the upload is the
    worker's and this does nothing."""
    if fail_transfer(transfer, "CANCELLED", reason, time.monotonic(), only_if=Q(state=TransferState.RECEIVING)):
        s3_multipart_abort(transfer.artifact.storage_key, transfer.upload_id)
