"""Who is calling the API: the API key (or the short-lived access token of one) behind a request,
its organization and scopes, and the client's address. Kept apart from the API object, so that
the apps' routers and the middleware can import it."""

from __future__ import annotations

from collections.abc import Awaitable

from django.conf import settings
from django.http import HttpRequest
from ninja.security.base import AuthBase

from accounts.models import ApiKey
from accounts.services import api_key_authenticate, api_key_find
from accounts.tokens import access_token_authenticate, looks_like_jwt
from audit.refusals import audit_refusal
from core.actor import Actor
from core.errors import Forbidden, Unauthorized
from core.threads import in_thread

KEY_REFUSED = "auth.api_key"
SCOPE_REFUSED = "auth.scope"
MISSING = (
    "missing Authorization header: send 'Authorization: ApiKey <key>' with 'X-Org-Id: <org id>', "
    "'Authorization: Bearer <key or access token>', or 'X-Api-Key: <key>'"
)


def client_ip(request: HttpRequest) -> str | None:
    if settings.STOWAGE_TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def request_actor(request: HttpRequest, *, label: str, **who) -> Actor:
    """The actor of a request, with the address, browser and request id every event carries."""
    return Actor(
        label=label,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
        client_request_id=getattr(request, "client_request_id", ""),
        **{"organization_id": None, **who},
    )


def key_actor(request: HttpRequest, key: ApiKey) -> Actor:
    return request_actor(
        request,
        label=f"api key {key.prefix}… ({key.name})",
        organization_id=key.organization_id,
        api_key_id=key.id,
        scopes=frozenset(key.scopes),
        credential="api_key",
    )


def _refuse_key(request: HttpRequest, secret: str) -> None:
    """A presented key that does not work: in its organization's log when it is a real key
    (revoked or expired), in the instance security log when it is no key at all."""
    key = api_key_find(secret)
    where = {"method": request.method, "path": request.path[:500]}
    if key is None:
        shown = secret[:13] if secret.startswith("stow_") else ""
        audit_refusal(
            actor=request_actor(request, label="unknown api key"),
            action=KEY_REFUSED,
            reason="no such API key",
            organization_id=None,
            details={**where, "key_prefix": shown},
        )
        return
    audit_refusal(
        actor=key_actor(request, key),
        action=KEY_REFUSED,
        reason="the API key is revoked" if key.revoked_at is not None else "the API key has expired",
        organization_id=key.organization_id,
        resource=f"apikey:{key.id}",
        details=where,
    )


def _credential(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    if not header:
        # The SDK's AsyncSandbox sends a key this way, with no org id.
        secret = request.headers.get("X-Api-Key", "").strip()
        if not secret:
            raise Unauthorized(MISSING)
        return secret
    scheme, _, secret = header.partition(" ")
    if scheme.lower() not in {"apikey", "bearer"} or not secret.strip():
        raise Unauthorized("malformed Authorization header: expected 'ApiKey <key>' or 'Bearer <key>'")
    return secret.strip()


def _token_actor(request: HttpRequest, token: str) -> Actor:
    try:
        key, scopes, token_id = access_token_authenticate(token)
    except Unauthorized as exc:
        audit_refusal(
            actor=request_actor(request, label="access token"),
            action=KEY_REFUSED,
            reason=exc.message,
            organization_id=None,
            details={"method": request.method, "path": request.path[:500], "code": exc.code},
        )
        raise
    return request_actor(
        request,
        label=f"access token {token_id} of api key {key.prefix}… ({key.name})",
        organization_id=key.organization_id,
        api_key_id=key.id,
        scopes=scopes,
        credential="token",
    )


def _key_actor(request: HttpRequest, secret: str) -> Actor:
    key = api_key_authenticate(secret)
    if key is None:
        _refuse_key(request, secret)
        raise Unauthorized("invalid, expired or revoked API key", code="INVALID_API_KEY")
    return key_actor(request, key)


def authenticate(request: HttpRequest) -> Actor:
    """The actor of an API request; Unauthorized when its credential is missing or not valid.
    Decided once per request (the idempotency middleware asks before the endpoint does), so a
    refusal is recorded once."""
    if hasattr(request, "_stowage_auth"):
        known = request._stowage_auth
        if isinstance(known, Unauthorized):
            raise known
        return known
    try:
        actor = _authenticate(request)
    except Unauthorized as exc:
        request._stowage_auth = exc
        raise
    request._stowage_auth = actor
    return actor


def _authenticate(request: HttpRequest) -> Actor:
    secret = _credential(request)
    actor = _token_actor(request, secret) if looks_like_jwt(secret) else _key_actor(request, secret)
    org_header = request.headers.get("X-Org-Id", "").strip()
    if org_header and org_header != actor.organization_id:
        audit_refusal(
            actor=actor,
            action=KEY_REFUSED,
            reason="X-Org-Id names another organization",
            organization_id=actor.organization_id,
            resource=f"apikey:{actor.api_key_id}",
            details={"method": request.method, "path": request.path[:500], "org_id_sent": org_header[:100]},
        )
        raise Unauthorized("this API key does not belong to the organization named in X-Org-Id", code="ORG_MISMATCH")
    return actor


class ApiKeyAuth(AuthBase):
    """``Authorization: ApiKey <key>`` (with ``X-Org-Id``), ``Authorization: Bearer <key or token>``
    or ``X-Api-Key: <key>``."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "Authorization"

    def __init__(self, *, in_a_step: bool = False) -> None:
        super().__init__()
        # Django Ninja awaits what an auth marked is_async answers.
        self.in_a_step = self.is_async = in_a_step

    def __call__(self, request: HttpRequest) -> Actor | Awaitable[Actor]:
        if self.in_a_step:
            return _authenticate_in_a_step(request)
        return authenticate(request)


_authenticate_in_a_step = in_thread(authenticate)
# For the async operations, whose requests then wait on a sandbox host: the key is checked in a
# step of core.threads, whose connection is given back at once, not held through the wait. The
# same class, so the OpenAPI document names one security scheme for every operation.
WAITING_AUTH = ApiKeyAuth(in_a_step=True)


def require_scope(actor: Actor, scope: str) -> None:
    if scope not in actor.scopes:
        audit_refusal(
            actor=actor,
            action=SCOPE_REFUSED,
            reason=f"the API key lacks the '{scope}' scope",
            organization_id=actor.organization_id,
            resource=f"apikey:{actor.api_key_id}" if actor.api_key_id else "",
            details={"scope": scope, "key_scopes": sorted(actor.scopes)},
        )
        raise Forbidden(f"this API key lacks the '{scope}' scope", code="INSUFFICIENT_SCOPE")
