"""Blobs behind Django's storage API (the ``artifacts`` entry of ``STORAGES``).

A blob is written under a temporary name and published in one atomic step once all its
bytes are in and its SHA-256 is known: a rename on the local filesystem, the completion of
the upload on an object store. Readers never see a partial blob under a final key.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

CHUNK_SIZE = 1 << 20
TEMP_PREFIX = "tmp/"


class BlobError(Exception):
    code = "STORAGE_ERROR"


class BlobTooLarge(BlobError):
    code = "FILE_TOO_LARGE"


class StorageFull(BlobError):
    code = "STORAGE_FULL"


@dataclass(frozen=True)
class StoredBlob:
    size: int
    sha256: str

    @property
    def checksum(self) -> str:
        return f"sha256:{self.sha256}"


def blob_storage() -> Storage:
    return storages["artifacts"]


def blob_key(organization_id: str, artifact_id: str) -> str:
    return f"blobs/{organization_id}/{artifact_id}"


class _Metered:
    """Counts and hashes bytes as they pass, and stops at the size limit."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int, on_progress: Callable[[int], None] | None) -> None:
        self.chunks = iter(chunks)
        self.max_bytes = max_bytes
        self.on_progress = on_progress
        self.size = 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise BlobTooLarge(f"the file is larger than the {self.max_bytes} bytes allowed")
            self.digest.update(chunk)
            if self.on_progress:
                self.on_progress(self.size)
            yield chunk

    def result(self) -> StoredBlob:
        return StoredBlob(self.size, self.digest.hexdigest())


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks, for storages that want a file object."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def blob_write(key: str, chunks: Iterable[bytes], *, max_bytes: int, on_progress: Callable[[int], None] | None = None) -> StoredBlob:
    storage = blob_storage()
    metered = _Metered(chunks, max_bytes, on_progress)
    if isinstance(storage, FileSystemStorage):
        _write_local(storage, key, metered)
    else:
        storage.save(key, File(io.BufferedReader(_ChunkReader(metered), CHUNK_SIZE), name=key))
    return metered.result()


def _write_local(storage: FileSystemStorage, key: str, metered: _Metered) -> None:
    final = storage.path(key)
    temp = storage.path(f"{TEMP_PREFIX}{uuid.uuid4().hex}.partial")
    try:
        # Inside the try: a full disk (or no inode left) can refuse the directories too.
        os.makedirs(os.path.dirname(temp), exist_ok=True)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        with open(temp, "xb") as out:
            for chunk in metered:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("artifact storage is full; nothing was stored") from None
        raise


def blob_open(key: str):
    return blob_storage().open(key, "rb")


def blob_size(key: str) -> int:
    return blob_storage().size(key)


def blob_delete(key: str) -> None:
    storage = blob_storage()
    if storage.exists(key):
        storage.delete(key)


def blob_exists(key: str) -> bool:
    return blob_storage().exists(key)


def blob_iter_chunks(key: str, *, start: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The blob's bytes from ``start``, ``length`` of them (all when None), a chunk at a time."""
    with blob_open(key) as handle:
        if start:
            handle.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def blob_walk(prefix: str = "") -> Iterator[tuple[str, datetime | None]]:
    """Every stored key under ``prefix`` with its modification time, for the sweeper."""
    storage = blob_storage()
    pending = [prefix.rstrip("/")]
    while pending:
        directory = pending.pop()
        try:
            dirs, files = storage.listdir(directory)
        except FileNotFoundError:
            continue
        for name in dirs:
            pending.append(f"{directory}/{name}" if directory else name)
        for name in files:
            key = f"{directory}/{name}" if directory else name
            try:
                modified = storage.get_modified_time(key)
            except (FileNotFoundError, NotImplementedError):
                modified = None
            if modified is not None and modified.tzinfo is None:
                modified = modified.replace(tzinfo=timezone.utc)
            yield key, modified
