from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from artifacts.models import Artifact, ArtifactState
from core.errors import NotFound
from sandboxes.models import Sandbox, SandboxStatus


def sandbox_get(*, organization_id: str, sandbox_id: str) -> Sandbox:
    """The sandbox if it belongs to the organization; the same 404 whether it is another's or no one's."""
    sandbox = Sandbox.objects.filter(organization_id=organization_id, id=sandbox_id).first()
    if sandbox is None:
        raise NotFound(f"Sandbox '{sandbox_id}' not found", code="SANDBOX_NOT_FOUND")
    return sandbox


def sandbox_list(
    *, organization_id: str, status: str | None = None, session_id: str | None = None
) -> QuerySet[Sandbox]:
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


def sandbox_list_with_artifact_counts(
    *, organization_id: str, status: str | None = None, session_id: str | None = None
) -> QuerySet[Sandbox]:
    """``sandbox_list`` with each row's ready-artifact count computed in the same query.

    A correlated count per row, served by the artifact_org_sandbox index; a page of sandboxes
    costs one query however many rows it shows.
    """
    counts = (
        Artifact.objects.filter(
            organization_id=OuterRef("organization_id"), sandbox_id=OuterRef("id"), state=ArtifactState.READY
        )
        .order_by()
        .values("sandbox_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return sandbox_list(organization_id=organization_id, status=status, session_id=session_id).annotate(
        artifact_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0)
    )
