"""The webhook events of share links: never the token or the link's URL, which holds it."""

from __future__ import annotations

from typing import Any

from shares.models import ShareLink
from webhooks.outbox import emit


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def share_data(link: ShareLink) -> dict[str, Any]:
    return {
        "share_id": link.id,
        "artifact_id": link.artifact_id,
        "expires_at": _iso(link.expires_at),
        "max_downloads": link.max_downloads,
        "download_count": link.download_count,
        "has_password": link.has_password,
        "created_at": _iso(link.created_at),
    }


def share_emit(link: ShareLink, type: str, **extra: Any) -> None:
    emit(organization_id=link.organization_id, type=type, data={**share_data(link), **extra})
