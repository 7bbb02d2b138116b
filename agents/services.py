"""Every change a request makes to an agent session's life: create, start, pause, resume, stop,
cancel, delete, heartbeat, reattach, its context and tools, and asking for a rotation. Each is
validated here, moved through ``agents.states``, recorded on the session's timeline and audited.
Work in the session's sandbox (exec, files, artifacts) is in ``agents.workspace``."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import worker
from agents.models import FINAL_STATUSES, AgentSession, AgentTool, Rotation, RotationReason, SessionStatus
from agents.selectors import session_by_client_id, session_current_sandbox
from agents.states import audited, event_record, refuse_unless_live, session_audit, session_move
from agents.validation import (
    check_budget,
    check_client_id,
    check_context,
    check_rotation,
    check_sandbox_config,
    check_text,
    check_tool,
)
from core.actor import Actor
from core.errors import Conflict, NotFound, StowageError
from sandboxes.services import sandbox_create, sandbox_stop

NOT_ENDED = [status for status in SessionStatus.values if status not in FINAL_STATUSES]


def session_create(
    *,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
    budget: dict[str, Any] | None = None,
    rotation: dict[str, Any] | None = None,
    sandbox: dict[str, Any] | None = None,
    client_id: str | None = None,
) -> AgentSession:
    """A pending session; ``session_start`` gives it its first sandbox."""
    config = check_sandbox_config(sandbox)
    limits = check_budget(budget)
    session = AgentSession(
        organization_id=actor.organization_id,
        name=check_text(name, field="name", limit=200),
        description=check_text(description, field="description", limit=4000),
        client_id=check_client_id(client_id),
        sandbox_config=config,
        pre_rotate_buffer_seconds=check_rotation(rotation, lifetime=config["timeout_seconds"]),
        created_by_api_key_id=actor.api_key_id,
        created_by_user_id=actor.user_id,
        **limits,
    )
    if session.client_id and session_by_client_id(organization_id=actor.organization_id, client_id=session.client_id):
        raise Conflict(
            f"a session with client_id '{session.client_id}' is still open; reattach to it or end it first",
            code="CLIENT_ID_IN_USE",
            details={"field": "client_id"},
        )
    session.save(force_insert=True)
    session_audit(
        actor=actor,
        action="session.create",
        session=session,
        details={"name": session.name, "client_id": session.client_id, "budget": limits},
    )
    return session


def session_start(*, actor: Actor, session: AgentSession) -> AgentSession:
    """Make the first sandbox from the session's sandbox config. Starting a started session
    answers it as it is, so that a retry whose first answer was lost does no harm."""
    refuse_unless_live(session, action="start")
    if session.status != SessionStatus.PENDING:
        return session
    with audited(actor=actor, action="session.start", session=session) as details:
        if not session_move(
            session=session, expected=[SessionStatus.PENDING], to=SessionStatus.RUNNING, started_at=timezone.now()
        ):
            session.refresh_from_db()
            return session
        session.refresh_from_db()
        config = session.sandbox_config
        try:
            sandbox = sandbox_create(
                actor=actor,
                cpus=config.get("cpus"),
                memory=config.get("memory"),
                timeout_seconds=config.get("timeout_seconds"),
                env=config.get("env"),
                session_id=session.id,
            )
        except StowageError as exc:
            # Back to pending: a start that made no sandbox may be tried again.
            session_move(
                session=session,
                expected=[SessionStatus.RUNNING],
                to=SessionStatus.PENDING,
                started_at=None,
                running_since=None,
                active_seconds=0,
                error_code=exc.code,
                error_message=exc.message,
            )
            event_record(
                session_id=session.id, event_type="error", success=False, error_message=exc.message, subtype="start"
            )
            raise
        attached = AgentSession.objects.filter(
            id=session.id, status=SessionStatus.RUNNING, current_sandbox_id=""
        ).update(current_sandbox_id=sandbox.id, error_code="", error_message="")
        if not attached:
            # Stopped or cancelled while its sandbox was being made.
            sandbox_stop(actor=actor, sandbox=sandbox, reason="its agent session ended", wait=False)
        details["sandbox_id"] = sandbox.id
        event_record(session_id=session.id, event_type="session_started", sandbox_id=sandbox.id, success=True)
        event_record(
            session_id=session.id,
            event_type="sandbox_created",
            sandbox_id=sandbox.id,
            payload={"host": sandbox.host, "expires_at": sandbox.expires_at.isoformat(), "reason": "start"},
            success=True,
        )
    session.refresh_from_db()
    return session


def session_pause(*, actor: Actor, session: AgentSession) -> AgentSession:
    """Commands are refused until it resumes; its sandbox and files stay (and rotate if need be)."""
    return _switch(
        actor=actor, session=session, action="session.pause", wanted=SessionStatus.PAUSED, event="session_paused"
    )


def session_resume(*, actor: Actor, session: AgentSession) -> AgentSession:
    return _switch(
        actor=actor, session=session, action="session.resume", wanted=SessionStatus.RUNNING, event="session_resumed"
    )


def _switch(*, actor: Actor, session: AgentSession, action: str, wanted: str, event: str) -> AgentSession:
    source = SessionStatus.RUNNING if wanted == SessionStatus.PAUSED else SessionStatus.PAUSED
    with audited(actor=actor, action=action, session=session):
        refuse_unless_live(session, action=action.split(".")[1])
        if session.status == wanted:
            return session
        if session.status != source or not session_move(session=session, expected=[source], to=wanted):
            session.refresh_from_db()
            if session.status == wanted:
                return session
            raise Conflict(
                f"Agent session '{session.id}' is {session.status}; only a {source} session can {action.split('.')[1]}",
                code="SESSION_ROTATING" if session.status == SessionStatus.ROTATING else "SESSION_NOT_RUNNING",
                details={"status": session.status},
            )
        event_record(session_id=session.id, event_type=event, sandbox_id=session.current_sandbox_id, success=True)
    session.refresh_from_db()
    return session


def session_end(
    *, actor: Actor, session: AgentSession, status: str, reason: str = "", action: str | None = None
) -> AgentSession:
    """Complete (stop) or cancel the session and stop its sandbox. Ending an ended session
    changes nothing and succeeds, so that retries are safe."""
    reason = check_text(reason, field="reason", limit=500)
    action = action or ("session.stop" if status == SessionStatus.COMPLETED else "session.cancel")
    if session.is_final:
        return session
    with audited(actor=actor, action=action, session=session, details={"reason": reason}):
        for _ in range(5):
            if session_move(session=session, expected=NOT_ENDED, to=status, completed_at=timezone.now()):
                break
            session.refresh_from_db()
            if session.is_final:
                return session
        else:
            raise Conflict("the session kept changing while it was being ended; try again", code="SESSION_CHANGED")
        sandbox = session_current_sandbox(session=session)
        if sandbox is not None:
            sandbox_stop(actor=actor, sandbox=sandbox, reason=f"its agent session was {status}", wait=False)
            event_record(session_id=session.id, event_type="sandbox_terminated", sandbox_id=sandbox.id, success=True)
        event_type = "session_completed" if status == SessionStatus.COMPLETED else "session_cancelled"
        event_record(
            session_id=session.id,
            event_type=event_type,
            sandbox_id=session.current_sandbox_id,
            payload={"reason": reason},
        )
    session.refresh_from_db()
    return session


def session_delete(*, actor: Actor, session: AgentSession) -> None:
    """Cancel it if it runs, then hide it; its events and artifacts stay for the audit trail."""
    session = session_end(actor=actor, session=session, status=SessionStatus.CANCELLED, reason="deleted")
    with audited(actor=actor, action="session.delete", session=session):
        AgentSession.objects.filter(id=session.id, deleted_at__isnull=True).update(deleted_at=timezone.now())


def session_heartbeat(*, actor: Actor, session: AgentSession) -> AgentSession:
    # Neither a timeline event nor an audit event: an agent beats every few seconds for hours,
    # and the timestamp on the session is all that anyone reads of it.
    refuse_unless_live(session, action="a heartbeat")
    now = timezone.now()
    AgentSession.objects.filter(id=session.id).update(last_heartbeat_at=now, last_activity_at=now)
    session.refresh_from_db()
    return session


def session_reattach(*, actor: Actor, client_id: str) -> AgentSession:
    """The open session the caller created under ``client_id``, so that a restarted agent goes on."""
    client_id = check_client_id(client_id)
    session = session_by_client_id(organization_id=actor.organization_id, client_id=client_id)
    if session is None:
        raise NotFound(
            f"no open agent session has client_id '{client_id}'",
            code="SESSION_NOT_FOUND",
            details={"field": "client_id"},
        )
    with audited(actor=actor, action="session.reattach", session=session, details={"client_id": client_id}):
        now = timezone.now()
        AgentSession.objects.filter(id=session.id).update(last_heartbeat_at=now)
        event_record(session_id=session.id, event_type="client_connected", payload={"client_id": client_id})
    session.refresh_from_db()
    return session


def session_context_update(*, actor: Actor, session: AgentSession, update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into the agent context that later commands and rotations keep."""
    clean = check_context(update)
    refuse_unless_live(session, action="updating the context")
    with (
        audited(actor=actor, action="session.context", session=session, details={"fields": sorted(clean)}),
        transaction.atomic(),
    ):
        locked = AgentSession.objects.select_for_update().get(id=session.id)
        context = {**locked.context, **clean}
        AgentSession.objects.filter(id=session.id).update(context=context, last_activity_at=timezone.now())
    session.refresh_from_db()
    return session.context


def session_tool_register(
    *,
    actor: Actor,
    session: AgentSession,
    name: Any,
    tool_type: Any = None,
    description: Any = None,
    input_schema: Any = None,
) -> AgentTool:
    """Register a tool by name; the same name again replaces what was said of it."""
    clean = check_tool(name=name, tool_type=tool_type, description=description, input_schema=input_schema)
    refuse_unless_live(session, action="registering a tool")
    with audited(
        actor=actor,
        action="session.tool.register",
        session=session,
        details={"name": clean["name"], "tool_type": clean["tool_type"]},
    ):
        defaults = {key: value for key, value in clean.items() if key != "name"}
        try:
            tool, _ = AgentTool.objects.update_or_create(
                session=session, name=clean["name"], defaults={**defaults, "updated_at": timezone.now()}
            )
        except IntegrityError:  # registered by a concurrent request a moment ago
            tool = AgentTool.objects.get(session=session, name=clean["name"])
        event_record(
            session_id=session.id,
            event_type="tool_registered",
            payload={"name": tool.name, "tool_type": tool.tool_type},
        )
    return tool


def session_rotate(*, actor: Actor, session: AgentSession, reason: str = RotationReason.REQUESTED) -> Rotation:
    """Move the session to a new sandbox (on a worker: ``agents.worker.rotate``). Commands are
    refused while it moves; it comes back running, or paused if it was paused."""
    with audited(actor=actor, action="session.rotate.request", session=session, details={"reason": reason}) as details:
        refuse_unless_live(session, action="rotating")
        rotation = worker.rotation_begin(actor=actor, session=session, reason=reason)
        details["rotation_id"] = rotation.id
    return rotation
