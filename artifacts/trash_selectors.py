"""Reads of the trash, scoped to the organization: newest deleted first, keyset paged."""

from __future__ import annotations

from django.db.models import Q

from artifacts.models import Artifact, ArtifactState
from core.errors import NotFound
from core.pagination import KeysetPage, decode_time_cursor, encode_time_cursor


def trash_page(*, organization_id: str, cursor: str | None = None, limit: int = 50) -> KeysetPage[Artifact]:
    rows = Artifact.objects.filter(organization_id=organization_id, state=ArtifactState.TRASHED).order_by(
        "-deleted_at", "-id"
    )
    if cursor:
        deleted, row_id = decode_time_cursor(cursor)
        # The redundant bound lets the index (artifact_org_trash) seek to the cursor.
        rows = rows.filter(Q(deleted_at__lt=deleted) | Q(deleted_at=deleted, id__lt=row_id), deleted_at__lte=deleted)
    found = list(rows[: limit + 1])
    last = found[limit - 1] if len(found) > limit else None
    return KeysetPage(found[:limit], encode_time_cursor(last.deleted_at, last.id) if last else None)


def trash_get(*, organization_id: str, artifact_id: str) -> Artifact:
    artifact = Artifact.objects.filter(
        organization_id=organization_id, id=artifact_id, state=ArtifactState.TRASHED
    ).first()
    if artifact is None:
        raise NotFound(f"Artifact '{artifact_id}' is not in the trash", code="ARTIFACT_NOT_FOUND")
    return artifact


def trash_count(*, organization_id: str) -> int:
    return Artifact.objects.filter(organization_id=organization_id, state=ArtifactState.TRASHED).count()
