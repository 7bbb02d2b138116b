"""Browser uploads straight to the object store: the plan of parts that the web side signs and
the worker checks, and the worker's finish, which joins the parts, reads the object back once
and publishes it.

The browser asks for a plan (direct_upload_begin), hashes each part and asks for URLs signed
with each part's length and SHA-256 (direct_upload_sign_parts, a few parts a request), sends the
parts to S3 itself, then says it is done (direct_upload_complete), which checks every part is
stored at its length. A worker joins the parts, reads the object back once to record its SHA-256
and publishes it (transfer_run_direct_finish). No byte passes through the web process and no web
request waits on the join; the object store refuses a part whose bytes do not match what was
signed.

A direct upload goes receiving → queued → running → succeeded or failed; unqueued when the task
queue refused the finish, until it is sent again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from celery import shared_task
from django.db.models import F, Q
from django.utils import timezone

from artifacts.blobs import upload_discard
from artifacts.models import Artifact, ArtifactState
from artifacts.multipart import s3_multipart_abort, s3_multipart_complete, s3_multipart_parts
from artifacts.storage import BlobError, StoredBlob, UploadGone, blob_iter_chunks
from artifacts.validation import guess_content_type
from core.dispatch import enqueue
from core.errors import Conflict, InvalidInput, QuotaExceeded
from transfers.models import Transfer, TransferState
from transfers.worker import fail_transfer, publish_upload

logger = logging.getLogger(__name__)

# S3 allows 10,000 parts per upload. Every part must be signed by the web process, so a large
# file gets larger parts (up to 32 MiB: 32 parts, 16 signing requests per GiB); the browser
# reads each part whole to hash it, which bounds the part size too.
S3_MAX_PARTS = 10_000
DIRECT_PART_MIN_BYTES = 8 << 20
DIRECT_PART_MAX_BYTES = 32 << 20
DIRECT_PARTS_TARGET = 32

# The finish shows progress at least this often while it reads; a running finish silent for
# longer than the lease (which also covers the store's join) is taken to be dead and is resumed.
DIRECT_FINISH_HEARTBEAT_SECONDS = 20
DIRECT_FINISH_LEASE_SECONDS = 600


def direct_part_size(size: int) -> int:
    """A whole number of MiB: about a 32nd of the file, between 8 and 32 MiB, and never so small
    that the file would need more parts than S3 allows."""
    mib = 1 << 20

    def whole_mib(n: int) -> int:
        return -(-n // mib) * mib

    wanted = min(max(whole_mib(-(-size // DIRECT_PARTS_TARGET)), DIRECT_PART_MIN_BYTES), DIRECT_PART_MAX_BYTES)
    return max(wanted, whole_mib(-(-size // S3_MAX_PARTS)))


def direct_part_bounds(transfer: Transfer, number: int) -> tuple[int, int]:
    """The byte offset and length of part ``number`` (from 1)."""
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= transfer.part_count:
        raise InvalidInput(f"the part number must be between 1 and {transfer.part_count}", details={"field": "number"})
    start = (number - 1) * transfer.part_size
    return start, min(transfer.part_size, transfer.bytes_total - start)


def check_parts(transfer: Transfer, parts: list[dict]) -> None:
    """Every planned part is stored, each at the length the plan gave it."""
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


def direct_finish_enqueue(transfer_id: str) -> None:
    """Send the finish of a queued upload. When the queue refuses it the upload is unqueued, its
    parts kept, until the client's retry of the completion or direct_uploads_resume sends it again."""

    def unqueued() -> None:
        Transfer.objects.filter(id=transfer_id, state=TransferState.QUEUED).update(state=TransferState.UNQUEUED)

    enqueue(finish_direct_upload, on_unavailable=unqueued, transfer_id=transfer_id)


def _claim_direct_finish(transfer_id: str) -> Transfer | None:
    """Take the finish: a queued one, or a running one whose worker fell silent. None when
    another worker holds it or it has ended."""
    now = timezone.now()
    silent = now - timedelta(seconds=DIRECT_FINISH_LEASE_SECONDS)
    claimed = (
        Transfer.objects.filter(id=transfer_id, completed_at__isnull=False)
        .filter(
            # Unqueued too: a refused publish may have reached the queue after all.
            Q(state__in=[TransferState.QUEUED, TransferState.UNQUEUED])
            | Q(state=TransferState.RUNNING, heartbeat_at__lt=silent)
            | Q(state=TransferState.RUNNING, heartbeat_at__isnull=True)
        )
        .update(state=TransferState.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    return Transfer.objects.select_related("artifact").get(id=transfer_id) if claimed else None


def _join_parts(transfer: Transfer) -> None:
    """Check the parts again (a URL signed before completion still works) and join them; an
    upload already joined by an earlier holder of the finish is left as it is."""
    key = transfer.artifact.storage_key
    try:
        parts = s3_multipart_parts(key, transfer.upload_id)
    except UploadGone:
        return
    try:
        check_parts(transfer, parts)
    except Conflict:
        raise Conflict("Some parts changed after the upload was completed.", code="PART_SIZE_MISMATCH") from None
    try:
        s3_multipart_complete(key, transfer.upload_id, parts)
    except UploadGone:
        pass  # joined meanwhile (an answer lost on the way): the read that follows tells


def _read_back(transfer: Transfer) -> tuple[StoredBlob, bytes]:
    """The joined object's size and SHA-256, and its first bytes; the heartbeat kept fresh meanwhile."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    last_beat = time.monotonic()
    for chunk in blob_iter_chunks(transfer.artifact.storage_key):
        if not head:
            head = chunk[:512]
        digest.update(chunk)
        size += len(chunk)
        if time.monotonic() - last_beat >= DIRECT_FINISH_HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            Transfer.objects.filter(id=transfer.id, state=TransferState.RUNNING).update(heartbeat_at=timezone.now())
    return StoredBlob(size, digest.hexdigest()), head


def transfer_run_direct_finish(*, transfer_id: str) -> str:
    """Join the parts and read the object back once: its size must be the one planned; its
    SHA-256 becomes the artifact's checksum, which every later copy into a sandbox is checked
    against. One worker at a time; a redelivered task finds the parts joined and goes on."""
    transfer = _claim_direct_finish(transfer_id)
    if transfer is None:
        return "skipped"
    started = time.monotonic()
    artifact = transfer.artifact
    try:
        _join_parts(transfer)
        stored, head = _read_back(transfer)
        if stored.size != transfer.bytes_total:
            raise Conflict(
                f"The stored file has {stored.size} bytes, not the {transfer.bytes_total} announced.",
                code="SIZE_MISMATCH",
            )
        published = publish_upload(
            transfer,
            stored,
            content_type=artifact.content_type or guess_content_type(artifact.remote_path, head),
            is_archive=False,
            started=started,
            extra={"via": "direct"},
        )
    except (Conflict, QuotaExceeded) as exc:
        _give_up_direct(transfer, exc.code, exc.message, started, details=exc.details)
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


def _give_up_direct(transfer: Transfer, code: str, message: str, started: float, *, details=None) -> None:
    """Fail a direct upload that has not ended, and remove its parts and object, unless its
    artifact was published after all (by an earlier holder of the finish)."""
    fail_transfer(transfer, code, message, started, details=details)
    if Artifact.objects.filter(id=transfer.artifact_id, state=ArtifactState.READY).exists():
        return
    key = transfer.artifact.storage_key
    try:
        s3_multipart_abort(key, transfer.upload_id)
        upload_discard(key)
    except Exception:  # the sweeper removes what is left
        logger.warning("direct upload %s: could not remove what it left", transfer.id, exc_info=True)


# The task name is what web and worker processes of different releases agree on during a
# rolling upgrade: it keeps the name it had in artifacts/tasks.py. It runs on the shared queue.


@shared_task(name="artifacts.tasks.finish_direct_upload")
def finish_direct_upload(*, transfer_id: str) -> str:
    return transfer_run_direct_finish(transfer_id=transfer_id)
