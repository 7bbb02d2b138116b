"""The links of the audit chains: what an event's hash covers, which chain an event joins, and
where the chains begin.

Events of earlier releases joined one chain shared by every organization (``chain`` empty, its head
``AuditChainHead``). Every event of this release joins the chain of its organization, or the
instance's when it has none (``chain`` names it, its head ``AuditChain``); each such chain begins
where the shared chain stood when the chain's first event was appended, so an export that spans
the two links up unbroken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from audit.models import AuditChain, AuditChainHead, AuditEvent

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
        # Covered only when set, so that events recorded before the columns existed keep their hashes.
        **({"client_request_id": event.client_request_id} if event.client_request_id else {}),
        **({"chain": event.chain} if event.chain else {}),
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
    """Where the shared chain of earlier releases' events stands: its newest event's seq and hash."""

    last_seq: int
    last_hash: str


def shared_chain() -> SharedChain:
    head = AuditChainHead.objects.filter(id=1).first()
    if head is None:
        return SharedChain(last_seq=0, last_hash=GENESIS_HASH)
    return SharedChain(last_seq=head.last_seq, last_hash=head.last_hash)


@dataclass(frozen=True)
class ChainStart:
    """Which chain an organization's events join, and where on the shared chain it begins (where
    the shared chain stands now, for a chain with no event yet)."""

    key: str
    seq: int
    hash: str


def chain_start(organization_id: str | None) -> ChainStart:
    key = chain_key(organization_id)
    head = AuditChain.objects.filter(key=key).first()
    if head is not None:
        return ChainStart(key, head.start_seq, head.start_hash)
    shared = shared_chain()
    return ChainStart(key, shared.last_seq, shared.last_hash)


def chain_span(key: str, start_seq: int) -> Q:
    """Every event a chain runs through from the first: the shared chain's up to where the chain
    began, then its own."""
    return Q(chain="", seq__lte=start_seq) | Q(chain=key)
