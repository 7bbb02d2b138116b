"""Reads inside a folder artifact: its entries a page at a time, one entry by path. The artifact
comes from ``artifacts.selectors.artifact_get``, so it is already the caller's organization's."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from artifacts.manifests import MAX_PATH_BYTES
from artifacts.models import Artifact, ArtifactEntry
from core.errors import InvalidInput, NotFound, StowageError


class NotAFolder(StowageError):
    code = "NOT_A_FOLDER"


@dataclass(frozen=True)
class EntryPage:
    entries: list[ArtifactEntry]
    next_cursor: str | None


def _folder(artifact: Artifact) -> Artifact:
    if not artifact.is_folder:
        raise NotAFolder(f"artifact {artifact.id} is a file, not a folder; its bytes are at /content")
    return artifact


def _check(value: str, field: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES or "\x00" in value:
        raise InvalidInput(f"{field} is not a folder path", details={"field": field})
    return value.strip("/") if field == "dir" else value.lstrip("/")


def encode_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode("utf-8")).decode("ascii")


def decode_cursor(cursor: str) -> str:
    try:
        path = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
        if not path:
            raise ValueError(cursor)
        return path
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput("cursor is not one this listing gave", code="INVALID_CURSOR") from None


def entry_list(
    *, artifact: Artifact, prefix: str = "", directory: str | None = None, cursor: str | None = None, limit: int = 500
) -> EntryPage:
    """Entries by path: those of ``directory`` only ('' is the top), or every one whose path starts
    with ``prefix``; keyset-paged on (artifact, path), one index range per page."""
    rows = ArtifactEntry.objects.filter(artifact_id=_folder(artifact).id)
    if directory is not None:
        rows = rows.filter(parent=_check(directory, "dir"))
    elif prefix:
        rows = rows.filter(path__startswith=_check(prefix, "prefix"))
    if cursor:
        rows = rows.filter(path__gt=decode_cursor(cursor))
    page = list(rows.select_related("blob").order_by("path")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return EntryPage(page, encode_cursor(page[-1].path) if more and page else None)


def entry_get(*, artifact: Artifact, path: str) -> ArtifactEntry:
    path = _check(path, "path").strip("/")
    entry = ArtifactEntry.objects.select_related("blob").filter(artifact_id=_folder(artifact).id, path=path).first()
    if entry is None:
        raise NotFound(f"the folder has no entry {path[:200]!r}", code="FILE_NOT_FOUND")
    return entry


def entry_file(*, artifact: Artifact, path: str) -> ArtifactEntry:
    """A file entry whose bytes are stored; a directory or a link is not one (400 NOT_A_FILE)."""
    entry = entry_get(artifact=artifact, path=path)
    if entry.type != "file":
        raise InvalidInput(f"{path[:200]!r} is a {entry.type}, not a file", code="NOT_A_FILE")
    if entry.blob_id is None:
        raise NotFound(f"the stored bytes of {path[:200]!r} are gone", code="FILE_NOT_FOUND")
    return entry


def breadcrumbs(directory: str) -> list[tuple[str, str]]:
    """(name, path) of each directory from the top down to ``directory``."""
    crumbs: list[tuple[str, str]] = []
    path = ""
    for name in [part for part in directory.split("/") if part]:
        path = f"{path}/{name}" if path else name
        crumbs.append((name, path))
    return crumbs
