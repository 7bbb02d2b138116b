from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent, Outcome
from core.actor import Actor
from core.ids import new_id

GENESIS_HASH = "0" * 64


def canonical_body(event: AuditEvent) -> dict[str, Any]:
    """Every field an event's hash covers, as plain JSON values (exports carry exactly these)."""
    return {
        "id": event.id,
        "timestamp": event.timestamp.isoformat(),
        "organization_id": event.organization_id,
        "actor_user_id": event.actor_user_id,
        "actor_api_key_id": event.actor_api_key_id,
        "actor": event.actor,
        "action": event.action,
        "resource": event.resource,
        "sandbox_id": event.sandbox_id,
        "session_id": event.session_id,
        "details": event.details,
        "outcome": event.outcome,
        "error_message": event.error_message,
        "duration_ms": event.duration_ms,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
        # Covered only when set, so that events recorded before the column existed keep their hashes.
        **({"client_request_id": event.client_request_id} if event.client_request_id else {}),
    }


def canonical_content(event: AuditEvent) -> bytes:
    # scripts/verify_audit_export.py computes the same bytes; change both or neither.
    body = canonical_body(event)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_content(event)).hexdigest()


def audit_record(
    *,
    actor: Actor,
    action: str,
    resource: str = "",
    sandbox_id: str = "",
    session_id: str = "",
    details: dict[str, Any] | None = None,
    outcome: str = Outcome.SUCCESS,
    error_message: str = "",
    duration_ms: int | None = None,
    organization_id: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        id=new_id("evt"),
        timestamp=timezone.now(),
        organization_id=organization_id if organization_id is not None else actor.organization_id,
        actor_user_id=actor.user_id,
        actor_api_key_id=actor.api_key_id,
        actor=actor.label[:200],
        action=action,
        resource=resource[:1200],
        sandbox_id=sandbox_id,
        session_id=session_id or "",
        details=details or {},
        outcome=outcome,
        error_message=error_message[:4000],
        duration_ms=duration_ms,
        ip=actor.ip,
        user_agent=actor.user_agent[:400],
        request_id=actor.request_id[:128],
        client_request_id=actor.client_request_id[:128],
    )
    # The head row lock orders concurrent appends; the JSON round trip makes the stored
    # details exactly what the hash covers.
    event.details = json.loads(json.dumps(event.details, default=str))
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        event.prev_hash = head.last_hash
        event.hash = event_hash(event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(id=1).update(last_hash=event.hash, last_seq=event.seq)
    return event


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found: how many events it verified and over what time, the head
    it ended at, and the first broken link when there is one."""

    ok: bool
    checked: int
    first_bad_event_id: str | None = None
    problem: str = ""
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    # Of the events checked, those of the organization that asked (the chain spans them all).
    organization_checked: int = 0


def audit_verify_chain(*, organization_id: str | None = None) -> ChainReport:
    """Walk the chain in insertion order; name the first event whose link or content is wrong."""
    prev = GENESIS_HASH
    checked = mine = 0
    first = last = None
    head_seq = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        found = {"checked": checked, "first_timestamp": first, "last_timestamp": last, "organization_checked": mine}
        if event.prev_hash != prev:
            return ChainReport(
                False,
                first_bad_event_id=event.id,
                problem="its link to the previous event is broken (an event before it was deleted, inserted or reordered)",
                head_seq=head_seq,
                head_hash=prev,
                **found,
            )
        if event_hash(event) != event.hash:
            return ChainReport(
                False,
                first_bad_event_id=event.id,
                problem="its content no longer matches its hash (it was edited)",
                head_seq=head_seq,
                head_hash=prev,
                **found,
            )
        prev, head_seq = event.hash, event.seq
        first = first or event.timestamp
        last = event.timestamp
        checked += 1
        mine += organization_id is not None and event.organization_id == organization_id
    found = {"checked": checked, "first_timestamp": first, "last_timestamp": last, "organization_checked": mine}
    head = AuditChainHead.objects.filter(id=1).first()
    if head is not None and head.last_hash != prev:
        return ChainReport(
            False,
            problem="the newest events are missing (the log was truncated)",
            head_seq=head_seq,
            head_hash=prev,
            **found,
        )
    return ChainReport(True, head_seq=head_seq, head_hash=prev, **found)
