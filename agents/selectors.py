"""Every read of agent sessions, scoped to the caller's organization: another organization's
session is the same 404 as a session that never existed, here and on workers alike."""

from __future__ import annotations

from django.db.models import QuerySet

from agents.models import FINAL_STATUSES, AgentEvent, AgentSession, AgentTool, Rotation
from artifacts.models import Artifact
from core.errors import NotFound
from sandboxes.models import Sandbox

EVENTS_DEFAULT_LIMIT = 100
EVENTS_MAX_LIMIT = 1000


def not_found(session_id: str) -> NotFound:
    return NotFound(f"Agent session '{session_id[:128]}' not found", code="SESSION_NOT_FOUND")


def session_get(*, organization_id: str, session_id: str) -> AgentSession:
    session = AgentSession.objects.filter(
        organization_id=organization_id, id=session_id, deleted_at__isnull=True
    ).first()
    if session is None:
        raise not_found(session_id)
    return session


def session_find(*, organization_id: str, session_id: str) -> AgentSession | None:
    return AgentSession.objects.filter(organization_id=organization_id, id=session_id, deleted_at__isnull=True).first()


def session_list(*, organization_id: str, status: str | None = None) -> QuerySet[AgentSession]:
    sessions = AgentSession.objects.filter(organization_id=organization_id, deleted_at__isnull=True)
    if status:
        sessions = sessions.filter(status=status)
    return sessions.prefetch_related("tools").order_by("-created_at", "-id")


def session_by_client_id(*, organization_id: str, client_id: str) -> AgentSession | None:
    """The newest session with this client id that has not ended."""
    return (
        AgentSession.objects.filter(organization_id=organization_id, client_id=client_id, deleted_at__isnull=True)
        .exclude(status__in=FINAL_STATUSES)
        .order_by("-created_at", "-id")
        .first()
    )


def session_tools(*, session: AgentSession) -> QuerySet[AgentTool]:
    return AgentTool.objects.filter(session=session).order_by("name")


def session_events(
    *, session: AgentSession, after_sequence: int | None = None, event_type: str | None = None, limit: int | None = None
) -> list[AgentEvent]:
    events = AgentEvent.objects.filter(session=session)
    if after_sequence is not None:
        events = events.filter(sequence_number__gt=after_sequence)
    if event_type:
        events = events.filter(event_type=event_type)
    return list(events.order_by("sequence_number")[: min(limit or EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)])


def session_sandboxes(*, session: AgentSession) -> QuerySet[Sandbox]:
    """Its sandboxes across rotations, newest first."""
    return Sandbox.objects.filter(organization_id=session.organization_id, session_id=session.id).order_by(
        "-created_at", "-id"
    )


def session_artifacts(*, session: AgentSession) -> QuerySet[Artifact]:
    """Every ready artifact it made, from whichever of its sandboxes."""
    return (
        Artifact.objects.visible()
        .filter(organization_id=session.organization_id, session_id=session.id)
        .order_by("-created_at", "-id")
    )


def session_rotations(*, session: AgentSession) -> QuerySet[Rotation]:
    return Rotation.objects.filter(session=session).order_by("-created_at")


def session_current_sandbox(*, session: AgentSession) -> Sandbox | None:
    if not session.current_sandbox_id:
        return None
    return Sandbox.objects.filter(organization_id=session.organization_id, id=session.current_sandbox_id).first()
