"""Refusals in the audit log: a bad key, a missing scope, a path outside the sandbox, another
organization's id, a wrong share-link password, a tampered URL, a failed sign-in.

Anyone can cause a refusal without an account, so they are rate-limited per minute: the first
``AUDIT_REFUSALS_PER_SOURCE`` of one kind (organization, action) from one source (key, user or
address) are recorded in full, and at most ``AUDIT_REFUSALS_PER_KIND`` of one kind from all
sources together. The refusal that crosses a limit is recorded once as
``audit.refusals_throttled``; the rest of that minute are only counted, and the first refusal
recorded from the same source in the next minute says how many were left out. A flood grows the
log by a bounded number of events a minute, however fast it comes. See docs/audit.md.
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
    scope = organization_id or INSTANCE
    source = refusal_source(actor)
    source_key = f"audit-refusals:{scope}:{action}:{source}"
    kind_key = f"audit-refusals:{scope}:{action}:*"
    from_source = _counters.bump(f"{source_key}:{window}", window)
    of_kind = _counters.bump(f"{kind_key}:{window}", window)
    per_source, per_kind = settings.AUDIT_REFUSALS_PER_SOURCE, settings.AUDIT_REFUSALS_PER_KIND
    if from_source <= per_source and of_kind <= per_kind:
        details = {"reason": reason, **(details or {})}
        if from_source == 1:
            left_out = _counters.peek(f"{source_key}:{window - 1}") - per_source - 1
            if left_out > 0:
                details["left_out_in_previous_minute"] = left_out
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
    if from_source == per_source + 1 or of_kind == per_kind + 1:
        by_source = from_source == per_source + 1
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
    return None
