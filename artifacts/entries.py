"""What a folder artifact holds, entry by entry: the one interface the compare view (and
anything else that looks inside a folder) reads through.

``folder_entries`` asks each source in ``ENTRY_SOURCES`` in turn; the first that knows the
artifact answers. A source takes the artifact and the most entries wanted and returns a
``FolderListing``, or None when the artifact is not its kind: a folder artifact's manifest (its
entry rows), then a folder stored by an earlier release as one tar.gz archive, streamed (never
unpacked to disk) within a size bound.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings

from artifacts.models import Artifact, ArtifactEntry
from artifacts.storage import BlobError, blob_iter_chunks


@dataclass(frozen=True)
class FolderEntry:
    path: str
    type: str  # "file", "directory" or "symlink"
    size: int
    sha256: str  # hex, files only
    mode: int
    target: str = ""  # symlinks only

    def same_as(self, other: FolderEntry) -> bool:
        return (self.type, self.size, self.sha256, self.mode, self.target) == (
            other.type,
            other.size,
            other.sha256,
            other.mode,
            other.target,
        )


@dataclass
class FolderListing:
    entries: list[FolderEntry] = field(default_factory=list)
    # False when the listing stopped short: ``reason`` says why, for people.
    complete: bool = True
    reason: str = ""


EntrySource = Callable[[Artifact, int], "FolderListing | None"]


class _ChunkReader(io.RawIOBase):
    """A file-like object over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


_TYPES = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symlink", tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file"}


def archive_entries(artifact: Artifact, limit: int) -> FolderListing | None:
    if not artifact.is_archive:
        return None
    if artifact.size > settings.DIFF_ARCHIVE_MAX_BYTES:
        return FolderListing(
            complete=False,
            reason=f"The folder's archive is over {settings.DIFF_ARCHIVE_MAX_BYTES} bytes, too large to list here.",
        )
    listing = FolderListing()
    try:
        raw = io.BufferedReader(_ChunkReader(blob_iter_chunks(artifact.content_key)), buffer_size=1 << 20)
        with tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                kind = _TYPES.get(member.type)
                if kind is None:
                    continue  # never written by the archiver
                if len(listing.entries) >= limit:
                    listing.complete, listing.reason = False, f"Only the first {limit} entries are compared."
                    break
                digest = ""
                if kind == "file":
                    sha = hashlib.sha256()
                    source = tar.extractfile(member)
                    while chunk := source.read(1 << 20):
                        sha.update(chunk)
                    digest = sha.hexdigest()
                listing.entries.append(
                    FolderEntry(
                        path=member.name.removeprefix("./"),
                        type=kind,
                        size=member.size if kind == "file" else 0,
                        sha256=digest,
                        mode=stat.S_IMODE(member.mode),
                        target=member.linkname if kind == "symlink" else "",
                    )
                )
    except (BlobError, OSError, EOFError, tarfile.TarError):
        return FolderListing(listing.entries, complete=False, reason="The folder's archive could not be read whole.")
    return listing


def manifest_entries(artifact: Artifact, limit: int) -> FolderListing | None:
    """A folder artifact's manifest, read from its entry rows in path order."""
    if not artifact.is_folder:
        return None
    rows = (
        ArtifactEntry.objects.filter(artifact_id=artifact.id)
        .order_by("path")
        .values_list("path", "type", "size", "sha256", "mode", "link_target")[: limit + 1]
    )
    entries = [
        FolderEntry(path=path, type=kind, size=size, sha256=sha, mode=mode, target=target)
        for path, kind, size, sha, mode, target in rows
    ]
    if len(entries) > limit:
        return FolderListing(entries[:limit], complete=False, reason=f"Only the first {limit} entries are compared.")
    return FolderListing(entries)


ENTRY_SOURCES: list[EntrySource] = [manifest_entries, archive_entries]


def folder_entries(artifact: Artifact, *, limit: int | None = None) -> FolderListing | None:
    """The entries of a folder artifact in path order, at most ``limit``; None for a file."""
    limit = limit or settings.DIFF_MAX_ENTRIES
    for source in ENTRY_SOURCES:
        listing = source(artifact, limit)
        if listing is not None:
            listing.entries.sort(key=lambda entry: entry.path)
            return listing
    return None
