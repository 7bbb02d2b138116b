"""The webhook events of agent sessions: one per status a session moves to."""

from __future__ import annotations

from agents.models import AgentSession
from webhooks.outbox import emit


def session_emit(session_id: str) -> None:
    session = AgentSession.objects.filter(id=session_id).first()
    if session is None:
        return
    emit(
        organization_id=session.organization_id,
        type=f"session.{session.status}",
        data={
            "session_id": session.id,
            "name": session.name,
            "client_id": session.client_id or None,
            "status": session.status,
            "sandbox_id": session.current_sandbox_id or None,
            "rotation_count": session.rotation_count,
        },
    )
