"""The links of the audit chains: what an event's hash covers, which chain an event joins, and
where the chains begin.

Until per-organization chains began, every event joined one shared chain (``AuditChainHead``),
closed since at its ``cutover_seq``. Every later event joins the chain of its organization, or the
instance's when it has none (``AuditChain``); each of those chains begins at the hash of the shared
chain's last event, so an export that spans the cut-over links up unbroken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from audit.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
# The key of the chain of events of no organization (an organization's chain is keyed by its id).
INSTANCE_CHAIN = "instance"


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


def chain_key(organization_id: str | None) -> str:
    return organization_id or INSTANCE_CHAIN


@dataclass(frozen=True)
class SharedChain:
    """The closed shared chain: its events are those with ``seq <= cutover_seq``, and ``last_hash``
    is the hash of the last of them, where every per-organization chain begins."""

    cutover_seq: int
    last_seq: int
    last_hash: str


def shared_chain() -> SharedChain:
    head = AuditChainHead.objects.filter(id=1).first()
    if head is None:
        return SharedChain(cutover_seq=0, last_seq=0, last_hash=GENESIS_HASH)
    cutover = head.cutover_seq if head.cutover_seq is not None else head.last_seq
    return SharedChain(cutover_seq=cutover, last_seq=head.last_seq, last_hash=head.last_hash)


def chain_filter(key: str, *, cutover_seq: int) -> Q:
    """The events of one chain after the cut-over."""
    organization = Q(organization__isnull=True) if key == INSTANCE_CHAIN else Q(organization_id=key)
    return Q(seq__gt=cutover_seq) & organization


def chain_span_filter(organization_id: str | None, *, cutover_seq: int) -> Q:
    """Every event an organization's chain runs through from its start: the shared chain's, then its own."""
    return Q(seq__lte=cutover_seq) | chain_filter(chain_key(organization_id), cutover_seq=cutover_seq)
