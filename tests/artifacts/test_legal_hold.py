"""Legal holds: a held artifact is kept from deletion, expiry and retention until the hold is lifted,
and only organization admins (keys with ``artifacts:admin``) set or lift one."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import ApiKey
from artifacts.models import Artifact, ArtifactState
from artifacts.services import artifact_expire
from artifacts.trash import artifacts_trash
from audit.models import AuditEvent
from core.actor import Actor
from tests.factories import put_artifact


def _error(response) -> str:
    return response.json()["error"]["code"]


def _hold(user, artifact_id: str, reason: str = "litigation 2026-17"):
    return user.post(f"/artifacts/{artifact_id}/legal-hold", {"reason": reason})


def test_a_hold_blocks_manual_deletion_until_it_is_lifted(owner):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    assert _hold(owner, artifact.id).json() == {
        "artifact_id": artifact.id,
        "legal_hold": True,
        "reason": "litigation 2026-17",
    }
    response = owner.delete(f"/artifacts/{artifact.id}")
    assert response.status_code == 409 and _error(response) == "LEGAL_HOLD"
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.READY
    refusal = AuditEvent.objects.get(action="artifact.delete")
    assert refusal.outcome == "denied"

    assert owner.delete(f"/artifacts/{artifact.id}/legal-hold").json()["legal_hold"] is False
    assert owner.delete(f"/artifacts/{artifact.id}").status_code == 200
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED


def test_setting_and_lifting_a_hold_are_audited(owner):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    _hold(owner, artifact.id)
    owner.delete(f"/artifacts/{artifact.id}/legal-hold")
    actions = list(
        AuditEvent.objects.filter(resource=f"artifact:{artifact.id}", action__startswith="artifact.legal_hold")
        .order_by("seq")
        .values_list("action", "details__reason")
    )
    assert actions == [
        ("artifact.legal_hold", "litigation 2026-17"),
        ("artifact.legal_hold.lift", "litigation 2026-17"),
    ]


def test_a_hold_blocks_expiry_and_bulk_trash(owner):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    _hold(owner, artifact.id)
    Artifact.objects.filter(id=artifact.id).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert artifact_expire() == 0
    actor = Actor.system(owner.org_id)
    assert artifacts_trash(actor=actor, organization_id=owner.org_id, artifact_ids=[artifact.id], reason="policy") == 0
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.READY


def test_lifting_or_setting_a_hold_without_the_role_is_forbidden_and_changes_nothing(owner):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    _hold(owner, artifact.id)
    ApiKey.objects.filter(organization_id=owner.org_id).update(scopes=["artifacts:read", "artifacts:write"])
    for response in (owner.delete(f"/artifacts/{artifact.id}/legal-hold"), _hold(owner, artifact.id, "other")):
        assert response.status_code == 403 and _error(response) == "INSUFFICIENT_SCOPE"
    row = Artifact.objects.get(id=artifact.id)
    assert row.legal_hold and row.legal_hold_reason == "litigation 2026-17"


def test_a_hold_needs_a_reason(owner):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    for reason in ("", "   ", "x" * 501, "nul\x00"):
        response = _hold(owner, artifact.id, reason)
        assert response.status_code == 400 and _error(response) == "VALIDATION_ERROR"
    assert owner.post(f"/artifacts/{artifact.id}/legal-hold", {}).status_code == 400
    assert not Artifact.objects.get(id=artifact.id).legal_hold


def test_another_organizations_artifact_cannot_be_held(owner, stranger):
    artifact = put_artifact(owner, "evidence.txt", b"evidence")
    for response in (_hold(stranger, artifact.id), stranger.delete(f"/artifacts/{artifact.id}/legal-hold")):
        assert response.status_code == 404 and _error(response) == "ARTIFACT_NOT_FOUND"
    assert not Artifact.objects.get(id=artifact.id).legal_hold
