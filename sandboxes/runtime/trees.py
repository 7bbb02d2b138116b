"""A directory of a workspace read as entries, and a folder written into one, both link-safely.

Reading never follows a link: links are reported with their target, and anything that is not a
regular file, a directory or a link (FIFOs, sockets, devices), or whose name is not UTF-8, is
skipped and reported as such. Writing builds the whole folder in a temporary directory beside the
target, every component opened with ``O_NOFOLLOW`` from that directory's fd (so neither a link
the folder itself holds nor one a process in the sandbox planted is ever written through), checks
each file's SHA-256 before going on, and renames the folder into place only at the end; a failure
removes the temporary directory and leaves the target as it was.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from secrets import token_hex
from typing import BinaryIO

from . import paths
from .base import FileNotFound, InvalidPath, NotADirectory, NotAFile, SandboxRuntimeError
from .paths import Parts
from .streams import ChecksumMismatch

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in a file's place must not wait for a writer.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


class FileExists(SandboxRuntimeError):
    code = "FILE_EXISTS"


@dataclass(frozen=True)
class TreeItem:
    """An entry below the walked directory: ``path`` relative to it, '/'-separated."""

    path: str
    type: str  # "file" | "directory" | "symlink" | "skipped"
    mode: int = 0
    size: int = 0
    mtime_ns: int = 0
    link_target: str = ""
    reason: str = ""  # why a skipped entry was skipped


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _special(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file, directory or link"


def read_tree(ws_fd: int, parts: Parts, *, limit: int) -> Iterator[TreeItem]:
    """Each entry below the directory ``parts``, depth-first by name; at most ``limit`` (then one
    more, so a caller can tell the directory holds more)."""
    start = paths.open_dir(ws_fd, parts)
    count = 0
    try:
        for entry in paths.walk(start, paths.sandbox_path(parts), recursive=True):
            if count > limit:
                return
            count += 1
            st = entry.stat
            if not all(_utf8(name) for name in entry.parts):
                shown_path = "/".join(paths.shown(name) for name in entry.parts)
                yield TreeItem(path=shown_path, type="skipped", reason="its name is not UTF-8")
                continue
            relative = "/".join(entry.parts)
            common = {"path": relative, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
            if stat.S_ISREG(st.st_mode):
                yield TreeItem(type="file", size=st.st_size, **common)
            elif stat.S_ISDIR(st.st_mode):
                yield TreeItem(type="directory", **common)
            elif stat.S_ISLNK(st.st_mode):
                try:
                    target = _readlink(start, entry.parts)
                except (OSError, SandboxRuntimeError):
                    continue  # removed or replaced while walking
                if not _utf8(target):
                    yield TreeItem(path=relative, type="skipped", reason="its link target is not UTF-8")
                    continue
                yield TreeItem(type="symlink", link_target=target, **common)
            else:
                yield TreeItem(path=relative, type="skipped", reason=_special(st.st_mode))
    finally:
        os.close(start)


def _readlink(start: int, parts: Parts) -> str:
    parent = paths.open_dir(start, parts[:-1], full=parts)
    try:
        return os.readlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


class TreeFiles:
    """The regular files below a directory, opened by their path relative to it: each component
    from its parent's fd with ``O_NOFOLLOW`` (as ``paths.open_file`` does from the workspace), the
    last directory's fd kept for the next file, so a folder's files are not each resolved again
    from the top. A link, FIFO, socket or device found in a file's place is refused."""

    def __init__(self, root_fd: int, display: str) -> None:
        self.dirs = _Dirs(root_fd)
        self.display = display

    def open(self, relative: str) -> BinaryIO:
        """A reader on the file; the caller closes it."""
        names = _names(relative)
        shown = f"{self.display}/{relative}"
        dir_fd = self.dirs.get(names[:-1])
        try:
            fd = os.open(names[-1], _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidPath(f"{shown} is a symbolic link; symbolic links are not followed") from None
            if exc.errno == errno.ENOENT:
                raise FileNotFound(f"{shown} does not exist") from None
            if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):
                raise NotAFile(f"{shown} is not a regular file") from None
            raise SandboxRuntimeError(f"{shown}: {exc.strerror or exc}", code="IO_ERROR") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotAFile(f"{shown} is not a regular file")
        return io.FileIO(fd, "rb", closefd=True)

    @contextmanager
    def branch(self) -> Iterator[TreeFiles]:
        """An opener of the same files with a directory fd of its own, for another thread."""
        other = TreeFiles(self.dirs.root_fd, self.display)
        try:
            yield other
        finally:
            other.close()

    def close(self) -> None:
        self.dirs.close()


@contextmanager
def tree_files(ws_fd: int, parts: Parts) -> Iterator[TreeFiles]:
    """A ``TreeFiles`` on the directory ``parts``, its fds closed on leaving."""
    root = paths.open_dir(ws_fd, parts)
    files = TreeFiles(root, paths.sandbox_path(parts))
    try:
        yield files
    finally:
        files.close()
        os.close(root)


def _names(path: str) -> Parts:
    """An entry's names, refused if any could leave the folder (the manifest is checked before too)."""
    names = tuple(path.split("/"))
    if path.startswith("/") or "\x00" in path or any(name in ("", ".", "..") for name in names):
        raise InvalidPath(f"the folder entry {path[:200]!r} would land outside its folder")
    if any(len(name.encode("utf-8")) > paths.MAX_NAME_BYTES for name in names):
        raise InvalidPath(f"a name in the folder entry {path[:200]!r} is too long")
    return names


class _Dirs:
    """Open directory fds below the build directory, the last one kept for the next entry."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.cached: tuple[Parts, int] | None = None

    def get(self, parts: Parts) -> int:
        if not parts:
            return self.root_fd
        if self.cached and self.cached[0] == parts:
            return self.cached[1]
        self.close()
        fd = paths.open_dir(self.root_fd, parts)  # O_NOFOLLOW each component: links are refused
        self.cached = (parts, fd)
        return fd

    def close(self) -> None:
        if self.cached:
            os.close(self.cached[1])
            self.cached = None


def _write_file(dir_fd: int, name: str, chunks: Iterable[bytes], entry, shown: str, done: Callable[[int], None]):
    fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            done(len(chunk))
        if digest.hexdigest() != entry.sha256:
            raise ChecksumMismatch(f"{shown}: the stored bytes do not match the entry's checksum; nothing was written")
        # Permission bits only: never setuid, setgid or sticky.
        os.fchmod(fd, entry.mode & 0o777)
        if entry.mtime_ns:
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
    finally:
        os.close(fd)


def _syncfs(fd: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    except (AttributeError, OSError):
        os.sync()


def _rename_noreplace(parent: int, temp: str, name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            return
        raise FileExistsError(errno.EEXIST, "exists")
    if renameat2(parent, os.fsencode(temp), parent, os.fsencode(name), _RENAME_NOREPLACE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _make(dirs: _Dirs, entry, target: str, made: list, done: Callable[[int], None], chunks_for) -> None:
    names = _names(entry.path)
    shown = f"{target}/{entry.path}"
    dir_fd = dirs.get(names[:-1])
    try:
        if entry.type == "directory":
            os.mkdir(names[-1], 0o700, dir_fd=dir_fd)
            made.append((names, entry))
        elif entry.type == "file":
            _write_file(dir_fd, names[-1], chunks_for(entry), entry, shown, done)
        elif entry.type == "symlink":
            os.symlink(entry.link_target, names[-1], dir_fd=dir_fd)
        # Anything else (a device, a FIFO) is never made.
    except FileExistsError:
        raise InvalidPath(f"{shown} is listed twice or was made meanwhile; nothing was changed") from None


def _seal(root: int, made: list) -> None:
    """Directory modes and times, deepest first (a read-only one is made so after its contents)."""
    for names, entry in reversed(made):
        fd = paths.open_dir(root, names)
        try:
            os.fchmod(fd, entry.mode & 0o777)
            if entry.mtime_ns:
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
    os.fchmod(root, 0o755)
    _syncfs(root)


def _build(parent: int, temp: str, entries: Iterable, target: str, made: list, done, chunks_for) -> None:
    root = os.open(temp, _DIR_FLAGS, dir_fd=parent)
    dirs = _Dirs(root)
    try:
        for entry in entries:
            _make(dirs, entry, target, made, done, chunks_for)
        dirs.close()
        _seal(root, made)
    finally:
        dirs.close()
        os.close(root)


def write_tree(
    ws_fd: int,
    parts: Parts,
    entries: Iterable,
    chunks_for: Callable[[object], Iterable[bytes]],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Recreate a folder at ``parts``. ``entries`` (path, type, mode, sha256, link_target,
    mtime_ns) come parents first; ``chunks_for(entry)`` gives a file's bytes. Returns the number
    of bytes written. The target must not exist (FileExists); its parents are made if missing."""
    if not parts:
        raise InvalidPath("a folder cannot replace /workspace itself")
    target = paths.sandbox_path(parts)
    parent = paths.open_dir(ws_fd, parts[:-1], create=True, full=parts)
    written = 0

    def done(count: int) -> None:
        nonlocal written
        written += count
        if on_progress:
            on_progress(written)

    try:
        try:
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            raise FileExists(f"{target} exists already; nothing was changed")
        temp = f".stowage-{token_hex(8)}.tmp"
        os.mkdir(temp, 0o700, dir_fd=parent)
        made: list[tuple[Parts, object]] = []
        try:
            _build(parent, temp, entries, target, made, done, chunks_for)
            try:
                _rename_noreplace(parent, temp, parts[-1])
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExists(f"{target} appeared meanwhile; nothing was changed") from None
                raise
        except BaseException:
            _remove(parent, temp, made)
            raise
    except OSError as exc:
        raise paths._os_error(exc, parts) from None
    except (FileNotFound, NotADirectory) as exc:
        raise InvalidPath(f"a folder entry under {target} could not be made: {exc.message}") from None
    finally:
        os.close(parent)
    return written


def _remove(parent: int, temp: str, made: list) -> None:
    """Remove the build directory, its read-only directories made writable first."""
    try:
        root = os.open(temp, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        return
    try:
        for names, _entry in made:
            try:
                fd = paths.open_dir(root, names)
            except (SandboxRuntimeError, OSError):
                continue
            os.fchmod(fd, 0o700)
            os.close(fd)
    finally:
        os.close(root)
    shutil.rmtree(temp, dir_fd=parent, ignore_errors=True)
