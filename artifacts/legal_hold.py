"""Legal holds: a held artifact is never moved to the trash, by a person, a retention policy or
its expiry, until the hold is lifted. Setting and lifting are each audited; who may do either
(organization admins and owners, API keys with ``artifacts:admin``) is checked by the callers."""

from __future__ import annotations

from django.db import transaction

from artifacts.models import Artifact
from audit.services import audit_record
from core.actor import Actor
from core.errors import InvalidInput, NotFound
from core.text import check_text

REASON_MAX = 500


def _locked(artifact: Artifact) -> Artifact:
    row = Artifact.objects.visible().select_for_update().filter(id=artifact.id).first()
    if row is None:
        raise NotFound(f"Artifact '{artifact.id}' not found", code="ARTIFACT_NOT_FOUND")
    return row


def _audit(actor: Actor, action: str, artifact: Artifact, **details) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"artifact:{artifact.id}",
        sandbox_id=artifact.sandbox_id,
        session_id=artifact.session_id,
        details={"remote_path": artifact.remote_path, **details},
        organization_id=artifact.organization_id,
    )


def legal_hold_set(*, actor: Actor, artifact: Artifact, reason: str) -> Artifact:
    """Hold the artifact (or change the reason of its hold)."""
    reason = check_text((reason or "").strip(), field="reason")
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(
            f"reason is required and must be at most {REASON_MAX} characters", details={"field": "reason"}
        )
    with transaction.atomic():
        row = _locked(artifact)
        if row.legal_hold and row.legal_hold_reason == reason:
            return row
        Artifact.objects.filter(id=row.id).update(legal_hold=True, legal_hold_reason=reason)
        _audit(actor, "artifact.legal_hold", row, reason=reason, previous_reason=row.legal_hold_reason or None)
        row.legal_hold, row.legal_hold_reason = True, reason
    return row


def legal_hold_lift(*, actor: Actor, artifact: Artifact) -> Artifact:
    """Lift the artifact's hold; lifting none changes nothing."""
    with transaction.atomic():
        row = _locked(artifact)
        if not row.legal_hold:
            return row
        Artifact.objects.filter(id=row.id).update(legal_hold=False, legal_hold_reason="")
        _audit(actor, "artifact.legal_hold.lift", row, reason=row.legal_hold_reason)
        row.legal_hold, row.legal_hold_reason = False, ""
    return row
