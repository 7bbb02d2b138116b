"""A folder artifact as one archive, made on the fly from its blobs: a ``.tar.gz`` (the default) or a
``.zip``, one chunk at a time, never whole in memory or on disk.

The archive holds the entries under one top directory named after the folder, in path order, with
their modes (permission bits only: no setuid, setgid or sticky), times, and links as links.
"""

from __future__ import annotations

import stat
import tarfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime

from stream_zip import ZIP_AUTO, stream_zip

from artifacts.models import Artifact, ArtifactEntry
from artifacts.storage import CHUNK_SIZE, blob_iter_chunks
from core.errors import InvalidInput

FORMATS = {"tar.gz": "application/gzip", "zip": "application/zip"}
_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)


def check_format(value: str | None) -> str:
    value = value or "tar.gz"
    if value in ("tgz", "tar", "targz"):
        value = "tar.gz"
    if value not in FORMATS:
        raise InvalidInput("format is tar.gz (the default) or zip", details={"field": "format"})
    return value


def _rows(artifact: Artifact) -> Iterator[ArtifactEntry]:
    """The entries in path order, each file with its blob's key, read a few thousand at a time."""
    rows = ArtifactEntry.objects.filter(artifact_id=artifact.id).select_related("blob").order_by("path")
    yield from rows.iterator(chunk_size=2000)


def folder_root(artifact: Artifact, safe_filename) -> str:
    return safe_filename(artifact.filename) or artifact.id


def _chunks(entry: ArtifactEntry) -> Iterator[bytes]:
    if entry.blob is None:
        raise OSError(f"the stored bytes of {entry.path} are gone")
    return blob_iter_chunks(entry.blob.storage_key)


def _tar_gz(artifact: Artifact, root: str) -> Iterator[bytes]:
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
    top = tarfile.TarInfo(root)
    top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, int((artifact.ready_at or artifact.created_at).timestamp())
    yield gzip.compress(top.tobuf(format=tarfile.PAX_FORMAT))
    for entry in _rows(artifact):
        info = tarfile.TarInfo(f"{root}/{entry.path}")
        info.mode = entry.mode & 0o777
        info.mtime = int(entry.mtime.timestamp()) if entry.mtime else 0
        if entry.type == "directory":
            info.type = tarfile.DIRTYPE
        elif entry.type == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, entry.link_target
        else:
            info.size = entry.size
        out = gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT))
        if out:
            yield out
        if entry.type == "file":
            sent = 0
            for chunk in _chunks(entry):
                sent += len(chunk)
                out = gzip.compress(chunk)
                if out:
                    yield out
            if sent != entry.size:
                raise OSError(f"the stored bytes of {entry.path} are not the size recorded")
            padding = -entry.size % tarfile.BLOCKSIZE
            if padding:
                yield gzip.compress(b"\0" * padding)
    yield gzip.compress(b"\0" * (tarfile.BLOCKSIZE * 2))
    yield gzip.flush()


def _zip(artifact: Artifact, root: str) -> Iterator[bytes]:

    def members():
        for entry in _rows(artifact):
            when = max(entry.mtime or _EPOCH, _EPOCH)
            name = f"{root}/{entry.path}"
            if entry.type == "directory":
                yield name + "/", when, stat.S_IFDIR | (entry.mode & 0o777), ZIP_AUTO(0), ()
            elif entry.type == "symlink":
                target = entry.link_target.encode("utf-8")
                yield name, when, stat.S_IFLNK | 0o777, ZIP_AUTO(len(target)), (target,)
            else:
                yield name, when, stat.S_IFREG | (entry.mode & 0o777), ZIP_AUTO(entry.size), _chunks(entry)

    yield from stream_zip(members(), chunk_size=CHUNK_SIZE)


def folder_archive_chunks(artifact: Artifact, fmt: str, root: str) -> Iterator[bytes]:
    return _tar_gz(artifact, root) if fmt == "tar.gz" else _zip(artifact, root)
