"""OpenID Connect sign-in (mozilla-django-oidc), configured by the issuer, a client id and secret.

Every endpoint comes from the issuer's discovery document. The ID token is checked in full
here, as OpenID Connect Core 3.1.3.7 asks: its signature against the provider's published
keys, the issuer, the audience (this client, and an ``azp`` of this client when there are
several), the expiry and the nonce of this sign-in. The library itself checks only the
signature and the nonce.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.signin import audit_sign_in, audit_sign_in_refused
from accounts.sso import SignInRefused, sso_user_sign_in
from audit.models import Outcome
from config.auth import request_actor

logger = logging.getLogger(__name__)

DISCOVERY_SECONDS = 3600
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


def sso_enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def provider_metadata() -> dict[str, Any]:
    """The issuer's discovery document, kept for an hour; its ``issuer`` must be the one configured."""
    issuer = settings.OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_SECONDS:
        return cached[1]
    response = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    metadata = response.json()
    if metadata.get("issuer") != issuer:
        raise SuspiciousOperation(f"the provider names itself {metadata.get('issuer')!r}, not {issuer!r}")
    _discovered[issuer] = (time.monotonic(), metadata)
    return metadata


class SingleSignOnBackend(OIDCAuthenticationBackend):
    """The library's code flow, with the endpoints discovered, the ID token checked in full and
    accounts found by issuer and subject rather than by e-mail address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every sign-in and every request's user: nothing slow here.
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):  # type: ignore[override]
        # Django offers every sign-in to every backend: a password sign-in posted to a URL with a
        # stolen ?code= must not become a code exchange without this browser's nonce and verifier.
        if request is None or not sso_enabled() or "code" not in request.GET:
            return None
        if not kwargs.get("nonce") or not kwargs.get("code_verifier"):
            return None
        metadata = provider_metadata()
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = metadata["userinfo_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = metadata["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id):
        """The session's user, while the account is active: a deactivated one is signed out."""
        user = self.UserModel._default_manager.filter(pk=user_id).first()
        return user if user is not None and user.is_active else None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        key = self.retrieve_matching_jwk(token)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=30,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from None
        audience = payload["aud"]
        if isinstance(audience, list) and len(audience) > 1 and payload.get("azp") != settings.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("the ID token was refused: it was issued to another client (azp)")
        if "nonce" in kwargs and payload.get("nonce") != kwargs["nonce"]:
            raise SuspiciousOperation("the ID token was refused: its nonce is not this sign-in's")
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            raise SuspiciousOperation("the provider's user information is about someone else")
        claims = {**userinfo, "iss": payload["iss"], "sub": payload["sub"]}
        if settings.OIDC_ROLES_CLAIM in payload and settings.OIDC_ROLES_CLAIM not in userinfo:
            claims[settings.OIDC_ROLES_CLAIM] = payload[settings.OIDC_ROLES_CLAIM]
        actor = request_actor(self.request, label=settings.OIDC_PROVIDER_NAME)
        return sso_user_sign_in(claims=claims, roles_claim=settings.OIDC_ROLES_CLAIM, actor=actor)


class SingleSignOnStart(OIDCAuthenticationRequestView):
    """Off to the provider, with a fresh state, nonce and PKCE verifier kept in the session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not sso_enabled():
            raise Http404("single sign-on is not set up")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata()["authorization_endpoint"]
        except (requests.RequestException, ValueError, KeyError, SuspiciousOperation) as exc:
            logger.warning("single sign-on cannot start: %s", exc)
            return refuse_sign_in(request, "the provider cannot be reached or did not describe itself", 502)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


def refuse_sign_in(request: HttpRequest, reason: str, status: int, *, username: str = "") -> HttpResponse:
    """The refusal page, which changes nothing, and its audit event: a refused token or account is
    ``denied``; a provider that failed (502) is a ``failure``."""
    outcome = Outcome.FAILURE if status >= 500 else Outcome.DENIED
    audit_sign_in_refused(request, username, reason=reason, outcome=outcome, method="sso")
    return render(request, "accounts/sso_refused.html", {"reason": reason}, status=status)


class SingleSignOnCallback(OIDCAuthenticationCallbackView):
    """Back from the provider. Anything wrong (state, nonce, issuer, audience, a token or key that
    cannot be read, a code the provider will not exchange) is a 400 page, a deactivated account a
    403, a provider that cannot be reached or answers nonsense a 502: each changes nothing, and is
    audited."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not sso_enabled():
            raise Http404("single sign-on is not set up")
        try:
            if "code" in request.GET and not request.session.get("oidc_states"):
                raise SuspiciousOperation("this browser did not start a sign-in (no state is waiting for it)")
            return super().get(request)
        except SignInRefused as exc:
            return refuse_sign_in(request, str(exc), 403, username=exc.username)
        except SuspiciousOperation as exc:
            return refuse_sign_in(request, str(exc), 400)
        except jwt.PyJWTError as exc:
            return refuse_sign_in(request, f"the ID token could not be read: {exc}", 400)
        except requests.HTTPError as exc:
            logger.warning("single sign-on failed: %s", exc)
            refused = exc.response is not None and exc.response.status_code < 500
            if refused:
                return refuse_sign_in(request, "the provider refused to complete the sign-in", 400)
            return refuse_sign_in(request, "the provider did not complete the sign-in", 502)
        except (requests.RequestException, ValueError, KeyError) as exc:
            logger.warning("single sign-on failed: %s", exc)
            return refuse_sign_in(request, "the provider did not complete the sign-in", 502)

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        audit_sign_in(self.request, self.user, method="sso")
        return response

    def login_failure(self) -> HttpResponse:
        reason = self.request.GET.get("error_description") or self.request.GET.get("error") or "sign-in failed"
        audit_sign_in_refused(self.request, "", reason=reason[:300], outcome=Outcome.FAILURE, method="sso")
        messages.error(self.request, "Single sign-on did not sign you in. Try again, or ask your administrator.")
        return redirect("login")


def provider_logout_url(request: HttpRequest) -> str:
    """Where to send a signed-out browser so the provider ends its session too; empty if nowhere."""
    id_token = request.session.get("oidc_id_token")
    if not id_token or not sso_enabled():
        return ""
    try:
        endpoint = provider_metadata().get("end_session_endpoint")
    except (requests.RequestException, ValueError, SuspiciousOperation):
        return ""
    if not endpoint:
        return ""
    query = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return f"{endpoint}?{urlencode(query)}"
