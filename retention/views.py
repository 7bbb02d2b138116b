"""The dashboard's retention page, for the organization's admins and owners: its policies, and a
form whose preview (count, bytes, the oldest few) follows every change before anything is saved."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import org_view
from accounts.models import Role
from core.errors import NotFound, StowageError
from core.htmx import wants_fragment
from retention import services
from retention.forms import PolicyForm
from retention.selectors import SAMPLE_SIZE, policy_get, policy_list, policy_preview

PAGE = "retention/policy_list.html"
PREVIEW = "retention/partials/_preview.html"


def _page(request: HttpRequest, form: PolicyForm, *, preview=None, status: int = 200) -> HttpResponse:
    context = {
        "policies": list(policy_list(organization_id=request.organization.id)),
        "form": form,
        "preview": preview,
        "sample_size": SAMPLE_SIZE,
    }
    return render(request, PAGE, context, status=status)


def _form(request: HttpRequest, *, require_name: bool) -> PolicyForm:
    data = request.POST if request.method == "POST" else None
    return PolicyForm(data, organization_id=request.organization.id, require_name=require_name)


@org_view(Role.ADMIN)
def retention_list_view(request: HttpRequest) -> HttpResponse:
    return _page(request, _form(request, require_name=True))


@org_view(Role.ADMIN)
@require_POST
def retention_preview_view(request: HttpRequest) -> HttpResponse:
    """The preview of the form as it stands; htmx swaps in the fragment, a plain POST (the
    Preview button without JavaScript) gets the whole page with it."""
    form = _form(request, require_name=False)
    preview = policy_preview(form.policy, now=timezone.now()) if form.is_valid() else None
    context = {"form": form, "preview": preview, "sample_size": SAMPLE_SIZE}
    if wants_fragment(request):
        # A refusal is part of the preview's answer, so htmx swaps it in like any other.
        return render(request, PREVIEW, context)
    return _page(request, form, preview=preview, status=200 if preview is not None else 400)


@org_view(Role.ADMIN)
@require_POST
def retention_create_view(request: HttpRequest) -> HttpResponse:
    form = _form(request, require_name=True)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        policy = services.policy_create(
            actor=request.actor,
            organization_id=request.organization.id,
            name=form.policy.name,
            prefix=form.policy.prefix,
            kind=form.policy.kind,
            value=form.policy.value,
        )
    except StowageError as exc:
        form.add_error(
            "name" if exc.details.get("field") == "name" else None, exc.message[:1].upper() + exc.message[1:] + "."
        )
        return _page(request, form, status=400)
    messages.success(request, f"The policy “{policy.name}” is saved: {policy.rule}. It runs every 15 minutes.")
    return redirect("retention-list")


def _policy(request: HttpRequest, policy_id: str):
    try:
        return policy_get(organization_id=request.organization.id, policy_id=policy_id)
    except NotFound:
        raise Http404("not found") from None


@org_view(Role.ADMIN)
@require_POST
def retention_enable_view(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _policy(request, policy_id)
    enable = request.POST.get("enabled") == "1"
    services.policy_update(actor=request.actor, policy=policy, enabled=enable)
    messages.success(
        request, f"The policy “{policy.name}” is enabled." if enable else f"The policy “{policy.name}” is paused."
    )
    return redirect("retention-list")


@org_view(Role.ADMIN)
@require_POST
def retention_delete_view(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _policy(request, policy_id)
    services.policy_delete(actor=request.actor, policy=policy)
    messages.success(
        request,
        f"The policy “{policy.name}” is deleted; what it moved to the trash stays there until restored or purged.",
    )
    return redirect("retention-list")
