"""Streamed PUTs (the web side, no sandbox involved): a request body stored as a new artifact, a
chunk at a time, and checksum-first uploads that declare the body's SHA-256 up front.

With a declared digest (``Repr-Digest: sha-256=:<base64>:`` as in RFC 9530, or
``X-Stowage-Sha256: <hex>``) the organization's live blob of those bytes, when there is one, is
locked and the artifact made from it without reading the body; otherwise the body is streamed and
its digest must be the declared one, or nothing is stored. Another organization's blob never
counts: blobs are looked up within the caller's organization only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from artifacts.blobs import upload_discard
from artifacts.models import Artifact, Blob, BlobState
from artifacts.storage import CHUNK_SIZE, BlobError, StoredBlob, blob_iter_chunks, blob_write
from artifacts.validation import (
    check_content_type,
    check_expires_in,
    check_metadata,
    check_remote_path,
    guess_content_type,
)
from core.actor import Actor
from core.errors import InvalidInput, PayloadTooLarge, QuotaExceeded, StowageError
from transfers.models import Transfer, TransferKind, TransferState
from transfers.quota_checks import upload_quota_check
from transfers.services import pending_artifact, transfer_error
from transfers.worker import BlobMissing, Progress, chain, fail_transfer, publish_upload

DIGEST_HEADER = "X-Stowage-Sha256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# One member of an RFC 8941 dictionary whose value is a byte sequence: key=:base64:
_DICT_MEMBER = re.compile(r"\s*([a-z*][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/=]*):\s*(;.*)?\s*")


@dataclass(frozen=True)
class PutResult:
    artifact: Artifact
    # The bytes were already stored (by this organization): none were kept from this request.
    deduplicated: bool
    # The body was read (False when the declared digest named a blob the organization has).
    body_read: bool


def declared_sha256(*, repr_digest: str | None, stowage_sha256: str | None) -> str | None:
    """The body's SHA-256 (lowercase hex) the client declared, or None; INVALID_DIGEST when a
    header is not well formed or the two disagree. Repr-Digest members of other algorithms are
    ignored, as RFC 9530 lets a recipient do."""
    found: list[str] = []
    if stowage_sha256 is not None:
        value = stowage_sha256.strip()
        if not _HEX_SHA256.fullmatch(value):
            raise InvalidInput(f"{DIGEST_HEADER} must be 64 hex digits", code="INVALID_DIGEST")
        found.append(value.lower())
    if repr_digest is not None:
        for member in repr_digest.split(","):
            match = _DICT_MEMBER.fullmatch(member)
            if match is None:
                raise InvalidInput(
                    "Repr-Digest must be a dictionary of byte sequences, as in sha-256=:<base64>:",
                    code="INVALID_DIGEST",
                )
            if match.group(1) != "sha-256":
                continue
            try:
                digest = base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                digest = b""
            if len(digest) != 32:
                raise InvalidInput("Repr-Digest's sha-256 must be 32 bytes in base64", code="INVALID_DIGEST")
            found.append(digest.hex())
    if len(set(found)) > 1:
        raise InvalidInput("the declared digests disagree", code="INVALID_DIGEST")
    return found[0] if found else None


def repr_digest(sha256_hex: str) -> str:
    """The Repr-Digest header value (RFC 9530) of bytes with this SHA-256."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode('ascii')}:"


def _known_head(organization_id: str, sha256: str, remote_path: str, content_type: str | None) -> bytes:
    """The first bytes of the organization's blob, only when the content type must be guessed
    from them (the name does not say); read before any lock is taken."""
    if content_type or guess_content_type(remote_path) != "application/octet-stream":
        return b""
    blob = Blob.objects.filter(organization_id=organization_id, sha256=sha256, state=BlobState.LIVE).first()
    if blob is None:
        return b""
    try:
        return b"".join(blob_iter_chunks(blob.storage_key, length=512))
    except (BlobError, FileNotFoundError):
        return b""


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
    sha256: str | None = None,
) -> Artifact:
    """Store a request body as a new artifact, streamed in chunks straight to storage."""
    return artifact_put_checked(
        actor=actor,
        stream=stream,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        expires_in=expires_in,
        content_length=content_length,
        session_id=session_id,
        sha256=sha256,
    ).artifact


def artifact_put_checked(
    *,
    actor: Actor,
    stream,
    remote_path: str,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_in: int | None = None,
    content_length: int | None = None,
    session_id: str | None = None,
    sha256: str | None = None,
) -> PutResult:
    """``artifact_put``, saying whether the bytes were deduplicated and the body read. With
    ``sha256`` (declared by the client, lowercase hex), bytes the organization already has are
    not read again, and a body whose digest is another is refused (DIGEST_MISMATCH, 422)."""
    remote_path = check_remote_path(remote_path)
    metadata = check_metadata(metadata)
    expires_in = check_expires_in(expires_in)
    content_type = check_content_type(content_type)
    limit = settings.ARTIFACT_MAX_BYTES
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(
            f"the body is {content_length} bytes, more than the {limit} bytes allowed", code="FILE_TOO_LARGE"
        )
    head = b""
    if sha256 is not None:
        head = _known_head(actor.organization_id, sha256, remote_path, content_type)
    artifact = pending_artifact(
        actor=actor,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        expires_in=expires_in,
        session_id=session_id or "",
    )
    known = sha256 is not None and _has_blob(actor.organization_id, sha256)
    # Before any byte is read: bytes the organization already has add nothing to its stored bytes.
    upload_quota_check(artifact, None if known else content_length)
    transfer = Transfer(
        organization_id=actor.organization_id,
        kind=TransferKind.PUT,
        artifact=artifact,
        state=TransferState.RUNNING,
        bytes_total=content_length,
        actor=actor.to_dict(),
        started_at=artifact.created_at,
        attempts=1,
    )
    with transaction.atomic():
        artifact.save(force_insert=True)
        transfer.save(force_insert=True)
    started = time.monotonic()
    if sha256 is not None:
        try:
            publish_upload(
                transfer,
                StoredBlob(0, sha256),
                content_type=content_type or guess_content_type(remote_path, head),
                is_archive=False,
                started=started,
                extra={"via": "digest"},
                bytes_sent=False,
            )
            return PutResult(_published(transfer), deduplicated=True, body_read=False)
        except BlobMissing:
            pass  # not stored yet (or being removed): the body brings the bytes
        except QuotaExceeded as exc:
            fail_transfer(transfer, exc.code, exc.message, started, details=exc.details)
            raise
    head = stream.read(512)
    try:
        stored = blob_write(
            artifact.storage_key,
            chain([head], iter(lambda: stream.read(CHUNK_SIZE), b"")),
            max_bytes=limit,
            on_progress=Progress(transfer.id),
        )
        if content_length is not None and stored.size != content_length:
            raise BlobError(f"the body ended after {stored.size} of {content_length} bytes")
        if sha256 is not None and stored.sha256 != sha256:
            raise _mismatch(sha256, stored)
    except BlobError as exc:
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, exc.code, str(exc), started)
        if isinstance(exc, _DigestMismatch):
            raise StowageError(exc.message, code="DIGEST_MISMATCH", details=exc.details) from None
        raise transfer_error(Transfer.objects.get(id=transfer.id)) from None
    except BaseException:
        # A client that hung up mid-body leaves nothing visible behind.
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, "INCOMPLETE_BODY", "the request body was not received whole", started)
        raise
    try:
        publish_upload(
            transfer,
            stored,
            content_type=content_type or guess_content_type(remote_path, head),
            is_archive=False,
            started=started,
        )
    except QuotaExceeded as exc:
        # Refused under the organization's lock (another upload took the room): nothing is kept.
        upload_discard(artifact.storage_key)
        fail_transfer(transfer, exc.code, exc.message, started, details=exc.details)
        raise
    published = _published(transfer)
    return PutResult(
        published,
        deduplicated=published.blob is not None and published.blob.storage_key != artifact.storage_key,
        body_read=True,
    )


class _DigestMismatch(BlobError):
    code = "DIGEST_MISMATCH"

    def __init__(self, message: str, details: dict) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def _mismatch(declared: str, stored: StoredBlob) -> _DigestMismatch:
    if stored.size == 0 and declared != EMPTY_SHA256:
        message = "the organization has no stored bytes with the declared digest; send them in the body"
    else:
        message = "the body's SHA-256 is not the declared one; nothing was stored"
    return _DigestMismatch(message, {"declared": declared, "received": stored.sha256, "size": stored.size})


def _has_blob(organization_id: str, sha256: str) -> bool:
    return Blob.objects.filter(organization_id=organization_id, sha256=sha256, state=BlobState.LIVE).exists()


def _published(transfer: Transfer) -> Artifact:
    """The artifact the transfer ended with: its own, or the earlier one a retry was folded into."""
    return Artifact.objects.select_related("blob").get(id=Transfer.objects.get(id=transfer.id).artifact_id)
