"""The folder view's reads, from the summaries artifacts/prefixes.py keeps: a folder's totals, its
breadcrumbs, then its subfolders (by name) and the paths directly in it, one row per path with
its newest version, in the order asked. Keyset-paged across both; at most four queries a page
whatever the number of artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from artifacts.models import ArtifactFolder, ArtifactPathHead
from core.pagination import decode_json_cursor, encode_json_cursor, invalid_cursor

# sort: (the head's field, descending), then remote_path ascending.
FOLDER_SORTS: dict[str, tuple[str, bool]] = {
    "name": ("remote_path", False),
    "newest": ("latest_created_at", True),
    "size": ("latest_size", True),
}


@dataclass(frozen=True)
class Crumb:
    name: str
    path: str


@dataclass(frozen=True)
class FolderPage:
    path: str
    crumbs: list[Crumb]
    artifact_count: int
    total_size: int
    folders: list[ArtifactFolder]
    heads: list[ArtifactPathHead]
    next_cursor: str | None


def _crumbs(path: str) -> list[Crumb]:
    crumbs, parts = [Crumb("All artifacts", "")], path.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        crumbs.append(Crumb(parts[depth - 1] or "/", "/".join(parts[:depth]) + "/"))
    return crumbs


def _decode(cursor: str, sort: str) -> tuple[str, list[Any]]:
    raw = decode_json_cursor(cursor)
    if len(raw) < 3 or raw[0] != "folder" or raw[1] != sort:
        raise invalid_cursor()
    if raw[2] == "d" and len(raw) == 4 and isinstance(raw[3], str):
        return "d", raw[3:]
    if raw[2] == "f" and len(raw) == 5 and isinstance(raw[4], str):
        value = raw[3]
        field = FOLDER_SORTS[sort][0]
        if field == "latest_created_at":
            try:
                value = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                value = None
        expected = {"latest_created_at": datetime, "latest_size": int, "remote_path": str}[field]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise invalid_cursor()
        return "f", [value, raw[4]]
    raise invalid_cursor()


def _heads_after(sort: str, value: Any, remote_path: str) -> Q:
    field, desc = FOLDER_SORTS[sort]
    if field == "remote_path":
        return Q(remote_path__gt=remote_path)
    bound, past = ("lte", "lt") if desc else ("gte", "gt")
    return Q(**{f"{field}__{bound}": value}) & (
        Q(**{f"{field}__{past}": value}) | Q(**{field: value, "remote_path__gt": remote_path})
    )


def artifact_folder_page(
    *, organization_id: str, path: str = "", sort: str = "name", cursor: str | None = None, limit: int = 50
) -> FolderPage:
    if sort not in FOLDER_SORTS:
        sort = "name"
    if path and not path.endswith("/"):
        path += "/"
    phase, last = _decode(cursor, sort) if cursor else ("d", [])
    summary = (
        ArtifactFolder.objects.filter(organization_id=organization_id, path=path)
        .values_list("artifact_count", "total_size")
        .first()
    )
    count, size = summary or (0, 0)
    folders: list[ArtifactFolder] = []
    if phase == "d":
        children = ArtifactFolder.objects.filter(organization_id=organization_id, parent=path).exclude(path=path)
        if last:
            children = children.filter(path__gt=last[0])
        folders = list(children.order_by("path")[: limit + 1])
        if len(folders) > limit:
            folders = folders[:limit]
            next_cursor = encode_json_cursor(["folder", sort, "d", folders[-1].path])
            return FolderPage(path, _crumbs(path), count, size, folders, [], next_cursor)
        last = []
    field, desc = FOLDER_SORTS[sort]
    heads_query = ArtifactPathHead.objects.filter(organization_id=organization_id, folder=path).select_related("latest")
    if last:
        heads_query = heads_query.filter(_heads_after(sort, *last))
    order = ("remote_path",) if field == "remote_path" else (f"-{field}" if desc else field, "remote_path")
    room = limit - len(folders)
    heads = list(heads_query.order_by(*order)[: room + 1])
    next_cursor = None
    if len(heads) > room:
        heads = heads[:room]
        if heads:
            tail = heads[-1]
            next_cursor = encode_json_cursor(["folder", sort, "f", getattr(tail, field), tail.remote_path])
        else:
            next_cursor = encode_json_cursor(["folder", sort, "d", folders[-1].path])
    return FolderPage(path, _crumbs(path), count, size, folders, heads, next_cursor)
