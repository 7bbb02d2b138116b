from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from artifacts.models import Artifact
from artifacts.search import ArtifactSearch, long_prefixes, matching_ids, matching_keys, needs_recheck, recheck
from core.errors import InvalidInput, NotFound
from core.pagination import (
    decode_json_cursor,
    decode_time_cursor,
    encode_json_cursor,
    encode_time_cursor,
    invalid_cursor,
    newest_first_page,
)
from sandboxes.models import Sandbox
from transfers.models import Transfer, TransferKind, TransferState


def artifact_get(*, organization_id: str, artifact_id: str) -> Artifact:
    """A visible artifact of the organization; the same 404 for another's, a pending or a deleted one."""
    artifact = (
        Artifact.objects.visible()
        .select_related("blob")
        .filter(organization_id=organization_id, id=artifact_id)
        .first()
    )
    if artifact is None:
        raise NotFound(f"Artifact '{artifact_id}' not found", code="ARTIFACT_NOT_FOUND")
    return artifact


def artifact_list(
    *,
    organization_id: str,
    sandbox_id: str | None = None,
    session_id: str | None = None,
    prefix: str | None = None,
    content_type: str | None = None,
) -> QuerySet[Artifact]:
    artifacts = Artifact.objects.visible().filter(organization_id=organization_id)
    if sandbox_id:
        artifacts = artifacts.filter(sandbox_id=sandbox_id)
    if session_id:
        artifacts = artifacts.filter(session_id=session_id)
    if prefix:
        # A narrow prefix is read off the path index; a broad one is cheaper as a filter on the list index.
        artifacts = artifacts.filter(
            _path_range(prefix)
            if _prefix_is_narrow(organization_id, prefix, PREFIX_INDEX_LIMIT)
            else Q(remote_path__startswith=prefix)
        )
    if content_type:
        artifacts = artifacts.filter(content_type=content_type)
    return artifacts.order_by("-created_at", "-id")


def artifact_versions(*, organization_id: str, remote_path: str) -> QuerySet[Artifact]:
    return (
        Artifact.objects.visible().filter(organization_id=organization_id, remote_path=remote_path).order_by("-version")
    )


# A remote_path prefix with fewer artifacts than this is read through the path index and sorted;
# a broader one is tested row by row along the order's index.
PREFIX_INDEX_LIMIT = 5_000
# Grouping by path walks the path index; when a filter (a sandbox, a session, a type, dates)
# leaves fewer artifacts than this, they are read through the filter's index and grouped here.
GROUP_IN_MEMORY_LIMIT = 5_000
# A search newest or oldest first reads matches from the index this many at a time at most.
SEARCH_BATCH_MAX = 5_000

# Each order is that of an index starting with (organization, ...), so a page is one range scan.
ARTIFACT_SORTS: dict[str, tuple[tuple[str, bool], tuple[str, bool]]] = {
    "newest": (("created_at", True), ("id", True)),
    "oldest": (("created_at", False), ("id", False)),
    "name": (("remote_path", False), ("version", True)),
    "size": (("size", True), ("id", True)),
    "downloads": (("download_count", True), ("id", True)),
    # Never-downloaded artifacts come after every downloaded one (see _last_downloaded_page).
    "last_downloaded": (("last_downloaded_at", True), ("id", True)),
}


@dataclass(frozen=True)
class ArtifactFilters:
    sandbox_id: str = ""
    session_id: str = ""
    path_prefix: str = ""
    content_type: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None
    # Never downloaded, or last downloaded before this.
    not_downloaded_since: datetime | None = None


@dataclass(frozen=True)
class ArtifactBrowsePage:
    artifacts: list[Artifact]
    next_cursor: str | None


def _path_range(prefix: str) -> Q:
    # SQLite's LIKE ignores case, so it cannot use a BINARY index; a range can, on any database.
    # startswith stays as the exact test (U+10FFFF sorts after every other character).
    return Q(remote_path__gte=prefix, remote_path__lt=prefix + "\U0010ffff", remote_path__startswith=prefix)


def _filtered(organization_id: str, filters: ArtifactFilters) -> QuerySet[Artifact]:
    artifacts = Artifact.objects.visible().filter(organization_id=organization_id)
    if filters.sandbox_id:
        artifacts = artifacts.filter(sandbox_id=filters.sandbox_id)
    if filters.session_id:
        artifacts = artifacts.filter(session_id=filters.session_id)
    if filters.content_type:
        artifacts = artifacts.filter(content_type=filters.content_type)
    if filters.created_from:
        artifacts = artifacts.filter(created_at__gte=filters.created_from)
    if filters.created_before:
        artifacts = artifacts.filter(created_at__lt=filters.created_before)
    if filters.not_downloaded_since:
        artifacts = artifacts.filter(
            Q(last_downloaded_at__isnull=True) | Q(last_downloaded_at__lt=filters.not_downloaded_since)
        )
    return artifacts


def _prefix_is_narrow(organization_id: str, prefix: str, limit: int) -> bool:
    # Whether a row exists at the limit-th place of the path index's range: the database walks
    # the index (remote_path is in it) and stops there, and sends back one row at most.
    in_range = Artifact.objects.filter(
        organization_id=organization_id, remote_path__gte=prefix, remote_path__lt=prefix + "\U0010ffff"
    ).order_by("remote_path")
    return not in_range[limit - 1 : limit].exists()


def _search_q(organization_id: str, search: ArtifactSearch) -> Q:
    condition = Q(id__in=matching_ids(organization_id, search))
    for key, value in long_prefixes(search):
        condition &= Q(**{f"metadata__{key}__istartswith": value})
    return condition


def _encode_search_cursor(sort: str, key: int) -> str:
    return encode_json_cursor(["search", sort, key])


def _decode_search_cursor(cursor: str, sort: str) -> int:
    raw = decode_json_cursor(cursor)
    if len(raw) != 3 or raw[:2] != ["search", sort] or not isinstance(raw[2], int) or isinstance(raw[2], bool):
        raise invalid_cursor()
    return raw[2]


def _search_page(
    organization_id: str, search: ArtifactSearch, *, sort: str, cursor: str | None, limit: int
) -> ArtifactBrowsePage:
    """Newest (or oldest) first, straight from the index's order: each round reads the next
    matching keys and their artifacts, two queries; a round comes up short only when matches are
    no longer visible (expired, not yet swept) or fail a long key:value check."""
    after = _decode_search_cursor(cursor, sort) if cursor else None
    found: list[tuple[int, Artifact]] = []
    batch = limit + 1
    checked = needs_recheck(search)
    while len(found) <= limit:
        keys = matching_keys(organization_id, search, newest_first=sort == "newest", after=after, limit=batch)
        if not keys:
            break
        # By primary key alone: with the organization and state in the query too, SQLite reads
        # the organization's whole list index. Both are checked on the rows instead.
        rows = {row.id: row for row in Artifact.objects.filter(id__in=[id for _, id in keys]).order_by()}
        for key, artifact_id in keys:
            row = rows.get(artifact_id)
            if row is None or row.organization_id != organization_id or not row.is_visible:
                continue
            if not checked or recheck(search, row):
                found.append((key, row))
        if len(keys) < batch:
            break
        after, batch = keys[-1][0], min(batch * 4, SEARCH_BATCH_MAX)
    next_cursor = _encode_search_cursor(sort, found[limit - 1][0]) if len(found) > limit else None
    return ArtifactBrowsePage([row for _, row in found[:limit]], next_cursor)


def _sort_key(artifact: Artifact, sort: str) -> list[Any]:
    return [getattr(artifact, name) for name, _ in ARTIFACT_SORTS[sort]]


def _encode_sort_cursor(values: list[Any], sort: str) -> str:
    if sort == "newest":
        return encode_time_cursor(*values)
    return encode_json_cursor([sort, *values])


def _decode_sort_cursor(cursor: str, sort: str) -> list[Any]:
    if sort == "newest":
        return list(decode_time_cursor(cursor))
    raw = decode_json_cursor(cursor)
    fields = ARTIFACT_SORTS[sort]
    if len(raw) != len(fields) + 1 or raw[0] != sort:
        raise invalid_cursor()
    values = []
    for (name, _), value in zip(fields, raw[1:], strict=True):
        if name == "created_at" and isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise invalid_cursor() from None
        expected = {
            "created_at": datetime,
            "id": str,
            "remote_path": str,
            "version": int,
            "size": int,
            "download_count": int,
        }[name]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise invalid_cursor()
        values.append(value)
    return values


def _after(values: list[Any], sort: str) -> Q:
    """Rows after ``values`` in the order. The plain bound on the first field lets the database
    start its index scan there rather than test the OR on every row before it."""
    (first, first_desc), (second, second_desc) = ARTIFACT_SORTS[sort]
    a, b = values
    bound, past_a = ("lte", "lt") if first_desc else ("gte", "gt")
    past_b = "lt" if second_desc else "gt"
    return Q(**{f"{first}__{bound}": a}) & (Q(**{f"{first}__{past_a}": a}) | Q(**{first: a, f"{second}__{past_b}": b}))


def _decode_last_downloaded_cursor(cursor: str) -> tuple[datetime | None, str]:
    raw = decode_json_cursor(cursor)
    if len(raw) != 3 or raw[0] != "last_downloaded" or not isinstance(raw[2], str):
        raise invalid_cursor()
    if raw[1] is None:
        return None, raw[2]
    try:
        return datetime.fromisoformat(raw[1]), raw[2]
    except (TypeError, ValueError):
        raise invalid_cursor() from None


def _last_downloaded_page(artifacts: QuerySet[Artifact], *, cursor: str | None, limit: int) -> ArtifactBrowsePage:
    """Most recently downloaded first, then the never downloaded. Databases disagree on where
    NULLs sort, so the two halves are read apart, each one range of artifact_org_last_download:
    two queries at most."""
    after_time, after_id = _decode_last_downloaded_cursor(cursor) if cursor else (None, "")
    rows: list[Artifact] = []
    if not cursor or after_time is not None:
        downloaded = artifacts.filter(last_downloaded_at__isnull=False).order_by("-last_downloaded_at", "-id")
        if cursor:
            downloaded = downloaded.filter(_after([after_time, after_id], "last_downloaded"))
        rows = list(downloaded[: limit + 1])
    if len(rows) <= limit:
        never = artifacts.filter(last_downloaded_at__isnull=True).order_by("-id")
        if cursor and after_time is None:
            never = never.filter(id__lt=after_id)
        rows += list(never[: limit + 1 - len(rows)])
    if len(rows) <= limit:
        return ArtifactBrowsePage(rows, None)
    last = rows[limit - 1]
    return ArtifactBrowsePage(rows[:limit], encode_json_cursor(["last_downloaded", last.last_downloaded_at, last.id]))


def artifact_browse(
    *,
    organization_id: str,
    filters: ArtifactFilters | None = None,
    search: ArtifactSearch | None = None,
    sort: str = "newest",
    cursor: str | None = None,
    limit: int = 50,
) -> ArtifactBrowsePage:
    """A page of the dashboard's listing, keyset-paginated in the chosen order, complete whatever
    the search. A constant number of queries whatever the number of artifacts: one, or two with
    a broad prefix or a search (searches newest or oldest first: two per round, see _search_page)."""
    if sort not in ARTIFACT_SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(ARTIFACT_SORTS)}", details={"field": "sort"})
    filters = filters or ArtifactFilters()
    if search and sort in ("newest", "oldest") and filters == ArtifactFilters():
        return _search_page(organization_id, search, sort=sort, cursor=cursor, limit=limit)
    artifacts = _filtered(organization_id, filters)
    if search:
        artifacts = artifacts.filter(_search_q(organization_id, search))
    if filters.path_prefix:
        if sort == "name" or _prefix_is_narrow(organization_id, filters.path_prefix, PREFIX_INDEX_LIMIT):
            artifacts = artifacts.filter(_path_range(filters.path_prefix))
        else:
            # Many artifacts under it: read in the order's own index, testing the prefix.
            artifacts = artifacts.filter(remote_path__startswith=filters.path_prefix)
    if sort == "last_downloaded":
        return _last_downloaded_page(artifacts, cursor=cursor, limit=limit)
    artifacts = artifacts.order_by(*[f"-{name}" if desc else name for name, desc in ARTIFACT_SORTS[sort]])
    if cursor:
        artifacts = artifacts.filter(_after(_decode_sort_cursor(cursor, sort), sort))
    if sort == "newest":
        # The API's pagination, applied to the filtered rows (the cursor is already in the query).
        page = newest_first_page(artifacts, limit=limit, cursor=None)
        return ArtifactBrowsePage(page.rows, page.next_cursor)
    rows = list(artifacts[: limit + 1])
    if len(rows) > limit:
        return ArtifactBrowsePage(rows[:limit], _encode_sort_cursor(_sort_key(rows[limit - 1], sort), sort))
    return ArtifactBrowsePage(rows, None)


@dataclass(frozen=True)
class PathGroup:
    remote_path: str
    versions: int
    latest: Artifact


@dataclass(frozen=True)
class PathGroupPage:
    groups: list[PathGroup]
    next_cursor: str | None


def artifact_path_groups(
    *,
    organization_id: str,
    filters: ArtifactFilters | None = None,
    search: ArtifactSearch | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> PathGroupPage:
    """One row per remote_path, in path order, with its newest matching version and how many
    versions match; keyset-paginated along the (organization, remote_path, version) index.
    At most four queries."""
    filters = filters or ArtifactFilters()
    artifacts = _filtered(organization_id, filters)
    if filters.path_prefix:
        artifacts = artifacts.filter(_path_range(filters.path_prefix))
    if cursor:
        artifacts = artifacts.filter(remote_path__gt=_decode_path_cursor(cursor))
    narrowed = (
        filters.sandbox_id
        or filters.session_id
        or filters.content_type
        or filters.created_from
        or filters.created_before
    )
    if narrowed:
        sample = list(artifacts.order_by().values_list("remote_path", "version")[:GROUP_IN_MEMORY_LIMIT])
        if len(sample) < GROUP_IN_MEMORY_LIMIT:
            if search:
                sample = list(
                    artifacts.filter(_search_q(organization_id, search))
                    .order_by()
                    .values_list("remote_path", "version")
                )
            return _group_page(organization_id, _group_rows(sample), limit=limit)
    if search:
        artifacts = artifacts.filter(_search_q(organization_id, search))
    groups = list(
        artifacts.order_by()
        .values("organization_id", "remote_path")
        .annotate(versions=Count("id"), latest_version=Max("version"))
        .order_by("organization_id", "remote_path")[: limit + 1]
        .values_list("remote_path", "versions", "latest_version")
    )
    return _group_page(organization_id, groups, limit=limit)


def _group_rows(rows: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(remote_path, versions, newest version) in path order, from (remote_path, version) rows."""
    counts: dict[str, list[int]] = {}
    for remote_path, version in rows:
        entry = counts.setdefault(remote_path, [0, 0])
        entry[0] += 1
        entry[1] = max(entry[1], version or 0)
    return [(path, count, newest) for path, (count, newest) in sorted(counts.items())]


def _group_page(organization_id: str, groups: list[tuple[str, int, int]], *, limit: int) -> PathGroupPage:
    next_cursor = None
    if len(groups) > limit:
        groups = groups[:limit]
        next_cursor = _encode_path_cursor(groups[-1][0])
    latest: dict[tuple[str, int], Artifact] = {}
    if groups:
        # One probe of the (organization, remote_path, version) unique index per group.
        wanted = Q()
        for remote_path, _versions, version in groups:
            wanted |= Q(organization_id=organization_id, remote_path=remote_path, version=version)
        latest = {(a.remote_path, a.version): a for a in Artifact.objects.filter(wanted)}
    page = [
        PathGroup(path, versions, latest[(path, version)])
        for path, versions, version in groups
        if (path, version) in latest
    ]
    return PathGroupPage(page, next_cursor)


def _encode_path_cursor(remote_path: str) -> str:
    return encode_json_cursor(["path", remote_path])


def _decode_path_cursor(cursor: str) -> str:
    raw = decode_json_cursor(cursor)
    if len(raw) != 2 or raw[0] != "path" or not isinstance(raw[1], str):
        raise invalid_cursor()
    return raw[1]


@dataclass(frozen=True)
class Lineage:
    """Where an artifact came from and where it went: the sandbox and session that made it, and
    the copies of it written into sandboxes. ``known_sandboxes`` holds the ids that still have a
    sandbox row of the organization, so a page can link them."""

    sandbox_id: str
    session_id: str
    copies: list[Transfer]
    known_sandboxes: frozenset[str]


def artifact_lineage(*, artifact: Artifact, copies_limit: int = 20) -> Lineage:
    copies = list(
        Transfer.objects.filter(artifact=artifact, kind=TransferKind.DOWNLOAD, state=TransferState.SUCCEEDED).order_by(
            "-finished_at", "-created_at"
        )[:copies_limit]
    )
    ids = {transfer.sandbox_id for transfer in copies} | ({artifact.sandbox_id} if artifact.sandbox_id else set())
    known = (
        frozenset(
            Sandbox.objects.filter(organization_id=artifact.organization_id, id__in=ids).values_list("id", flat=True)
        )
        if ids
        else frozenset()
    )
    return Lineage(artifact.sandbox_id, artifact.session_id, copies, known)
