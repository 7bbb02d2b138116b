"""The folder summaries behind the folder view: for every remote_path prefix ending in ``/`` (and
the root, ``""``) how many ready artifacts lie under it and their size (ArtifactFolder), and for
every remote_path its newest version (ArtifactPathHead). Both change only here, called inside the
transactions that publish (transfers.worker.publish_upload), move to the trash and restore
(artifacts.trash), so they stay in step with the artifacts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import F, OuterRef, Subquery

from artifacts.models import Artifact, ArtifactFolder, ArtifactPathHead, ArtifactState

FOLDER_TABLE = "artifacts_artifactfolder"
_BUMP = (
    f"INSERT INTO {FOLDER_TABLE} (organization_id, path, parent, artifact_count, total_size) "  # noqa: S608
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (organization_id, path) DO UPDATE SET "
    f"artifact_count = {FOLDER_TABLE}.artifact_count + excluded.artifact_count, "
    f"total_size = {FOLDER_TABLE}.total_size + excluded.total_size"
)
HEAD_TABLE = "artifacts_artifactpathhead"
# One statement per head, sent together: bulk_update's CASE over every row of a batch costs the
# square of its size on SQLite.
_HEAD_SET = (
    f"UPDATE {HEAD_TABLE} SET versions = %s, latest_id = %s, latest_created_at = %s, latest_size = %s "  # noqa: S608
    "WHERE id = %s"
)


def folder_of(remote_path: str) -> str:
    """The folder a remote_path lies directly in: ``a/b/`` for ``a/b/c.txt``, ``""`` for ``c.txt``."""
    head, slash, _ = remote_path.rpartition("/")
    return head + slash


def folder_chain(folder: str) -> list[tuple[str, str]]:
    """(path, parent) of the root and every folder down to ``folder``."""
    chain = [("", "")]
    parts = folder.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        chain.append(("/".join(parts[:depth]) + "/", chain[-1][0]))
    return chain


def _bump(organization_id: str, remote_path: str, count: int, size: int) -> None:
    chain = folder_chain(folder_of(remote_path))
    with connection.cursor() as cursor:
        cursor.executemany(_BUMP, [(organization_id, path, parent, count, size) for path, parent in chain])
    if count < 0:
        ArtifactFolder.objects.filter(
            organization_id=organization_id, path__in=[path for path, _ in chain], artifact_count__lte=0
        ).delete()


def folders_add(*, artifact: Artifact, size: int, created_at: datetime) -> None:
    """A new newest version of its remote_path became ready (publish holds the path's lock)."""
    _bump(artifact.organization_id, artifact.remote_path, 1, size)
    updated = ArtifactPathHead.objects.filter(
        organization_id=artifact.organization_id, remote_path=artifact.remote_path
    ).update(latest=artifact, latest_created_at=created_at, latest_size=size, versions=F("versions") + 1)
    if not updated:
        ArtifactPathHead.objects.create(
            organization_id=artifact.organization_id,
            folder=folder_of(artifact.remote_path),
            remote_path=artifact.remote_path,
            latest=artifact,
            latest_created_at=created_at,
            latest_size=size,
            versions=1,
        )


def folders_remove(*, artifact: Artifact) -> None:
    """A ready artifact is no longer (already marked so in this transaction)."""
    _bump(artifact.organization_id, artifact.remote_path, -1, -artifact.size)
    head = (
        ArtifactPathHead.objects.select_for_update()
        .filter(organization_id=artifact.organization_id, remote_path=artifact.remote_path)
        .first()
    )
    if head is None:
        return
    newest = (
        Artifact.objects.filter(
            organization_id=artifact.organization_id, remote_path=artifact.remote_path, state=ArtifactState.READY
        )
        .order_by("-version")
        .first()
    )
    if newest is None:
        head.delete()
        return
    head.versions = max(head.versions - 1, 1)
    head.latest, head.latest_created_at, head.latest_size = newest, newest.created_at, newest.size
    head.save(update_fields=["versions", "latest", "latest_created_at", "latest_size"])


def folders_remove_many(*, organization_id: str, artifacts: list[Artifact]) -> None:
    """``folders_remove`` for many ready artifacts of one organization at once (a bulk move to the
    trash, already marked so in this transaction), in a constant number of statements."""
    if artifacts:
        _bump_many(organization_id, [(a.remote_path, -1, -a.size) for a in artifacts])
        _heads_refresh(organization_id, Counter(a.remote_path for a in artifacts), -1)


def folders_restore(*, artifact: Artifact) -> None:
    """An artifact is ready again (restored from the trash, marked so in this transaction); it is
    its path's newest version only if no newer one is ready."""
    _bump_many(artifact.organization_id, [(artifact.remote_path, 1, artifact.size)])
    if not _heads_refresh(artifact.organization_id, Counter([artifact.remote_path]), 1):
        ArtifactPathHead.objects.create(
            organization_id=artifact.organization_id,
            folder=folder_of(artifact.remote_path),
            remote_path=artifact.remote_path,
            latest=artifact,
            latest_created_at=artifact.created_at,
            latest_size=artifact.size,
            versions=1,
        )


def _bump_many(organization_id: str, changes: list[tuple[str, int, int]]) -> None:
    totals: dict[tuple[str, str], list[int]] = {}
    for remote_path, count, size in changes:
        for path, parent in folder_chain(folder_of(remote_path)):
            entry = totals.setdefault((path, parent), [0, 0])
            entry[0] += count
            entry[1] += size
    with connection.cursor() as cursor:
        cursor.executemany(
            _BUMP, [(organization_id, path, parent, count, size) for (path, parent), (count, size) in totals.items()]
        )
    ArtifactFolder.objects.filter(
        organization_id=organization_id, path__in=[path for path, _ in totals], artifact_count__lte=0
    ).delete()


def _heads_refresh(organization_id: str, changed: Counter, sign: int) -> int:
    """Point each changed path's head at its newest ready version (dropping heads left with
    none) and move its count of versions by ``sign`` per artifact; how many heads existed."""
    newest = Artifact.objects.filter(
        organization_id=organization_id, remote_path=OuterRef("remote_path"), state=ArtifactState.READY
    ).order_by("-version")
    heads = list(
        ArtifactPathHead.objects.select_for_update()
        .filter(organization_id=organization_id, remote_path__in=list(changed))
        .annotate(newest_id=Subquery(newest.values("id")[:1]))
    )
    newest_rows = Artifact.objects.in_bulk([head.newest_id for head in heads if head.newest_id])
    gone, kept = [], []
    for head in heads:
        row = newest_rows.get(head.newest_id)
        if row is None:
            gone.append(head.pk)
            continue
        head.versions = max(head.versions + sign * changed[head.remote_path], 1)
        head.latest, head.latest_created_at, head.latest_size = row, row.created_at, row.size
        kept.append(head)
    if gone:
        ArtifactPathHead.objects.filter(pk__in=gone).delete()
    if kept:
        stamp = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.executemany(
                _HEAD_SET,
                [
                    (head.versions, head.latest_id, stamp(head.latest_created_at), head.latest_size, head.pk)
                    for head in kept
                ],
            )
    return len(heads)


def folders_build(artifacts: Iterable, *, folder_model=ArtifactFolder, head_model=ArtifactPathHead) -> None:
    """Summaries of ready artifacts given in (organization, remote_path, version) order, into
    empty tables: the upgrade's backfill (with its migration's models) and bulk loads."""
    folders: dict[tuple[str, str], list] = {}
    heads: list = []
    current = None
    for artifact in artifacts:
        for path, parent in folder_chain(folder_of(artifact.remote_path)):
            entry = folders.setdefault((artifact.organization_id, path), [parent, 0, 0])
            entry[1] += 1
            entry[2] += artifact.size
        key = (artifact.organization_id, artifact.remote_path)
        if current is not None and current[0] == key:
            current[1], current[2] = artifact, current[2] + 1
            continue
        if current is not None:
            heads.append(current)
        current = [key, artifact, 1]
        if len(heads) >= 2000:
            _flush_heads(heads, head_model)
    if current is not None:
        heads.append(current)
    _flush_heads(heads, head_model)
    rows = [
        folder_model(organization_id=org, path=path, parent=parent, artifact_count=count, total_size=size)
        for (org, path), (parent, count, size) in folders.items()
    ]
    folder_model.objects.bulk_create(rows, batch_size=2000)


def _flush_heads(heads: list, head_model) -> None:
    head_model.objects.bulk_create(
        [
            head_model(
                organization_id=org,
                folder=folder_of(remote_path),
                remote_path=remote_path,
                latest_id=latest.id,
                latest_created_at=latest.created_at,
                latest_size=latest.size,
                versions=versions,
            )
            for (org, remote_path), latest, versions in heads
        ],
        batch_size=2000,
    )
    heads.clear()
