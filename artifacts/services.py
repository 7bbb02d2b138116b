"""Every change to an artifact itself: recording a read, deleting, expiring. Moving its bytes is
the transfers app's (transfers/services.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from artifacts.events import DOWNLOAD_ACTIONS, artifact_emit
from artifacts.models import Artifact, ArtifactState
from artifacts.trash import artifacts_trash
from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from core.errors import Conflict


def artifact_record_read(
    *, actor: Actor, artifact: Artifact, action: str, details: dict[str, Any] | None = None
) -> None:
    """Audit a read; a download of the bytes is also an ``artifact.downloaded`` event."""
    details = details or {}
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, **details},
            organization_id=artifact.organization_id,
        )
        if action in DOWNLOAD_ACTIONS:
            via = "share link" if action == "share.download" else str(details.get("via", ""))[:40]
            artifact_emit(artifact, "artifact.downloaded", via=via, share_id=details.get("share_id"))


def artifact_delete(*, actor: Actor, artifact: Artifact, reason: str = "requested") -> None:
    """Move one artifact to the trash (artifacts.trash); deleting one already gone changes nothing.
    An artifact under a legal hold is refused with 409 ``LEGAL_HOLD``, and the refusal audited."""
    moved = artifacts_trash(
        actor=actor, organization_id=artifact.organization_id, artifact_ids=[artifact.id], reason=reason
    )
    if moved:
        artifact.state = ArtifactState.TRASHED
        return
    if Artifact.objects.filter(id=artifact.id, state=ArtifactState.READY, legal_hold=True).exists():
        audit_record(
            actor=actor,
            action="artifact.delete",
            resource=f"artifact:{artifact.id}",
            sandbox_id=artifact.sandbox_id,
            session_id=artifact.session_id,
            details={"remote_path": artifact.remote_path, "reason": reason},
            outcome=Outcome.DENIED,
            error_message="under a legal hold",
            organization_id=artifact.organization_id,
        )
        raise Conflict(
            f"Artifact '{artifact.id}' is under a legal hold: it cannot be deleted until the hold is lifted",
            code="LEGAL_HOLD",
        )


def artifact_expire(*, now=None, batch: int = 500) -> int:
    """Move artifacts past their expiry to the trash, a batch at a time, one bulk move per
    organization. A held artifact stays where it is (hidden while past its expiry)."""
    now = now or timezone.now()
    expired = (
        Artifact.objects.filter(state=ArtifactState.READY, expires_at__lte=now, legal_hold=False)
        .order_by("expires_at")
        .values_list("organization_id", "id")[:batch]
    )
    by_org: dict[str, list[str]] = defaultdict(list)
    for organization_id, artifact_id in expired:
        by_org[organization_id].append(artifact_id)
    return sum(
        artifacts_trash(actor=Actor.system(org), organization_id=org, artifact_ids=ids, reason="expired")
        for org, ids in by_org.items()
    )


# Declared beside the service it runs, so that artifacts/tasks.py never imports this module back.
# The name is what web, beat and worker processes of different releases agree on during a
# rolling upgrade: it keeps the one it had in artifacts/tasks.py.
@shared_task(name="artifacts.tasks.expire_artifacts")
def expire_artifacts() -> int:
    return artifact_expire()
