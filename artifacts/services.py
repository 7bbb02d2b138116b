"""Every change to artifacts and transfers."""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from artifacts import tasks
from artifacts.models import Artifact, ArtifactState, Transfer, TransferKind, TransferState
from artifacts.storage import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    BlobError,
    BlobTooLarge,
    StoredBlob,
    UploadGone,
    blob_abort_stale_uploads,
    blob_delete,
    blob_iter_chunks,
    blob_key,
    blob_walk,
    blob_write,
    is_s3,
    s3_multipart_abort,
    s3_multipart_begin,
    s3_multipart_complete,
    s3_multipart_parts,
    s3_presigned_part_url,
)
from artifacts.validation import (
    check_content_type,
    check_expires_in,
    check_metadata,
    check_remote_path,
    guess_content_type,
)
from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from core.dispatch import enqueue, wait_for
from core.errors import Conflict, InvalidInput, PayloadTooLarge, StowageError, error_from_code
from ops.metrics import record_transfer_on_commit
from sandboxes.models import Sandbox
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime_loader import get_runtime
from sandboxes.services import check_sandbox_path, require_running
from shares.models import ShareLink, ShareLinkState

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 0.5
# --- starting transfers (web side) ------------------------------------------------------------


def _default_remote_path(path: str) -> str:
    return path.removeprefix("/workspace/").strip("/")


def _pending_artifact(
    *,
    actor: Actor,
    remote_path: str,
    content_type: str | None,
    metadata: dict[str, str],
    expires_in: int | None,
    session_id: str,
    sandbox_id: str = "",
    source_path: str = "",
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
) -> Transfer:
    """Copy a file (or a directory, as one tar.gz) from a sandbox into storage."""
    path = check_sandbox_path(path)
    remote_path = check_remote_path(remote_path if remote_path not in (None, "") else _default_remote_path(path))
    metadata = check_metadata(metadata)
    expires_in = check_expires_in(expires_in)
    content_type = check_content_type(content_type)
    require_running(sandbox)
    window_start = timezone.now() - timedelta(seconds=settings.ARTIFACT_RETRY_WINDOW_SECONDS)
    # A retry of a request whose upload is still running joins it instead of starting another.
    transfer = (
        Transfer.objects.filter(
            organization_id=sandbox.organization_id,
            kind=TransferKind.UPLOAD,
            sandbox_id=sandbox.id,
            path=path,
            artifact__remote_path=remote_path,
            state__in=[TransferState.QUEUED, TransferState.RUNNING],
            created_at__gte=window_start,
        )
        .select_related("artifact")
        .first()
    )
    if transfer is None:
        artifact = _pending_artifact(
            actor=actor,
            remote_path=remote_path,
            content_type=content_type,
            metadata=metadata,
            expires_in=expires_in,
            session_id=session_id or sandbox.session_id,
            sandbox_id=sandbox.id,
            source_path=path,
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
            transaction.on_commit(
                lambda: enqueue(
                    tasks.transfer_upload,
                    host=sandbox.host,
                    task_id=transfer.id,
                    on_unavailable=lambda: _not_queued(transfer.id),
                    transfer_id=transfer.id,
                )
            )
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
        transaction.on_commit(
            lambda: enqueue(
                tasks.transfer_download,
                host=sandbox.host,
                task_id=transfer.id,
                on_unavailable=lambda: _not_queued(transfer.id),
                transfer_id=transfer.id,
            )
        )
    if wait:
        transfer = transfer_wait(transfer)
    return transfer


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
    wait_for(tasks.transfer_upload.AsyncResult(transfer.id), timeout=settings.TRANSFER_WAIT_SECONDS)
    transfer = Transfer.objects.select_related("artifact").get(id=transfer.id)
    if transfer.state == TransferState.FAILED:
        raise transfer_error(transfer)
    return transfer


def transfer_error(transfer: Transfer) -> StowageError:
    code, message = transfer.error_code or "TRANSFER_FAILED", transfer.error_message or "the transfer failed"
    return error_from_code(code, message, default_status=422)


# --- running transfers (worker side) -----------------------------------------------------------


class _Progress:
    """Writes bytes done to the transfer row at most twice a second."""

    def __init__(self, transfer_id: str) -> None:
        self.transfer_id = transfer_id
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_SECONDS:
            self.last = now
            Transfer.objects.filter(id=self.transfer_id).update(bytes_done=done)


def _claim(transfer_id: str) -> Transfer | None:
    """Mark the transfer running; None when it already ended (a redelivered task)."""
    claimed = Transfer.objects.filter(id=transfer_id, state__in=[TransferState.QUEUED, TransferState.RUNNING]).update(
        state=TransferState.RUNNING, started_at=timezone.now(), bytes_done=0
    )
    if not claimed:
        return None
    transfer = Transfer.objects.select_related("artifact").get(id=transfer_id)
    Transfer.objects.filter(id=transfer_id).update(attempts=transfer.attempts + 1)
    return transfer


def _fail(transfer: Transfer, code: str, message: str, started: float, *, only_if: Q | None = None) -> bool:
    """Fail the transfer (and its pending artifact) unless it has ended, or ``only_if`` no longer
    holds; False when nothing was changed, so a late failure never overwrites a result."""
    with transaction.atomic():
        failed = (
            Transfer.objects.filter(id=transfer.id, state__in=[TransferState.QUEUED, TransferState.RUNNING])
            .filter(only_if or Q())
            .update(
                state=TransferState.FAILED, error_code=code, error_message=message[:4000], finished_at=timezone.now()
            )
        )
        if not failed:
            return False
        if transfer.kind in (TransferKind.UPLOAD, TransferKind.PUT):
            Artifact.objects.filter(id=transfer.artifact_id, state=ArtifactState.PENDING).update(
                state=ArtifactState.FAILED, error_message=message[:4000]
            )
        _audit_transfer(transfer, Outcome.FAILURE, started, error=f"{code}: {message}")
    return True


def _audit_transfer(
    transfer: Transfer,
    outcome: str,
    started: float,
    *,
    error: str = "",
    artifact: Artifact | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    artifact = artifact or transfer.artifact
    action = "artifact.upload" if transfer.kind in (TransferKind.UPLOAD, TransferKind.PUT) else "artifact.download"
    details = {"transfer_id": transfer.id, "path": transfer.path, "remote_path": artifact.remote_path, **(extra or {})}
    audit_record(
        actor=Actor.from_dict(transfer.actor) if transfer.actor else Actor.system(transfer.organization_id),
        action=action,
        resource=f"artifact:{artifact.id}",
        sandbox_id=transfer.sandbox_id,
        session_id=artifact.session_id if transfer.kind != TransferKind.DOWNLOAD else "",
        details=details,
        outcome=outcome,
        error_message=error,
        duration_ms=int((time.monotonic() - started) * 1000),
        organization_id=transfer.organization_id,
    )
    record_transfer_on_commit(transfer.kind, outcome, time.monotonic() - started, (extra or {}).get("size"))


def transfer_run_upload(*, transfer_id: str) -> str:
    transfer = _claim(transfer_id)
    if transfer is None:
        return "already-done"
    started = time.monotonic()
    artifact = transfer.artifact
    runtime = get_runtime()
    progress = _Progress(transfer.id)
    try:
        entry = runtime.stat_path(transfer.sandbox_id, transfer.path)
        if entry.type == "directory":
            with tempfile.TemporaryFile(dir=runtime.scratch_dir(transfer.sandbox_id)) as archive:
                runtime.archive_directory(transfer.sandbox_id, transfer.path, archive)
                total = archive.tell()
                archive.seek(0)
                Transfer.objects.filter(id=transfer.id).update(bytes_total=total)
                head = archive.read(512)
                archive.seek(0)
                stored = blob_write(
                    artifact.storage_key,
                    iter(lambda: archive.read(CHUNK_SIZE), b""),
                    max_bytes=settings.ARTIFACT_MAX_BYTES,
                    on_progress=progress,
                )
            content_type = artifact.content_type or "application/gzip"
            is_archive = True
        else:
            with runtime.open_read(transfer.sandbox_id, transfer.path) as source:
                total = entry.size
                if total > settings.ARTIFACT_MAX_BYTES:
                    raise BlobTooLarge(
                        f"{transfer.path} is {total} bytes, more than the {settings.ARTIFACT_MAX_BYTES} bytes allowed"
                    )
                Transfer.objects.filter(id=transfer.id).update(bytes_total=total)
                head = source.read(512)
                chunks = _chain([head], iter(lambda: source.read(CHUNK_SIZE), b""))
                stored = blob_write(
                    artifact.storage_key, chunks, max_bytes=settings.ARTIFACT_MAX_BYTES, on_progress=progress
                )
            content_type = artifact.content_type or guess_content_type(artifact.remote_path, head)
            is_archive = False
    except SandboxRuntimeError as exc:
        _fail(transfer, exc.code, exc.message, started)
        return "failed"
    except BlobError as exc:
        blob_delete(artifact.storage_key)
        _fail(transfer, exc.code, str(exc), started)
        return "failed"
    except Exception as exc:
        # Anything else would leave the transfer running and every retry joining it.
        logger.exception("upload %s failed", transfer.id)
        blob_delete(artifact.storage_key)
        _fail(transfer, "IO_ERROR", f"the upload failed: {exc}", started)
        return "failed"
    _publish_upload(transfer, stored, content_type=content_type, is_archive=is_archive, started=started)
    return "succeeded"


def _chain(*iterables) -> Iterator[bytes]:
    for iterable in iterables:
        yield from iterable


def _lock_remote_path(organization_id: str, remote_path: str) -> None:
    """Hold, until the transaction ends, a lock that orders uploads to one remote_path.

    SQLite's IMMEDIATE transactions already run one at a time. On PostgreSQL concurrent uploads
    would all read the same latest version and all but one would collide on the unique
    constraint, again on each retry; the lock makes each read the version the previous one wrote.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"artifact-path:{organization_id}:{remote_path}"],
            )


def _publish_upload(
    transfer: Transfer,
    stored,
    *,
    content_type: str,
    is_archive: bool,
    started: float,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Make the artifact visible with its version (or point the transfer at the twin a retried
    request already made); False when it is no longer pending and nothing was done."""
    artifact = transfer.artifact
    window_start = timezone.now() - timedelta(seconds=settings.ARTIFACT_RETRY_WINDOW_SECONDS)
    for attempt in range(5):
        try:
            with transaction.atomic():
                _lock_remote_path(artifact.organization_id, artifact.remote_path)
                twin = (
                    Artifact.objects.filter(
                        organization_id=artifact.organization_id,
                        state=ArtifactState.READY,
                        sandbox_id=artifact.sandbox_id,
                        source_path=artifact.source_path,
                        remote_path=artifact.remote_path,
                        checksum=stored.checksum,
                        created_at__gte=window_start,
                    )
                    .exclude(id=artifact.id)
                    .first()
                )
                if twin is not None:
                    # The same bytes from the same place moments ago: a retried request.
                    Artifact.objects.filter(id=artifact.id, state=ArtifactState.PENDING).update(
                        state=ArtifactState.FAILED, error_message=f"retry of {twin.id}"
                    )
                    Transfer.objects.filter(id=transfer.id).update(
                        state=TransferState.SUCCEEDED,
                        artifact=twin,
                        bytes_done=stored.size,
                        bytes_total=stored.size,
                        finished_at=timezone.now(),
                    )
                    transaction.on_commit(lambda: blob_delete(artifact.storage_key))
                    _audit_transfer(
                        transfer,
                        Outcome.SUCCESS,
                        started,
                        artifact=twin,
                        extra={**(extra or {}), "deduplicated": True, "size": stored.size, "checksum": stored.checksum},
                    )
                    return True
                latest = Artifact.objects.filter(
                    organization_id=artifact.organization_id, remote_path=artifact.remote_path, version__isnull=False
                ).aggregate(v=Max("version"))["v"]
                version = (latest or 0) + 1
                published = Artifact.objects.filter(id=artifact.id, state=ArtifactState.PENDING).update(
                    state=ArtifactState.READY,
                    version=version,
                    size=stored.size,
                    checksum=stored.checksum,
                    content_type=content_type,
                    is_archive=is_archive,
                    ready_at=timezone.now(),
                )
                if not published:
                    # Published by an earlier delivery of the same task, or given up on by the sweeper.
                    return False
                Transfer.objects.filter(id=transfer.id).update(
                    state=TransferState.SUCCEEDED,
                    bytes_done=stored.size,
                    bytes_total=stored.size,
                    finished_at=timezone.now(),
                )
                _audit_transfer(
                    transfer,
                    Outcome.SUCCESS,
                    started,
                    extra={**(extra or {}), "size": stored.size, "checksum": stored.checksum, "version": version},
                )
                return True
        except IntegrityError:
            # Another upload to the same remote_path took this version number first.
            if attempt == 4:
                raise


def transfer_run_download(*, transfer_id: str) -> str:
    transfer = _claim(transfer_id)
    if transfer is None:
        return "already-done"
    started = time.monotonic()
    artifact = transfer.artifact
    expected = artifact.checksum.removeprefix("sha256:")
    try:
        if not artifact.is_visible:
            raise SandboxRuntimeError(
                f"artifact {artifact.id} was deleted or expired before it could be copied", code="ARTIFACT_NOT_FOUND"
            )
        size = get_runtime().write_stream(
            transfer.sandbox_id,
            transfer.path,
            blob_iter_chunks(artifact.storage_key),
            expected_sha256=expected,
            on_progress=_Progress(transfer.id),
        )
    except SandboxRuntimeError as exc:
        _fail(transfer, exc.code, exc.message, started)
        return "failed"
    except (BlobError, FileNotFoundError) as exc:
        _fail(transfer, "STORAGE_ERROR", f"the artifact's stored bytes could not be read: {exc}", started)
        return "failed"
    except Exception as exc:
        logger.exception("download %s failed", transfer.id)
        _fail(transfer, "IO_ERROR", f"the download failed: {exc}", started)
        return "failed"
    Transfer.objects.filter(id=transfer.id).update(
        state=TransferState.SUCCEEDED, bytes_done=size, finished_at=timezone.now()
    )
    _audit_transfer(transfer, Outcome.SUCCESS, started, extra={"size": size, "checksum": artifact.checksum})
    return "succeeded"


# --- clients outside sandboxes -----------------------------------------------------------------


def artifact_put(
    *,
    actor: Actor,
    stream,
    remote_path: str,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_in: int | None = None,
    content_length: int | None = None,
    session_id: str | None = None,
) -> Artifact:
    """Store a request body as a new artifact, streamed in chunks straight to storage."""
    remote_path = check_remote_path(remote_path)
    metadata = check_metadata(metadata)
    expires_in = check_expires_in(expires_in)
    content_type = check_content_type(content_type)
    limit = settings.ARTIFACT_MAX_BYTES
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(
            f"the body is {content_length} bytes, more than the {limit} bytes allowed", code="FILE_TOO_LARGE"
        )
    artifact = _pending_artifact(
        actor=actor,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        expires_in=expires_in,
        session_id=session_id or "",
    )
    now = artifact.created_at
    transfer = Transfer(
        organization_id=actor.organization_id,
        kind=TransferKind.PUT,
        artifact=artifact,
        state=TransferState.RUNNING,
        bytes_total=content_length,
        actor=actor.to_dict(),
        started_at=now,
        attempts=1,
    )
    with transaction.atomic():
        artifact.save(force_insert=True)
        transfer.save(force_insert=True)
    started = time.monotonic()
    head = stream.read(512)
    try:
        stored = blob_write(
            artifact.storage_key,
            _chain([head], iter(lambda: stream.read(CHUNK_SIZE), b"")),
            max_bytes=limit,
            on_progress=_Progress(transfer.id),
        )
        if content_length is not None and stored.size != content_length:
            raise BlobError(f"the body ended after {stored.size} of {content_length} bytes")
    except BlobError as exc:
        blob_delete(artifact.storage_key)
        _fail(transfer, exc.code, str(exc), started)
        raise transfer_error(Transfer.objects.get(id=transfer.id)) from None
    except BaseException:
        # A client that hung up mid-body leaves nothing visible behind.
        blob_delete(artifact.storage_key)
        _fail(transfer, "INCOMPLETE_BODY", "the request body was not received whole", started)
        raise
    _publish_upload(
        transfer,
        stored,
        content_type=content_type or guess_content_type(remote_path, head),
        is_archive=False,
        started=started,
    )
    return Artifact.objects.get(id=Transfer.objects.get(id=transfer.id).artifact_id)


# --- browser uploads straight to the object store ---------------------------------------------
#
# The browser asks for a plan (direct_upload_begin), hashes each part and asks for URLs signed
# with each part's length and SHA-256 (direct_upload_sign_parts, a few parts a request), sends
# the parts to S3 itself, then says it is done (direct_upload_complete), which checks every part
# is stored at its length. A worker joins the parts, reads the object back once to record its
# SHA-256 and publishes it (transfer_run_direct_finish). No byte passes through the web process
# and no web request waits on the join; the object store refuses a part whose bytes do not match
# what was signed.

# S3 allows 10,000 parts per upload. Every part must be signed by the web process, so a large
# file gets larger parts (up to 32 MiB: 32 parts, 16 signing requests per GiB); the browser
# reads each part whole to hash it, which bounds the part size too.
S3_MAX_PARTS = 10_000
DIRECT_PART_MIN_BYTES = 8 << 20
DIRECT_PART_MAX_BYTES = 32 << 20
DIRECT_PARTS_TARGET = 32


def direct_uploads_available() -> bool:
    return settings.DIRECT_UPLOADS and is_s3()


def direct_part_size(size: int) -> int:
    """A whole number of MiB: about a 32nd of the file, between 8 and 32 MiB, and never so small
    that the file would need more parts than S3 allows."""
    mib = 1 << 20

    def whole_mib(n: int) -> int:
        return -(-n // mib) * mib

    wanted = min(max(whole_mib(-(-size // DIRECT_PARTS_TARGET)), DIRECT_PART_MIN_BYTES), DIRECT_PART_MAX_BYTES)
    return max(wanted, whole_mib(-(-size // S3_MAX_PARTS)))


def direct_upload_begin(
    *,
    actor: Actor,
    remote_path: str,
    size: int,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Transfer:
    """A pending artifact, its transfer and an open multipart upload for a file of ``size`` bytes."""
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
    artifact = _pending_artifact(
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
        state=TransferState.RUNNING,
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


def _taking_parts(transfer: Transfer) -> bool:
    return transfer.state == TransferState.RUNNING and transfer.completed_at is None


def _open_direct_upload(transfer: Transfer) -> None:
    if not _taking_parts(transfer):
        reason = (
            f" ({transfer.error_message})" if transfer.state == TransferState.FAILED and transfer.error_message else ""
        )
        raise Conflict(
            f"This upload is no longer taking parts{reason}.", code="UPLOAD_CLOSED", details={"state": transfer.state}
        )


def direct_part_bounds(transfer: Transfer, number: int) -> tuple[int, int]:
    """The byte offset and length of part ``number`` (from 1)."""
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= transfer.part_count:
        raise InvalidInput(f"the part number must be between 1 and {transfer.part_count}", details={"field": "number"})
    start = (number - 1) * transfer.part_size
    return start, min(transfer.part_size, transfer.bytes_total - start)


# Parts signed in one request, at most: the page signs a few at a time to spare the web process.
DIRECT_SIGN_BATCH_MAX = 8


def direct_upload_sign_parts(*, transfer: Transfer, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each ``{"number", "sha256"}``: a URL for PUT of that part, valid for that part's length
    and bytes only, and the headers to send with it. All are checked before any is signed."""
    _open_direct_upload(transfer)
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
    retries. Retrying after any answer is safe: an upload is never joined or checked twice."""
    if transfer.state == TransferState.SUCCEEDED:
        return transfer  # a retried request whose first answer was lost
    if transfer.completed_at is not None and transfer.state in (TransferState.QUEUED, TransferState.RUNNING):
        # Already with a worker; queued again only if the queue refused it before.
        if Transfer.objects.filter(id=transfer.id, state=TransferState.QUEUED, error_code=BROKER_UNAVAILABLE).update(
            error_code=""
        ):
            _enqueue_finish(transfer)
        transfer.refresh_from_db()
        return transfer
    _open_direct_upload(transfer)
    try:
        parts = s3_multipart_parts(transfer.artifact.storage_key, transfer.upload_id)
    except UploadGone:
        transfer.refresh_from_db()
        if transfer.completed_at is not None and transfer.state != TransferState.FAILED:
            return transfer  # a retry that crossed the first completion: a worker has the parts
        raise Conflict(
            "The upload is no longer open on the object store; start it again.", code="UPLOAD_CLOSED"
        ) from None
    _check_parts(transfer, parts)
    # Only one completion wins; a concurrent one finds the upload already closed.
    claimed = Transfer.objects.filter(id=transfer.id, state=TransferState.RUNNING, completed_at__isnull=True).update(
        state=TransferState.QUEUED, completed_at=timezone.now(), bytes_done=transfer.bytes_total
    )
    if not claimed:
        transfer.refresh_from_db()
        if transfer.state == TransferState.FAILED:
            raise Conflict("This upload was cancelled.", code="UPLOAD_CLOSED", details={"state": transfer.state})
        return transfer
    _enqueue_finish(transfer)
    transfer.refresh_from_db()
    return transfer


BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"


def _check_parts(transfer: Transfer, parts: list[dict]) -> None:
    stored = {part["PartNumber"]: part for part in parts}
    count = transfer.part_count
    missing = [number for number in range(1, count + 1) if number not in stored]
    if missing:
        raise Conflict(
            f"{len(missing)} of {count} parts are not stored yet",
            code="UPLOAD_INCOMPLETE",
            details={"missing_parts": missing[:100]},
        )
    wrong = [
        number
        for number in sorted(stored)
        if number > count or stored[number]["Size"] != direct_part_bounds(transfer, number)[1]
    ]
    if wrong:
        raise Conflict(
            "Some parts do not have the length the plan gave them; send them again.",
            code="PART_SIZE_MISMATCH",
            details={"parts": wrong[:100]},
        )


def _enqueue_finish(transfer: Transfer) -> None:
    def remember() -> None:
        # The parts stay stored; the client's retry of the completion, or direct_uploads_resume,
        # queues the finish again.
        Transfer.objects.filter(id=transfer.id, state=TransferState.QUEUED).update(error_code=BROKER_UNAVAILABLE)

    Transfer.objects.filter(id=transfer.id, state=TransferState.QUEUED).update(heartbeat_at=timezone.now())
    enqueue(tasks.finish_direct_upload, on_unavailable=remember, transfer_id=transfer.id)


# The finish shows progress at least this often while it reads; a running finish silent for
# longer than the lease (which also covers the store's join) is taken to be dead and is resumed.
DIRECT_FINISH_HEARTBEAT_SECONDS = 20
DIRECT_FINISH_LEASE_SECONDS = 600


def direct_uploads_resume(*, now=None) -> int:
    """Send the finish again for completed uploads whose task was lost, refused by the queue or
    held by a worker that died. Each is sent at most once a lease, and the finish is exclusive,
    so a duplicate only finds the work taken or done."""
    now = now or timezone.now()
    silent = now - timedelta(seconds=DIRECT_FINISH_LEASE_SECONDS)
    stalled = Transfer.objects.filter(
        kind=TransferKind.PUT, completed_at__isnull=False, state__in=[TransferState.QUEUED, TransferState.RUNNING]
    ).filter(Q(heartbeat_at__lt=silent) | Q(heartbeat_at__isnull=True))
    resumed = 0
    for transfer in stalled.order_by("completed_at")[:100]:
        if Transfer.objects.filter(id=transfer.id, state=transfer.state, heartbeat_at=transfer.heartbeat_at).update(
            state=TransferState.QUEUED, heartbeat_at=now, error_code=""
        ):
            enqueue(tasks.finish_direct_upload, transfer_id=transfer.id)
            resumed += 1
    return resumed


def direct_upload_abort(*, transfer: Transfer, reason: str = "the upload was cancelled") -> None:
    """Drop the parts sent so far; the artifact never appears. Once completed, the upload is the
    worker's and this does nothing."""
    if not _fail(
        transfer,
        "CANCELLED",
        reason,
        time.monotonic(),
        only_if=Q(state=TransferState.RUNNING, completed_at__isnull=True),
    ):
        return
    s3_multipart_abort(transfer.artifact.storage_key, transfer.upload_id)


def _claim_direct_finish(transfer_id: str) -> Transfer | None:
    """Take the finish: a queued one, or a running one whose worker fell silent. None when
    another worker holds it or it has ended."""
    now = timezone.now()
    silent = now - timedelta(seconds=DIRECT_FINISH_LEASE_SECONDS)
    claimed = (
        Transfer.objects.filter(id=transfer_id, completed_at__isnull=False)
        .filter(
            Q(state=TransferState.QUEUED)
            | Q(state=TransferState.RUNNING, heartbeat_at__lt=silent)
            | Q(state=TransferState.RUNNING, heartbeat_at__isnull=True)
        )
        .update(state=TransferState.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    return Transfer.objects.select_related("artifact").get(id=transfer_id) if claimed else None


def transfer_run_direct_finish(*, transfer_id: str) -> str:
    """Join the parts and read the object back once: its size must be the one planned; its
    SHA-256 becomes the artifact's checksum, which every later copy into a sandbox is checked
    against. One worker at a time; a redelivered task finds the parts joined and goes on."""
    transfer = _claim_direct_finish(transfer_id)
    if transfer is None:
        return "skipped"
    started = time.monotonic()
    artifact = transfer.artifact
    key = artifact.storage_key
    digest = hashlib.sha256()
    size = 0
    head = b""
    last_beat = time.monotonic()
    try:
        try:
            parts = s3_multipart_parts(key, transfer.upload_id)
        except UploadGone:
            parts = None  # joined by an earlier holder of the finish
        if parts is not None:
            try:
                _check_parts(transfer, parts)
            except Conflict:
                raise Conflict(
                    "Some parts changed after the upload was completed.", code="PART_SIZE_MISMATCH"
                ) from None
            try:
                s3_multipart_complete(key, transfer.upload_id, parts)
            except UploadGone:
                pass  # joined meanwhile (an answer lost on the way): the read below tells
        for chunk in blob_iter_chunks(key):
            if not head:
                head = chunk[:512]
            digest.update(chunk)
            size += len(chunk)
            if time.monotonic() - last_beat >= DIRECT_FINISH_HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                Transfer.objects.filter(id=transfer.id, state=TransferState.RUNNING).update(heartbeat_at=timezone.now())
        if size != transfer.bytes_total:
            raise Conflict(
                f"The stored file has {size} bytes, not the {transfer.bytes_total} announced.", code="SIZE_MISMATCH"
            )
        content_type = artifact.content_type or guess_content_type(artifact.remote_path, head)
        published = _publish_upload(
            transfer,
            StoredBlob(size, digest.hexdigest()),
            content_type=content_type,
            is_archive=False,
            started=started,
            extra={"via": "direct"},
        )
    except Conflict as exc:
        _give_up_direct(transfer, exc.code, exc.message, started)
        return "failed"
    except (BlobError, FileNotFoundError):
        logger.warning("direct upload %s: the parts could not be joined or read back", transfer.id, exc_info=True)
        _give_up_direct(
            transfer, "STORAGE_ERROR", "The uploaded file could not be joined or read back in storage.", started
        )
        return "failed"
    except Exception:
        # Anything else would leave the upload "being checked" until it is resumed or swept.
        logger.exception("direct upload %s: the check failed", transfer.id)
        _give_up_direct(transfer, "IO_ERROR", "The uploaded file could not be checked.", started)
        return "failed"
    if not published:
        # The sweeper gave the artifact up meanwhile: it will not appear, so neither do its bytes.
        _give_up_direct(transfer, "ABANDONED", "The upload took too long and was given up.", started)
        return "failed"
    return "succeeded"


def _give_up_direct(transfer: Transfer, code: str, message: str, started: float) -> None:
    """Fail a direct upload that has not ended, and remove its parts and object, unless its
    artifact was published after all (by an earlier holder of the finish)."""
    _fail(transfer, code, message, started)
    if Artifact.objects.filter(id=transfer.artifact_id, state=ArtifactState.READY).exists():
        return
    key = transfer.artifact.storage_key
    try:
        s3_multipart_abort(key, transfer.upload_id)
        blob_delete(key)
    except Exception:  # the sweeper removes what is left
        logger.warning("direct upload %s: could not remove what it left", transfer.id, exc_info=True)


# --- reading, deleting, expiring ----------------------------------------------------------------


def artifact_record_read(
    *, actor: Actor, artifact: Artifact, action: str, details: dict[str, Any] | None = None
) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"artifact:{artifact.id}",
        sandbox_id=artifact.sandbox_id,
        session_id=artifact.session_id,
        details={"remote_path": artifact.remote_path, **(details or {})},
        organization_id=artifact.organization_id,
    )


def artifact_delete(*, actor: Actor, artifact: Artifact, reason: str = "requested") -> None:
    """Remove the bytes; keep the row, marked deleted, for the audit trail."""
    with transaction.atomic():
        deleted = Artifact.objects.filter(id=artifact.id, state=ArtifactState.READY).update(
            state=ArtifactState.DELETED, deleted_at=timezone.now()
        )
        if not deleted:
            return
        # Through the model, not shares.services, which imports this module.
        ShareLink.objects.filter(
            artifact_id=artifact.id, state__in=[ShareLinkState.PENDING, ShareLinkState.ACTIVE]
        ).update(state=ShareLinkState.REVOKED, revoked_at=timezone.now())
        audit_record(
            actor=actor,
            action="artifact.delete",
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, "reason": reason, "size": artifact.size},
            organization_id=artifact.organization_id,
        )
        transaction.on_commit(lambda: enqueue(tasks.delete_blob, key=artifact.storage_key))


def artifact_expire(*, now=None, batch: int = 500) -> int:
    now = now or timezone.now()
    expired = list(
        Artifact.objects.filter(state=ArtifactState.READY, expires_at__lte=now).order_by("expires_at")[:batch]
    )
    for artifact in expired:
        artifact_delete(actor=Actor.system(artifact.organization_id), artifact=artifact, reason="expired")
    return len(expired)


def storage_sweep(*, now=None) -> dict[str, int]:
    """Remove what failed or interrupted transfers left: stale pending rows, temporary and orphan blobs."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ARTIFACT_STALE_PENDING_SECONDS)
    stale_transfers = Transfer.objects.filter(
        state__in=[TransferState.QUEUED, TransferState.RUNNING], created_at__lt=stale_before
    )
    failed_transfers = stale_transfers.update(
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
        Transfer.objects.filter(state__in=[TransferState.QUEUED, TransferState.RUNNING])
        .exclude(upload_id="")
        .values_list("upload_id", flat=True)
    )
    removed += blob_abort_stale_uploads(stale_before, keep=live)
    return {"failed_transfers": failed_transfers, "failed_artifacts": failed_artifacts, "removed_blobs": removed}


def _delete_orphans(keys: list[str]) -> int:
    """Delete the keys that no ready or pending artifact owns; checked a batch at a time."""
    if not keys:
        return 0
    owned = set(
        Artifact.objects.filter(
            storage_key__in=keys, state__in=[ArtifactState.READY, ArtifactState.PENDING]
        ).values_list("storage_key", flat=True)
    )
    orphans = [key for key in keys if key not in owned]
    for key in orphans:
        blob_delete(key)
    return len(orphans)
