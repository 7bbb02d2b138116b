"""The members page (admins and owners), joining by invitation, leaving, and the instance's
organizations (staff)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import SESSION_ORG_KEY, has_role, org_view, staff_view
from accounts.models import Organization, Role
from accounts.oidc import sso_enabled
from accounts.selectors import api_keys_made_by
from config.auth import request_actor
from core.errors import NotFound, StowageError
from members.forms import InviteForm, JoinSignUpForm, OrganizationForm, RemoveForm, RoleForm, roles_up_to
from members.selectors import invitation_list, member_list
from members.services import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    invitation_usable,
    membership_change_role,
    membership_get,
    membership_leave,
    membership_remove,
    organization_create,
)


def _join_url(request: HttpRequest, organization_id: str, token: str) -> str:
    return request.build_absolute_uri(reverse("members-join", args=[organization_id, token]))


def _members_page(request: HttpRequest, form: InviteForm | None = None, *, status: int = 200) -> HttpResponse:
    context = {
        "members": list(member_list(organization_id=request.organization.id)),
        "invitations": invitation_list(organization_id=request.organization.id),
        "form": form or InviteForm(granter_role=request.membership.role),
        "grantable": roles_up_to(request.membership.role),
        "is_owner": has_role(request.membership, Role.OWNER),
    }
    return render(request, "members/member_list.html", context, status=status)


def _refused(request: HttpRequest, exc: StowageError) -> HttpResponse:
    """A refused change: the members page again with the reason, and the refusal's status."""
    messages.error(request, exc.message[:1].upper() + exc.message[1:] + ".")
    return _members_page(request, status=exc.status)


@org_view(Role.ADMIN)
def member_list_view(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


@org_view(Role.ADMIN)
@require_POST
@never_cache
def member_invite(request: HttpRequest) -> HttpResponse:
    """Make an invitation and show its link on this one response; only its hash is kept."""
    form = InviteForm(request.POST, granter_role=request.membership.role)
    if not form.is_valid():
        return _members_page(request, form, status=400)
    try:
        invitation, token = invitation_create(
            organization=request.organization,
            role=form.cleaned_data["role"],
            by=request.membership,
            actor=request.actor,
            note=form.cleaned_data["note"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
    except StowageError as exc:
        return _refused(request, exc)
    context = {"invitation": invitation, "link": _join_url(request, request.organization.id, token)}
    return render(request, "members/invitation_created.html", context)


@org_view(Role.ADMIN)
@require_POST
def invitation_revoke_view(request: HttpRequest, invitation_id: str) -> HttpResponse:
    try:
        invitation_revoke(organization=request.organization, invitation_id=invitation_id, actor=request.actor)
    except NotFound:
        raise Http404("not found") from None
    messages.success(request, "The invitation is revoked: its link no longer works.")
    return redirect("members-list")


@org_view(Role.ADMIN)
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    form.is_valid()
    try:
        target = membership_change_role(
            organization=request.organization,
            membership_id=membership_id,
            role=form.cleaned_data.get("role", ""),
            by=request.membership,
            actor=request.actor,
        )
    except NotFound:
        raise Http404("not found") from None
    except StowageError as exc:
        return _refused(request, exc)
    messages.success(request, f"{target.user.get_username()} is now {target.role}.")
    return redirect("members-list")


@org_view(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    try:
        target = membership_get(organization_id=request.organization.id, membership_id=membership_id)
    except NotFound:
        raise Http404("not found") from None
    form = RemoveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership_remove(
                organization=request.organization,
                membership_id=membership_id,
                by=request.membership,
                actor=request.actor,
                keys=form.cleaned_data["keys"],
            )
        except StowageError as exc:
            return _refused(request, exc)
        messages.success(request, f"{target.user.get_username()} is no longer a member of {request.organization.name}.")
        return redirect("members-list")
    keys = list(api_keys_made_by(organization_id=request.organization.id, user_id=target.user_id))
    context = {"target": target, "form": form, "keys": keys}
    return render(request, "members/member_remove.html", context, status=400 if form.errors else 200)


@org_view()
@require_http_methods(["GET", "POST"])
def member_leave(request: HttpRequest) -> HttpResponse:
    keys = list(api_keys_made_by(organization_id=request.organization.id, user_id=request.user.pk))
    if request.method == "POST":
        try:
            membership_leave(membership=request.membership, actor=request.actor)
        except StowageError as exc:
            messages.error(request, exc.message[:1].upper() + exc.message[1:] + ".")
            return render(request, "members/member_leave.html", {"keys": keys}, status=exc.status)
        messages.success(request, f"You have left {request.organization.name}.")
        return redirect("home")
    return render(request, "members/member_leave.html", {"keys": keys})


# --- joining -----------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def member_join(request: HttpRequest, organization_id: str, token: str) -> HttpResponse:
    """The invitation's landing page: an existing account accepts it, a new one is made with it."""
    signed_in = request.user.is_authenticated
    actor = request_actor(
        request, label=request.user.get_username() if signed_in else "invitation", user_id=request.user.pk
    )
    try:
        invitation = invitation_usable(organization_id=organization_id, token=token, actor=actor)
    except StowageError as exc:
        return _unusable(request, exc)
    form = JoinSignUpForm(request.POST or None) if not signed_in and settings.PASSWORD_SIGN_IN else None
    if request.method == "GET":
        return _join_page(request, invitation, form)
    try:
        if signed_in:
            invitation_accept(organization_id=organization_id, token=token, user=request.user, actor=actor)
        elif form is None:
            return redirect_to_login(request.get_full_path())
        elif not form.is_valid():
            return _join_page(request, invitation, form, status=400)
        else:
            # The account exists only if the invitation is accepted with it.
            with transaction.atomic():
                user = form.save()
                invitation_accept(organization_id=organization_id, token=token, user=user, actor=actor)
            login(request, user, backend="accounts.signin.ThrottledPasswordBackend")
    except StowageError as exc:
        return _unusable(request, exc)
    request.session[SESSION_ORG_KEY] = organization_id
    messages.success(request, f"Welcome to {invitation.organization.name}: you are {invitation.role} here.")
    return redirect("home")


def _unusable(request: HttpRequest, exc: StowageError) -> HttpResponse:
    return render(request, "members/join_unusable.html", {"reason": exc.message, "code": exc.code}, status=exc.status)


def _join_page(request: HttpRequest, invitation, form, *, status: int = 200) -> HttpResponse:
    context: dict[str, Any] = {
        "invitation": invitation,
        "form": form,
        "sso_enabled": sso_enabled(),
        "already_member": request.user.is_authenticated
        and invitation.organization.memberships.filter(user=request.user).exists(),
    }
    return render(request, "members/join.html", context, status=status)


# --- the instance's organizations (staff) ------------------------------------------------------


@staff_view
@require_http_methods(["GET", "POST"])
@never_cache
def organization_list(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    created: dict[str, Any] = {}
    if request.method == "POST" and form.is_valid():
        owner_name = form.cleaned_data["owner"].strip()
        owner = get_user_model().objects.filter(username=owner_name).first() if owner_name else None
        if owner_name and owner is None:
            form.add_error("owner", "There is no account with this username.")
        else:
            actor = request_actor(request, label=request.user.get_username(), user_id=request.user.pk)
            organization, token = organization_create(name=form.cleaned_data["name"], actor=actor, owner=owner)
            created = {
                "organization": organization,
                "link": _join_url(request, organization.id, token) if token else "",
            }
            form = OrganizationForm()
    context = {
        "organizations": Organization.objects.order_by("name"),
        "form": form,
        "created": created,
    }
    return render(request, "members/organization_list.html", context, status=400 if form.errors else 200)
