from __future__ import annotations

import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.chain import INSTANCE_CHAIN
from audit.models import AppendOnlyError, AuditChain, AuditEvent
from audit.services import audit_record, audit_record_many, audit_verify_chain, audit_verify_chains
from core.actor import Actor
from tests.factories import make_shared_chain_events


@pytest.fixture
def events(owner):
    actor = Actor(organization_id=owner.org_id, label="tester")
    return [audit_record(actor=actor, action="file.read", resource=f"r{i}") for i in range(5)]


def test_intact_log_verifies(events, capsys):
    call_command("verify_audit")
    assert "intact" in capsys.readouterr().out


def test_events_cannot_be_changed_through_the_orm(events):
    event = events[0]
    event.outcome = "failure"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().update(outcome="failure")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def _sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_an_edited_event_is_named(events):
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", events[2].id)
    with pytest.raises(CommandError, match=events[2].id):
        call_command("verify_audit")


def test_a_deleted_event_is_detected_at_the_next_one(events):
    _sql("DELETE FROM audit_auditevent WHERE id = %s", events[1].id)
    with pytest.raises(CommandError, match=events[2].id):
        call_command("verify_audit")


def test_reordered_events_are_detected(events):
    a, b = events[1], events[3]
    _sql("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", a.id)
    _sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", a.seq, b.id)
    _sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", b.seq, a.id)
    with pytest.raises(CommandError, match="altered"):
        call_command("verify_audit")


def test_a_truncated_log_is_detected(events):
    _sql("DELETE FROM audit_auditevent WHERE id = %s", events[-1].id)
    with pytest.raises(CommandError, match="truncated"):
        call_command("verify_audit")


# --- one chain per organization --------------------------------------------------------------------


def _in(org_id: str | None, n: int) -> list[AuditEvent]:
    actor = Actor(organization_id=org_id, label="tester") if org_id else Actor.system()
    return [audit_record(actor=actor, action="file.read", resource=f"r{i}") for i in range(n)]


def test_each_organization_and_the_instance_has_a_chain_of_its_own(owner, stranger, capsys):
    shared = make_shared_chain_events([owner.org_id, stranger.org_id, None])
    ours, theirs, instance = _in(owner.org_id, 3), _in(stranger.org_id, 2), _in(None, 1)
    # Every chain begins where the shared chain ended, and links only its own events.
    for chain in (ours, theirs, instance):
        assert chain[0].prev_hash == shared[-1].hash
        assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    heads = {head.key: head for head in AuditChain.objects.all()}
    assert set(heads) == {owner.org_id, stranger.org_id, INSTANCE_CHAIN}
    assert (heads[owner.org_id].last_hash, heads[owner.org_id].events) == (ours[-1].hash, 3)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "audit log intact: 9 events verified in 4 chains" in out
    assert (
        f"chain {owner.org_id}: intact, 3 events" in out
        and "shared chain (before per-organization chains): intact, 3 events" in out
    )
    reports = audit_verify_chains(organization_id=owner.org_id)
    assert [(r.chain, r.checked) for r in reports] == [("shared", 3), (owner.org_id, 3)]


def test_a_broken_chain_is_named_and_the_others_still_verify(owner, stranger, capsys):
    make_shared_chain_events([owner.org_id])
    ours, theirs = _in(owner.org_id, 3), _in(stranger.org_id, 3)
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", theirs[1].id)
    with pytest.raises(CommandError, match=f"{theirs[1].id} in chain {stranger.org_id}"):
        call_command("verify_audit")
    out = capsys.readouterr().out
    assert f"chain {owner.org_id}: intact" in out and f"chain {stranger.org_id}: ALTERED at event {theirs[1].id}" in out
    call_command("verify_audit", "--org", owner.org_id)
    with pytest.raises(CommandError, match=theirs[1].id):
        call_command("verify_audit", "--org", stranger.org_id)
    assert audit_verify_chain(organization_id=owner.org_id).ok
    assert ours


def test_an_edit_in_the_shared_chain_is_named(owner, stranger):
    shared = make_shared_chain_events([owner.org_id, stranger.org_id, owner.org_id])
    _in(owner.org_id, 2)
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", shared[1].id)
    with pytest.raises(CommandError, match=f"{shared[1].id} in shared chain"):
        call_command("verify_audit", "--instance")


def test_a_chain_truncated_or_without_its_head_is_detected(owner, stranger):
    ours, theirs = _in(owner.org_id, 3), _in(stranger.org_id, 2)
    _sql("DELETE FROM audit_auditevent WHERE id = %s", ours[-1].id)
    with pytest.raises(CommandError, match="truncated"):
        call_command("verify_audit", "--org", owner.org_id)
    _sql("DELETE FROM audit_auditchain WHERE key = %s", stranger.org_id)
    report = audit_verify_chains()
    assert [r.chain for r in report if not r.ok] == [owner.org_id, stranger.org_id]
    assert (
        report[-1].first_bad_event_id == AuditEvent.objects.filter(organization_id=stranger.org_id).earliest("seq").id
    )
    assert theirs


def test_a_chain_that_does_not_begin_on_the_shared_chain_is_detected(owner):
    make_shared_chain_events([owner.org_id, None])
    _in(owner.org_id, 2)
    assert audit_verify_chain().ok
    _sql("UPDATE audit_auditchain SET start_seq = start_seq - 1 WHERE key = %s", owner.org_id)
    with pytest.raises(CommandError, match="does not begin on the shared chain"):
        call_command("verify_audit", "--org", owner.org_id)


def test_events_an_earlier_release_appends_during_an_upgrade_stay_in_the_shared_chain(owner, stranger, capsys):
    make_shared_chain_events([owner.org_id])
    ours = _in(owner.org_id, 2)
    late = make_shared_chain_events([stranger.org_id, owner.org_id], fresh=False)
    _in(stranger.org_id, 1)
    call_command("verify_audit")
    assert "shared chain (before per-organization chains): intact, 3 events" in capsys.readouterr().out
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", late[1].id)
    with pytest.raises(CommandError, match=f"{late[1].id} in shared chain"):
        call_command("verify_audit")
    assert ours


def test_a_bulk_append_larger_than_one_statement_is_linked_in_order_and_verifies(owner):
    # More events than Django lets one INSERT carry on SQLite (999 parameters): several statements.
    actor = Actor(organization_id=owner.org_id, label="tester")
    entries = [{"action": "artifact.delete", "resource": f"artifact:{i}"} for i in range(1500)]
    returned = audit_record_many(actor=actor, organization_id=owner.org_id, entries=entries)
    audit_record(actor=actor, action="file.read", resource="after")
    stored = list(AuditEvent.objects.filter(organization_id=owner.org_id).order_by("seq"))
    bulk = [event for event in stored if event.action == "artifact.delete"]
    assert [event.resource for event in bulk] == [entry["resource"] for entry in entries]
    assert [(event.id, event.seq, event.hash) for event in returned] == [
        (event.id, event.seq, event.hash) for event in bulk
    ]
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    head = AuditChain.objects.get(key=owner.org_id)
    assert head.events == len(stored) and head.last_seq == stored[-1].seq and head.last_hash == stored[-1].hash
    assert audit_verify_chain(organization_id=owner.org_id).ok
