from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from artifacts.models import Artifact, ArtifactState
from config.errors import InvalidInput, NotFound
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


@dataclass(frozen=True)
class SandboxPage:
    sandboxes: list[Sandbox]
    next_cursor: str | None


def _encode_cursor(sandbox: Sandbox) -> str:
    return base64.urlsafe_b64encode(f"{sandbox.created_at.isoformat()}|{sandbox.id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, sandbox_id = raw.split("|", 1)
        return datetime.fromisoformat(created), sandbox_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not one this page returned", code="INVALID_CURSOR", details={"field": "cursor"}
        ) from None


def sandbox_page(sandboxes: QuerySet[Sandbox], *, limit: int, cursor: str | None) -> SandboxPage:
    """Newest first, keyset-paginated on (created_at, id), so a deep page costs what the first does."""
    if cursor:
        created, sandbox_id = _decode_cursor(cursor)
        sandboxes = sandboxes.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=sandbox_id))
    rows = list(sandboxes[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return SandboxPage(rows[:limit], next_cursor)
