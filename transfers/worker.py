"""The worker side of a transfer: claim it, move the bytes, publish the artifact.

Each Celery task sits beside the function it runs. This module imports only downwards (models,
storage, the runtime, audit, core); the services that start transfers import it to enqueue.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from artifacts.blobs import blob_adopt, blob_lock, upload_discard
from artifacts.download_stats import download_record
from artifacts.events import artifact_emit
from artifacts.manifests import FolderTooLarge, FolderTooManyEntries, ManifestInvalid
from artifacts.models import Artifact, ArtifactState
from artifacts.prefixes import folders_add
from artifacts.search_index import search_index_update
from artifacts.storage import CHUNK_SIZE, BlobError, BlobTooLarge, StoredBlob, blob_iter_chunks, blob_write
from artifacts.validation import guess_content_type
from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from core.errors import QuotaExceeded
from ops.metrics import record_transfer_on_commit
from quotas.enforcement import quota_claim_publish
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime_loader import get_runtime
from transfers.folders import folder_download, folder_publish, folder_upload
from transfers.models import UNFINISHED_STATES, Transfer, TransferKind, TransferState
from transfers.quota_checks import upload_quota_check

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 0.5


class Progress:
    """Writes bytes done, and the total once known, to the transfer row at most twice a second,
    the first time half a second in: a transfer that ends sooner is written once, as it ends.
    Each write takes the database's write lock (on SQLite, the one lock of every writer), so
    the many short transfers of a busy host write no progress nobody could have seen."""

    clock = staticmethod(time.monotonic)

    def __init__(self, transfer_id: str, *, total: int | None = None) -> None:
        self.transfer_id = transfer_id
        self.total = total
        self.last = self.clock()

    def __call__(self, done: int) -> None:
        now = self.clock()
        if now - self.last >= PROGRESS_INTERVAL_SECONDS:
            self.last = now
            values = {"bytes_done": done} if self.total is None else {"bytes_done": done, "bytes_total": self.total}
            Transfer.objects.filter(id=self.transfer_id).update(**values)


def chain(*iterables: Iterable[bytes]) -> Iterator[bytes]:
    for iterable in iterables:
        yield from iterable


def _claim(transfer_id: str) -> Transfer | None:
    """Mark the transfer running; None when it already ended (a redelivered task)."""
    claimed = Transfer.objects.filter(id=transfer_id, state__in=[TransferState.QUEUED, TransferState.RUNNING]).update(
        state=TransferState.RUNNING, started_at=timezone.now(), bytes_done=0, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return Transfer.objects.select_related("artifact").get(id=transfer_id)


def fail_transfer(
    transfer: Transfer,
    code: str,
    message: str,
    started: float,
    *,
    only_if: Q | None = None,
    details: dict[str, Any] | None = None,
    bytes_total: int | None = None,
) -> bool:
    """Fail the transfer (and its pending artifact) unless it has ended, or ``only_if`` no longer
    holds; False when nothing was changed, so a late failure never overwrites a result.
    ``bytes_total``: the size found before the failure, for a transfer that had not written it."""
    known = {} if bytes_total is None else {"bytes_total": bytes_total}
    with transaction.atomic():
        failed = (
            Transfer.objects.filter(id=transfer.id, state__in=UNFINISHED_STATES)
            .filter(only_if or Q())
            .update(
                state=TransferState.FAILED,
                error_code=code,
                error_message=message[:4000],
                error_details=details or {},
                finished_at=timezone.now(),
                **known,
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
    progress = Progress(transfer.id)
    try:
        entry = runtime.stat_path(transfer.sandbox_id, transfer.path)
        if entry.type == "directory" and not artifact.is_archive:
            # A directory is a folder artifact: a manifest of blobs (transfers/folders.py).
            entries, skipped, writer = folder_upload(transfer, runtime, progress)
        elif entry.type == "directory":
            with tempfile.TemporaryFile(dir=runtime.scratch_dir(transfer.sandbox_id)) as archive:
                runtime.archive_directory(transfer.sandbox_id, transfer.path, archive)
                progress.total = archive.tell()
                archive.seek(0)
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
                # Known from here on, also to a refusal: the failed transfer says how big.
                progress.total = total = entry.size
                if total > settings.ARTIFACT_MAX_BYTES:
                    raise BlobTooLarge(
                        f"{transfer.path} is {total} bytes, more than the {settings.ARTIFACT_MAX_BYTES} bytes allowed"
                    )
                upload_quota_check(artifact, total)
                head = source.read(512)
                chunks = chain([head], iter(lambda: source.read(CHUNK_SIZE), b""))
                stored = blob_write(
                    artifact.storage_key, chunks, max_bytes=settings.ARTIFACT_MAX_BYTES, on_progress=progress
                )
            content_type = artifact.content_type or guess_content_type(artifact.remote_path, head)
            is_archive = False
    except (SandboxRuntimeError, ManifestInvalid, FolderTooLarge, FolderTooManyEntries, QuotaExceeded) as exc:
        details = exc.details if isinstance(exc, QuotaExceeded) else None
        fail_transfer(transfer, exc.code, exc.message, started, details=details, bytes_total=progress.total)
        return "failed"
    except BlobError as exc:
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, exc.code, str(exc), started, bytes_total=progress.total)
        return "failed"
    except Exception as exc:
        # Anything else would leave the transfer running and every retry joining it.
        logger.exception("upload %s failed", transfer.id)
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, "IO_ERROR", f"the upload failed: {exc}", started, bytes_total=progress.total)
        return "failed"
    if entry.type == "directory" and not artifact.is_archive:
        try:
            folder_publish(
                transfer,
                entries,
                skipped,
                writer,
                started=started,
                audit=_audit_transfer,
                lock_remote_path=_lock_remote_path,
                retry_twin=_retry_twin,
            )
        except QuotaExceeded as exc:
            writer.discard()
            fail_transfer(transfer, exc.code, exc.message, started, details=exc.details, bytes_total=progress.total)
            return "failed"
        except BaseException:
            writer.discard()
            raise
        return "succeeded"
    try:
        publish_upload(transfer, stored, content_type=content_type, is_archive=is_archive, started=started)
    except QuotaExceeded as exc:
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, exc.code, exc.message, started, details=exc.details, bytes_total=progress.total)
        return "failed"
    return "succeeded"


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


def _lifetime(created_at: datetime, expires_at: datetime | None) -> timedelta | None:
    return expires_at - created_at if expires_at else None


def _retry_twin(artifact: Artifact, stored: StoredBlob, content_type: str, is_archive: bool) -> Artifact | None:
    """A ready artifact made within the retry window by the same request: the same bytes from the
    same place, by the same caller, with the same metadata, content type and expiry. Anything
    else, the same bytes included, is a new version (sharing the blob)."""
    window_start = timezone.now() - timedelta(seconds=settings.ARTIFACT_RETRY_WINDOW_SECONDS)
    candidates = (
        Artifact.objects.filter(
            organization_id=artifact.organization_id,
            state=ArtifactState.READY,
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            source_path=artifact.source_path,
            remote_path=artifact.remote_path,
            checksum=stored.checksum,
            content_type=content_type,
            is_archive=is_archive,
            created_by_api_key_id=artifact.created_by_api_key_id,
            created_by_user_id=artifact.created_by_user_id,
            created_at__gte=window_start,
        )
        .exclude(id=artifact.id)
        .order_by("-created_at")
        .values_list("id", "metadata", "created_at", "expires_at")[:20]
    )
    # Compared here: JSON equality is not the same on every database. Only the fields compared
    # are read, and the whole row only of the twin (rare: a retry).
    lifetime = _lifetime(artifact.created_at, artifact.expires_at)
    for twin_id, metadata, created_at, expires_at in candidates:
        if metadata == artifact.metadata and _lifetime(created_at, expires_at) == lifetime:
            return Artifact.objects.get(id=twin_id)
    return None


class BlobMissing(Exception):
    """A publish without bytes found no live blob of the organization with the declared digest."""


def publish_upload(
    transfer: Transfer,
    stored: StoredBlob,
    *,
    content_type: str,
    is_archive: bool,
    started: float,
    extra: dict[str, Any] | None = None,
    bytes_sent: bool = True,
) -> bool:
    """Make the artifact visible with its version and its blob (or point the transfer at the twin a
    retried request already made); False when it is no longer pending and nothing was done.

    The bytes are at the artifact's storage key, unless ``bytes_sent`` is False: then ``stored``
    names bytes the organization is expected to have, and BlobMissing is raised (nothing changed)
    when it has no live blob of them.
    """
    artifact = transfer.artifact
    for attempt in range(5):
        try:
            with transaction.atomic():
                _lock_remote_path(artifact.organization_id, artifact.remote_path)
                if bytes_sent:
                    blob = None
                else:
                    blob = blob_lock(organization_id=artifact.organization_id, sha256=stored.sha256)
                    if blob is None:
                        raise BlobMissing(stored.sha256)
                    stored = StoredBlob(blob.size, blob.sha256)
                twin = _retry_twin(artifact, stored, content_type, is_archive)
                if twin is not None:
                    # The same request moments ago: a retry.
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
                    if bytes_sent:
                        transaction.on_commit(lambda: upload_discard(artifact.storage_key))
                    _audit_transfer(
                        transfer,
                        Outcome.SUCCESS,
                        started,
                        artifact=twin,
                        extra={**(extra or {}), "retry_of": twin.id, "size": stored.size, "checksum": stored.checksum},
                    )
                    return True
                if (
                    not Artifact.objects.select_for_update()
                    .filter(id=artifact.id, state=ArtifactState.PENDING)
                    .exists()
                ):
                    # Published by an earlier delivery of the same task, or given up on by the sweeper.
                    return False
                if blob is None:
                    blob = blob_adopt(organization_id=artifact.organization_id, stored=stored, key=artifact.storage_key)
                quota_claim_publish(
                    organization_id=artifact.organization_id,
                    size=stored.size,
                    added_bytes=getattr(blob, "added_bytes", 0),
                )
                deduplicated = blob.storage_key != artifact.storage_key
                latest = Artifact.objects.filter(
                    organization_id=artifact.organization_id, remote_path=artifact.remote_path, version__isnull=False
                ).aggregate(v=Max("version"))["v"]
                version = (latest or 0) + 1
                published = {
                    "state": ArtifactState.READY,
                    "blob": blob,
                    "version": version,
                    "size": stored.size,
                    "checksum": stored.checksum,
                    "content_type": content_type,
                    "is_archive": is_archive,
                    "ready_at": timezone.now(),
                }
                Artifact.objects.filter(id=artifact.id, state=ArtifactState.PENDING).update(**published)
                # Searchable, and counted in its folders, in the transaction that makes it visible.
                search_index_update(artifact)
                folders_add(artifact=artifact, size=stored.size, created_at=artifact.created_at)
                Transfer.objects.filter(id=transfer.id).update(
                    state=TransferState.SUCCEEDED,
                    bytes_done=stored.size if bytes_sent else 0,
                    bytes_total=stored.size,
                    finished_at=timezone.now(),
                )
                _audit_transfer(
                    transfer,
                    Outcome.SUCCESS,
                    started,
                    extra={
                        **(extra or {}),
                        "size": stored.size,
                        "checksum": stored.checksum,
                        "version": version,
                        "deduplicated": deduplicated,
                        "bytes_sent": bytes_sent,
                    },
                )
                # The event describes the row as it now is, without reading it again.
                for field, value in published.items():
                    setattr(artifact, field, value)
                artifact_emit(artifact, "artifact.uploaded")
                return True
        except IntegrityError:
            # Another upload to the same remote_path took this version number first, or another
            # first publish of the same bytes created their blob first.
            if attempt == 4:
                raise
    return False


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
        if artifact.is_folder:
            size = folder_download(transfer, get_runtime(), Progress(transfer.id))
        else:
            size = get_runtime().write_stream(
                transfer.sandbox_id,
                transfer.path,
                blob_iter_chunks(artifact.content_key),
                expected_sha256=expected,
                on_progress=Progress(transfer.id),
            )
    except (SandboxRuntimeError, ManifestInvalid) as exc:
        fail_transfer(transfer, exc.code, exc.message, started)
        return "failed"
    except (BlobError, FileNotFoundError) as exc:
        fail_transfer(transfer, "STORAGE_ERROR", f"the artifact's stored bytes could not be read: {exc}", started)
        return "failed"
    except Exception as exc:
        logger.exception("download %s failed", transfer.id)
        fail_transfer(transfer, "IO_ERROR", f"the download failed: {exc}", started)
        return "failed"
    with transaction.atomic():
        Transfer.objects.filter(id=transfer.id).update(
            state=TransferState.SUCCEEDED, bytes_done=size, finished_at=timezone.now()
        )
        _audit_transfer(transfer, Outcome.SUCCESS, started, extra={"size": size, "checksum": artifact.checksum})
        artifact_emit(
            artifact, "artifact.downloaded", via="sandbox", target_sandbox_id=transfer.sandbox_id, path=transfer.path
        )
    download_record(artifact_id=artifact.id)
    return "succeeded"


# The task names are what web and worker processes of different releases agree on during a
# rolling upgrade: they keep the names they had in artifacts/tasks.py, wherever the code lives.
# Both run on the sandbox's host: the `host` keyword routes them (config/celery.py:route_task).


@shared_task(name="artifacts.tasks.transfer_upload")
def transfer_upload(*, transfer_id: str, host: str) -> str:
    return transfer_run_upload(transfer_id=transfer_id)


@shared_task(name="artifacts.tasks.transfer_download")
def transfer_download(*, transfer_id: str, host: str) -> str:
    return transfer_run_download(transfer_id=transfer_id)
