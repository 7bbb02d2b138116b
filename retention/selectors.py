"""Reads of retention policies, scoped to the caller's organization, and the one selection of
what a policy would remove: the preview and the run both use it.

A policy removes only ready artifacts, never one with an alias or a legal hold. The age kinds walk
the (organization, state, created_at, id) index oldest first in keyset batches; keep_last starts
from the paths whose head counts more than N ready versions (ArtifactPathHead, kept by
artifacts/prefixes.py) and ranks the versions of a few of those paths at a time, newest first,
along the (organization, remote_path, -version) index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum, Window
from django.db.models.functions import Coalesce, RowNumber

from artifacts.models import Artifact, ArtifactAlias, ArtifactPathHead, ArtifactState
from core.errors import NotFound
from retention.models import PolicyKind, RetentionPolicy

SAMPLE_SIZE = 20
# Paths of a keep_last policy ranked per query: enough to fill a batch, few enough to rank fast.
PATHS_PER_QUERY = 200


def policy_list(*, organization_id: str) -> QuerySet[RetentionPolicy]:
    return RetentionPolicy.objects.filter(organization_id=organization_id).order_by("name", "id")


def policy_get(*, organization_id: str, policy_id: str) -> RetentionPolicy:
    policy = RetentionPolicy.objects.filter(organization_id=organization_id, id=str(policy_id)[:40]).first()
    if policy is None:
        raise NotFound(f"Retention policy '{str(policy_id)[:40]}' not found", code="RETENTION_POLICY_NOT_FOUND")
    return policy


def _under(prefix: str, field: str = "remote_path") -> Q:
    # A range as well as startswith: SQLite's LIKE ignores case and cannot use a BINARY index.
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": prefix + "\U0010ffff", f"{field}__startswith": prefix})


def _removable(artifacts: QuerySet[Artifact]) -> QuerySet[Artifact]:
    """Never a held version, never an aliased one."""
    aliased = ArtifactAlias.objects.filter(artifact_id=OuterRef("pk"))
    return artifacts.filter(legal_hold=False).filter(~Exists(aliased))


def _ready(policy: RetentionPolicy) -> QuerySet[Artifact]:
    artifacts = Artifact.objects.filter(organization_id=policy.organization_id, state=ArtifactState.READY)
    return artifacts.filter(_under(policy.prefix)) if policy.prefix else artifacts


def _aged(policy: RetentionPolicy, now: datetime) -> QuerySet[Artifact]:
    cutoff = now - timedelta(days=policy.value)
    artifacts = _ready(policy).filter(created_at__lt=cutoff)
    if policy.kind == PolicyKind.NOT_DOWNLOADED:
        # Idle since it was made or last downloaded, whichever is later; null: never downloaded.
        artifacts = artifacts.filter(Q(last_downloaded_at__isnull=True) | Q(last_downloaded_at__lt=cutoff))
    return _removable(artifacts)


def _crowded_paths(policy: RetentionPolicy) -> QuerySet[ArtifactPathHead]:
    heads = ArtifactPathHead.objects.filter(organization_id=policy.organization_id, versions__gt=policy.value)
    return heads.filter(_under(policy.prefix)) if policy.prefix else heads


def _excess(policy: RetentionPolicy, paths) -> QuerySet[Artifact]:
    """The versions of ``paths`` past the newest ``value`` ready ones (held and aliased versions
    count among the kept, and are never removed themselves)."""
    ranked = (
        Artifact.objects.filter(
            organization_id=policy.organization_id, state=ArtifactState.READY, remote_path__in=paths
        )
        .annotate(rank=Window(RowNumber(), partition_by=[F("remote_path")], order_by=F("version").desc()))
        .filter(rank__gt=policy.value)
    )
    return _removable(Artifact.objects.filter(pk__in=ranked.values("pk")))


def removable(policy: RetentionPolicy, *, now: datetime) -> QuerySet[Artifact]:
    """Everything ``policy`` would remove now, as one query (for counting and sampling)."""
    if policy.kind == PolicyKind.KEEP_LAST:
        return _excess(policy, _crowded_paths(policy).values("remote_path"))
    return _aged(policy, now)


def removable_batches(policy: RetentionPolicy, *, now: datetime, batch: int) -> Iterator[list[str]]:
    """The ids ``policy`` would remove now, at most ``batch`` at a time, each batch read by keyset
    after the last one (so rows removed meanwhile are not read again)."""
    if policy.kind == PolicyKind.KEEP_LAST:
        yield from _excess_batches(policy, batch)
        return
    candidates = _aged(policy, now).order_by("created_at", "id")
    after: tuple[datetime, str] | None = None
    while True:
        page = candidates
        if after is not None:
            page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
        rows = list(page.values_list("created_at", "id")[:batch])
        if not rows:
            return
        yield [artifact_id for _, artifact_id in rows]
        after = rows[-1]


def _excess_batches(policy: RetentionPolicy, batch: int) -> Iterator[list[str]]:
    heads = _crowded_paths(policy).order_by("remote_path")
    pending: list[str] = []
    after = None
    while True:
        page = heads.filter(remote_path__gt=after) if after is not None else heads
        paths = list(page.values_list("remote_path", flat=True)[:PATHS_PER_QUERY])
        if not paths:
            break
        pending += _excess(policy, paths).order_by("remote_path", "version").values_list("id", flat=True)
        while len(pending) >= batch:
            yield pending[:batch]
            pending = pending[batch:]
        after = paths[-1]
    if pending:
        yield pending


@dataclass(frozen=True)
class Preview:
    count: int
    bytes: int
    sample: list[Artifact]


def policy_preview(policy: RetentionPolicy, *, now: datetime) -> Preview:
    """What ``policy`` (saved or not) would remove now: how many, how many bytes, the oldest few."""
    chosen = removable(policy, now=now)
    totals = chosen.aggregate(count=Count("id"), bytes=Coalesce(Sum("size"), 0))
    sample = list(chosen.order_by("created_at", "id")[:SAMPLE_SIZE])
    return Preview(count=totals["count"], bytes=totals["bytes"], sample=sample)
