"""A workspace as entries and streams: listings, usage and transfers, with the symlink-safe opens of paths.py."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import BinaryIO

from . import paths
from .base import WORKSPACE, FileEntry, FileNotFound, InvalidPath, NotADirectory, NotAFile, SandboxRuntimeError
from .paths import Parts


class ChecksumMismatch(SandboxRuntimeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="CHECKSUM_MISMATCH")


def entry_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def stat_entry(ws_fd: int, parts: Parts) -> FileEntry:
    """What is at ``parts`` (never following a final link); parents are opened link-safely."""
    if not parts:
        st = os.fstat(ws_fd)
        return FileEntry(
            name="workspace",
            path=WORKSPACE,
            type="directory",
            size=st.st_size,
            modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        )
    parent = paths.open_dir(ws_fd, parts[:-1], full=parts)
    try:
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise FileNotFound(f"{paths.sandbox_path(parts)} does not exist") from None
    finally:
        os.close(parent)
    return FileEntry(
        name=parts[-1],
        path=paths.sandbox_path(parts),
        type=entry_type(st.st_mode),
        size=st.st_size,
        modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
    )


def list_entries(ws_fd: int, parts: Parts, *, recursive: bool, limit: int) -> list[FileEntry]:
    """The entries under the directory ``parts``, at most ``limit``; links are reported, not followed."""
    dir_fd = paths.open_dir(ws_fd, parts)
    entries: list[FileEntry] = []
    try:
        if limit <= 0:
            return entries
        for entry in paths.walk(dir_fd, paths.sandbox_path(parts), recursive=recursive):
            entries.append(
                FileEntry(
                    name=entry.name,
                    path=entry.path,
                    type=entry_type(entry.stat.st_mode),
                    size=entry.stat.st_size,
                    modified_at=datetime.fromtimestamp(entry.stat.st_mtime, tz=UTC),
                )
            )
            if len(entries) >= limit:
                break
    finally:
        os.close(dir_fd)
    return entries


def disk_usage(ws_fd: int) -> int:
    """Bytes the workspace occupies on disk (like ``du``), hard links counted once, links not followed."""
    total = os.fstat(ws_fd).st_blocks * 512
    seen: set[tuple[int, int]] = set()
    for entry in paths.walk(ws_fd, WORKSPACE, recursive=True):
        st = entry.stat
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_blocks * 512
    return total


def archive_directory(ws_fd: int, parts: Parts, out: BinaryIO) -> None:
    """Write the directory as tar.gz to ``out``: modes kept, links stored as links, never followed."""
    start = paths.open_dir(ws_fd, parts)
    base = paths.sandbox_path(parts)
    try:
        with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for entry in paths.walk(start, base, recursive=True):
                st = entry.stat
                entry_parts = parts + entry.parts
                # The real names: PAX keeps bytes that are not UTF-8 as they are (hdrcharset=BINARY).
                info = tarfile.TarInfo("/".join(entry.parts))
                info.mode = stat.S_IMODE(st.st_mode)
                info.mtime = int(st.st_mtime)
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif stat.S_ISLNK(st.st_mode):
                    info.type = tarfile.SYMTYPE
                    try:
                        info.linkname = _readlink(ws_fd, entry_parts)
                    except (OSError, FileNotFound, InvalidPath, NotADirectory):
                        continue  # removed or replaced (EINVAL: no longer a link) while archiving
                    tar.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    try:
                        fd = paths.open_file(ws_fd, entry_parts)
                    except (FileNotFound, InvalidPath, NotAFile):
                        continue  # removed or swapped for a link while archiving
                    with os.fdopen(fd, "rb") as handle:
                        info.size = os.fstat(handle.fileno()).st_size
                        try:
                            tar.addfile(info, handle)
                        except OSError as exc:
                            if exc.errno is not None:
                                raise
                            # tarfile's "unexpected end of data": the file shrank while being read.
                            raise SandboxRuntimeError(
                                f"{entry.path} changed while the directory was being archived; nothing was stored, try again",
                                code="FILE_CHANGED",
                            ) from None
    finally:
        os.close(start)


def _readlink(ws_fd: int, parts: Parts) -> str:
    parent = paths.open_dir(ws_fd, parts[:-1], full=parts)
    try:
        return os.readlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def write_stream(
    ws_fd: int,
    parts: Parts,
    chunks: Iterable[bytes],
    *,
    mode: int = 0o644,
    expected_sha256: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Stream to a temporary name beside the target; rename into place only if the bytes verify."""
    digest = hashlib.sha256()
    written = 0

    def metered() -> Iterable[bytes]:
        nonlocal written
        for chunk in chunks:
            digest.update(chunk)
            written += len(chunk)
            if on_progress:
                on_progress(written)
            yield chunk

    def verify() -> None:
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise ChecksumMismatch(
                f"{paths.sandbox_path(parts)}: the bytes received do not match the artifact's checksum; nothing was written"
            )

    return paths.write_chunks(ws_fd, parts, metered(), mode, before_publish=verify)


__all__ = [
    "ChecksumMismatch",
    "NotADirectory",
    "archive_directory",
    "disk_usage",
    "entry_type",
    "list_entries",
    "stat_entry",
    "write_stream",
]
