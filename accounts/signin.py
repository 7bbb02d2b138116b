"""Password sign-in throttled by django-axes, and every sign-in, refused or not, in the audit log."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.models import Membership
from audit.refusals import audit_refusal
from audit.services import audit_record
from config.auth import client_ip, request_actor

SIGN_IN = "auth.signin"
SIGN_OUT = "auth.signout"


def client_address(request: HttpRequest) -> str | None:
    """The address django-axes counts failures by: the same one every audit event carries."""
    return client_ip(request)


class SignInAttempts(AxesDatabaseHandler):
    """django-axes' failure counts, except that a correct sign-in forgets only the failures of that
    account from that address. The library forgets every failure matching either lock-out
    parameter, which wipes the count against other accounts from the same address: an insider
    could then guess a colleague's password forever between sign-ins of their own."""

    def reset_user_attempts(self, request, credentials=None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        return AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()[0]


class ThrottledPasswordBackend(AxesStandaloneBackend, ModelBackend):
    """Username and password, refused while the account or the address is locked out."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[override]
        if not settings.PASSWORD_SIGN_IN or username is None:
            return None
        # Without a request (a script, a shell) there is no address to throttle by.
        if request is not None:
            AxesStandaloneBackend.authenticate(self, request, username=username, password=password, **kwargs)
        return ModelBackend.authenticate(self, request, username=username, password=password, **kwargs)


def organizations_of(user) -> list[str]:
    # In one order, so that appends to several chains in one transaction take their locks in one order.
    return list(
        Membership.objects.filter(user=user).order_by("organization_id").values_list("organization_id", flat=True)
    )


def audit_sign_in(request: HttpRequest, user, *, method: str) -> None:
    """A sign-in, in the log of every organization the person belongs to."""
    actor = request_actor(request, label=user.get_username(), user_id=user.pk)
    for organization_id in organizations_of(user) or [None]:
        audit_record(
            actor=actor,
            action=SIGN_IN,
            resource=f"user:{user.pk}",
            details={"method": method},
            organization_id=organization_id,
        )


def audit_sign_in_refused(request: HttpRequest, username: str, *, reason: str, outcome: str, method: str) -> None:
    """A refused sign-in: in the logs of the named account's organizations, in the instance
    security log when the name is no one's. Throttled like every refusal."""
    username = username[:150]
    user = get_user_model().objects.filter(username=username).first() if username else None
    organizations = organizations_of(user) if user is not None else []
    for organization_id in organizations or [None]:
        audit_refusal(
            actor=request_actor(request, label=f"sign-in as {username}" if username else "sign-in"),
            action=SIGN_IN,
            reason=reason,
            organization_id=organization_id,
            resource=f"user:{user.pk}" if user is not None else "",
            details={"method": method, "username": username},
            outcome=outcome,
        )


def audit_sign_out(request: HttpRequest, user) -> None:
    actor = request_actor(request, label=user.get_username(), user_id=user.pk)
    for organization_id in organizations_of(user) or [None]:
        audit_record(actor=actor, action=SIGN_OUT, resource=f"user:{user.pk}", organization_id=organization_id)
