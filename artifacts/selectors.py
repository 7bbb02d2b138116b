from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from artifacts.models import Artifact, ShareLink, Transfer
from config.errors import InvalidInput, NotFound


def artifact_get(*, organization_id: str, artifact_id: str) -> Artifact:
    """A visible artifact of the organization; the same 404 for another's, a pending or a deleted one."""
    artifact = Artifact.objects.visible().filter(organization_id=organization_id, id=artifact_id).first()
    if artifact is None:
        raise NotFound(f"Artifact '{artifact_id}' not found", code="ARTIFACT_NOT_FOUND")
    return artifact


def transfer_get(*, organization_id: str, transfer_id: str) -> Transfer:
    transfer = Transfer.objects.filter(organization_id=organization_id, id=transfer_id).first()
    if transfer is None:
        raise NotFound(f"Transfer '{transfer_id}' not found", code="TRANSFER_NOT_FOUND")
    return transfer


@dataclass(frozen=True)
class ArtifactPage:
    artifacts: list[Artifact]
    next_cursor: str | None


def _encode_cursor(artifact: Artifact) -> str:
    return base64.urlsafe_b64encode(f"{artifact.created_at.isoformat()}|{artifact.id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, artifact_id = raw.split("|", 1)
        return datetime.fromisoformat(created), artifact_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned", code="INVALID_CURSOR", details={"field": "cursor"}) from None


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
        artifacts = artifacts.filter(remote_path__startswith=prefix)
    if content_type:
        artifacts = artifacts.filter(content_type=content_type)
    return artifacts.order_by("-created_at", "-id")


def artifact_page(artifacts: QuerySet[Artifact], *, limit: int, cursor: str | None) -> ArtifactPage:
    """Newest first, keyset-paginated on (created_at, id): a deep page costs what the first does."""
    if cursor:
        created, artifact_id = _decode_cursor(cursor)
        artifacts = artifacts.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=artifact_id))
    rows = list(artifacts[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return ArtifactPage(rows[:limit], next_cursor)


def artifact_versions(*, organization_id: str, remote_path: str) -> QuerySet[Artifact]:
    return Artifact.objects.visible().filter(organization_id=organization_id, remote_path=remote_path).order_by("-version")


def share_link_list(*, artifact: Artifact) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(artifact=artifact).order_by("-created_at")


def share_link_get(*, artifact: Artifact, share_id: str) -> ShareLink:
    link = ShareLink.objects.filter(artifact=artifact, id=share_id).first()
    if link is None:
        raise NotFound(f"Share link '{share_id}' not found", code="SHARE_NOT_FOUND")
    return link
