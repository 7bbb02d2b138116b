"""Who is calling the API: the API key behind a request, its organization and scopes, and the
client's address. Kept apart from the API object, so that the apps' routers can import it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja.security.base import AuthBase

from accounts.services import api_key_authenticate
from core.actor import Actor
from core.errors import Forbidden, Unauthorized


def client_ip(request: HttpRequest) -> str | None:
    if settings.STOWAGE_TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


class ApiKeyAuth(AuthBase):
    """``Authorization: ApiKey <key>`` (with ``X-Org-Id``) or ``Authorization: Bearer <key>``."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "Authorization"

    def __call__(self, request: HttpRequest) -> Actor:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if not header:
            raise Unauthorized(
                "missing Authorization header: send 'Authorization: ApiKey <key>' with 'X-Org-Id: <org id>', or 'Authorization: Bearer <key>'"
            )
        if scheme.lower() not in {"apikey", "bearer"} or not secret.strip():
            raise Unauthorized("malformed Authorization header: expected 'ApiKey <key>' or 'Bearer <key>'")
        key = api_key_authenticate(secret.strip())
        if key is None:
            raise Unauthorized("invalid, expired or revoked API key", code="INVALID_API_KEY")
        org_header = request.headers.get("X-Org-Id", "").strip()
        if org_header and org_header != key.organization_id:
            raise Unauthorized(
                "this API key does not belong to the organization named in X-Org-Id", code="ORG_MISMATCH"
            )
        return Actor(
            organization_id=key.organization_id,
            api_key_id=key.id,
            label=f"api key {key.prefix}… ({key.name})",
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:400],
            request_id=getattr(request, "request_id", ""),
            scopes=frozenset(key.scopes),
        )


def require_scope(actor: Actor, scope: str) -> None:
    if scope not in actor.scopes:
        raise Forbidden(f"this API key lacks the '{scope}' scope", code="INSUFFICIENT_SCOPE")
