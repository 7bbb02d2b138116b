from __future__ import annotations

from django.db.models import QuerySet

from artifacts.models import Artifact
from core.errors import NotFound
from shares.models import ShareLink


def share_link_list(*, artifact: Artifact) -> QuerySet[ShareLink]:
    """The links of an artifact the caller already holds, so already scoped to its organization."""
    return (
        ShareLink.objects.filter(artifact=artifact)
        .select_related("created_by_user", "created_by_api_key")
        .order_by("-created_at")
    )


def share_link_get(*, artifact: Artifact, share_id: str) -> ShareLink:
    link = (
        ShareLink.objects.filter(artifact=artifact, id=share_id)
        .select_related("created_by_user", "created_by_api_key")
        .first()
    )
    if link is None:
        raise NotFound(f"Share link '{share_id}' not found", code="SHARE_NOT_FOUND")
    return link
