"""Globbing, making directories, moving, copying and unpacking inside a workspace, with the
same link safety as ``paths``: every path is opened one component at a time from the workspace
fd with O_NOFOLLOW, so nothing here ever goes through a symbolic link. A link is moved or
copied as a link; a destination that is a link, or that goes through one, is refused.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
from datetime import UTC, datetime

from . import paths, streams
from .base import WORKSPACE, FileEntry, FileNotFound, InvalidPath, NotADirectory, NotAFile, SandboxRuntimeError
from .paths import Parts

# A glob looks at no more than this many entries, whatever it matches.
GLOB_SCAN_LIMIT = 200_000
_COPY_CHUNK = 1 << 20


class FileExists(SandboxRuntimeError):
    code = "FILE_EXISTS"


def _entry(path: str, name: str, st: os.stat_result) -> FileEntry:
    return FileEntry(
        name=name,
        path=path,
        type=streams.entry_type(st.st_mode),
        size=st.st_size,
        modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
    )


# --- glob -----------------------------------------------------------------------------------


def parse_pattern(pattern: str) -> Parts:
    """The pattern's components below /workspace. Like a path, it may not climb out: no '..', and
    an absolute pattern must start with /workspace/ literally (no wildcard in that component)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidPath("pattern must be a non-empty glob such as '**/*.py'")
    if "\x00" in pattern:
        raise InvalidPath("pattern must not contain NUL bytes")
    if len(pattern.encode("utf-8", "surrogatepass")) > paths.MAX_PATH_BYTES:
        raise InvalidPath(f"pattern is longer than {paths.MAX_PATH_BYTES} bytes")
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidPath("pattern must not contain '..' components: a glob stays inside /workspace")
    if pattern.startswith("/"):
        if not parts or parts[0] != WORKSPACE.lstrip("/"):
            raise InvalidPath(
                f"pattern {pattern[:80]!r} is outside {WORKSPACE}; use one under {WORKSPACE}/ or relative"
            )
        parts = parts[1:]
    if not parts:
        raise InvalidPath(f"pattern must match something inside {WORKSPACE}")
    return tuple(parts)


def _segment_regex(segment: str) -> str:
    out, index = [], 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", index + 2 if segment[index + 1 : index + 2] in ("!", "]") else index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = segment[index + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"(?!/)[{body}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def pattern_regex(parts: Parts) -> re.Pattern[str]:
    """``*`` and ``?`` stay within one component, ``**`` spans any number of them (none too)."""
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(regex + r"\Z", re.DOTALL)


def glob(ws_fd: int, pattern: str, *, limit: int) -> list[FileEntry]:
    parts = parse_pattern(pattern)
    # The walk starts below the pattern's fixed leading directories, and is shallow when it can be.
    fixed: list[str] = []
    for part in parts[:-1]:
        if any(char in part for char in "*?["):
            break
        fixed.append(part)
    base = tuple(fixed)
    rest = parts[len(base) :]
    matcher = pattern_regex(rest)
    try:
        start = paths.open_dir(ws_fd, base)
    except (FileNotFound, NotADirectory):
        return []
    found: list[FileEntry] = []
    prefix = paths.sandbox_path(base)
    try:
        for scanned, entry in enumerate(paths.walk(start, prefix, recursive="**" in rest or len(rest) > 1)):
            if scanned >= GLOB_SCAN_LIMIT or len(found) >= limit:
                break
            # Matched on the real names; shown by the walk's safe display of them.
            if matcher.match("/".join(entry.parts)):
                found.append(_entry(entry.path, entry.name, entry.stat))
    finally:
        os.close(start)
    return found


# --- mkdir, move, copy ------------------------------------------------------------------------


def make_directory(ws_fd: int, parts: Parts, *, recursive: bool) -> FileEntry:
    if not parts:
        raise InvalidPath(f"{WORKSPACE} already exists")
    parent = paths.open_dir(ws_fd, parts[:-1], create=recursive, full=parts)
    try:
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
        except FileExistsError:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise FileExists(f"{paths.sandbox_path(parts)} exists and is not a directory") from None
            if not recursive:
                raise FileExists(f"{paths.sandbox_path(parts)} already exists") from None
        except OSError as exc:
            raise paths._os_error(exc, parts) from None
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)
    return _entry(paths.sandbox_path(parts), parts[-1], st)


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _check_pair(source: Parts, destination: Parts) -> None:
    if not source or not destination:
        raise InvalidPath(f"cannot move or copy {WORKSPACE} itself")
    if destination[: len(source)] == source:
        raise InvalidPath(f"{paths.sandbox_path(destination)} is inside {paths.sandbox_path(source)}")


def _open_pair(ws_fd: int, source: Parts, destination: Parts) -> tuple[int, int, os.stat_result]:
    """Both parents (the destination's made if missing) and what is at the source; the destination
    must be missing or a regular file that the source, itself a file, may replace."""
    _check_pair(source, destination)
    src_parent = paths.open_dir(ws_fd, source[:-1], full=source)
    try:
        src_st = _lstat(src_parent, source[-1])
        if src_st is None:
            raise FileNotFound(f"{paths.sandbox_path(source)} does not exist")
        dst_parent = paths.open_dir(ws_fd, destination[:-1], create=True, full=destination)
    except BaseException:
        os.close(src_parent)
        raise
    try:
        dst_st = _lstat(dst_parent, destination[-1])
        shown = paths.sandbox_path(destination)
        if dst_st is not None:
            if stat.S_ISLNK(dst_st.st_mode):
                raise InvalidPath(f"{shown} is a symbolic link; symbolic links are not followed or replaced")
            if stat.S_ISDIR(dst_st.st_mode):
                raise FileExists(f"{shown} is an existing directory; name the new path itself")
            if stat.S_ISDIR(src_st.st_mode):
                raise FileExists(f"{shown} already exists and is not a directory")
    except BaseException:
        os.close(src_parent)
        os.close(dst_parent)
        raise
    return src_parent, dst_parent, src_st


def move(ws_fd: int, source: Parts, destination: Parts) -> FileEntry:
    src_parent, dst_parent, _ = _open_pair(ws_fd, source, destination)
    try:
        try:
            # rename() moves a link itself and never follows one at the destination.
            os.rename(source[-1], destination[-1], src_dir_fd=src_parent, dst_dir_fd=dst_parent)
        except FileNotFoundError:
            raise FileNotFound(f"{paths.sandbox_path(source)} does not exist") from None
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            raise FileExists(f"{paths.sandbox_path(destination)} changed while moving; nothing was moved") from None
        except OSError as exc:
            raise paths._os_error(exc, destination) from None
        st = os.stat(destination[-1], dir_fd=dst_parent, follow_symlinks=False)
    finally:
        os.close(src_parent)
        os.close(dst_parent)
    return _entry(paths.sandbox_path(destination), destination[-1], st)


def copy(ws_fd: int, source: Parts, destination: Parts) -> FileEntry:
    src_parent, dst_parent, src_st = _open_pair(ws_fd, source, destination)
    os.close(src_parent)
    try:
        if stat.S_ISDIR(src_st.st_mode):
            _copy_tree(ws_fd, source, destination, dst_parent)
        elif stat.S_ISLNK(src_st.st_mode):
            _copy_link(ws_fd, source, dst_parent, destination[-1])
        elif stat.S_ISREG(src_st.st_mode):
            _copy_file(ws_fd, source, destination)
        else:
            raise NotAFile(f"{paths.sandbox_path(source)} is not a file, a directory or a link")
        st = os.stat(destination[-1], dir_fd=dst_parent, follow_symlinks=False)
    finally:
        os.close(dst_parent)
    return _entry(paths.sandbox_path(destination), destination[-1], st)


def _copy_file(ws_fd: int, source: Parts, destination: Parts) -> None:
    fd = paths.open_file(ws_fd, source)
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        paths.write_chunks(ws_fd, destination, iter(lambda: handle.read(_COPY_CHUNK), b""), mode)


def _copy_link(ws_fd: int, source: Parts, dst_parent: int, name: str) -> None:
    parent = paths.open_dir(ws_fd, source[:-1], full=source)
    try:
        target = os.readlink(source[-1], dir_fd=parent)
    finally:
        os.close(parent)
    try:
        os.symlink(target, name, dir_fd=dst_parent)
    except FileExistsError:
        raise FileExists(f"{name} already exists") from None


def _copy_tree(ws_fd: int, source: Parts, destination: Parts, dst_parent: int) -> None:
    try:
        os.mkdir(destination[-1], 0o755, dir_fd=dst_parent)
    except FileExistsError:
        raise FileExists(f"{paths.sandbox_path(destination)} already exists") from None
    start = paths.open_dir(ws_fd, source, full=source)
    base = paths.sandbox_path(source)
    try:
        for entry in paths.walk(start, base, recursive=True):
            st, relative = entry.stat, entry.parts
            target = destination + relative
            if stat.S_ISDIR(st.st_mode):
                os.close(paths.open_dir(ws_fd, target, create=True))
            elif stat.S_ISREG(st.st_mode):
                try:
                    _copy_file(ws_fd, source + relative, target)
                except (FileNotFound, InvalidPath, NotAFile):
                    continue  # removed or swapped for a link while copying
            elif stat.S_ISLNK(st.st_mode):
                parent = paths.open_dir(ws_fd, target[:-1], full=target)
                try:
                    _copy_link(ws_fd, source + relative, parent, target[-1])
                except (FileNotFound, InvalidPath, OSError):
                    continue
                finally:
                    os.close(parent)
    finally:
        os.close(start)


# --- unpacking a saved workspace ----------------------------------------------------------------


def extract_archive(ws_fd: int, archive: Parts, *, remove: bool) -> int:
    """Unpack a tar.gz made by ``streams.archive_directory`` into the workspace: directories,
    regular files and links (as links); members that would leave the workspace or go through a
    link are refused. Returns the number of entries written."""
    fd = paths.open_file(ws_fd, archive)
    count = 0
    with os.fdopen(fd, "rb") as handle, tarfile.open(fileobj=handle, mode="r:gz") as tar:
        for member in tar:
            parts = paths.parse_path(member.name)
            if parts == archive:
                continue
            if member.isdir():
                os.close(paths.open_dir(ws_fd, parts, create=True))
            elif member.isfile():
                source = tar.extractfile(member)
                if source is None:
                    continue
                paths.write_chunks(ws_fd, parts, iter(lambda s=source: s.read(_COPY_CHUNK), b""), member.mode & 0o777)
            elif member.issym():
                parent = paths.open_dir(ws_fd, parts[:-1], create=True, full=parts)
                try:
                    os.symlink(member.linkname, parts[-1], dir_fd=parent)
                except FileExistsError:
                    raise FileExists(f"{paths.sandbox_path(parts)} exists already") from None
                finally:
                    os.close(parent)
            else:
                continue  # devices, FIFOs, hard links: never made by archive_directory
            count += 1
    if remove:
        paths.delete(ws_fd, archive, recursive=False)
    return count
