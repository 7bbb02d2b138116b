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


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from accounts.models import Organization
    from audit.models import AuditChainHead, AuditEvent
    from audit.services import audit_record
    from core.actor import Actor

    head = AuditChainHead.objects.get(id=1)
    old = AuditEvent.objects.filter(seq__lte=head.cutover_seq).order_by("seq")[head.cutover_seq // 2]
    orgs = list(Organization.objects.order_by("created_at", "id").values_list("id", flat=True)[:2])
    new = [
        audit_record(actor=Actor(organization_id=org, label="after upgrade"), action="file.read", resource=f"r{i}")
        for org in orgs
        for i in range(3)
    ]
    report = {
        "cutover_seq": head.cutover_seq,
        "organizations": orgs,
        "first_new_prev_hashes": sorted({event.prev_hash for event in new[::3]}),
        "shared_last_hash": head.last_hash,
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
