"""The worker side of agent sessions: moving a session to a new sandbox (rotation) and the sweep
that starts a rotation before a session's sandbox expires.

A rotation saves the old workspace as an artifact tagged with the session (through the same
checksummed transfer as any upload), makes a new sandbox from the session's sandbox config,
brings the artifact back into it, switches the session over in one compare-and-set and stops
the old sandbox. Until that switch the session keeps its old sandbox, so a failed rotation
leaves it where it was (or, when its old sandbox is gone too, failed); never half-moved.

The task names below are what web and worker processes of different releases send to each
other during a rolling upgrade: keep each exactly as it is, wherever its code moves.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from agents.models import AgentSession, Rotation, RotationReason, RotationState, SessionStatus
from agents.states import event_record, session_audit, session_move
from audit.models import Outcome
from core.actor import Actor
from core.dispatch import enqueue
from core.errors import Conflict, StowageError, Unavailable
from sandboxes.files import sandbox_extract_archive
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.services import sandbox_create, sandbox_stop
from transfers.services import artifact_download_to_sandbox, artifact_upload_from_sandbox

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
# A sandbox this close to its end is looked at by the sweep; the session's own buffer decides.
MAX_BUFFER_SECONDS = 24 * 3600
WORKSPACE = "/workspace"


def _restore_path(rotation: Rotation) -> str:
    return f"{WORKSPACE}/.stowage-rotation-{rotation.id}.tar.gz"


def _claim(rotation_id: str) -> Rotation | None:
    """Take a queued rotation; None when it already ran (a redelivered task) or was given up."""
    if not Rotation.objects.filter(id=rotation_id, state=RotationState.QUEUED).update(
        state=RotationState.RUNNING, started_at=timezone.now()
    ):
        return None
    return Rotation.objects.select_related("session").get(id=rotation_id)


def rotate(*, rotation_id: str) -> str:
    rotation = _claim(rotation_id)
    if rotation is None:
        return "already-done"
    session = rotation.session
    actor = Actor.from_dict(rotation.actor) if rotation.actor else Actor.system(session.organization_id)
    started = time.monotonic()
    old = Sandbox.objects.filter(id=rotation.old_sandbox_id, organization_id=session.organization_id).first()
    new: Sandbox | None = None
    try:
        if old is None:
            raise StowageError(f"sandbox {rotation.old_sandbox_id} no longer exists", code="SANDBOX_NOT_FOUND")
        artifact = _save_workspace(actor=actor, rotation=rotation, session=session, old=old)
        new = _new_sandbox(actor=actor, rotation=rotation, session=session)
        _restore_workspace(actor=actor, rotation=rotation, session=session, new=new, artifact=artifact)
        if not _switch(rotation=rotation, session=session, new=new, artifact_id=artifact.id):
            raise StowageError("the session ended while it was rotating", code="SESSION_ENDED")
    except StowageError as exc:
        _fail(actor=actor, rotation=rotation, session=session, old=old, new=new, exc=exc, started=started)
        return "failed"
    except Exception as exc:
        logger.exception("rotation %s failed", rotation.id)
        failure = StowageError(f"the rotation failed: {exc}", code="ROTATION_FAILED", status=500)
        _fail(actor=actor, rotation=rotation, session=session, old=old, new=new, exc=failure, started=started)
        return "failed"
    sandbox_stop(actor=actor, sandbox=old, reason="its agent session rotated to a new sandbox", wait=False)
    event_record(
        session_id=session.id, event_type="sandbox_terminated", sandbox_id=old.id, payload={"reason": "rotated"}
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    event_record(
        session_id=session.id,
        event_type="rotation_completed",
        sandbox_id=new.id,
        payload={"rotation_id": rotation.id, "from": old.id, "to": new.id, "artifact_id": rotation.artifact_id},
        success=True,
        duration_ms=duration_ms,
    )
    session.refresh_from_db()
    session_audit(
        actor=actor,
        action="session.rotate",
        session=session,
        details={
            "rotation_id": rotation.id,
            "reason": rotation.reason,
            "from": old.id,
            "to": new.id,
            "artifact_id": rotation.artifact_id,
        },
        duration_ms=duration_ms,
    )
    return "completed"


def _save_workspace(*, actor: Actor, rotation: Rotation, session: AgentSession, old: Sandbox):
    number = session.rotation_count + 1
    transfer = artifact_upload_from_sandbox(
        actor=actor,
        sandbox=old,
        path=WORKSPACE,
        remote_path=f"agent-sessions/{session.id}/workspace-{number}.tar.gz",
        content_type="application/gzip",
        as_archive=True,
        metadata={"agent_session_id": session.id, "rotation_id": rotation.id, "saved_from": old.id},
        session_id=session.id,
        wait=True,
    )
    artifact = transfer.artifact
    Rotation.objects.filter(id=rotation.id).update(artifact_id=artifact.id)
    rotation.artifact_id = artifact.id
    event_record(
        session_id=session.id,
        event_type="checkpoint_created",
        sandbox_id=old.id,
        payload={
            "rotation_id": rotation.id,
            "artifact_id": artifact.id,
            "size": artifact.size,
            "checksum": artifact.checksum,
        },
        success=True,
    )
    return artifact


def _new_sandbox(*, actor: Actor, rotation: Rotation, session: AgentSession) -> Sandbox:
    config = session.sandbox_config
    new = sandbox_create(
        actor=actor,
        cpus=config.get("cpus"),
        memory=config.get("memory"),
        timeout_seconds=config.get("timeout_seconds"),
        env=config.get("env"),
        session_id=session.id,
        replaces_sandbox_id=rotation.old_sandbox_id,
    )
    Rotation.objects.filter(id=rotation.id).update(new_sandbox_id=new.id)
    rotation.new_sandbox_id = new.id
    event_record(
        session_id=session.id,
        event_type="sandbox_created",
        sandbox_id=new.id,
        payload={
            "rotation_id": rotation.id,
            "host": new.host,
            "expires_at": new.expires_at.isoformat(),
            "reason": "rotation",
        },
        success=True,
    )
    return new


def _restore_workspace(*, actor: Actor, rotation: Rotation, session: AgentSession, new: Sandbox, artifact) -> None:
    target = _restore_path(rotation)
    artifact_download_to_sandbox(actor=actor, sandbox=new, artifact=artifact, target_path=target, wait=True)
    entries = sandbox_extract_archive(actor=actor, sandbox=new, path=target, remove=True)
    event_record(
        session_id=session.id,
        event_type="checkpoint_restored",
        sandbox_id=new.id,
        payload={"rotation_id": rotation.id, "artifact_id": artifact.id, "entries": entries},
        success=True,
    )


def _switch(*, rotation: Rotation, session: AgentSession, new: Sandbox, artifact_id: str) -> bool:
    """The one step that moves the session: only if it is still rotating from the old sandbox."""
    switched = AgentSession.objects.filter(
        id=session.id, status=SessionStatus.ROTATING, current_sandbox_id=rotation.old_sandbox_id
    ).update(
        status=rotation.resume_status,
        current_sandbox_id=new.id,
        last_sandbox_id=rotation.old_sandbox_id,
        last_checkpoint_id=artifact_id,
        rotation_count=F("rotation_count") + 1,
        error_code="",
        error_message="",
        last_activity_at=timezone.now(),
    )
    Rotation.objects.filter(id=rotation.id).update(
        state=RotationState.COMPLETED if switched else RotationState.FAILED, finished_at=timezone.now()
    )
    return bool(switched)


def _fail(
    *,
    actor: Actor,
    rotation: Rotation,
    session: AgentSession,
    old: Sandbox | None,
    new: Sandbox | None,
    exc: StowageError,
    started: float,
) -> None:
    """Undo what the rotation made; the session keeps its old sandbox when that one still runs."""
    if new is not None:
        try:
            sandbox_stop(actor=actor, sandbox=new, reason="its agent session's rotation failed", wait=False)
        except StowageError:
            logger.warning("rotation %s: could not stop the new sandbox %s", rotation.id, new.id, exc_info=True)
    usable = old is not None and Sandbox.objects.filter(id=old.id, status=SandboxStatus.RUNNING).exists()
    fields: dict[str, Any] = {"error_code": exc.code, "error_message": f"rotation failed: {exc.message}"[:4000]}
    if usable:
        moved = AgentSession.objects.filter(id=session.id, status=SessionStatus.ROTATING).update(
            status=rotation.resume_status, **fields
        )
    else:
        now = timezone.now()
        session.refresh_from_db()
        moved = AgentSession.objects.filter(id=session.id, status=SessionStatus.ROTATING).update(
            status=SessionStatus.FAILED,
            completed_at=now,
            active_seconds=session.duration_seconds(now),
            running_since=None,
            error_code="ROTATION_FAILED",
            error_message=fields["error_message"],
        )
    Rotation.objects.filter(id=rotation.id).update(
        state=RotationState.FAILED, error_code=exc.code, error_message=exc.message[:4000], finished_at=timezone.now()
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    event_record(
        session_id=session.id,
        event_type="rotation_failed",
        sandbox_id=old.id if old else "",
        payload={
            "rotation_id": rotation.id,
            "code": exc.code,
            "kept_sandbox": usable,
            "new_sandbox_id": new.id if new else None,
        },
        success=False,
        error_message=exc.message,
        duration_ms=duration_ms,
    )
    if moved and not usable:
        event_record(session_id=session.id, event_type="session_failed", error_message=exc.message, success=False)
    session.refresh_from_db()
    session_audit(
        actor=actor,
        action="session.rotate",
        session=session,
        details={"rotation_id": rotation.id, "reason": rotation.reason, "kept_sandbox": usable},
        outcome=Outcome.FAILURE,
        error_message=f"{exc.code}: {exc.message}",
        duration_ms=duration_ms,
    )


def rotation_abandon(*, rotation_id: str) -> None:
    """A rotation whose task never reached the queue: the session goes back as it was."""
    rotation = Rotation.objects.select_related("session").filter(id=rotation_id, state=RotationState.QUEUED).first()
    if rotation is None:
        return
    if Rotation.objects.filter(id=rotation.id, state=RotationState.QUEUED).update(
        state=RotationState.FAILED, error_code="BROKER_UNAVAILABLE", finished_at=timezone.now()
    ):
        AgentSession.objects.filter(id=rotation.session_id, status=SessionStatus.ROTATING).update(
            status=rotation.resume_status
        )
        event_record(
            session_id=rotation.session_id,
            event_type="rotation_failed",
            sandbox_id=rotation.old_sandbox_id,
            payload={"rotation_id": rotation.id, "code": "BROKER_UNAVAILABLE", "kept_sandbox": True},
            success=False,
            error_message="the task queue was unavailable; the session keeps its sandbox",
        )


def rotation_begin(*, actor: Actor, session: AgentSession, reason: str) -> Rotation:
    if session.status == SessionStatus.ROTATING:
        raise Conflict(f"Agent session '{session.id}' is already rotating", code="SESSION_ROTATING")
    if session.status not in (SessionStatus.RUNNING, SessionStatus.PAUSED):
        raise Conflict(
            f"Agent session '{session.id}' is {session.status}; only a running or paused session rotates",
            code="SESSION_NOT_RUNNING",
            details={"status": session.status},
        )
    if not session.current_sandbox_id:
        raise Conflict(f"Agent session '{session.id}' has no sandbox to rotate", code="SESSION_NO_SANDBOX")
    # Counted without a lock: two sessions may start together past the cap, which only costs a thread.
    busy = Rotation.objects.filter(state__in=[RotationState.QUEUED, RotationState.RUNNING]).count()
    if busy >= settings.AGENT_MAX_CONCURRENT_ROTATIONS:
        raise Unavailable("other sessions are rotating right now; try again shortly", code="ROTATIONS_BUSY")
    with transaction.atomic():
        if not session_move(
            session=session,
            expected=[session.status],
            to=SessionStatus.ROTATING,
        ):
            raise Conflict("the session changed meanwhile; try again", code="SESSION_CHANGED")
        rotation = Rotation.objects.create(
            session=session,
            reason=reason,
            resume_status=session.status,
            old_sandbox_id=session.current_sandbox_id,
            actor=actor.to_dict(),
        )
        transaction.on_commit(
            lambda: enqueue(
                rotate_session,
                task_id=rotation.id,
                on_unavailable=lambda: rotation_abandon(rotation_id=rotation.id),
                rotation_id=rotation.id,
            )
        )
    event_record(
        session_id=session.id,
        event_type="rotation_started",
        sandbox_id=rotation.old_sandbox_id,
        payload={"rotation_id": rotation.id, "reason": reason},
    )
    return rotation


def rotate_expiring(*, now=None, batch: int = SWEEP_BATCH) -> int:
    """Start a rotation for each session whose sandbox expires within its rotation buffer.
    Returns how many were started; the others wait for the next sweep."""
    now = now or timezone.now()
    expiry = Sandbox.objects.filter(id=OuterRef("current_sandbox_id"), status=SandboxStatus.RUNNING).values(
        "expires_at"
    )
    live = (
        AgentSession.objects.filter(status__in=[SessionStatus.RUNNING, SessionStatus.PAUSED], deleted_at__isnull=True)
        .exclude(current_sandbox_id="")
        .annotate(sandbox_expires_at=Subquery(expiry[:1]))
        .filter(sandbox_expires_at__isnull=False, sandbox_expires_at__lte=now + timedelta(seconds=MAX_BUFFER_SECONDS))
        .order_by("sandbox_expires_at")
    )
    started = 0
    for session in live[:batch]:
        if session.sandbox_expires_at > now + timedelta(seconds=session.pre_rotate_buffer_seconds):
            continue
        try:
            rotation_begin(actor=Actor.system(session.organization_id), session=session, reason=RotationReason.EXPIRING)
        except StowageError as exc:
            # Busy, or changed since it was read: the next sweep looks again.
            logger.info("session %s not rotated now: %s", session.id, exc.message)
            if exc.code == "ROTATIONS_BUSY":
                break
            continue
        started += 1
    return started


def rotations_recover(*, now=None, batch: int = SWEEP_BATCH) -> int:
    """Give up rotations that never finished (their task lost, their worker killed): a
    redelivered task finds them taken, so without this the session would stay rotating."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.AGENT_ROTATION_WAIT_SECONDS)
    stale = Rotation.objects.filter(
        state__in=[RotationState.QUEUED, RotationState.RUNNING], created_at__lt=stale_before
    ).select_related("session")
    given_up = 0
    for rotation in stale[:batch]:
        if not Rotation.objects.filter(id=rotation.id, state=rotation.state).update(state=RotationState.RUNNING):
            continue
        session = rotation.session
        organization = session.organization_id
        _fail(
            actor=Actor.from_dict(rotation.actor) if rotation.actor else Actor.system(organization),
            rotation=rotation,
            session=session,
            old=Sandbox.objects.filter(id=rotation.old_sandbox_id, organization_id=organization).first(),
            new=Sandbox.objects.filter(id=rotation.new_sandbox_id, organization_id=organization).first()
            if rotation.new_sandbox_id
            else None,
            exc=StowageError("the rotation did not finish in time and was given up", code="ROTATION_LOST"),
            started=time.monotonic(),
        )
        given_up += 1
    return given_up


@shared_task(name="agents.tasks.rotate_session")
def rotate_session(*, rotation_id: str) -> str:
    return rotate(rotation_id=rotation_id)


@shared_task(name="agents.tasks.rotate_expiring_sessions")
def rotate_expiring_sessions() -> int:
    rotations_recover()
    return rotate_expiring()
