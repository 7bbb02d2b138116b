"""The webhook events of artifacts: their payloads, small and stable (never a storage key or URL)."""

from __future__ import annotations

from typing import Any

from artifacts.models import Artifact
from webhooks.outbox import emit


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def artifact_data(artifact: Artifact) -> dict[str, Any]:
    return {
        "artifact_id": artifact.id,
        "sandbox_id": artifact.sandbox_id or None,
        "session_id": artifact.session_id or None,
        "remote_path": artifact.remote_path,
        "version": artifact.version,
        "size": artifact.size,
        "checksum": artifact.checksum,
        "content_type": artifact.content_type,
        "is_folder": artifact.is_folder or artifact.is_archive,
        "metadata": artifact.metadata,
        "created_at": _iso(artifact.created_at),
        "expires_at": _iso(artifact.expires_at),
    }


def artifact_emit(artifact: Artifact, type: str, **extra: Any) -> None:
    emit(organization_id=artifact.organization_id, type=type, data={**artifact_data(artifact), **extra})


def artifact_emit_by_id(artifact_id: str, type: str, **extra: Any) -> None:
    artifact = Artifact.objects.filter(id=artifact_id).first()
    if artifact is not None:
        artifact_emit(artifact, type, **extra)


# The audit actions that are downloads of the bytes, and how each one came.
DOWNLOAD_ACTIONS = {"artifact.download", "share.download"}
