"""The worker side of folders: a sandbox directory stored as a manifest of blobs, and a folder
artifact recreated in a sandbox.

Upload: the directory is walked link-safely (runtime ``walk_tree``) and its manifest checked
against the limits before a byte moves. Files go in batches: each is read and hashed
(transfers.folder_files, on two threads), the organization's live blobs for the batch's digests
are found in one query, only the missing bytes are written (each to a key of its own, made
durable by one ``blob_sync`` for the batch), and one transaction per batch records the batch's
entries with their blobs (the organization's blobs of the batch locked in one query, the new ones
and the entries inserted as plain rows, as ``blob_lock`` and ``blob_adopt`` do one at a time), so
from its commit each entry protects its blob. The artifact turns ready with the manifest's
checksum in one last transaction. A failure removes the entries and releases their blobs:
nothing is left behind.

Download: the entries, checked again (artifacts.manifests), go to the runtime's ``write_tree``,
which builds the folder beside the target, verifies every file's SHA-256 and renames it into place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from artifacts.blobs import blob_adopt, blob_release_many, upload_discard
from artifacts.events import artifact_emit_by_id
from artifacts.manifests import ManifestEntry, manifest_check, manifest_checksum, manifest_size
from artifacts.models import Artifact, ArtifactEntry, ArtifactState, BlobState, new_blob_ids
from artifacts.prefixes import folders_add
from artifacts.rows import blobs_insert, blobs_of, entries_insert
from artifacts.search_index import search_index_update
from artifacts.storage import StoredBlob, blob_sync
from audit.models import Outcome
from quotas.counters import usage_add
from quotas.enforcement import quota_claim_publish
from sandboxes.runtime import SandboxRuntimeError
from transfers.folder_files import FileChanged, FolderFile, file_pool, files_read, files_store
from transfers.models import Transfer, TransferState
from transfers.quota_checks import upload_quota_check

logger = logging.getLogger(__name__)

# A transaction per 5,000 files: each commit of SQLite's WAL writes the index pages it touched
# again, so fewer and larger batches write less (the write lock is held ~0.2 s a batch).
BATCH_FILES = 5000
BATCH_BYTES = 64 << 20
FOLDER_CONTENT_TYPE = "inode/directory"
SKIPPED_SHOWN = 1000


def mtime_of(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None


def entry_values(artifact_id: str, entry: ManifestEntry, blob_id: str | None = None) -> tuple:
    """The entry as a row for ``artifacts.rows.entries_insert``."""
    return (
        artifact_id,
        entry.path,
        entry.parent,
        entry.type,
        entry.mode,
        entry.size,
        entry.sha256,
        entry.mtime,
        entry.link_target,
        blob_id,
    )


def entry_row(artifact_id: str, entry: ManifestEntry, blob_id: str | None = None) -> ArtifactEntry:
    return ArtifactEntry(
        artifact_id=artifact_id,
        path=entry.path,
        parent=entry.parent,
        type=entry.type,
        mode=entry.mode,
        size=entry.size,
        sha256=entry.sha256,
        mtime=entry.mtime,
        link_target=entry.link_target,
        blob_id=blob_id,
    )


def entries_of(artifact: Artifact) -> tuple[list[ManifestEntry], dict[str, str]]:
    """The artifact's manifest, checked again and in canonical order, and its files' storage keys
    by path: one query."""
    rows = ArtifactEntry.objects.filter(artifact_id=artifact.id).values_list(
        "path", "type", "mode", "size", "sha256", "mtime", "link_target", "blob__storage_key"
    )
    keys: dict[str, str] = {}

    def entries() -> Iterator[ManifestEntry]:
        for p, t, m, s, h, mt, lt, key in rows.iterator(chunk_size=2000):
            if key is not None:
                keys[p] = key
            yield ManifestEntry(path=p, type=t, mode=m, size=s, sha256=h, mtime=mt, link_target=lt)

    return manifest_check(entries()), keys


class FolderWriter:
    """Records a pending folder artifact's entries, storing only the bytes its organization lacks."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.org = artifact.organization_id
        self.bytes_sent = 0
        self.files_sent = 0

    def record(self, entries: list[ManifestEntry]) -> None:
        """Entries without bytes (directories, links)."""
        entries_insert(entry_values(self.artifact.id, entry) for entry in entries)

    def record_files(self, items: list[FolderFile], write) -> None:
        """``write(items)`` stores the items' bytes and gives {sha256: (key, StoredBlob)}; called
        only with the digests the organization has no live blob of (one item per digest)."""
        written: dict[str, tuple[str, StoredBlob]] = {}
        for _attempt in range(3):
            digests = sorted({item.entry.sha256 for item in items})
            have = {sha for sha, (_id, state) in blobs_of(self.org, digests).items() if state == BlobState.LIVE}
            known = have | written.keys()
            lacking = {item.entry.sha256: item for item in items if item.entry.sha256 not in known}
            if lacking:
                new = write(list(lacking.values()))
                written.update(new)
                self.bytes_sent += sum(stored.size for _key, stored in new.values())
                self.files_sent += len(new)
            if written:
                blob_sync()  # the batch's new blobs on disk before any entry references them
            missing = self._commit(items, written)
            if not missing:
                return
            # Blobs found live a moment ago were removed meanwhile: their bytes are sent too.
        raise FileChanged("the folder's stored files kept changing; nothing was stored, try again")

    def _commit(self, items: list[FolderFile], written: dict[str, tuple[str, StoredBlob]]) -> set[str]:
        """One transaction for the batch: its blobs locked in one query, the new ones adopted, the
        entries inserted in bulk; the digests whose live blob vanished meanwhile if any (nothing
        is recorded then)."""
        digests = sorted({item.entry.sha256 for item in items})
        try:
            with transaction.atomic():
                found = blobs_of(self.org, digests, lock=True)
                live = {sha: blob_id for sha, (blob_id, state) in found.items() if state == BlobState.LIVE}
                vanished = {sha for sha in digests if sha not in live and sha not in written}
                if vanished:
                    raise _Vanished(vanished)
                blobs: dict[str, str] = dict(live)
                new = []
                now = connection.ops.adapt_datetimefield_value(timezone.now())
                ids = iter(new_blob_ids(len(written)))
                for sha in digests:
                    if sha not in written:
                        continue
                    key, stored = written[sha]
                    if sha in live:
                        # Stored meanwhile by another upload: keep that one, drop ours once committed.
                        transaction.on_commit(lambda key=key: upload_discard(key))
                    elif sha in found:  # being removed: revived with our bytes
                        blobs[sha] = blob_adopt(organization_id=self.org, stored=stored, key=key).id
                    else:
                        blobs[sha] = next(ids)
                        new.append((blobs[sha], self.org, sha, stored.size, key, BlobState.LIVE, now))
                blobs_insert(new)
                # After every blob lock of the batch: the counter row is the last one taken.
                usage_add(organization_id=self.org, stored_bytes=sum(row[3] for row in new))
                entries_insert(entry_values(self.artifact.id, item.entry, blobs[item.entry.sha256]) for item in items)
        except _Vanished as gone:
            return gone.shas
        except IntegrityError:
            # Another first upload of some of these bytes made their blob first: take it next time.
            return set(digests)
        return set()

    def discard(self) -> None:
        """Remove the recorded entries and release their blobs (a failed or folded upload)."""
        with transaction.atomic():
            rows = ArtifactEntry.objects.filter(artifact_id=self.artifact.id)
            blob_ids = list(rows.exclude(blob=None).values_list("blob_id", flat=True).distinct())
            rows.delete()
            blob_release_many(blob_ids=blob_ids)


class _Vanished(Exception):
    def __init__(self, shas: set[str]) -> None:
        super().__init__(sorted(shas))
        self.shas = shas


def _batches(files: list[ManifestEntry]) -> Iterator[list[ManifestEntry]]:
    batch: list[ManifestEntry] = []
    size = 0
    for entry in files:
        batch.append(entry)
        size += entry.size
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


_PLACEHOLDER = "0" * 64


def folder_read_manifest(runtime, sandbox_id: str, path: str) -> tuple[list[ManifestEntry], list[dict]]:
    """The directory's entries (files without their digests yet) checked against the limits, and
    what was skipped."""
    items = runtime.walk_tree(sandbox_id, path, limit=settings.FOLDER_MAX_ENTRIES)
    skipped = [{"path": item.path, "reason": item.reason} for item in items if item.type == "skipped"]
    entries = [
        ManifestEntry(
            path=item.path,
            type=item.type,
            mode=item.mode,
            size=item.size,
            sha256=_PLACEHOLDER if item.type == "file" else "",
            mtime=mtime_of(item.mtime_ns),
            link_target=item.link_target,
        )
        for item in items
        if item.type != "skipped"
    ]
    return manifest_check(entries), skipped


def folder_upload(transfer: Transfer, runtime, progress) -> tuple[list[ManifestEntry], list[dict], FolderWriter]:
    """Store the directory at the transfer's path as the pending artifact's entries; the checked
    manifest (with digests), the skipped entries and the writer (to discard on a failure)."""
    artifact = transfer.artifact
    entries, skipped = folder_read_manifest(runtime, transfer.sandbox_id, transfer.path)
    progress.total = manifest_size(entries)  # also for a refusal: the failed transfer says how big
    upload_quota_check(artifact, progress.total)
    writer = FolderWriter(artifact)
    try:
        writer.record([entry for entry in entries if entry.type != "file"])
        files = [entry for entry in entries if entry.type == "file"]
        done = 0
        hashed: dict[str, ManifestEntry] = {}
        with runtime.tree_files(transfer.sandbox_id, transfer.path) as tree, file_pool() as pool:

            def write(lacking: list[FolderFile]) -> dict[str, tuple[str, StoredBlob]]:
                return files_store(pool, tree, transfer.path, lacking, artifact.organization_id)

            for batch in _batches(files):
                items = files_read(pool, tree, transfer.path, batch)
                for item in items:
                    hashed[item.entry.path] = item.entry
                    done += item.entry.size
                writer.record_files(items, write)
                progress(done)
    except BaseException:
        writer.discard()
        raise
    final = [hashed.get(entry.path, entry) for entry in entries]
    return final, skipped, writer


def folder_publish(
    transfer: Transfer,
    entries: list[ManifestEntry],
    skipped: list[dict],
    writer: FolderWriter,
    *,
    started: float,
    audit,
    lock_remote_path,
    retry_twin,
) -> bool:
    """Make the pending folder artifact ready with its manifest's checksum and the next version (or
    fold a retry into its twin, dropping this one's entries)."""
    artifact = transfer.artifact
    stored = StoredBlob(manifest_size(entries), manifest_checksum(entries).removeprefix("sha256:"))
    content_type = artifact.content_type or FOLDER_CONTENT_TYPE
    extra = {
        "size": stored.size,
        "checksum": stored.checksum,
        "entries": len(entries),
        "skipped": len(skipped),
        "files_sent": writer.files_sent,
        "bytes_sent": writer.bytes_sent,
    }
    for attempt in range(5):
        try:
            with transaction.atomic():
                lock_remote_path(artifact.organization_id, artifact.remote_path)
                twin = retry_twin(artifact, stored, content_type, False)
                if twin is not None and twin.is_folder:
                    Artifact.objects.filter(id=artifact.id, state=ArtifactState.PENDING).update(
                        state=ArtifactState.FAILED, error_message=f"retry of {twin.id}"
                    )
                    Transfer.objects.filter(id=transfer.id).update(
                        state=TransferState.SUCCEEDED,
                        artifact=twin,
                        bytes_done=writer.bytes_sent,
                        bytes_total=stored.size,
                        finished_at=timezone.now(),
                    )
                    audit(transfer, Outcome.SUCCESS, started, artifact=twin, extra={**extra, "retry_of": twin.id})
                    transaction.on_commit(writer.discard)
                    return True
                if (
                    not Artifact.objects.select_for_update()
                    .filter(id=artifact.id, state=ArtifactState.PENDING)
                    .exists()
                ):
                    return False
                # Its files' new blobs were counted as each batch was recorded.
                quota_claim_publish(
                    organization_id=artifact.organization_id, size=stored.size, added_bytes=writer.bytes_sent
                )
                latest = Artifact.objects.filter(
                    organization_id=artifact.organization_id, remote_path=artifact.remote_path, version__isnull=False
                ).aggregate(v=Max("version"))["v"]
                version = (latest or 0) + 1
                Artifact.objects.filter(id=artifact.id, state=ArtifactState.PENDING).update(
                    state=ArtifactState.READY,
                    is_folder=True,
                    entry_count=len(entries),
                    skipped=skipped[:SKIPPED_SHOWN],
                    version=version,
                    size=stored.size,
                    checksum=stored.checksum,
                    content_type=content_type,
                    ready_at=timezone.now(),
                )
                # Searchable, and announced, in the transaction that makes it visible.
                search_index_update(artifact)
                folders_add(artifact=artifact, size=stored.size, created_at=artifact.created_at)
                artifact_emit_by_id(artifact.id, "artifact.uploaded")
                Transfer.objects.filter(id=transfer.id).update(
                    state=TransferState.SUCCEEDED,
                    bytes_done=writer.bytes_sent,
                    bytes_total=stored.size,
                    finished_at=timezone.now(),
                )
                audit(transfer, Outcome.SUCCESS, started, extra={**extra, "version": version})
                return True
        except IntegrityError:
            if attempt == 4:
                raise
    return False


def folder_download(transfer: Transfer, runtime, progress) -> int:
    """Recreate the folder artifact at the transfer's path; the bytes written."""
    artifact = transfer.artifact
    entries, keys = entries_of(artifact)
    from artifacts.storage import blob_iter_chunks

    def chunks_for(entry: ManifestEntry):
        key = keys.get(entry.path)
        if key is None:
            raise SandboxRuntimeError(
                f"the stored bytes of {entry.path[:200]!r} are gone; nothing was written", code="STORAGE_ERROR"
            )
        return blob_iter_chunks(key)

    started = time.monotonic()
    written = runtime.write_tree(transfer.sandbox_id, transfer.path, entries, chunks_for, on_progress=progress)
    logger.info("folder %s written in %.1fs", artifact.id, time.monotonic() - started)
    return written
