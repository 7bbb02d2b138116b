"""Every change to an artifact itself: recording a read, deleting, expiring. Moving its bytes is
the transfers app's (transfers/services.py)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from artifacts.prefixes import folders_remove
from artifacts.search_index import search_index_remove
from artifacts.tasks import delete_blob
from audit.services import audit_record
from core.actor import Actor
from core.dispatch import enqueue
from shares.models import ShareLink, ShareLinkState


def artifact_record_read(
    *, actor: Actor, artifact: Artifact, action: str, details: dict[str, Any] | None = None
) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"artifact:{artifact.id}",
        sandbox_id=artifact.sandbox_id,
        session_id=artifact.session_id,
        details={"remote_path": artifact.remote_path, **(details or {})},
        organization_id=artifact.organization_id,
    )


def artifact_delete(*, actor: Actor, artifact: Artifact, reason: str = "requested") -> None:
    """Remove the bytes; keep the row, marked deleted, for the audit trail."""
    with transaction.atomic():
        deleted = Artifact.objects.filter(id=artifact.id, state=ArtifactState.READY).update(
            state=ArtifactState.DELETED, deleted_at=timezone.now()
        )
        if not deleted:
            return
        search_index_remove([artifact.id])
        folders_remove(artifact=artifact)
        # Through the model, not shares.services, which imports this module.
        ShareLink.objects.filter(
            artifact_id=artifact.id, state__in=[ShareLinkState.PENDING, ShareLinkState.ACTIVE]
        ).update(state=ShareLinkState.REVOKED, revoked_at=timezone.now())
        audit_record(
            actor=actor,
            action="artifact.delete",
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, "reason": reason, "size": artifact.size},
            organization_id=artifact.organization_id,
        )
        transaction.on_commit(lambda: enqueue(delete_blob, key=artifact.storage_key))


def artifact_expire(*, now=None, batch: int = 500) -> int:
    now = now or timezone.now()
    expired = list(
        Artifact.objects.filter(state=ArtifactState.READY, expires_at__lte=now).order_by("expires_at")[:batch]
    )
    for artifact in expired:
        artifact_delete(actor=Actor.system(artifact.organization_id), artifact=artifact, reason="expired")
    return len(expired)


# Declared beside the service it runs, so that artifacts/tasks.py never imports this module back.
# The name is what web, beat and worker processes of different releases agree on during a
# rolling upgrade: it keeps the one it had in artifacts/tasks.py.
@shared_task(name="artifacts.tasks.expire_artifacts")
def expire_artifacts() -> int:
    return artifact_expire()
