"""The dashboard's 403, 404 and 500 pages, inside its layout, saying what happened."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render

from accounts.access import current_membership
from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent

logger = logging.getLogger(__name__)


def _with_layout(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's organization, so the page keeps its navigation; nothing for others."""
    membership = getattr(request, "membership", None)
    if membership is None and getattr(request, "user", None) is not None and request.user.is_authenticated:
        membership = current_membership(request)
        if membership is not None:
            request.membership = membership
    return {"no_organization": membership is None and request.user.is_authenticated}


def _deleted_artifact(request: HttpRequest) -> dict[str, Any] | None:
    """A deleted artifact of the member's own organization: when, and by whom, it went."""
    membership = getattr(request, "membership", None)
    match = getattr(request, "resolver_match", None)
    artifact_id = str(match.kwargs.get("artifact_id", "")) if match else ""
    if membership is None or not artifact_id:
        return None
    artifact = (
        Artifact.objects.filter(organization_id=membership.organization_id, id=artifact_id[:40])
        .filter(state__in=[ArtifactState.DELETED, ArtifactState.TRASHED])
        .only("id", "remote_path", "deleted_at", "state", "purge_after")
        .first()
    )
    if artifact is None:
        return None
    deletion = (
        AuditEvent.objects.filter(
            organization_id=membership.organization_id, action="artifact.delete", resource=f"artifact:{artifact.id}"
        )
        .order_by("-seq")
        .values("actor", "timestamp")
        .first()
    )
    return {
        "artifact": artifact,
        "deleted_by": deletion["actor"] if deletion else "",
        "deleted_at": artifact.deleted_at or (deletion["timestamp"] if deletion else None),
    }


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    context = {**_with_layout(request), "reason": str(exception or "")[:300]}
    return render(request, "403.html", context, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    context = {**_with_layout(request), "deleted": _deleted_artifact(request)}
    return render(request, "404.html", context, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # The id the logs and the X-Request-Id header name the request by: the client's own, if it sent one.
    request_id = getattr(request, "known_request_id", "") or getattr(request, "request_id", "")
    try:
        return render(request, "500.html", {"request_id": request_id}, status=500)
    except Exception:
        # The page itself failed (the database may be what broke): plain text still names the request.
        logger.exception("the error page failed too")
        return HttpResponseServerError(
            f"Something went wrong on our side (request {request_id}).\n",
            content_type="text/plain",
        )
