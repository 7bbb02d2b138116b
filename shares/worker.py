"""A share link's worker side: activation, on the shared queue (no ``host`` keyword)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from artifacts.models import ArtifactState
from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from shares.events import share_emit
from shares.models import ShareLink, ShareLinkState


def share_link_activate(*, share_id: str, actor: Actor) -> ShareLink | None:
    """pending → active if the artifact is still ready, else pending → revoked. A redelivered task finds it done."""
    link = ShareLink.objects.select_related("artifact").filter(id=share_id).first()
    if link is None or link.state != ShareLinkState.PENDING:
        return link
    artifact = link.artifact
    details = {
        "share_id": link.id,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "has_password": link.has_password,
    }
    with transaction.atomic():
        activated = ShareLink.objects.filter(
            id=link.id, state=ShareLinkState.PENDING, artifact__state=ArtifactState.READY
        ).update(state=ShareLinkState.ACTIVE)
        if activated:
            audit_record(
                actor=actor,
                action="share.create",
                resource=f"artifact:{artifact.id}",
                sandbox_id=artifact.sandbox_id,
                session_id=artifact.session_id,
                details=details,
                organization_id=link.organization_id,
            )
            share_emit(link, "share.created")
        elif ShareLink.objects.filter(id=link.id, state=ShareLinkState.PENDING).update(
            state=ShareLinkState.REVOKED, revoked_at=timezone.now()
        ):
            audit_record(
                actor=actor,
                action="share.create",
                resource=f"artifact:{artifact.id}",
                sandbox_id=artifact.sandbox_id,
                session_id=artifact.session_id,
                details=details,
                outcome=Outcome.FAILURE,
                error_message="the artifact was deleted before the link was ready",
                organization_id=link.organization_id,
            )
    link.refresh_from_db()
    return link


# The name is the one the task had when it lived in artifacts/share_tasks.py: web and worker
# processes of different releases meet on it during a rolling upgrade, so it never changes.
@shared_task(name="artifacts.share_tasks.activate_share_link")
def activate_share_link(*, share_id: str, actor: dict[str, Any]) -> dict[str, str]:
    link = share_link_activate(share_id=share_id, actor=Actor.from_dict(actor))
    return {"share_id": share_id, "state": link.state if link is not None else "missing"}
