"""Reads of usage: one organization's page and every organization side by side."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Organization
from artifacts.models import Artifact, ArtifactFolder, ArtifactState
from quotas.counters import usage_read
from quotas.limits import limits_with
from quotas.models import OrganizationQuota, OrganizationUsage
from quotas.selectors import quota_usage
from usage.models import UsageSnapshot

# Days of history the usage page draws, and the staff page's small lines.
HISTORY_DAYS = 90
STAFF_HISTORY_DAYS = 30
LARGEST_COUNT = 20
# Before its first snapshot, an organization with fewer ready artifacts than this has its
# breakdowns grouped on the page (some 25 ms); a larger one waits for the snapshot
# (bench/usage.py: grouping one organization's million rows takes most of a minute).
LIVE_BREAKDOWN_LIMIT = 2_000
# The largest groups kept per breakdown; the rest is summed into one, labelled None.
BREAKDOWN_TOP = 10

Breakdown = list[list]


def _top(groups: list[tuple[str, int, int]]) -> Breakdown:
    groups = sorted(groups, key=lambda group: (-group[1], group[0]))
    kept = [[label, size, count] for label, size, count in groups[:BREAKDOWN_TOP]]
    rest = groups[BREAKDOWN_TOP:]
    if rest:
        kept.append([None, sum(size for _, size, _ in rest), sum(count for _, _, count in rest)])
    return kept


def usage_breakdowns(field: str, *, organization_id: str | None = None) -> dict[str, Breakdown]:
    """Ready artifacts grouped by ``field`` (``sandbox_id`` or ``content_type``), per organization:
    one GROUP BY, over one organization or all of them. A full read of their rows, so it runs in
    the snapshot task, and on a page only before an organization's first snapshot."""
    ready = Artifact.objects.filter(state=ArtifactState.READY)
    if organization_id:
        ready = ready.filter(organization_id=organization_id)
    grouped: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    rows = ready.values("organization_id", field).annotate(size=Sum("size"), count=Count("id")).order_by()
    for row in rows:
        grouped[row["organization_id"]].append((row[field] or "", row["size"] or 0, row["count"]))
    return {org: _top(groups) for org, groups in grouped.items()}


@dataclass(frozen=True)
class UsageOverview:
    history: list[tuple[date, int, int]]  # (day, stored bytes, artifacts), oldest first
    by_prefix: list[tuple[str, int, int]]
    # None until the first snapshot of an organization too large to group on a page.
    by_sandbox: list[tuple[str, int, int]] | None
    by_content_type: list[tuple[str, int, int]] | None
    breakdown_at: datetime | None  # when the sandbox and type breakdowns were counted; None: just now
    largest: list[Artifact]
    quotas: list[tuple[str, int, int | None]]


def _by_prefix(organization_id: str) -> list[tuple[str, int, int]]:
    """Top-level remote_path prefixes from the folder summaries; files at the top level are one more row."""
    folders = list(
        ArtifactFolder.objects.filter(organization_id=organization_id, parent="").values_list(
            "path", "total_size", "artifact_count"
        )
    )
    root = next(((size, count) for path, size, count in folders if path == ""), (0, 0))
    prefixes = [(path, size, count) for path, size, count in folders if path]
    loose = (root[0] - sum(size for _, size, _ in prefixes), root[1] - sum(count for _, _, count in prefixes))
    if loose[1] > 0:
        prefixes.append(("", loose[0], loose[1]))
    rows = [tuple(row) for row in _top(prefixes)]
    return rows  # type: ignore[return-value]


def _few_artifacts(organization_id: str) -> bool:
    # Whether the list index has no row at the limit-th place: the database stops there.
    ready = Artifact.objects.filter(organization_id=organization_id, state=ArtifactState.READY).order_by()
    return not ready[LIVE_BREAKDOWN_LIMIT - 1 : LIVE_BREAKDOWN_LIMIT].exists()


def usage_overview(*, organization: Organization) -> UsageOverview:
    """What the usage page shows; a constant number of queries however many artifacts there are."""
    today = timezone.localdate()
    snapshots = list(
        UsageSnapshot.objects.filter(organization=organization, date__gt=today - timedelta(days=HISTORY_DAYS)).order_by(
            "date"
        )
    )
    history = [(s.date, s.stored_bytes, s.artifact_count) for s in snapshots]
    if not snapshots or snapshots[-1].date != today:
        counters = usage_read(organization_id=organization.id)
        history.append((today, counters.stored_bytes, counters.artifact_count))
    latest = snapshots[-1] if snapshots else None
    by_sandbox: Breakdown | None = None
    by_type: Breakdown | None = None
    breakdown_at = None
    if latest is not None:
        by_sandbox, by_type, breakdown_at = latest.by_sandbox, latest.by_content_type, latest.taken_at
    elif _few_artifacts(organization.id):
        by_sandbox = usage_breakdowns("sandbox_id", organization_id=organization.id).get(organization.id, [])
        by_type = usage_breakdowns("content_type", organization_id=organization.id).get(organization.id, [])
    largest = list(
        Artifact.objects.visible().filter(organization_id=organization.id).order_by("-size", "-id")[:LARGEST_COUNT]
    )
    return UsageOverview(
        history=history,
        by_prefix=_by_prefix(organization.id),
        by_sandbox=None if by_sandbox is None else [tuple(row) for row in by_sandbox],  # type: ignore[misc]
        by_content_type=None if by_type is None else [tuple(row) for row in by_type],  # type: ignore[misc]
        breakdown_at=breakdown_at,
        largest=largest,
        quotas=quota_usage(organization, with_largest=False),
    )


@dataclass(frozen=True)
class OrganizationUsageRow:
    organization: Organization
    stored_bytes: int
    artifact_count: int
    bytes_limit: int | None
    artifacts_limit: int | None
    history: list[tuple[date, int]]  # (day, stored bytes), oldest first


def usage_all_organizations() -> list[OrganizationUsageRow]:
    """Every organization's use and limits and its last days, in four queries."""
    since = timezone.localdate() - timedelta(days=STAFF_HISTORY_DAYS)
    counters = {row.organization_id: row for row in OrganizationUsage.objects.all()}
    overrides = {row.organization_id: row for row in OrganizationQuota.objects.all()}
    history: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for org_id, day, stored in (
        UsageSnapshot.objects.filter(date__gt=since)
        .order_by("date")
        .values_list("organization_id", "date", "stored_bytes")
    ):
        history[org_id].append((day, stored))
    rows = []
    for organization in Organization.objects.order_by("name", "id"):
        counter = counters.get(organization.id)
        limits = limits_with(overrides.get(organization.id))
        rows.append(
            OrganizationUsageRow(
                organization=organization,
                stored_bytes=counter.stored_bytes if counter else 0,
                artifact_count=counter.artifact_count if counter else 0,
                bytes_limit=limits.bytes,
                artifacts_limit=limits.artifacts,
                history=history.get(organization.id, []),
            )
        )
    return rows
