from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_record
from core.actor import Actor


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
