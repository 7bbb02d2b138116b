from __future__ import annotations

from django.db.models import QuerySet

from config.errors import NotFound
from sandboxes.models import Sandbox, SandboxStatus


def sandbox_get(*, organization_id: str, sandbox_id: str) -> Sandbox:
    """The sandbox if it belongs to the organization; the same 404 whether it is another's or no one's."""
    sandbox = Sandbox.objects.filter(organization_id=organization_id, id=sandbox_id).first()
    if sandbox is None:
        raise NotFound(f"Sandbox '{sandbox_id}' not found", code="SANDBOX_NOT_FOUND")
    return sandbox


def sandbox_list(*, organization_id: str, status: str | None = None, session_id: str | None = None) -> QuerySet[Sandbox]:
    sandboxes = Sandbox.objects.filter(organization_id=organization_id)
    if status:
        sandboxes = sandboxes.filter(status=status)
    if session_id:
        sandboxes = sandboxes.filter(session_id=session_id)
    return sandboxes.order_by("-created_at", "-id")


def sandbox_newest_running_in_session(*, organization_id: str, session_id: str) -> Sandbox:
    sandbox = sandbox_list(organization_id=organization_id, session_id=session_id, status=SandboxStatus.RUNNING).first()
    if sandbox is None:
        raise NotFound(f"Agent session '{session_id}' has no running sandbox", code="SESSION_NOT_FOUND")
    return sandbox
