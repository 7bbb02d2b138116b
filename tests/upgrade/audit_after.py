"""After an upgrade: new events in two organizations, then the chains checked, intact and tampered.

Run as ``python -m tests.upgrade.audit_after`` from the project's root, with the settings'
environment pointing at the upgraded database (tests/upgrade/test_upgrade.py does). It answers on
stdout with what ``verify_audit`` said at each step, as JSON.
"""

from __future__ import annotations

import io
import json
import os
import sys


def verify() -> dict[str, object]:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:
        return {"ok": False, "output": out.getvalue(), "error": str(exc)}
    return {"ok": True, "output": out.getvalue()}


def tampered(event_id: str) -> dict[str, object]:
    """verify_audit's answer while the event's resource is changed in the database, then put back."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT resource FROM audit_auditevent WHERE id = %s", [event_id])
        (resource,) = cursor.fetchone()
        cursor.execute("UPDATE audit_auditevent SET resource = %s WHERE id = %s", ["tampered", event_id])
        answer = verify()
        cursor.execute("UPDATE audit_auditevent SET resource = %s WHERE id = %s", [resource, event_id])
    return answer


def append_as_the_earlier_release(organization_id: str) -> str:
    """What a process of the earlier release does to record an event: its INSERT names the columns
    it knows (no ``chain``), and it moves the shared chain's head. Returns the event's hash."""
    from django.db import connection, transaction

    from audit.chain import event_hash
    from audit.models import AuditChainHead, AuditEvent
    from core.ids import new_id

    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(id=1)
        event = AuditEvent(
            id=new_id("evt"), organization_id=organization_id, actor="earlier release", action="file.read"
        )
        event.prev_hash = head.last_hash
        event.hash = event_hash(event)
        old_columns = [
            field.column
            for field in AuditEvent._meta.concrete_fields
            if field.name not in {"seq", "chain"}  # seq: the database numbers it
        ]
        values = [
            field.get_db_prep_save(field.pre_save(event, True), connection)
            for field in AuditEvent._meta.concrete_fields
            if field.column in old_columns
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO audit_auditevent ({', '.join(old_columns)}) VALUES ({', '.join(['%s'] * len(values))})",  # noqa: S608
                values,
            )
        seq = AuditEvent.objects.get(id=event.id).seq
        AuditChainHead.objects.filter(id=1).update(last_hash=event.hash, last_seq=seq)
    return event.hash


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from accounts.models import Organization
    from audit.models import AuditChain, AuditChainHead, AuditEvent
    from audit.services import audit_record
    from core.actor import Actor

    head = AuditChainHead.objects.get(id=1)
    shared = AuditEvent.objects.filter(chain="").count()
    old = AuditEvent.objects.filter(chain="").order_by("seq")[shared // 2]
    orgs = list(Organization.objects.order_by("created_at", "id").values_list("id", flat=True)[:2])

    def new_events(org: str) -> list:
        actor = Actor(organization_id=org, label="after upgrade")
        return [audit_record(actor=actor, action="file.read", resource=f"r{i}") for i in range(3)]

    new = new_events(orgs[0])
    # A process of the earlier release, not yet restarted, appends to the shared chain meanwhile.
    late = append_as_the_earlier_release(orgs[1])
    new += new_events(orgs[1])
    report = {
        "shared_events": shared,
        "organizations": orgs,
        "chain_starts": [
            [start.start_seq, start.start_hash]
            for start in AuditChain.objects.filter(key__in=orgs).order_by("start_seq")
        ],
        "first_new_prev_hashes": [new[0].prev_hash, new[3].prev_hash],
        "shared_head": [head.last_seq, head.last_hash],
        "late_event": late,
        "after_new_events": verify(),
        "old_event": old.id,
        "old_tampered": tampered(old.id),
        "new_event": new[4].id,
        "new_tampered": tampered(new[4].id),
        "restored": verify(),
    }
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main()
