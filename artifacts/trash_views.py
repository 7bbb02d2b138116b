"""The dashboard's trash page and legal-hold buttons: organization admins and owners only."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import org_view
from accounts.models import Role
from artifacts.legal_hold import legal_hold_lift, legal_hold_set
from artifacts.selectors import artifact_get
from artifacts.trash_selectors import trash_count, trash_page
from artifacts.trash_services import artifact_purge, artifact_restore, trash_empty
from core.errors import InvalidInput, NotFound, StowageError
from core.htmx import page_or_fragment

PAGE_SIZE = 50


@org_view(Role.ADMIN)
@require_GET
def trash_list(request: HttpRequest) -> HttpResponse:
    cursor = request.GET.get("cursor", "")[:200] or None
    page_error = ""
    try:
        page = trash_page(organization_id=request.organization.id, cursor=cursor, limit=PAGE_SIZE)
    except InvalidInput as exc:
        page_error, cursor = f"{exc.message}; showing the newest instead.", None
        page = trash_page(organization_id=request.organization.id, limit=PAGE_SIZE)
    context = {
        "page": page,
        "page_error": page_error,
        "first_query": "",
        "next_query": urlencode({"cursor": page.next_cursor}) if page.next_cursor else "",
        "is_later_page": bool(cursor),
    }
    return page_or_fragment(request, "artifacts/trash_list.html", "artifacts/partials/_trash_table.html", context)


def _done_or_refused(request: HttpRequest, action, success: str) -> HttpResponse:
    try:
        action()
    except NotFound:
        raise Http404("not found") from None
    except StowageError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("trash-list")


@org_view(Role.ADMIN)
@require_POST
def trash_restore(request: HttpRequest, artifact_id: str) -> HttpResponse:
    def restore():
        return artifact_restore(actor=request.actor, organization_id=request.organization.id, artifact_id=artifact_id)

    return _done_or_refused(request, restore, "Restored the artifact: it is listed and searchable again.")


@org_view(Role.ADMIN)
@require_POST
def trash_purge(request: HttpRequest, artifact_id: str) -> HttpResponse:
    def purge():
        artifact_purge(actor=request.actor, organization_id=request.organization.id, artifact_id=artifact_id)

    return _done_or_refused(request, purge, "Purged the artifact: it can no longer be restored.")


@org_view(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def trash_empty_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        purged = trash_empty(actor=request.actor, organization_id=request.organization.id)
        messages.success(request, f"Emptied the trash: {purged} artifact{'s' if purged != 1 else ''} purged.")
        return redirect("trash-list")
    return render(
        request, "artifacts/trash_empty.html", {"count": trash_count(organization_id=request.organization.id)}
    )


def _visible(request: HttpRequest, artifact_id: str):
    try:
        return artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        raise Http404("not found") from None


@org_view(Role.ADMIN)
@require_POST
def artifact_legal_hold(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _visible(request, artifact_id)
    try:
        legal_hold_set(actor=request.actor, artifact=artifact, reason=request.POST.get("reason", ""))
    except StowageError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The artifact is under a legal hold: it cannot be deleted until the hold is lifted.")
    return redirect("artifact-detail", artifact_id=artifact.id)


@org_view(Role.ADMIN)
@require_POST
def artifact_legal_hold_lift(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _visible(request, artifact_id)
    legal_hold_lift(actor=request.actor, artifact=artifact)
    messages.success(request, "Lifted the legal hold.")
    return redirect("artifact-detail", artifact_id=artifact.id)
