"""A folder artifact's manifest: its entries checked, completed and hashed into the folder's checksum.

Every way a manifest arrives (a directory walked in a sandbox, the dashboard's folder upload) and
every way it leaves (into a sandbox, as an archive) goes through ``manifest_check``, so an entry
that could land outside its folder is refused where it is made and again where it is used.

The canonical manifest, whose SHA-256 is the folder's checksum (``sha256:<hex>``): the entries
sorted by the UTF-8 bytes of their path, each one line of JSON with the keys in this order and no
spaces, ``ensure_ascii`` off, ending in ``\\n``::

    {"path":"a/b.txt","type":"file","mode":420,"size":5,"sha256":"<hex>","link_target":""}

``type`` is ``file``, ``directory`` or ``symlink``; ``mode`` the permission bits (decimal);
``size`` and ``sha256`` are 0 and "" except for files; ``link_target`` is "" except for links.
Modification times are recorded but not hashed: the checksum names what the folder holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from django.conf import settings

from core.errors import StowageError

MAX_PATH_BYTES = 1024  # parent and path together stay under PostgreSQL's index row limit
MAX_NAME_BYTES = 255
MAX_LINK_BYTES = 4096
TYPES = ("file", "directory", "symlink")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What json.dumps(line, ensure_ascii=False, separators=(",", ":")) would build for every line.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class ManifestInvalid(StowageError):
    code = "INVALID_MANIFEST"


class FolderTooLarge(StowageError):
    code = "FOLDER_TOO_LARGE"


class FolderTooManyEntries(StowageError):
    code = "FOLDER_TOO_MANY_ENTRIES"


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    type: str
    mode: int = 0o644
    size: int = 0
    sha256: str = ""
    mtime: datetime | None = None
    link_target: str = ""

    @property
    def mtime_ns(self) -> int:
        return int(self.mtime.timestamp()) * 1_000_000_000 + self.mtime.microsecond * 1000 if self.mtime else 0

    @property
    def parent(self) -> str:
        return self.path.rpartition("/")[0]

    def canonical(self) -> bytes:
        line = {
            "path": self.path,
            "type": self.type,
            "mode": self.mode,
            "size": self.size,
            "sha256": self.sha256,
            "link_target": self.link_target,
        }
        return _CANONICAL.encode(line).encode("utf-8") + b"\n"


def _refuse(message: str, path: object) -> ManifestInvalid:
    shown = path if isinstance(path, str) else repr(path)
    shown = shown.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:200]
    return ManifestInvalid(message, details={"path": shown})


def check_entry_path(path: object) -> str:
    """A folder entry's path: relative, ``/``-separated, no empty, ``.`` or ``..`` component, no NUL,
    UTF-8, each name at most 255 bytes and the whole at most 1024."""
    if not isinstance(path, str) or path == "":
        raise _refuse("an entry's path must be a non-empty string", path)
    if "\x00" in path:
        raise _refuse("an entry's path must not contain NUL", path)
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse("an entry's path must be UTF-8 text", path) from None
    if path.startswith("/"):
        raise _refuse(f"{path[:200]!r} is absolute; entries are relative to their folder", path)
    if len(encoded) > MAX_PATH_BYTES:
        raise _refuse(f"an entry's path is longer than {MAX_PATH_BYTES} bytes", path)
    for name in path.split("/"):
        if name in ("", ".", ".."):
            raise _refuse(f"{path[:200]!r} has an empty, '.' or '..' component", path)
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise _refuse(f"a name in {path[:200]!r} is longer than {MAX_NAME_BYTES} bytes", path)
    return path


def _check_one(entry: ManifestEntry) -> ManifestEntry:
    check_entry_path(entry.path)
    if entry.type not in TYPES:
        raise _refuse(f"an entry's type is one of {', '.join(TYPES)}", entry.path)
    if not isinstance(entry.mode, int) or isinstance(entry.mode, bool) or not 0 <= entry.mode <= 0o7777:
        raise _refuse("an entry's mode is a permission number from 0 to 0o7777", entry.path)
    if entry.type == "file":
        if not isinstance(entry.size, int) or entry.size < 0:
            raise _refuse("a file entry's size is a number of bytes", entry.path)
        if not isinstance(entry.sha256, str) or not _SHA256.match(entry.sha256):
            raise _refuse("a file entry's sha256 is 64 lowercase hex digits", entry.path)
        return replace(entry, link_target="") if entry.link_target else entry
    if entry.type == "symlink":
        target = entry.link_target
        if not isinstance(target, str) or target == "" or "\x00" in target:
            raise _refuse("a link entry's target is a non-empty string without NUL", entry.path)
        try:
            if len(target.encode("utf-8")) > MAX_LINK_BYTES:
                raise _refuse(f"a link target is longer than {MAX_LINK_BYTES} bytes", entry.path)
        except UnicodeEncodeError:
            raise _refuse("a link target must be UTF-8 text", entry.path) from None
        return replace(entry, size=0, sha256="") if entry.size or entry.sha256 else entry
    if entry.size or entry.sha256 or entry.link_target:
        return replace(entry, size=0, sha256="", link_target="")
    return entry


def manifest_check(entries: Iterable[ManifestEntry], *, add_parents: bool = False) -> list[ManifestEntry]:
    """The entries checked and sorted canonically (by path bytes). Refused: a bad path, type, mode or
    digest, a path given twice, an entry inside a link or a file, over the entry or byte limit.
    With ``add_parents``, missing directories are added (mode 0755); otherwise each is required."""
    by_path: dict[str, ManifestEntry] = {}
    total = 0
    for raw in entries:
        entry = _check_one(raw)
        if entry.path in by_path:
            raise _refuse(f"{entry.path[:200]!r} is listed twice", entry.path)
        by_path[entry.path] = entry
        total += entry.size
        if len(by_path) > settings.FOLDER_MAX_ENTRIES:
            raise FolderTooManyEntries(
                f"a folder holds at most {settings.FOLDER_MAX_ENTRIES} entries; nothing was stored",
                details={"limit": settings.FOLDER_MAX_ENTRIES},
            )
        if total > settings.FOLDER_MAX_BYTES:
            raise FolderTooLarge(
                f"a folder holds at most {settings.FOLDER_MAX_BYTES} bytes of files; nothing was stored",
                details={"limit": settings.FOLDER_MAX_BYTES},
            )
    for entry in list(by_path.values()):
        parent = entry.parent
        while parent:
            above = by_path.get(parent)
            if above is None:
                if not add_parents:
                    raise _refuse(f"{entry.path[:200]!r} is inside {parent[:200]!r}, which is not listed", entry.path)
                by_path[parent] = ManifestEntry(path=parent, type="directory", mode=0o755)
            elif above.type == "symlink":
                raise _refuse(f"{entry.path[:200]!r} goes through the link {parent[:200]!r}", entry.path)
            elif above.type != "directory":
                raise _refuse(f"{entry.path[:200]!r} is inside the file {parent[:200]!r}", entry.path)
            else:
                break  # its own parents were (or will be) checked as an entry of their own
            parent = parent.rpartition("/")[0]
    if len(by_path) > settings.FOLDER_MAX_ENTRIES:
        raise FolderTooManyEntries(
            f"a folder holds at most {settings.FOLDER_MAX_ENTRIES} entries; nothing was stored",
            details={"limit": settings.FOLDER_MAX_ENTRIES},
        )
    return sorted(by_path.values(), key=lambda entry: entry.path.encode("utf-8"))


def manifest_checksum(entries: Iterable[ManifestEntry]) -> str:
    """``sha256:<hex>`` of the canonical manifest; ``entries`` in canonical order (manifest_check)."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry.canonical())
    return f"sha256:{digest.hexdigest()}"


def manifest_size(entries: Iterable[ManifestEntry]) -> int:
    return sum(entry.size for entry in entries if entry.type == "file")
