from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.access import SESSION_ORG_KEY, org_view
from accounts.forms import ApiKeyCreateForm
from accounts.models import ApiKey, Membership, Role
from accounts.oidc import provider_logout_url, sso_enabled
from accounts.selectors import api_key_list
from accounts.services import api_key_create, api_key_revoke
from accounts.signin import audit_sign_in, audit_sign_in_refused, audit_sign_out
from accounts.tokens import access_token_mint
from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent, Outcome
from core.errors import NotFound, StowageError
from sandboxes.models import Sandbox, SandboxStatus

# --- signing in and out ----------------------------------------------------------------------


class SignInView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "password_sign_in": settings.PASSWORD_SIGN_IN,
            "sso_enabled": sso_enabled(),
            "sso_name": settings.OIDC_PROVIDER_NAME,
            "sso_failed": self.request.GET.get("sso") == "failed",
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PASSWORD_SIGN_IN:
            return HttpResponseForbidden("Password sign-in is turned off here; use single sign-on.")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        audit_sign_in(self.request, form.get_user(), method="password")
        return response

    def form_invalid(self, form) -> HttpResponse:
        username = self.request.POST.get("username", "")
        if getattr(self.request, "axes_locked_out", False):
            reason, outcome = "sign-in is locked after too many wrong passwords", Outcome.DENIED
        else:
            reason, outcome = "wrong username or password", Outcome.FAILURE
        audit_sign_in_refused(self.request, username, reason=reason, outcome=outcome, method="password")
        return super().form_invalid(form)


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The sign-in page again, saying why and until when, with 429 (django-axes' lock-out hook)."""
    cool_off = get_cool_off(request) or timedelta(0)
    until = timezone.now() + cool_off
    context = {
        "locked_until": until,
        "locked_minutes": max(1, round(cool_off.total_seconds() / 60)),
        "password_sign_in": settings.PASSWORD_SIGN_IN,
        "next": request.POST.get("next", ""),
    }
    return render(request, "accounts/login_locked.html", context, status=429)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign out here, and at the provider too when the session came from single sign-on."""
    target = resolve_url(settings.LOGOUT_REDIRECT_URL)
    if request.user.is_authenticated:
        user = request.user
        provider_url = provider_logout_url(request)
        audit_sign_out(request, user)
        logout(request)
        target = provider_url or target
    return HttpResponseRedirect(target)


def admin_sign_in(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """/admin/ is for the instance's staff: others sign in here, and a signed-in non-staff user
    is refused rather than sent round to the sign-in page again."""
    if request.user.is_authenticated:
        raise PermissionDenied("the admin is for the instance's staff")
    return redirect_to_login(request.GET.get("next", "/admin/"))


@org_view()
def home(request: HttpRequest) -> HttpResponse:
    org = request.organization
    usage = Artifact.objects.filter(organization=org, state=ArtifactState.READY).aggregate(
        count=Count("id"), bytes=Sum("size")
    )
    sandboxes = Sandbox.objects.filter(organization=org).aggregate(
        total=Count("id"), running=Count("id", filter=Q(status=SandboxStatus.RUNNING))
    )
    context = {
        "usage": usage,
        "sandbox_counts": sandboxes,
        "recent_artifacts": Artifact.objects.filter(organization=org, state=ArtifactState.READY).order_by(
            "-created_at", "-id"
        )[:8],
        "running_sandboxes": Sandbox.objects.filter(organization=org, status=SandboxStatus.RUNNING).order_by(
            "-created_at"
        )[:8],
        "recent_events": AuditEvent.objects.filter(organization=org).order_by("-seq")[:10],
    }
    return render(request, "accounts/home.html", context)


@require_POST
def switch_organization(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        raise Http404("not found")
    membership = (
        Membership.objects.filter(user=request.user, organization_id=request.POST.get("organization_id", ""))
        .select_related("organization")
        .first()
    )
    if membership is None:
        raise Http404("not found")
    request.session[SESSION_ORG_KEY] = membership.organization_id
    messages.success(request, f"Now working in {membership.organization.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "home"
    return redirect(target)


def _api_key_state(key: ApiKey, now) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _apikey_page(request: HttpRequest, form: ApiKeyCreateForm, *, status: int = 200) -> HttpResponse:
    now = timezone.now()
    keys = list(api_key_list(organization_id=request.organization.id).select_related("created_by"))
    for key in keys:
        key.state = _api_key_state(key, now)
    return render(request, "accounts/apikey_list.html", {"keys": keys, "form": form}, status=status)


@org_view(Role.ADMIN)
def apikey_list(request: HttpRequest) -> HttpResponse:
    return _apikey_page(request, ApiKeyCreateForm())


@org_view(Role.ADMIN)
@require_POST
@never_cache
def apikey_create(request: HttpRequest) -> HttpResponse:
    """Create a key and show its secret on this one response; only its hash is kept."""
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _apikey_page(request, form, status=400)
    try:
        key, secret = api_key_create(
            organization=request.organization,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_in_days=form.cleaned_data["expires_in_days"],
            actor=request.actor,
            created_by_id=request.user.pk,
        )
    except StowageError as exc:
        form.add_error(None, exc.message)
        return _apikey_page(request, form, status=400)
    # Rendered, not redirected: the secret must never sit in a URL, a session or a cache.
    return render(request, "accounts/apikey_created.html", {"key": key, "secret": secret})


@org_view(Role.ADMIN)
@require_POST
def apikey_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    try:
        key = api_key_revoke(organization=request.organization, key_id=key_id, actor=request.actor)
    except NotFound:
        raise Http404("not found") from None
    messages.success(request, f"Revoked “{key.name}” ({key.prefix}…). Requests that use it are refused from now on.")
    return redirect("apikey-list")


@org_view(Role.ADMIN)
@require_POST
@never_cache
def apikey_token(request: HttpRequest, key_id: str) -> HttpResponse:
    """A short-lived access token of an active key, shown on this one response."""
    key = api_key_list(organization_id=request.organization.id).filter(id=key_id).first()
    if key is None or not key.is_active:
        raise Http404("not found")
    try:
        expires_in = int(request.POST.get("expires_in", "3600"))
    except ValueError:
        expires_in = -1
    try:
        token = access_token_mint(key=key, actor=request.actor, expires_in=expires_in)
    except StowageError as exc:
        messages.error(request, exc.message)
        return redirect("apikey-list")
    return render(request, "accounts/apikey_token.html", {"key": key, "token": token})
