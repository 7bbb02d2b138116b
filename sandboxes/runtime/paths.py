"""User path validation and symlink-safe file operations inside a sandbox workspace.

Processes in the sandbox own the workspace and may plant symbolic links, FIFOs or swap
directories at any moment, while this code runs as root on the host. So every operation
here starts from an fd of the workspace and opens one component at a time with
``O_NOFOLLOW``: a link is never followed, and a directory swapped for a link between two
checks is caught by the open itself rather than by an earlier check.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from secrets import token_hex
from typing import NamedTuple

from .base import WORKSPACE, FileNotFound, FileTooLarge, InvalidPath, NotADirectory, NotAFile, SandboxRuntimeError

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted by the sandbox must not wait for a writer.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# A walk keeps at most this many directory fds open; deeper levels are reopened by name.
_MAX_OPEN_DIRS = 32

Parts = tuple[str, ...]


def parse_path(path: str, *, allow_root: bool = False) -> Parts:
    """The components of a user path below /workspace, validated before any I/O.

    ``allow_root`` admits /workspace itself (listing, working directory); file operations
    need at least one component.
    """
    if not isinstance(path, str):
        raise InvalidPath(f"path must be a string, not {type(path).__name__}")
    if path == "":
        raise InvalidPath("path must not be empty")
    if "\x00" in path:
        raise InvalidPath("path must not contain NUL bytes")
    try:
        # Not os.fsencode: it would turn a lone surrogate into a raw byte, and so reach a name
        # that is not UTF-8 by a path no caller was ever shown (see shown()).
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath("path is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidPath(f"path is longer than {MAX_PATH_BYTES} bytes")
    absolute = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidPath(f"path {_shorten(path)!r} must not contain '..' components")
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidPath(f"path component {_shorten(part)!r} is longer than {MAX_NAME_BYTES} bytes")
        parts.append(part)
    if absolute:
        if not parts or parts[0] != WORKSPACE.lstrip("/"):
            raise InvalidPath(
                f"path {_shorten(path)!r} is outside {WORKSPACE}; use a path under {WORKSPACE}/ or relative to it"
            )
        parts = parts[1:]
    if not parts and not allow_root:
        raise InvalidPath(f"path must name a file inside {WORKSPACE}, not {WORKSPACE} itself")
    return tuple(parts)


def sandbox_path(parts: Parts) -> str:
    """The sandbox path of ``parts`` as text to show (see shown())."""
    return WORKSPACE + "".join("/" + shown(part) for part in parts)


def shown(name: str) -> str:
    r"""A name read from the workspace, as text that any caller can encode (JSON, HTML, the database).

    A process in the sandbox may create names that are not UTF-8, such as b'bad\xff name'; Python
    reads those bytes as lone surrogates, which UTF-8 cannot encode. Each such byte is shown as its
    escape instead: the text ``bad\xff name``, with a real backslash. A shown name does not lead
    back to its file: asking for it finds nothing (or a file that is really called so).
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def open_workspace(workspace: str | os.PathLike[str]) -> int:
    """An fd on the workspace directory itself (the host path is ours, not the sandbox's)."""
    return os.open(workspace, _DIR_FLAGS)


def _link_or_not_dir(dir_fd: int, name: str, parts: Parts, full: Parts) -> SandboxRuntimeError:
    shown = sandbox_path(parts)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return FileNotFound(f"{shown} does not exist")
    if stat.S_ISLNK(st.st_mode):
        if parts == full:
            return InvalidPath(f"{shown} is a symbolic link; symbolic links are not followed")
        return InvalidPath(
            f"{sandbox_path(full)} goes through a symbolic link ({shown}); symbolic links are not followed"
        )
    return NotADirectory(f"{shown} is not a directory")


def open_dir(ws_fd: int, parts: Parts, *, create: bool = False, full: Parts | None = None) -> int:
    """A new fd on the directory ``parts`` below the workspace fd; the caller closes it.

    With ``create``, missing directories are made (0755). ``full`` is the path the caller
    is after, for error messages.
    """
    full = parts if full is None else full
    current = os.dup(ws_fd)
    try:
        for index, name in enumerate(parts):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=current)
            except FileNotFoundError:
                if not create:
                    raise FileNotFound(f"{sandbox_path(parts[: index + 1])} does not exist") from None
                try:
                    os.mkdir(name, 0o755, dir_fd=current)
                except FileExistsError:
                    pass  # made meanwhile, or a link/file: the open below decides
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    raise _dir_open_error(exc, current, name, parts[: index + 1], full) from None
            except OSError as exc:
                raise _dir_open_error(exc, current, name, parts[: index + 1], full) from None
            os.close(current)
            current = child
        return current
    except BaseException:
        os.close(current)
        raise


def _dir_open_error(exc: OSError, dir_fd: int, name: str, parts: Parts, full: Parts) -> SandboxRuntimeError:
    # O_NOFOLLOW|O_DIRECTORY on a link gives ENOTDIR (or ELOOP): only lstat tells which it was.
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        return _link_or_not_dir(dir_fd, name, parts, full)
    if exc.errno == errno.ENOENT:
        return FileNotFound(f"{sandbox_path(parts)} does not exist")
    return _os_error(exc, parts)


def _os_error(exc: OSError, parts: Parts) -> SandboxRuntimeError:
    if exc.errno == errno.ENOENT:  # e.g. the directory was removed by the sandbox meanwhile
        return FileNotFound(f"{sandbox_path(parts)} (or its directory) does not exist")
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidPath(f"path {_shorten(sandbox_path(parts))!r} is too long")
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return SandboxRuntimeError(
            f"{sandbox_path(parts)}: no space left on the sandbox's disk (its 'disk' size); remove files or "
            "create the sandbox with a larger 'disk'",
            code="NO_SPACE",
        )
    return SandboxRuntimeError(f"{sandbox_path(parts)}: {exc.strerror or exc}", code="IO_ERROR")


def open_file(ws_fd: int, parts: Parts) -> int:
    """A read-only fd on a regular file; links, FIFOs, sockets and directories are refused."""
    parent = open_dir(ws_fd, parts[:-1], full=parts)
    try:
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidPath(
                    f"{sandbox_path(parts)} is a symbolic link; symbolic links are not followed"
                ) from None
            if exc.errno == errno.ENOENT:
                raise FileNotFound(f"{sandbox_path(parts)} does not exist") from None
            if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a Unix socket
                raise NotAFile(f"{sandbox_path(parts)} is not a regular file") from None
            raise _os_error(exc, parts) from None
    finally:
        os.close(parent)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise NotAFile(f"{sandbox_path(parts)} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise NotAFile(f"{sandbox_path(parts)} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_all(fd: int, max_bytes: int, parts: Parts) -> bytes:
    """Up to ``max_bytes`` of an open file; FileTooLarge if it holds more (even if it grew)."""
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise FileTooLarge(f"{sandbox_path(parts)} is {size} bytes, more than the {max_bytes} bytes allowed")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise FileTooLarge(f"{sandbox_path(parts)} is more than the {max_bytes} bytes allowed")
    return b"".join(chunks)


def write_file(ws_fd: int, parts: Parts, data: bytes, mode: int) -> int:
    """Write to a temporary name beside the target, then rename over it, all fd-relative."""
    return write_chunks(ws_fd, parts, (data,), mode)


def write_chunks(
    ws_fd: int,
    parts: Parts,
    chunks: Iterable[bytes],
    mode: int,
    *,
    before_publish: Callable[[], None] | None = None,
) -> int:
    """Stream ``chunks`` to a temporary name beside the target, then rename it into place.

    Parent directories are created (0755). ``before_publish`` runs after the last byte and
    before the rename; if it raises, the temporary file is removed and nothing is replaced.
    Returns the number of bytes written.
    """
    if not parts:
        raise InvalidPath(f"cannot write to {WORKSPACE} itself")
    name = parts[-1]
    parent = open_dir(ws_fd, parts[:-1], create=True, full=parts)
    try:
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise NotAFile(f"{sandbox_path(parts)} is a directory, not a file")
            if stat.S_ISLNK(existing.st_mode):
                raise InvalidPath(
                    f"{sandbox_path(parts)} is a symbolic link; delete it first to replace it with a file"
                )
        # Short fixed-length name: name + suffix could exceed NAME_MAX.
        temp = f".stowage-{token_hex(8)}.tmp"
        try:
            fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=parent)
        except OSError as exc:
            raise _os_error(exc, parts) from None
        total = 0
        try:
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    total += len(view)
                    while view:
                        view = view[os.write(fd, view) :]
                # No setuid/setgid/sticky bits from the API: the workspace is also reachable from the host.
                os.fchmod(fd, mode & 0o777)
                # On disk before it gets its name, so a crash never leaves a short file in place.
                os.fsync(fd)
            finally:
                os.close(fd)
            if before_publish is not None:
                before_publish()
            # rename() never follows a link at the destination; a directory there fails.
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException as exc:
            try:
                os.unlink(temp, dir_fd=parent)
            except OSError:
                pass
            if isinstance(exc, IsADirectoryError):
                raise NotAFile(f"{sandbox_path(parts)} is a directory, not a file") from None
            if isinstance(exc, OSError):
                raise _os_error(exc, parts) from None
            raise
        return total
    finally:
        os.close(parent)


def delete(ws_fd: int, parts: Parts, *, recursive: bool) -> None:
    if not parts:
        raise InvalidPath(f"cannot delete {WORKSPACE} itself")
    name = parts[-1]
    parent = open_dir(ws_fd, parts[:-1], full=parts)
    try:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise FileNotFound(f"{sandbox_path(parts)} does not exist") from None
        try:
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=parent)  # on a link this removes the link itself
            elif recursive:
                # Python >= 3.11 on Linux: fd-based, verifies each directory it enters.
                shutil.rmtree(name, dir_fd=parent)
            else:
                try:
                    os.rmdir(name, dir_fd=parent)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise NotAFile(
                            f"{sandbox_path(parts)} is a directory that is not empty; delete it recursively"
                        ) from None
                    raise
        except FileNotFoundError:
            raise FileNotFound(f"{sandbox_path(parts)} does not exist") from None
        except SandboxRuntimeError:
            raise
        except OSError as exc:
            if "symbolic link" in str(exc):
                raise InvalidPath(
                    f"{sandbox_path(parts)} became a symbolic link; symbolic links are not followed"
                ) from None
            raise _os_error(exc, parts) from None
    finally:
        os.close(parent)


class WalkEntry(NamedTuple):
    parts: Parts  # the real names, relative to the walk's start
    path: str  # the sandbox path to show
    name: str  # the name to show
    stat: os.stat_result  # lstat: a link is reported, not followed


@dataclass
class _Frame:
    fd: int | None
    parts: Parts  # relative to the walk's start
    display: str
    entries: Iterator[tuple[str, os.stat_result]] = field(default_factory=lambda: iter(()))


def _list_dir(fd: int) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    with os.scandir(fd) as scan:  # scandir works on a dup of fd and leaves fd open
        for entry in scan:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    found.sort(key=lambda item: item[0])
    return found


def walk(start_fd: int, display: str, *, recursive: bool) -> Iterator[WalkEntry]:
    """Each entry under ``start_fd``, depth-first, sorted by name; ``display`` is the start's path.

    Never follows links; a directory that vanished or became a link while walking is
    skipped. Only ``_MAX_OPEN_DIRS`` fds stay open however deep the tree: the others are
    reopened by name, still one O_NOFOLLOW component at a time.
    """
    frames = [_Frame(fd=None, parts=(), display=display, entries=iter(_list_dir(start_fd)))]
    try:
        while frames:
            frame = frames[-1]
            item = next(frame.entries, None)
            if item is None:
                if frame.fd is not None:
                    os.close(frame.fd)
                frames.pop()
                continue
            name, st = item
            path = f"{frame.display}/{shown(name)}"
            yield WalkEntry(parts=(*frame.parts, name), path=path, name=shown(name), stat=st)
            if not recursive or not stat.S_ISDIR(st.st_mode):
                continue
            parent_fd = _frame_fd(frames, start_fd)
            if parent_fd is None:
                frame.entries = iter(())
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            except OSError:
                continue
            try:
                entries = _list_dir(child)
            except OSError:
                os.close(child)
                continue
            frames.append(_Frame(fd=child, parts=(*frame.parts, name), display=path, entries=iter(entries)))
            _close_excess(frames)
    finally:
        for frame in frames:
            if frame.fd is not None:
                os.close(frame.fd)


def _frame_fd(frames: list[_Frame], start_fd: int) -> int | None:
    """The top frame's fd, reopened from the nearest open ancestor if it was closed."""
    top = frames[-1]
    if not top.parts:
        return start_fd
    if top.fd is not None:
        return top.fd
    base_fd, base_parts = start_fd, ()
    for frame in reversed(frames[:-1]):
        if frame.fd is not None or not frame.parts:
            base_fd = frame.fd if frame.fd is not None else start_fd
            base_parts = frame.parts
            break
    try:
        top.fd = open_dir(base_fd, top.parts[len(base_parts) :])
    except (SandboxRuntimeError, OSError):
        return None
    _close_excess(frames)
    return top.fd


def _close_excess(frames: list[_Frame]) -> None:
    open_frames = [frame for frame in frames if frame.fd is not None]
    for frame in open_frames[: max(0, len(open_frames) - _MAX_OPEN_DIRS)]:
        os.close(frame.fd)  # type: ignore[arg-type]
        frame.fd = None


def remove_tree(directory) -> None:
    """Remove a sandbox's tree, which another destroy of the same sandbox may be removing at the
    same time (its stop() may even write a count into meta/ meanwhile): try again until gone."""
    for _ in range(5):
        try:
            shutil.rmtree(directory, onerror=_unless_gone)
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
        if not os.path.exists(directory):
            return
    shutil.rmtree(directory, onerror=_unless_gone)


def _unless_gone(function, path, exc_info) -> None:
    """rmtree's error handler: an entry another remover took first is fine, anything else is not."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
