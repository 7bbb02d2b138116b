"""A folder sent file by file (the dashboard's folder upload), committed as one folder artifact.

``folder_upload_begin`` checks the whole plan (remote_path, metadata, every path, the entry and
byte limits) before anything exists, then saves a pending artifact and its transfer (kind
``put``, state ``receiving``). ``folder_upload_file`` streams one file's body into a blob of its
own and records it as an entry of the pending artifact (bytes the organization already has are
kept once: ``blob_adopt``). ``folder_upload_commit`` adds the folder's directories and any
declared empty directories or links, checks the whole manifest again and publishes the artifact
with its checksum and next version (transfers.folders.folder_publish). A folder never committed
is failed by the sweeper like any pending upload, and its blobs go with it.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum

from artifacts.blobs import blob_adopt, blob_release, blob_upload_key, upload_discard
from artifacts.manifests import (
    FolderTooLarge,
    FolderTooManyEntries,
    ManifestEntry,
    check_entry_path,
    manifest_check,
)
from artifacts.models import Artifact, ArtifactEntry, ArtifactState
from artifacts.storage import CHUNK_SIZE, BlobError, blob_write
from artifacts.validation import check_content_type, check_metadata, check_remote_path
from core.actor import Actor
from core.errors import InvalidInput, NotFound, QuotaExceeded
from quotas.enforcement import quota_check_upload
from transfers.folders import FolderWriter, entry_row, folder_publish
from transfers.models import Transfer, TransferKind, TransferState
from transfers.services import pending_artifact
from transfers.worker import _audit_transfer, _lock_remote_path, _retry_twin, fail_transfer

_PLACEHOLDER = "0" * 64


def _planned(files: Any) -> list[ManifestEntry]:
    if not isinstance(files, list) or not files:
        raise InvalidInput("files must be a non-empty list of {path, size}", details={"field": "files"})
    planned = []
    for item in files:
        if not isinstance(item, dict):
            raise InvalidInput("each file is an object {path, size}", details={"field": "files"})
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput("each file's size is its number of bytes", details={"field": "files"})
        planned.append(ManifestEntry(path=item.get("path"), type="file", size=size, sha256=_PLACEHOLDER))
    return planned


def folder_upload_begin(
    *, actor: Actor, remote_path: Any, files: Any, metadata: Any = None, content_type: Any = None
) -> Transfer:
    """Check the plan of a folder upload and open it; nothing is saved when any part is refused."""
    remote_path = check_remote_path(remote_path if isinstance(remote_path, str) else None)
    metadata = check_metadata(metadata)
    content_type = check_content_type(content_type if isinstance(content_type, str) else None)
    manifest_check(_planned(files), add_parents=True)
    quota_check_upload(organization_id=actor.organization_id, size=sum(entry.size for entry in _planned(files)))
    artifact = pending_artifact(
        actor=actor,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        expires_in=None,
        session_id="",
    )
    transfer = Transfer(
        organization_id=actor.organization_id,
        kind=TransferKind.PUT,
        artifact=artifact,
        state=TransferState.RECEIVING,
        actor=actor.to_dict(),
        bytes_total=sum(entry.size for entry in _planned(files)),
    )
    with transaction.atomic():
        artifact.save(force_insert=True)
        transfer.save(force_insert=True)
    return transfer


def folder_upload_get(*, actor: Actor, transfer_id: str) -> Transfer:
    """The caller's own open folder upload; anyone else's, or one that has ended, is a 404."""
    transfer = (
        Transfer.objects.select_related("artifact")
        .filter(
            id=str(transfer_id)[:40],
            organization_id=actor.organization_id,
            kind=TransferKind.PUT,
            state=TransferState.RECEIVING,
            artifact__state=ArtifactState.PENDING,
            artifact__created_by_user_id=actor.user_id,
            artifact__created_by_api_key_id=actor.api_key_id,
        )
        .first()
    )
    if transfer is None:
        raise NotFound("no such folder upload is open", code="UPLOAD_NOT_FOUND")
    return transfer


def _check_room(artifact_id: str, path: str, size: int) -> None:
    totals = (
        ArtifactEntry.objects.filter(artifact_id=artifact_id).exclude(path=path).aggregate(n=Count("id"), b=Sum("size"))
    )
    if totals["n"] + 1 > settings.FOLDER_MAX_ENTRIES:
        raise FolderTooManyEntries(f"a folder holds at most {settings.FOLDER_MAX_ENTRIES} entries")
    if (totals["b"] or 0) + size > settings.FOLDER_MAX_BYTES:
        raise FolderTooLarge(f"a folder holds at most {settings.FOLDER_MAX_BYTES} bytes of files")


def folder_upload_file(*, actor: Actor, transfer_id: str, path: Any, stream, content_length: int) -> ArtifactEntry:
    """Stream one file of an open folder upload into a blob and record it (again, if re-sent)."""
    transfer = folder_upload_get(actor=actor, transfer_id=transfer_id)
    path = check_entry_path(path)
    _check_room(transfer.artifact_id, path, content_length)
    quota_check_upload(organization_id=transfer.organization_id, size=content_length)
    key = blob_upload_key(transfer.organization_id)
    try:
        stored = blob_write(
            key, iter(lambda: stream.read(CHUNK_SIZE), b""), max_bytes=min(content_length, settings.FOLDER_MAX_BYTES)
        )
    except BlobError:
        upload_discard(key)
        raise
    if stored.size != content_length:
        upload_discard(key)
        raise InvalidInput("the body ended before its Content-Length", code="INCOMPLETE_BODY")
    entry = ManifestEntry(path=path, type="file", mode=0o644, size=stored.size, sha256=stored.sha256)
    with transaction.atomic():
        if not Transfer.objects.select_for_update().filter(id=transfer.id, state=TransferState.RECEIVING).exists():
            transaction.on_commit(lambda: upload_discard(key))
            raise NotFound("no such folder upload is open", code="UPLOAD_NOT_FOUND")
        _check_room(transfer.artifact_id, path, stored.size)
        blob = blob_adopt(organization_id=transfer.organization_id, stored=stored, key=key)
        previous = ArtifactEntry.objects.filter(artifact_id=transfer.artifact_id, path=path).first()
        if previous is not None:
            previous.delete()
            blob_release(blob_id=previous.blob_id)
        row = entry_row(transfer.artifact_id, entry, blob.id)
        row.save(force_insert=True)
        Transfer.objects.filter(id=transfer.id).update(bytes_done=F("bytes_done") + stored.size)
    return row


def _declared(entries: Any) -> list[ManifestEntry]:
    """The empty directories and links a commit may add; files come only from their uploads."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidInput("entries must be a list", details={"field": "entries"})
    declared = []
    for item in entries:
        if not isinstance(item, dict) or item.get("type") not in ("directory", "symlink"):
            raise InvalidInput(
                "each entry is a directory or a symlink; files are sent one by one", details={"field": "entries"}
            )
        mode = item.get("mode", 0o755 if item["type"] == "directory" else 0o777)
        declared.append(
            ManifestEntry(path=item.get("path"), type=item["type"], mode=mode, link_target=item.get("link_target", ""))
        )
    return declared


def folder_upload_commit(*, actor: Actor, transfer_id: str, entries: Any = None) -> Artifact:
    """Publish the open folder upload as one folder artifact; a bad manifest changes nothing."""
    started = time.monotonic()
    transfer = folder_upload_get(actor=actor, transfer_id=transfer_id)
    files = [
        ManifestEntry(path=p, type="file", mode=m, size=s, sha256=h)
        for p, m, s, h in ArtifactEntry.objects.filter(artifact_id=transfer.artifact_id, type="file").values_list(
            "path", "mode", "size", "sha256"
        )
    ]
    if not files:
        raise InvalidInput("no file of this folder was sent", code="INVALID_MANIFEST")
    manifest = manifest_check([*files, *_declared(entries)], add_parents=True)
    recorded = {entry.path for entry in files}
    with transaction.atomic():
        ArtifactEntry.objects.bulk_create(
            [entry_row(transfer.artifact_id, entry) for entry in manifest if entry.path not in recorded],
            batch_size=1000,
        )
    writer = FolderWriter(transfer.artifact)
    writer.files_sent, writer.bytes_sent = len(files), sum(entry.size for entry in files)
    try:
        folder_publish(
            transfer,
            manifest,
            [],
            writer,
            started=started,
            audit=_audit_transfer,
            lock_remote_path=_lock_remote_path,
            retry_twin=_retry_twin,
        )
    except QuotaExceeded as exc:
        # Refused at publish: the upload ends, and what it stored goes with it.
        fail_transfer(transfer, exc.code, exc.message, started, details=exc.details)
        writer.discard()
        raise
    except BaseException:
        ArtifactEntry.objects.filter(artifact_id=transfer.artifact_id).exclude(type="file").delete()
        raise
    transfer.refresh_from_db()
    return Artifact.objects.get(id=transfer.artifact_id)


def folder_upload_abort(*, actor: Actor, transfer_id: str) -> None:
    transfer = folder_upload_get(actor=actor, transfer_id=transfer_id)
    if fail_transfer(transfer, "ABORTED", "the folder upload was abandoned", time.monotonic()):
        FolderWriter(transfer.artifact).discard()
