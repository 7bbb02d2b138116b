"""The API of the trash and of legal holds: organization admin work, behind ``artifacts:admin``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from artifacts.api import ArtifactOut, SuccessOut, artifact_out
from artifacts.legal_hold import legal_hold_lift, legal_hold_set
from artifacts.models import Artifact
from artifacts.selectors import artifact_get
from artifacts.trash_selectors import trash_page
from artifacts.trash_services import artifact_purge, artifact_restore, trash_empty
from config.auth import require_scope
from config.schemas import STORAGE, errors

router = Router(tags=["trash"])
SCOPE = "artifacts:admin"


class TrashedOut(Schema):
    id: str
    org_id: str
    sandbox_id: str
    session_id: str
    remote_path: str
    version: int
    size: int
    checksum: str
    content_type: str
    is_folder: bool
    created_at: datetime
    deleted_at: datetime
    purge_after: datetime
    reason: str


def trashed_out(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "org_id": artifact.organization_id,
        "sandbox_id": artifact.sandbox_id,
        "session_id": artifact.session_id,
        "remote_path": artifact.remote_path,
        "version": artifact.version or 0,
        "size": artifact.size,
        "checksum": artifact.checksum,
        "content_type": artifact.content_type,
        "is_folder": artifact.is_folder or artifact.is_archive,
        "created_at": artifact.created_at,
        "deleted_at": artifact.deleted_at,
        "purge_after": artifact.purge_after,
        "reason": artifact.trashed_reason,
    }


class TrashQuery(Schema):
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=1000)


class TrashOut(Schema):
    artifacts: list[TrashedOut]
    next_cursor: str | None


class EmptiedOut(Schema):
    success: bool
    purged: int


class HoldIn(Schema):
    reason: str


class HoldOut(Schema):
    artifact_id: str
    legal_hold: bool
    reason: str


@router.get("/trash", response={200: TrashOut, **errors()})
def list_trash(request: HttpRequest, query: Query[TrashQuery]):
    """The organization's trash, newest deleted first."""
    require_scope(request.auth, SCOPE)
    page = trash_page(organization_id=request.auth.organization_id, cursor=query.cursor, limit=query.limit)
    return {"artifacts": [trashed_out(a) for a in page.rows], "next_cursor": page.next_cursor}


@router.post("/trash/empty", response={200: EmptiedOut, **errors(STORAGE)})
def empty_trash(request: HttpRequest):
    require_scope(request.auth, SCOPE)
    return {"success": True, "purged": trash_empty(actor=request.auth, organization_id=request.auth.organization_id)}


@router.post("/trash/{artifact_id}/restore", response={200: ArtifactOut, **errors(404, 409)})
def restore(request: HttpRequest, artifact_id: str):
    """Restore an artifact within its trash period: 409 `TRASH_EXPIRED` after it."""
    require_scope(request.auth, SCOPE)
    artifact = artifact_restore(
        actor=request.auth, organization_id=request.auth.organization_id, artifact_id=artifact_id
    )
    return artifact_out(artifact)


@router.delete("/trash/{artifact_id}", response={200: SuccessOut, **errors(404, STORAGE)})
def purge(request: HttpRequest, artifact_id: str):
    """Purge one artifact from the trash now: it can no longer be restored."""
    require_scope(request.auth, SCOPE)
    artifact_purge(actor=request.auth, organization_id=request.auth.organization_id, artifact_id=artifact_id)
    return {"success": True}


def _hold_out(artifact: Artifact) -> dict[str, Any]:
    return {"artifact_id": artifact.id, "legal_hold": artifact.legal_hold, "reason": artifact.legal_hold_reason}


@router.post("/artifacts/{artifact_id}/legal-hold", response={200: HoldOut, **errors(404)})
def hold(request: HttpRequest, artifact_id: str, body: HoldIn):
    """Put the artifact under a legal hold: no deletion, retention policy or expiry removes it."""
    require_scope(request.auth, SCOPE)
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    return _hold_out(legal_hold_set(actor=request.auth, artifact=artifact, reason=body.reason))


@router.delete("/artifacts/{artifact_id}/legal-hold", response={200: HoldOut, **errors(404)})
def lift(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, SCOPE)
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    return _hold_out(legal_hold_lift(actor=request.auth, artifact=artifact))
