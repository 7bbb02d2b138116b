"""Moving many artifacts to the trash at once: what a retention policy and expiry rely on."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from artifacts.alias_services import alias_set
from artifacts.models import (
    Artifact,
    ArtifactAlias,
    ArtifactFolder,
    ArtifactPathHead,
    ArtifactSearchEntry,
    ArtifactState,
)
from artifacts.services import artifact_expire
from artifacts.trash import artifacts_trash
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from core.actor import Actor
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token
from tests.factories import make_artifact, make_artifacts, make_webhook
from webhooks.models import WebhookEvent


def _trash(org_id: str, ids, reason: str = "policy", **kw) -> int:
    return artifacts_trash(actor=Actor.system(org_id), organization_id=org_id, artifact_ids=ids, reason=reason, **kw)


def test_bulk_trash_hides_the_artifacts_and_keeps_their_rows(owner):
    rows = make_artifacts(owner.org_id, 3)
    assert _trash(owner.org_id, [rows[0].id, rows[1].id]) == 2
    trashed = Artifact.objects.get(id=rows[0].id)
    assert trashed.state == ArtifactState.TRASHED and trashed.trashed_reason == "policy"
    assert trashed.purge_after - trashed.deleted_at == timedelta(days=7)
    assert list(Artifact.objects.visible().filter(organization_id=owner.org_id)) == [rows[2]]
    assert list(ArtifactSearchEntry.objects.values_list("artifact_id", flat=True)) == [rows[2].id]


def test_bulk_trash_skips_held_pending_trashed_and_other_organizations_artifacts(owner, stranger):
    held, ready = make_artifacts(owner.org_id, 2)
    Artifact.objects.filter(id=held.id).update(legal_hold=True)
    (theirs,) = make_artifacts(stranger.org_id, 1)
    assert _trash(owner.org_id, [held.id, ready.id, theirs.id, "art_missing"]) == 1
    assert _trash(owner.org_id, [ready.id]) == 0
    assert Artifact.objects.get(id=held.id).state == ArtifactState.READY
    assert Artifact.objects.get(id=theirs.id).state == ArtifactState.READY


def test_bulk_trash_updates_the_folder_summaries(owner):
    rows = [
        make_artifact(owner.org_id, None, "runs/a.txt", version=1, size=10),
        make_artifact(owner.org_id, None, "runs/a.txt", version=2, size=20),
        make_artifact(owner.org_id, None, "runs/b.txt", version=1, size=30),
    ]
    _trash(owner.org_id, [rows[1].id, rows[2].id])
    folder = ArtifactFolder.objects.get(organization_id=owner.org_id, path="runs/")
    assert (folder.artifact_count, folder.total_size) == (1, rows[0].size)
    head = ArtifactPathHead.objects.get(organization_id=owner.org_id, remote_path="runs/a.txt")
    assert (head.latest_id, head.versions) == (rows[0].id, 1)
    assert not ArtifactPathHead.objects.filter(remote_path="runs/b.txt").exists()


def test_bulk_trash_revokes_share_links_drops_aliases_and_audits_each(owner):
    rows = make_artifacts(owner.org_id, 2)
    alias_set(actor=Actor.system(owner.org_id), artifact=rows[0], name="production")
    link = ShareLink.objects.create(
        organization_id=owner.org_id, artifact=rows[1], token_hash=hash_share_token("t" * 43), state="active"
    )
    _trash(owner.org_id, [r.id for r in rows], details={"policy_id": "pol_1"})
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.REVOKED
    assert not ArtifactAlias.objects.exists()
    deletes = AuditEvent.objects.filter(action="artifact.delete").order_by("seq")
    assert sorted(e.resource for e in deletes) == sorted(f"artifact:{r.id}" for r in rows)
    assert all(e.details["reason"] == "policy" and e.details["policy_id"] == "pol_1" for e in deletes)
    assert AuditEvent.objects.filter(action="artifact.alias.delete").count() == 1
    assert audit_verify_chain(organization_id=owner.org_id).ok


def test_bulk_trash_emits_one_event_per_artifact(owner):
    make_webhook(owner.org_id, "https://hooks.example.com/in")
    rows = make_artifacts(owner.org_id, 3)
    _trash(owner.org_id, [r.id for r in rows], reason="expired")
    events = WebhookEvent.objects.filter(organization_id=owner.org_id, type="artifact.expired")
    assert sorted(e.payload["data"]["artifact_id"] for e in events) == sorted(r.id for r in rows)


def test_bulk_trash_runs_as_many_queries_for_many_artifacts_as_for_few(owner):
    def queries(count: int) -> int:
        rows = make_artifacts(owner.org_id, count, remote_path=lambda i: f"d{count}/{i % 3}/f{i}.txt")
        for row in rows[:2]:
            alias_set(actor=Actor.system(owner.org_id), artifact=row, name="stable")
        with CaptureQueriesContext(connection) as captured:
            assert _trash(owner.org_id, [r.id for r in rows]) == count
        return len(captured)

    queries(2)  # the organization's audit chain exists from here on
    assert queries(3) == queries(40)


def test_expiry_moves_expired_artifacts_to_the_trash_and_skips_held_ones(owner):
    past = timezone.now() - timedelta(minutes=1)
    expired, held = make_artifacts(owner.org_id, 2, expires_at=past)
    Artifact.objects.filter(id=held.id).update(legal_hold=True)
    assert artifact_expire() == 1
    assert Artifact.objects.get(id=expired.id).state == ArtifactState.TRASHED
    assert Artifact.objects.get(id=expired.id).trashed_reason == "expired"
    assert Artifact.objects.get(id=held.id).state == ArtifactState.READY
