from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import rows
from audit.chain import GENESIS_HASH, canonical_body, canonical_content, chain_key, event_hash, shared_chain
from audit.models import AuditChain, AuditEvent, Outcome
from audit.verify import ChainReport, audit_verify_chain, audit_verify_chains
from core.actor import Actor
from core.group_commit import AsyncGroupCommit, GroupCommit
from core.ids import new_id

__all__ = [
    "GENESIS_HASH",
    "ChainReport",
    "audit_record",
    "audit_record_async",
    "audit_record_many",
    "audit_verify_chain",
    "audit_verify_chains",
    "canonical_body",
    "canonical_content",
    "event_hash",
]


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
    event = _event(
        actor=actor,
        action=action,
        resource=resource,
        sandbox_id=sandbox_id,
        session_id=session_id,
        details=details,
        outcome=outcome,
        error_message=error_message,
        duration_ms=duration_ms,
        organization_id=organization_id,
    )
    if transaction.get_connection().in_atomic_block:
        # Part of the caller's change. The lock on the chain's head orders the appends to this
        # chain alone and is held until the caller's transaction ends: callers record their event
        # as the last thing they do in it.
        _append([event])
    else:
        _grouped.submit(event, key=event.chain)
    return event


async def audit_record_async(**arguments: Any) -> AuditEvent:
    """``audit_record`` from a coroutine, outside any transaction: the events that a process's
    requests record meanwhile are appended together, in one of its database steps."""
    event = _event(**arguments)
    await _grouped_async.submit(event, key=event.chain)
    return event


def audit_record_many(*, actor: Actor, organization_id: str | None, entries: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append many events of one organization's chain at once (a bulk change: one event per
    artifact it touched), each ``entries`` item the keyword arguments of ``audit_record`` but the
    actor and organization. One lock of the chain's head, one insert, one update of the head: the
    events are linked in the order given, exactly as if appended one by one."""
    if not entries:
        return []
    events = [_event(actor=actor, organization_id=organization_id, **entry) for entry in entries]
    with transaction.atomic():
        _append(events)
    return events


def _append(events: list[AuditEvent]) -> None:
    """Link ``events`` onto their chains in the order given, in the caller's transaction: per
    chain one lock of its head, one insert, one update of the head."""
    chains: dict[str, list[AuditEvent]] = {}
    for event in events:
        chains.setdefault(event.chain, []).append(event)
    with transaction.atomic(savepoint=False):
        # In a fixed order, so that two batches never wait on each other's heads.
        for key in sorted(chains):
            linked = chains[key]
            prev = _locked_head_hash(key)
            for event in linked:
                event.prev_hash = prev
                prev = event.hash = event_hash(event)
            rows.events_insert(linked)
            rows.head_advance(key, last_hash=prev, last_seq=linked[-1].seq, count=len(linked))


_grouped: GroupCommit[AuditEvent] = GroupCommit(_append)
_grouped_async: AsyncGroupCommit[AuditEvent] = AsyncGroupCommit(_append)


def _event(
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
    # The JSON round trip makes the stored details exactly what the hash covers.
    event.details = json.loads(json.dumps(event.details, default=str))
    event.chain = chain_key(event.organization_id)
    return event


def _locked_head_hash(key: str) -> str:
    last_hash = rows.head_hash(key)
    if last_hash is None:
        # A chain's first event: the chain begins where the shared chain stands. Two first events
        # at once both insert; one insert is ignored and both then lock the one row.
        shared = shared_chain()
        start = AuditChain(key=key, start_seq=shared.last_seq, start_hash=shared.last_hash, last_hash=shared.last_hash)
        AuditChain.objects.bulk_create([start], ignore_conflicts=True)
        last_hash = rows.head_hash(key)
    return last_hash
