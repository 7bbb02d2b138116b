"""A sandbox's status changes and the audit event of an action on it.

Each change is a compare-and-set: it moves the row only from the statuses it expects and says
whether it did, so a duplicate task or a concurrent request finds the work done. The web side
(``sandboxes.services``) and the worker side (``sandboxes.worker``) both call these.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit_record, audit_record_async
from core.actor import Actor
from core.errors import StowageError
from sandboxes.events import sandbox_emit_by_id
from sandboxes.models import Sandbox, SandboxStatus

STOPPABLE = (SandboxStatus.CREATING, SandboxStatus.RUNNING, SandboxStatus.ERROR)
EXPIRABLE = (SandboxStatus.CREATING, SandboxStatus.RUNNING)

T = TypeVar("T")


def _moved_with_event(moved: int, sandbox_id: str, event_type: str) -> bool:
    """Called inside the change's transaction: the event is committed with the change or not at all."""
    if moved:
        sandbox_emit_by_id(sandbox_id, event_type)
    return bool(moved)


def sandbox_mark_running(*, sandbox_id: str, isolated: bool, disk_enforced: bool = False) -> bool:
    with transaction.atomic():
        moved = Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.CREATING).update(
            status=SandboxStatus.RUNNING, started_at=timezone.now(), isolated=isolated, disk_enforced=disk_enforced
        )
        return _moved_with_event(moved, sandbox_id, "sandbox.ready")


def sandbox_mark_failed(*, sandbox_id: str, message: str) -> bool:
    """A sandbox that never started; one already stopped or running keeps its status."""
    with transaction.atomic():
        moved = Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.CREATING).update(
            status=SandboxStatus.ERROR, error_message=message, stopped_at=timezone.now()
        )
        return _moved_with_event(moved, sandbox_id, "sandbox.error")


def sandbox_mark_terminating(*, sandbox_id: str) -> bool:
    return bool(Sandbox.objects.filter(id=sandbox_id, status__in=STOPPABLE).update(status=SandboxStatus.TERMINATING))


def sandbox_mark_expired(*, sandbox_id: str, now: datetime) -> bool:
    """Start stopping a sandbox past its expiry; an extension made since it was found wins."""
    with transaction.atomic():
        moved = Sandbox.objects.filter(id=sandbox_id, status__in=EXPIRABLE, expires_at__lte=now).update(
            status=SandboxStatus.TERMINATING
        )
        return _moved_with_event(moved, sandbox_id, "sandbox.timeout")


def sandbox_mark_terminated(*, sandbox_id: str) -> bool:
    with transaction.atomic():
        moved = Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.TERMINATING).update(
            status=SandboxStatus.TERMINATED, stopped_at=timezone.now()
        )
        return _moved_with_event(moved, sandbox_id, "sandbox.stopped")


def _record(**arguments: Any) -> None:
    audit_record(**_event_arguments(**arguments))


def _event_arguments(
    *,
    actor: Actor,
    action: str,
    sandbox: Sandbox,
    resource: str,
    details: dict[str, Any],
    started: float,
    error: StowageError | None,
) -> dict[str, Any]:
    if error is not None:
        # A path the host refused (a link out of the workspace) was denied, not a failure.
        outcome = Outcome.DENIED if error.code == "INVALID_PATH" else Outcome.FAILURE
        message = f"{error.code}: {error.message}"
    else:
        outcome, message = details.pop("_outcome", Outcome.SUCCESS), details.pop("_error", "")
    return dict(
        actor=actor,
        action=action,
        resource=resource or f"sandbox:{sandbox.id}",
        sandbox_id=sandbox.id,
        session_id=sandbox.session_id,
        details=details,
        outcome=outcome,
        error_message=message,
        duration_ms=int((time.monotonic() - started) * 1000),
        organization_id=sandbox.organization_id,
    )


@contextmanager
def audited(
    *, actor: Actor, action: str, sandbox: Sandbox, resource: str = "", details: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Record one audit event for the block, a failure too; the block may add details."""
    details = dict(details or {})
    started = time.monotonic()
    try:
        yield details
    except StowageError as exc:
        _record(
            actor=actor, action=action, sandbox=sandbox, resource=resource, details=details, started=started, error=exc
        )
        exc.audited = True
        raise
    _record(
        actor=actor, action=action, sandbox=sandbox, resource=resource, details=details, started=started, error=None
    )


async def audited_wait(
    waiting: Awaitable[T],
    *,
    actor: Actor,
    action: str,
    sandbox: Sandbox,
    resource: str = "",
    details: dict[str, Any] | None = None,
    describe: Callable[[T, dict[str, Any]], None] | None = None,
) -> T:
    """``audited`` around an awaited answer: the event is written in a thread, the wait holds none.
    ``describe(answer, details)`` may add to the event's details."""
    details = dict(details or {})
    started = time.monotonic()

    async def record(**arguments: Any) -> None:
        await audit_record_async(**_event_arguments(**arguments))

    try:
        answer = await waiting
        if describe is not None:
            describe(answer, details)
    except StowageError as exc:
        await record(
            actor=actor, action=action, sandbox=sandbox, resource=resource, details=details, started=started, error=exc
        )
        exc.audited = True
        raise
    await record(
        actor=actor, action=action, sandbox=sandbox, resource=resource, details=details, started=started, error=None
    )
    return answer
