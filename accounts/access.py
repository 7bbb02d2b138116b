"""Who may see which dashboard page: the signed-in user's membership in the current organization."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from ninja.errors import HttpError
from ninja.security import SessionAuth

from accounts.models import ROLE_RANK, Membership, Role
from audit.foreign_ids import audit_foreign_ids
from config.auth import client_ip
from core.actor import Actor
from core.errors import Forbidden, NotFound, Unauthorized

SESSION_ORG_KEY = "stowage_org_id"


def current_membership(request: HttpRequest) -> Membership | None:
    if not request.user.is_authenticated:
        return None
    # With the organization's quota rows, which every page's quota banner reads (no query of its own).
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("organization", "organization__usage", "organization__quota")
        .order_by("organization__name")
    )
    wanted = request.session.get(SESSION_ORG_KEY)
    chosen = None
    for membership in memberships:
        if membership.organization_id == wanted:
            return membership
        chosen = chosen or membership
    return chosen


def has_role(membership: Membership | None, role: str) -> bool:
    return membership is not None and ROLE_RANK[Role(membership.role)] >= ROLE_RANK[Role(role)]


def dashboard_actor(request: HttpRequest) -> Actor:
    membership = request.membership
    return Actor(
        organization_id=membership.organization_id,
        user_id=request.user.pk,
        label=request.user.get_username(),
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
        client_request_id=getattr(request, "client_request_id", ""),
        credential="session",
    )


def _enter_organization(request: HttpRequest, role: str) -> bool:
    """Attach the membership, organization and actor to the request; False if the role is short."""
    membership = current_membership(request)
    if membership is None or not has_role(membership, role):
        return False
    request.membership = membership
    request.organization = membership.organization
    request.actor = dashboard_actor(request)
    return True


def org_view(role: str = Role.VIEWER) -> Callable:
    """Sign-in required; the page belongs to the current organization and needs at least ``role``.

    A user below the role gets 404, like someone from another organization: a page that
    cannot be used is not advertised.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not _enter_organization(request, role):
                raise Http404("not found")
            try:
                return view(request, *args, **kwargs)
            except Http404:
                audit_foreign_ids(request, request.actor)
                raise

        return wrapped

    return decorate


def staff_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sign-in required, and the instance's staff only; everyone else gets 404."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise Http404("not found")
        return view(request, *args, **kwargs)

    return wrapped


class OrgSession(SessionAuth):
    """``org_view`` for django-ninja endpoints a page's script calls: the dashboard's session,
    its CSRF token checked, and every refusal JSON the script can show (401 once the session has
    ended, 404 below ``role``), never a redirect to the sign-in page. The actor is
    ``request.auth``."""

    def __init__(self, role: str = Role.VIEWER) -> None:
        super().__init__(csrf=True)
        self.role = role

    def __call__(self, request: HttpRequest) -> Actor | None:
        try:
            return super().__call__(request)
        except HttpError as exc:
            # django-ninja's CSRF refusal, in words the page can show.
            if exc.status_code != 403:
                raise
            raise Forbidden(
                "Refused: your session may have ended. Reload the page and sign in again.", code="CSRF_FAILED"
            ) from None

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor:
        if not request.user.is_authenticated:
            raise Unauthorized("Your session has ended. Sign in again (in another tab) and retry.", code="SIGNED_OUT")
        if not _enter_organization(request, self.role):
            raise NotFound("Not found.")
        return request.actor


# Whether the task queue (Redis) answered a PING lately: checked at most every few seconds per
# process, with a short timeout, so a dashboard page never waits long on a dead broker.
QUEUE_CHECK_SECONDS = 5.0
QUEUE_PING_TIMEOUT = 0.3
_queue_state: dict[str, Any] = {"checked": float("-inf"), "up": True}
_queue_lock = threading.Lock()


def task_queue_available() -> bool:
    now = time.monotonic()
    if now - _queue_state["checked"] < QUEUE_CHECK_SECONDS:
        return _queue_state["up"]
    with _queue_lock:
        if now - _queue_state["checked"] < QUEUE_CHECK_SECONDS:
            return _queue_state["up"]
        import redis
        from django.conf import settings

        try:
            client = redis.Redis.from_url(
                settings.REDIS_CLIENT_URL, socket_timeout=QUEUE_PING_TIMEOUT, socket_connect_timeout=QUEUE_PING_TIMEOUT
            )
            try:
                up = bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            up = False
        _queue_state.update(checked=time.monotonic(), up=up)
        return up


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "task_queue_down": not task_queue_available(),
        "membership": membership,
        "organization": membership.organization,
        "can_write": has_role(membership, Role.MEMBER),
        "is_admin": has_role(membership, Role.ADMIN),
        "memberships": Membership.objects.filter(user=request.user)
        .select_related("organization")
        .order_by("organization__name"),
    }
