"""A sandbox's status changes and the audit event of an action on it.

Each change is a compare-and-set: it moves the row only from the statuses it expects and says
whether it did, so a duplicate task or a concurrent request finds the work done. The web side
(``sandboxes.services``) and the worker side (``sandboxes.worker``) both call these.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.utils import timezone

from audit.models import Outcome
from audit.services import audit_record
from core.actor import Actor
from core.errors import StowageError
from sandboxes.models import Sandbox, SandboxStatus

STOPPABLE = (SandboxStatus.CREATING, SandboxStatus.RUNNING, SandboxStatus.ERROR)
EXPIRABLE = (SandboxStatus.CREATING, SandboxStatus.RUNNING)


def sandbox_mark_running(*, sandbox_id: str, isolated: bool, disk_enforced: bool = False) -> bool:
    return bool(
        Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.CREATING).update(
            status=SandboxStatus.RUNNING, started_at=timezone.now(), isolated=isolated, disk_enforced=disk_enforced
        )
    )


def sandbox_mark_failed(*, sandbox_id: str, message: str) -> bool:
    """A sandbox that never started; one already stopped or running keeps its status."""
    return bool(
        Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.CREATING).update(
            status=SandboxStatus.ERROR, error_message=message, stopped_at=timezone.now()
        )
    )


def sandbox_mark_terminating(*, sandbox_id: str) -> bool:
    return bool(Sandbox.objects.filter(id=sandbox_id, status__in=STOPPABLE).update(status=SandboxStatus.TERMINATING))


def sandbox_mark_expired(*, sandbox_id: str, now: datetime) -> bool:
    """Start stopping a sandbox past its expiry; an extension made since it was found wins."""
    return bool(
        Sandbox.objects.filter(id=sandbox_id, status__in=EXPIRABLE, expires_at__lte=now).update(
            status=SandboxStatus.TERMINATING
        )
    )


def sandbox_mark_terminated(*, sandbox_id: str) -> bool:
    return bool(
        Sandbox.objects.filter(id=sandbox_id, status=SandboxStatus.TERMINATING).update(
            status=SandboxStatus.TERMINATED, stopped_at=timezone.now()
        )
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
        audit_record(
            actor=actor,
            action=action,
            resource=resource or f"sandbox:{sandbox.id}",
            sandbox_id=sandbox.id,
            session_id=sandbox.session_id,
            details=details,
            # A path the host refused (a link out of the workspace) was denied, not a failure.
            outcome=Outcome.DENIED if exc.code == "INVALID_PATH" else Outcome.FAILURE,
            error_message=f"{exc.code}: {exc.message}",
            duration_ms=int((time.monotonic() - started) * 1000),
            organization_id=sandbox.organization_id,
        )
        exc.audited = True
        raise
    audit_record(
        actor=actor,
        action=action,
        resource=resource or f"sandbox:{sandbox.id}",
        sandbox_id=sandbox.id,
        session_id=sandbox.session_id,
        details=details,
        outcome=details.pop("_outcome", Outcome.SUCCESS),
        error_message=details.pop("_error", ""),
        duration_ms=int((time.monotonic() - started) * 1000),
        organization_id=sandbox.organization_id,
    )
