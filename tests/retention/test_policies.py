"""Each kind of policy, with an aliased and a held version present: those are never removed;
prefix scoping; the preview is exactly what a run removes; runs are batched and repeatable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from artifacts.models import Artifact, ArtifactAlias, ArtifactState
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from core.actor import Actor
from retention.selectors import policy_preview
from retention.services import policy_create
from retention.worker import _remove_batch, policies_run, policy_actor, policy_run
from tests.factories import make_artifact
from tests.retention.conftest import alias, hold, states

pytestmark = pytest.mark.django_db

READY, TRASHED = ArtifactState.READY, ArtifactState.TRASHED


def _policy(org_id: str, kind: str, value: int, prefix: str | None = None, name: str = "tidy"):
    return policy_create(
        actor=Actor.system(org_id), organization_id=org_id, name=name, kind=kind, value=value, prefix=prefix
    )


def test_keep_last_removes_older_versions_but_never_an_aliased_or_held_one(owner, versions):
    v1, v2, v3, v4, v5 = versions(owner.org_id, "reports/daily.csv", 5)
    alias(v1)
    hold(v2)
    (single,) = versions(owner.org_id, "reports/once.csv", 1)
    policy = _policy(owner.org_id, "keep_last", 2)
    assert policy_run(policy_id=policy.id).removed == 1
    assert states([v1, v2, v3, v4, v5, single]) == [READY, READY, TRASHED, READY, READY, READY]
    assert ArtifactAlias.objects.filter(artifact=v1).exists()


def test_keep_last_counts_held_and_aliased_versions_among_the_kept(owner, versions):
    v1, v2, v3 = versions(owner.org_id, "a.txt", 3)
    hold(v3)
    alias(v2)
    policy = _policy(owner.org_id, "keep_last", 1)
    assert policy_run(policy_id=policy.id).removed == 1
    assert states([v1, v2, v3]) == [TRASHED, READY, READY]


def test_max_age_removes_what_is_older_than_its_days_but_never_an_aliased_or_held_one(owner, versions):
    old_plain, old_aliased, old_held, recent = versions(owner.org_id, "logs/run.log", 4, days_apart=20)
    # Made 60, 40, 20 and 0 days ago.
    alias(old_aliased)
    hold(old_held)
    policy = _policy(owner.org_id, "max_age", 15)
    assert policy_run(policy_id=policy.id).removed == 1
    assert states([old_plain, old_aliased, old_held, recent]) == [TRASHED, READY, READY, READY]


def test_not_downloaded_counts_idleness_from_the_later_of_creation_and_last_download(owner, versions):
    now = timezone.now()
    never, long_ago, lately, aliased, held, young = versions(
        owner.org_id, "data/x.bin", 6, days_apart=0, newest_days_ago=90
    )
    Artifact.objects.filter(id=long_ago.id).update(last_downloaded_at=now - timedelta(days=45), download_count=3)
    Artifact.objects.filter(id=lately.id).update(last_downloaded_at=now - timedelta(days=2), download_count=1)
    Artifact.objects.filter(id=young.id).update(created_at=now - timedelta(days=5))
    alias(aliased)
    hold(held)
    policy = _policy(owner.org_id, "not_downloaded", 30)
    assert policy_run(policy_id=policy.id).removed == 2
    assert states([never, long_ago, lately, aliased, held, young]) == [TRASHED, TRASHED, READY, READY, READY, READY]


def test_a_prefix_scopes_the_policy_to_the_paths_under_it(owner, versions):
    inside = versions(owner.org_id, "reports/q1/sales.csv", 3)
    sibling = versions(owner.org_id, "reports-old/sales.csv", 3)
    outside = versions(owner.org_id, "other/sales.csv", 3)
    policy = _policy(owner.org_id, "keep_last", 1, prefix="reports/")
    assert policy_run(policy_id=policy.id).removed == 2
    assert states(inside) == [TRASHED, TRASHED, READY]
    assert states(sibling + outside) == [READY] * 6


def test_each_removal_is_an_audited_event_naming_the_policy(owner, versions):
    old = versions(owner.org_id, "a.txt", 3)
    policy = _policy(owner.org_id, "keep_last", 1, name="keep one")
    policy_run(policy_id=policy.id)
    events = AuditEvent.objects.filter(action="artifact.delete").order_by("resource")
    assert sorted(e.resource for e in events) == sorted(f"artifact:{a.id}" for a in old[:2])
    for event in events:
        assert event.actor == "retention policy keep one"
        assert event.details["reason"] == "retention policy keep one"
        assert event.details["policy_id"] == policy.id
    run = AuditEvent.objects.get(action="retention_policy.run")
    assert run.details["removed"] == 2 and run.resource == f"retention_policy:{policy.id}"
    assert audit_verify_chain(organization_id=owner.org_id).ok


def test_the_preview_is_what_a_run_removes_and_changes_nothing(owner, versions):
    made = versions(owner.org_id, "a.txt", 30, size=10) + versions(owner.org_id, "b.txt", 3, size=7)
    hold(made[0])
    policy = _policy(owner.org_id, "keep_last", 2)
    preview = policy_preview(policy, now=timezone.now())
    # a.txt: 28 beyond the newest two, one of them held; b.txt: 1.
    assert preview.count == 28
    expected = [a for a in made[1:28]] + [made[30]]
    assert preview.bytes == sum(a.size for a in expected)
    assert len(preview.sample) == 20 and {a.id for a in preview.sample} <= {a.id for a in expected}
    assert Artifact.objects.filter(state=READY).count() == 33 and not AuditEvent.objects.filter(
        action="artifact.delete"
    )
    assert policy_run(policy_id=policy.id).removed == 28
    assert set(Artifact.objects.filter(state=TRASHED).values_list("id", flat=True)) == {a.id for a in expected}


def test_a_run_goes_in_batches_and_a_second_run_finds_nothing_left(owner, versions):
    versions(owner.org_id, "a.txt", 12, days_apart=10)
    policy = _policy(owner.org_id, "max_age", 5)
    result = policy_run(policy_id=policy.id, batch=4)
    assert (result.removed, result.batches) == (11, 3)
    policy.refresh_from_db()
    assert policy.last_removed_count == 11 and policy.last_run_at is not None
    assert policy_run(policy_id=policy.id, batch=4).removed == 0


def test_a_keep_last_run_in_small_batches_removes_the_same(owner, versions):
    for n in range(7):
        versions(owner.org_id, f"p/{n}.txt", 4)
    policy = _policy(owner.org_id, "keep_last", 1)
    result = policy_run(policy_id=policy.id, batch=5)
    assert result.removed == 21 and result.batches == 5
    assert Artifact.objects.filter(state=READY).count() == 7


def test_a_paused_policy_removes_nothing_and_another_organizations_artifacts_are_untouched(owner, stranger, versions):
    mine = versions(owner.org_id, "a.txt", 3)
    theirs = versions(stranger.org_id, "a.txt", 3)
    paused = _policy(owner.org_id, "keep_last", 1, name="paused")
    paused.enabled = False
    paused.save()
    assert policy_run(policy_id=paused.id).removed == 0
    _policy(owner.org_id, "keep_last", 1, name="active")
    assert policies_run().removed == 2
    assert states(mine) == [TRASHED, TRASHED, READY] and states(theirs) == [READY] * 3


def test_a_version_aliased_or_held_after_it_was_selected_is_not_removed(owner, versions):
    a, b, c = versions(owner.org_id, "a.txt", 3)
    policy = _policy(owner.org_id, "keep_last", 0 + 1)
    alias(a)
    hold(b)
    assert _remove_batch(policy, policy_actor(policy), [a.id, b.id, c.id]) == 1
    assert states([a, b, c]) == [READY, READY, TRASHED]


def test_pending_and_already_trashed_versions_are_left_alone(owner, versions):
    ready = versions(owner.org_id, "a.txt", 2, days_apart=30, newest_days_ago=30)
    pending = make_artifact(owner.org_id, None, "a.txt", state=ArtifactState.PENDING)
    Artifact.objects.filter(id=pending.id).update(created_at=timezone.now() - timedelta(days=90))
    policy = _policy(owner.org_id, "max_age", 10)
    assert policy_run(policy_id=policy.id).removed == 2
    assert Artifact.objects.get(id=pending.id).state == ArtifactState.PENDING
    assert states(ready) == [TRASHED, TRASHED]


def test_the_periodic_task_runs_every_enabled_policy(owner, versions, settings):
    from retention.worker import run_policies

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "retention.run_policies" in scheduled
    versions(owner.org_id, "a.txt", 4)
    _policy(owner.org_id, "keep_last", 3)
    assert run_policies() == 1
    assert run_policies() == 0
    assert AuditEvent.objects.filter(action="retention_policy.run").count() == 1
