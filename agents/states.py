"""A session's status changes, its timeline and the audit events of its actions.

Each change is a compare-and-set: it moves the row only from the statuses it expects and says
whether it did, so a duplicate task or a concurrent request finds the work done. The web side
(``agents.services``, ``agents.workspace``) and the worker side (``agents.worker``) both call these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.events import session_emit
from agents.models import AgentEvent, AgentSession, SessionStatus
from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from core.errors import Conflict, StowageError
from webhooks.events import EVENT_TYPES


def event_record(
    *,
    session_id: str,
    event_type: str,
    sandbox_id: str = "",
    payload: dict[str, Any] | None = None,
    success: bool | None = None,
    duration_ms: int | None = None,
    error_message: str = "",
    subtype: str = "",
) -> AgentEvent:
    """Append an event with the session's next sequence number."""
    now = timezone.now()
    with transaction.atomic():
        # The counter's row lock orders concurrent appends: numbers have no gaps and no twins.
        AgentSession.objects.filter(id=session_id).update(last_sequence=F("last_sequence") + 1, last_activity_at=now)
        sequence = AgentSession.objects.filter(id=session_id).values_list("last_sequence", flat=True).get()
        return AgentEvent.objects.create(
            session_id=session_id,
            sequence_number=sequence,
            event_type=event_type,
            event_subtype=subtype,
            sandbox_id=sandbox_id,
            payload=json.loads(json.dumps(payload or {}, default=str)),
            success=success,
            duration_ms=duration_ms,
            error_message=error_message[:4000],
            created_at=now,
        )


def session_audit(
    *,
    actor: Actor,
    action: str,
    session: AgentSession,
    details: dict[str, Any] | None = None,
    outcome: str = Outcome.SUCCESS,
    error_message: str = "",
    duration_ms: int | None = None,
) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"agent_session:{session.id}",
        sandbox_id=session.current_sandbox_id,
        session_id=session.id,
        details={"session_id": session.id, **(details or {})},
        outcome=outcome,
        error_message=error_message,
        duration_ms=duration_ms,
        organization_id=session.organization_id,
    )


@contextmanager
def audited(
    *, actor: Actor, action: str, session: AgentSession, details: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """One audit event for the block, a refusal or failure too; the block may add details."""
    details = dict(details or {})
    started = time.monotonic()
    try:
        yield details
    except StowageError as exc:
        session_audit(
            actor=actor,
            action=action,
            session=session,
            details=details,
            outcome=Outcome.DENIED if exc.status in (403, 409) else Outcome.FAILURE,
            error_message=f"{exc.code}: {exc.message}",
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise
    session_audit(
        actor=actor,
        action=action,
        session=session,
        details=details,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def session_move(*, session: AgentSession, expected: Iterable[str], to: str, **fields: Any) -> bool:
    """Move the session to ``to`` if its status is still one of ``expected``; False otherwise.
    The time it ran is carried over whenever it stops running."""
    now = timezone.now()
    changes = dict(fields)
    keeps_running = to in (SessionStatus.RUNNING, SessionStatus.ROTATING)
    if not keeps_running and session.running_since is not None:
        changes.setdefault("active_seconds", session.duration_seconds(now))
        changes.setdefault("running_since", None)
    if to == SessionStatus.RUNNING and session.running_since is None:
        changes.setdefault("running_since", now)
    with transaction.atomic():
        moved = AgentSession.objects.filter(
            id=session.id, status__in=list(expected), running_since=session.running_since
        ).update(status=to, last_activity_at=now, **changes)
        if moved and f"session.{to}" in EVENT_TYPES:
            session_emit(session.id)
    return bool(moved)


def refuse_unless_live(session: AgentSession, *, action: str) -> None:
    """409 for a session that has ended: it cannot be asked to do anything any more."""
    if session.is_final:
        raise Conflict(
            f"Agent session '{session.id}' has ended ({session.status}); {action} is not possible",
            code="SESSION_ENDED",
            details={"status": session.status},
        )
