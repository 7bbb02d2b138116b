from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import StrictInt, StrictStr

from artifacts.selectors import artifact_get
from config.auth import require_scope
from config.schemas import BODY, errors
from shares import services
from shares.models import ShareLink
from shares.selectors import share_link_get, share_link_list

router = Router(tags=["share links"])

MAX_LISTED = 1000


class ShareIn(Schema):
    # Strict: `true` or "10" is a mistake to report, not a number to guess at.
    expires_in: StrictInt | None = None
    max_downloads: StrictInt | None = None
    password: StrictStr | None = None
    # Instead of expires_in: an absolute moment with a time zone, at most 90 days ahead.
    expires_at: datetime | None = None
    label: StrictStr | None = None
    note: StrictStr | None = None


class ShareOut(Schema):
    id: str
    artifact_id: str
    state: str
    expires_at: datetime | None
    max_downloads: int | None
    download_count: int
    downloads_left: int | None
    has_password: bool
    created_at: datetime
    revoked_at: datetime | None
    last_download_at: datetime | None
    label: str
    note: str
    created_by: str
    # The link again, for keys that may manage links (artifacts:write); null for others and for
    # links made before tokens were kept.
    url: str | None = None


class CreatedShareOut(ShareOut):
    url: str


class ShareListOut(Schema):
    shares: list[ShareOut]


def may_manage(actor) -> bool:
    return "artifacts:write" in actor.scopes


def share_out(link: ShareLink, *, request: HttpRequest | None = None) -> dict[str, Any]:
    """A link as the API shows it; with ``request`` (a caller who may manage it), its URL too."""
    token = services.share_link_token(link) if request is not None else None
    return {
        "id": link.id,
        "artifact_id": link.artifact_id,
        "state": services.share_link_effective_state(link),
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "download_count": link.download_count,
        "downloads_left": services.share_link_downloads_left(link),
        "has_password": link.has_password,
        "created_at": link.created_at,
        "revoked_at": link.revoked_at,
        "last_download_at": link.last_download_at,
        "label": link.label,
        "note": link.note,
        "created_by": link.created_by_label,
        "url": services.share_url(request, token) if token else None,
    }


# Operation ids as they were when these endpoints lived in artifacts/share_api.py: clients
# generated from the schema call them by these names.
@router.post(
    "/artifacts/{artifact_id}/shares",
    response={201: CreatedShareOut, 202: CreatedShareOut, **errors(404, BODY, 503, 504)},
    operation_id="artifacts_share_api_create_share",
)
def create_share(request: HttpRequest, artifact_id: str, payload: ShareIn, wait: bool = True):
    """A new share link; `url` holds its token and is shown only in this answer. With `wait=false`
    the answer is 202 with state `pending` until a worker activates the link."""
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    link, token = services.share_link_create(
        actor=request.auth,
        artifact=artifact,
        expires_in=payload.expires_in,
        max_downloads=payload.max_downloads,
        password=payload.password,
        expires_at=payload.expires_at,
        label=payload.label,
        note=payload.note,
        wait=wait,
    )
    return Status(201 if wait else 202, {**share_out(link), "url": services.share_url(request, token)})


@router.get(
    "/artifacts/{artifact_id}/shares",
    response={200: ShareListOut, **errors(404)},
    operation_id="artifacts_share_api_list_shares",
)
def list_shares(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    manager = request if may_manage(request.auth) else None
    return {"shares": [share_out(link, request=manager) for link in share_link_list(artifact=artifact)[:MAX_LISTED]]}


@router.get(
    "/artifacts/{artifact_id}/shares/{share_id}",
    response={200: ShareOut, **errors(404)},
    operation_id="shares_api_get_share",
)
def get_share(request: HttpRequest, artifact_id: str, share_id: str):
    """One link; `url` only for keys with the artifacts:write scope."""
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    link = share_link_get(artifact=artifact, share_id=share_id)
    return share_out(link, request=request if may_manage(request.auth) else None)


@router.post(
    "/artifacts/{artifact_id}/shares/{share_id}/revoke",
    response={200: ShareOut, **errors(404)},
    operation_id="artifacts_share_api_revoke_share",
)
def revoke_share(request: HttpRequest, artifact_id: str, share_id: str):
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    link = share_link_get(artifact=artifact, share_id=share_id)
    return share_out(services.share_link_revoke(actor=request.auth, link=link), request=request)
