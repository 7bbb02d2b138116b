"""Refusals in the audit log: a bad key, a missing scope, a path outside the sandbox, another
organization's id, a wrong share-link password, a tampered URL, a failed sign-in.

Anyone can cause a refusal without an account, so they are rate-limited per minute: the first
``AUDIT_REFUSALS_PER_SOURCE`` of one kind (organization, action) from one source (key, user or
address) are recorded in full, and one kind writes at most ``AUDIT_REFUSALS_PER_KIND`` events
from all sources together. The refusal by which a source crosses its own limit is recorded as
``audit.refusals_throttled`` naming the source, charged to the kind's budget like any event; the
one that crosses the kind's budget writes one more, for every source (``*``), and nothing else of
the kind is written that minute. The rest are only counted, and the first refusal recorded from a
source in the next minute says how many of its own were left out. A flood grows the log by at
most ``AUDIT_REFUSALS_PER_KIND + 1`` events a minute a kind, however fast it comes and from however
many addresses. See docs/audit.md.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from audit.models import AuditEvent, Outcome
from audit.services import audit_record
from core.actor import Actor

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
THROTTLED_ACTION = "audit.refusals_throttled"
INSTANCE = "instance"


class _Counters:
    """Per-minute counters in the shared cache, so every web process counts together; while
    the cache is unreachable, in this process alone, so a flood stays bounded even then."""

    def __init__(self) -> None:
        self._local: dict[str, int] = {}
        self._local_window = -1
        self._lock = threading.Lock()

    def bump(self, key: str, window: int) -> int:
        try:
            if cache.add(key, 1, timeout=WINDOW_SECONDS * 3):
                return 1
            return cache.incr(key)
        except ValueError:
            # The key expired between add and incr.
            return 1 if cache.add(key, 1, timeout=WINDOW_SECONDS * 3) else cache.incr(key)
        except Exception as exc:  # the cache's backend raises its own connection errors
            logger.warning("audit refusal counters fall back to this process: %s", exc)
            return self._bump_locally(key, window)

    def peek(self, key: str) -> int:
        try:
            return int(cache.get(key) or 0)
        except Exception:
            return self._local.get(key, 0)

    def _bump_locally(self, key: str, window: int) -> int:
        with self._lock:
            if window != self._local_window:
                self._local, self._local_window = {}, window
            self._local[key] = self._local.get(key, 0) + 1
            return self._local[key]


_counters = _Counters()


def refusal_source(actor: Actor) -> str:
    if actor.api_key_id:
        return f"key:{actor.api_key_id}"
    if actor.user_id:
        return f"user:{actor.user_id}"
    return f"ip:{actor.ip or 'unknown'}"


def audit_refusal(
    *,
    actor: Actor,
    action: str,
    reason: str,
    organization_id: str | None,
    resource: str = "",
    sandbox_id: str = "",
    details: dict[str, Any] | None = None,
    outcome: str = Outcome.DENIED,
) -> AuditEvent | None:
    """Record a refusal in the organization's log (the instance security log when ``None``),
    unless this kind of refusal from this source is over its limit for the minute."""
    window = int(time.time() // WINDOW_SECONDS)
    kind = f"audit-refusals:{organization_id or INSTANCE}:{action}"
    source = refusal_source(actor)
    per_source, per_kind = settings.AUDIT_REFUSALS_PER_SOURCE, settings.AUDIT_REFUSALS_PER_KIND
    from_source = _counters.bump(f"{kind}:{source}:{window}", window)
    if from_source > per_source + 1:
        return None
    # Every event a kind writes in a minute is charged to its budget, the notice that a source
    # crossed its own limit included: otherwise N sources would write N notices a minute.
    written = _counters.bump(f"{kind}:*:{window}", window)
    if written > per_kind + 1:
        return None
    if written == per_kind + 1 or from_source == per_source + 1:
        by_source = written <= per_kind
        return audit_record(
            actor=actor,
            action=THROTTLED_ACTION,
            resource=resource,
            details={
                "action": action,
                "source": source if by_source else "*",
                "limit_per_minute": per_source if by_source else per_kind,
                "window_start": window * WINDOW_SECONDS,
            },
            outcome=outcome,
            error_message=f"more {action} refusals this minute are counted, not recorded",
            organization_id=organization_id,
        )
    details = {"reason": reason, **(details or {})}
    if from_source == 1:
        previous = f"{kind}:{source}:{window - 1}"
        left_out = _counters.peek(previous) - _counters.peek(f"{previous}:recorded")
        if left_out > 0:
            details["left_out_in_previous_minute"] = left_out
    _counters.bump(f"{kind}:{source}:{window}:recorded", window)
    return audit_record(
        actor=actor,
        action=action,
        resource=resource,
        sandbox_id=sandbox_id,
        details=details,
        outcome=outcome,
        error_message=reason,
        organization_id=organization_id,
    )
