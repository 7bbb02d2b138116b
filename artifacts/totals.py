"""How many artifacts a listing holds, for the line above it: exact from the folder summaries
where they hold the number (the whole organization, a folder's prefix), otherwise counted with
a bound, so that a broad search at a million rows reads at most TOTAL_BOUND + 1 of them and
says "more than TOTAL_BOUND". One query at most."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from artifacts.models import ArtifactFolder, ArtifactPathHead
from artifacts.search import ArtifactSearch
from artifacts.selectors import ArtifactFilters, _filtered, _path_range, _search_q

# 1,000 rather than 10,000: counting 10,001 rows of a broad filter costs four times the page it
# sits over (bench/totals.py, docs/benchmarks.md); 1,001 costs less than the page.
TOTAL_BOUND = 1_000


@dataclass(frozen=True)
class Total:
    count: int
    exact: bool
    noun: str = "artifact"

    def __str__(self) -> str:
        plural = self.noun if self.count == 1 and self.exact else self.noun + "s"
        return f"{self.count:,} {plural}" if self.exact else f"more than {self.count:,} {plural}"


def bounded_count(rows: QuerySet, *, noun: str = "artifact", bound: int | None = None) -> Total:
    # COUNT(*) over a LIMITed subquery: the database stops reading at bound + 1 rows.
    bound = TOTAL_BOUND if bound is None else bound
    counted = rows.order_by()[: bound + 1].count()
    return Total(min(counted, bound), counted <= bound, noun)


def _only_a_folder(filters: ArtifactFilters) -> bool:
    return filters == ArtifactFilters(path_prefix=filters.path_prefix) and (
        not filters.path_prefix or filters.path_prefix.endswith("/")
    )


def artifact_list_total(
    *, organization_id: str, filters: ArtifactFilters, search: ArtifactSearch | None, grouped: bool
) -> Total:
    """How many artifacts (or, grouped, paths) the dashboard's list shows across all its pages."""
    if not search and _only_a_folder(filters):
        if grouped:
            heads = ArtifactPathHead.objects.filter(organization_id=organization_id)
            if filters.path_prefix:
                heads = heads.filter(_path_range(filters.path_prefix))
            return bounded_count(heads, noun="path")
        summary = ArtifactFolder.objects.filter(organization_id=organization_id, path=filters.path_prefix)
        return Total(summary.values_list("artifact_count", flat=True).first() or 0, True)
    artifacts = _filtered(organization_id, filters)
    if filters.path_prefix:
        artifacts = artifacts.filter(_path_range(filters.path_prefix))
    if search:
        artifacts = artifacts.filter(_search_q(organization_id, search))
    if grouped:
        return bounded_count(artifacts.values("remote_path").distinct(), noun="path")
    return bounded_count(artifacts)


def folder_entries_total(*, organization_id: str, path: str) -> Total:
    """How many subfolders and paths lie directly in a folder, for a folder whose listing has pages."""
    folders = bounded_count(
        ArtifactFolder.objects.filter(organization_id=organization_id, parent=path).exclude(path=path)
    )
    heads = bounded_count(ArtifactPathHead.objects.filter(organization_id=organization_id, folder=path))
    return Total(folders.count + heads.count, folders.exact and heads.exact, "item")
