"""What an agent does in its session's current sandbox: run commands (counted against its
budget), read and write files, save artifacts tagged with the session. Each goes through the
sandbox's own services, and lands on the session's timeline."""

from __future__ import annotations

import time
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from agents.models import AgentSession, SessionStatus
from agents.selectors import session_current_sandbox
from agents.states import event_record, session_audit
from audit.models import Outcome
from core.actor import Actor
from core.errors import Conflict, InvalidInput, StowageError
from sandboxes import files
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.services import sandbox_execute
from transfers.services import artifact_upload_from_sandbox

# An event warns once the session has used this share of a budget.
BUDGET_WARNING_SHARE = 0.8


def check_status(session: AgentSession, *, running_only: bool = True) -> None:
    """409 unless the session may work now. ``running_only``: commands and writes need a running
    session; reading and saving artifacts also work while it is paused."""
    allowed = (SessionStatus.RUNNING,) if running_only else (SessionStatus.RUNNING, SessionStatus.PAUSED)
    if session.status == SessionStatus.ROTATING:
        raise Conflict(
            f"Agent session '{session.id}' is moving to a new sandbox; try again in a moment",
            code="SESSION_ROTATING",
            details={"status": session.status},
        )
    if session.status not in allowed:
        raise Conflict(
            f"Agent session '{session.id}' is {session.status}, not running",
            code="SESSION_NOT_RUNNING",
            details={"status": session.status},
        )


def current_sandbox(session: AgentSession, *, running_only: bool = True) -> Sandbox:
    """The sandbox the session works in now; 409 when it may not work or has no running sandbox."""
    check_status(session, running_only=running_only)
    sandbox = session_current_sandbox(session=session)
    if sandbox is None or sandbox.status != SandboxStatus.RUNNING:
        raise Conflict(
            f"Agent session '{session.id}' has no running sandbox",
            code="SESSION_NO_SANDBOX",
            details={"status": session.status, "sandbox_id": session.current_sandbox_id or None},
        )
    return sandbox


def _refuse(actor: Actor, session: AgentSession, exc: StowageError, details: dict[str, Any]) -> None:
    session_audit(
        actor=actor,
        action="session.exec",
        session=session,
        details=details,
        outcome=Outcome.DENIED,
        error_message=f"{exc.code}: {exc.message}",
    )


def _budget_exceeded(session: AgentSession, *, kind: str, limit: int, used: int) -> Conflict:
    event_record(
        session_id=session.id,
        event_type="budget_exceeded",
        sandbox_id=session.current_sandbox_id,
        payload={"budget": kind, "limit": limit, "consumed": used},
        success=False,
    )
    return Conflict(
        f"Agent session '{session.id}' has used its {kind} ({used} of {limit}); no more commands run in it",
        code="BUDGET_EXCEEDED",
        details={"budget": kind, "limit": limit, "consumed": used},
    )


def _reserve_iteration(session: AgentSession) -> None:
    """Count the command before it runs, in one conditional UPDATE, so that concurrent commands
    can never run past the iteration limit."""
    if session.duration_limit_seconds is not None:
        used = session.duration_seconds()
        if used >= session.duration_limit_seconds:
            raise _budget_exceeded(
                session, kind="duration_limit_seconds", limit=session.duration_limit_seconds, used=used
            )
    within = Q() if session.iteration_limit is None else Q(exec_count__lt=session.iteration_limit)
    reserved = AgentSession.objects.filter(within, id=session.id, status=SessionStatus.RUNNING).update(
        exec_count=F("exec_count") + 1, last_activity_at=timezone.now()
    )
    if reserved:
        return
    session.refresh_from_db()
    check_status(session)  # the status changed meanwhile: the same 409 as before
    raise _budget_exceeded(session, kind="iteration_limit", limit=session.iteration_limit, used=session.exec_count)


def _give_back(session: AgentSession) -> None:
    """A command refused before it ran used nothing of the budget."""
    AgentSession.objects.filter(id=session.id, exec_count__gt=0).update(exec_count=F("exec_count") - 1)


def session_exec(
    *,
    actor: Actor,
    session: AgentSession,
    command: str | list[str],
    working_dir: str | None = None,
    env: dict[str, str] | None = None,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    """Run a command in the current sandbox, in the context's working directory and env unless
    the call names its own; refused (409) when the session is not running or over budget."""
    text = command if isinstance(command, str) else " ".join(str(part) for part in command)
    details = {"command": text[:1000]}
    try:
        check_status(session)
        _reserve_iteration(session)
    except StowageError as exc:
        _refuse(actor, session, exc, details)
        raise
    try:
        sandbox = current_sandbox(session)
    except StowageError as exc:
        _give_back(session)
        _refuse(actor, session, exc, details)
        raise
    context = session.context or {}
    started = time.monotonic()
    try:
        answer = sandbox_execute(
            actor=actor,
            sandbox=sandbox,
            command=command,
            timeout_ms=timeout_ms,
            env={**(context.get("env_vars") or {}), **(env or {})},
            working_dir=working_dir or context.get("working_dir"),
        )
    except InvalidInput:
        _give_back(session)
        raise
    except StowageError as exc:
        event_record(
            session_id=session.id,
            event_type="error",
            subtype="exec",
            sandbox_id=sandbox.id,
            payload=details,
            success=False,
            error_message=exc.message,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise
    event_record(
        session_id=session.id,
        event_type="exec_completed",
        sandbox_id=sandbox.id,
        payload={**details, "exit_code": answer["exit_code"], "timed_out": answer["timed_out"]},
        success=answer["exit_code"] == 0 and not answer["timed_out"],
        duration_ms=answer.get("duration_ms"),
    )
    _warn_near_limit(session)
    return answer


def _warn_near_limit(session: AgentSession) -> None:
    limit = session.iteration_limit
    if not limit:
        return
    used = AgentSession.objects.filter(id=session.id).values_list("exec_count", flat=True).get()
    threshold = max(1, int(limit * BUDGET_WARNING_SHARE))
    if used == threshold:
        event_record(
            session_id=session.id,
            event_type="budget_warning",
            payload={"budget": "iteration_limit", "limit": limit, "consumed": used},
        )


def session_read_file(*, actor: Actor, session: AgentSession, path: str) -> dict[str, Any]:
    sandbox = current_sandbox(session, running_only=False)
    answer = files.sandbox_read_file(actor=actor, sandbox=sandbox, path=path)
    event_record(session_id=session.id, event_type="file_read", sandbox_id=sandbox.id, payload={"path": answer["path"]})
    return answer


def session_write_files(*, actor: Actor, session: AgentSession, items: list[dict[str, str]]) -> list[dict[str, Any]]:
    sandbox = current_sandbox(session)
    written = files.sandbox_write_files(actor=actor, sandbox=sandbox, files=items)
    event_record(
        session_id=session.id,
        event_type="file_written",
        sandbox_id=sandbox.id,
        payload={"paths": [item["path"] for item in written][:100]},
    )
    return written


def session_list_files(*, actor: Actor, session: AgentSession, path: str, recursive: bool) -> list[dict[str, Any]]:
    sandbox = current_sandbox(session, running_only=False)
    return files.sandbox_list_files(actor=actor, sandbox=sandbox, path=path, recursive=recursive)


def session_upload_artifact(*, actor: Actor, session: AgentSession, wait: bool = True, **upload: Any):
    """Upload from the session's current sandbox; the artifact is tagged with the session."""
    sandbox = current_sandbox(session, running_only=False)
    transfer = artifact_upload_from_sandbox(actor=actor, sandbox=sandbox, session_id=session.id, wait=wait, **upload)
    event_record(
        session_id=session.id,
        event_type="artifact_uploaded" if wait else "artifact_upload_started",
        sandbox_id=sandbox.id,
        payload={"artifact_id": transfer.artifact_id, "path": transfer.path, "transfer_id": transfer.id},
        success=True if wait else None,
    )
    return transfer
