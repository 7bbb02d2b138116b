"""Blobs behind Django's storage API (the ``artifacts`` entry of ``STORAGES``).

A blob is written under a temporary name and published in one atomic step once all its
bytes are in and its SHA-256 is known: a rename on the local filesystem, the completion of
the upload on an object store. Readers never see a partial blob under a final key.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from core.errors import StowageError

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
TEMP_PREFIX = "tmp/"
# Parts of a multipart upload to S3: over S3's 5 MiB minimum; one is buffered at a time.
S3_PART_SIZE = 8 << 20
# Parts in flight at once: what keeps a multipart upload near the store's speed; each one is a
# part-sized buffer, so this also bounds the worker's memory.
S3_PART_CONCURRENCY = 3


class BlobError(StowageError):
    """The object store or the disk failed; ``core.errors`` gives each code its status."""

    code = "STORAGE_ERROR"


class BlobTooLarge(BlobError):
    code = "FILE_TOO_LARGE"


class StorageFull(BlobError):
    code = "STORAGE_FULL"


class UploadGone(BlobError):
    """A multipart upload the object store no longer knows: aborted, completed or swept."""

    code = "UPLOAD_GONE"


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


def blob_write(
    key: str,
    chunks: Iterable[bytes],
    *,
    max_bytes: int,
    on_progress: Callable[[int], None] | None = None,
    sync: bool = True,
) -> StoredBlob:
    """Write the blob; with ``sync`` False a local file is not fsynced on its own, and the writer
    calls ``blob_sync`` once for a batch of blobs before anything references them."""
    storage = blob_storage()
    metered = _Metered(chunks, max_bytes, on_progress)
    if isinstance(storage, FileSystemStorage):
        _write_local(storage, key, metered, sync=sync)
    elif is_s3(storage):
        _write_s3(storage, key, metered)
    else:
        storage.save(key, File(io.BufferedReader(_ChunkReader(metered), CHUNK_SIZE), name=key))
    return metered.result()


def blob_sync() -> None:
    """Make every local blob written without ``sync`` durable: one syncfs of the storage's
    filesystem instead of an fsync per file. Nothing to do on an object store."""
    storage = blob_storage()
    if not isinstance(storage, FileSystemStorage):
        return
    import ctypes

    fd = os.open(storage.location, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            os.sync()
    except AttributeError:
        os.sync()
    finally:
        os.close(fd)


def blob_write_bytes(key: str, data: bytes, sha256: str, *, sync: bool = True) -> StoredBlob:
    """Write a small blob already in memory whose SHA-256 (hex) was just computed from ``data``.

    ``key`` must be fresh (``blob_upload_key``): nothing references it until the caller's
    transaction records it, so on the local filesystem the file is created at its key directly
    (``O_EXCL``: never over another object) instead of under a temporary name and renamed; a
    failure removes it, and one the process did not live to remove is an orphan the sweeper
    drops. On S3 it is one PUT that S3 checks against the digest; with ``sync`` False see
    ``blob_write``."""
    storage = blob_storage()
    if isinstance(storage, FileSystemStorage):
        _create_local(storage.path(key), data, sync=sync)
        return StoredBlob(len(data), sha256)
    return blob_write(key, [data], max_bytes=len(data), sync=sync)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_local(final: str, data: bytes, *, sync: bool) -> None:
    try:
        try:
            fd = os.open(final, _CREATE_FLAGS, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd = os.open(final, _CREATE_FLAGS, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("artifact storage is full; nothing was stored") from None
        raise
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        os.unlink(final)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("artifact storage is full; nothing was stored") from None
        raise
    os.close(fd)


def _write_local(storage: FileSystemStorage, key: str, metered: _Metered, *, sync: bool = True) -> None:
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
            if sync:
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


def is_s3(storage: Storage | None = None) -> bool:
    """Whether the storage is django-storages' S3 backend (imported lazily: boto3 is optional)."""
    storage = storage if storage is not None else blob_storage()
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is in requirements.txt
        return False
    return isinstance(storage, S3Storage)


_s3_clients: dict[tuple, Any] = {}
_s3_clients_lock = threading.Lock()


def s3_client(storage=None):
    """The boto3 S3 client for the storage's endpoint, region and credentials, one per process.

    django-storages keeps a connection per thread; boto3 clients are thread-safe, and building
    one costs tens of MiB, so every worker thread (and every part sender) shares this one.
    """
    storage = storage if storage is not None else blob_storage()
    identity = (
        getattr(storage, "endpoint_url", None),
        getattr(storage, "region_name", None),
        getattr(storage, "access_key", None),
    )
    with _s3_clients_lock:
        client = _s3_clients.get(identity)
        if client is None:
            client = _s3_clients[identity] = storage.connection.meta.client
    return client


def s3_object_key(storage, key: str) -> str:
    """The object key a blob key has in the bucket (under AWS_LOCATION, like the storage's own calls)."""
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(key))


def s3_base(storage) -> str:
    """The key prefix of the storage's objects in the bucket (AWS_LOCATION), with its slash."""
    location = (storage.location or "").strip("/")
    return f"{location}/" if location else ""


def _b64_sha256(data) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _write_s3(storage, key: str, metered: _Metered) -> None:
    """Stream into a multipart upload, a few parts in flight at a time, each part with its
    SHA-256 for S3 to check. Nothing is visible under the key until the upload completes (the atomic publish);
    on any error the upload is aborted, so no part stays stored."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(storage)
    bucket = storage.bucket_name
    object_key = s3_object_key(storage, key)
    chunks = iter(metered)
    buffer = bytearray()

    def fill() -> bool:
        """Fill the buffer up to a part; False when the body has ended."""
        while len(buffer) < S3_PART_SIZE:
            chunk = next(chunks, None)
            if chunk is None:
                return False
            buffer.extend(chunk)
        return True

    upload_id = None
    try:
        more = fill()
        if not more:
            # One part's worth or less: a single PUT is as atomic, and valid for an empty body.
            client.put_object(
                Bucket=bucket,
                Key=object_key,
                Body=bytes(buffer),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64_sha256(buffer),
                ContentType="application/octet-stream",
            )
            return
        upload_id = client.create_multipart_upload(
            Bucket=bucket, Key=object_key, ChecksumAlgorithm="SHA256", ContentType="application/octet-stream"
        )["UploadId"]

        def send(number: int, part: bytes) -> dict:
            checksum = _b64_sha256(part)
            answer = client.upload_part(
                Bucket=bucket,
                Key=object_key,
                UploadId=upload_id,
                PartNumber=number,
                Body=part,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
            return {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumSHA256": answer.get("ChecksumSHA256") or checksum,
            }

        parts: list[dict] = []
        in_flight: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=S3_PART_CONCURRENCY, thread_name_prefix="s3-part") as pool:
            try:
                number = 0
                while buffer:
                    if len(in_flight) >= S3_PART_CONCURRENCY:
                        parts.append(in_flight.popleft().result())
                    number += 1
                    with memoryview(buffer) as view:
                        part = bytes(view[:S3_PART_SIZE])
                    in_flight.append(pool.submit(send, number, part))
                    del part
                    del buffer[:S3_PART_SIZE]
                    if more:
                        more = fill()
                while in_flight:
                    parts.append(in_flight.popleft().result())
            finally:
                for pending in in_flight:
                    pending.cancel()
        client.complete_multipart_upload(
            Bucket=bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException as exc:
        if upload_id is not None:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=object_key, UploadId=upload_id)
            except Exception:  # the sweeper aborts it later
                logger.warning("could not abort multipart upload %s of %s", upload_id, object_key, exc_info=True)
        if isinstance(exc, (ClientError, BotoCoreError)):
            raise BlobError(f"the object store refused the upload: {exc}") from exc
        raise


def _iter_s3(storage, key: str, *, start: int, length: int | None, chunk_size: int) -> Iterator[bytes]:
    """Ranged GET streamed a chunk at a time (storage.open would download the whole object first)."""
    if length == 0:
        return
    params = {"Bucket": storage.bucket_name, "Key": s3_object_key(storage, key)}
    if start or length is not None:
        params["Range"] = f"bytes={start}-" + (str(start + length - 1) if length is not None else "")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = s3_client(storage).get_object(**params)["Body"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "InvalidRange":  # at or past the end: nothing to send, as a local file would
            return
        if code in ("NoSuchKey", "404"):
            raise FileNotFoundError(key) from exc
        raise BlobError(f"the object store refused to read {key}: {code}") from exc
    except BotoCoreError as exc:
        raise BlobError(f"the object store could not be read: {exc}") from exc
    try:
        yield from body.iter_chunks(chunk_size)
    except BotoCoreError as exc:  # the connection dropped or timed out mid-body
        raise BlobError(f"reading {key} from the object store failed: {exc}") from exc
    finally:
        body.close()


def s3_presigned_get_url(key: str, *, expires_in: int, content_disposition: str, content_type: str) -> str:
    """A URL for GET of the object, signed by S3's own rules (SigV4), with the response headers fixed."""
    storage = blob_storage()
    params = {
        "Bucket": storage.bucket_name,
        "Key": s3_object_key(storage, key),
        "ResponseContentDisposition": content_disposition,
        "ResponseContentType": content_type,
    }
    return s3_client(storage).generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)


def blob_open(key: str):
    return blob_storage().open(key, "rb")


def blob_delete(key: str) -> None:
    storage = blob_storage()
    if storage.exists(key):
        storage.delete(key)


def blob_exists(key: str) -> bool:
    return blob_storage().exists(key)


def blob_iter_chunks(
    key: str, *, start: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """The blob's bytes from ``start``, ``length`` of them (all when None), a chunk at a time."""
    storage = blob_storage()
    if is_s3(storage):
        yield from _iter_s3(storage, key, start=start, length=length, chunk_size=chunk_size)
        return
    # A local blob is read from its file directly: Django's File around it costs more than the
    # read of a small blob, and a folder reads thousands.
    opened = io.FileIO(storage.path(key), "rb") if isinstance(storage, FileSystemStorage) else blob_open(key)
    with opened as handle:
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
    if is_s3(storage):
        # One listing gives every key with its time; no HEAD per object.
        base = s3_base(storage)
        full_prefix = base + prefix.lstrip("/") if prefix else base
        for page in (
            s3_client(storage).get_paginator("list_objects_v2").paginate(Bucket=storage.bucket_name, Prefix=full_prefix)
        ):
            for entry in page.get("Contents", ()):
                yield entry["Key"][len(base) :], entry["LastModified"]
        return
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
                modified = modified.replace(tzinfo=UTC)
            yield key, modified
