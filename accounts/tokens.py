"""Short-lived access tokens: signed JWTs that act for the API key that asked for them.

A token carries the key's organization, some or all of the key's scopes (never more) and an
expiry of at most a day; it is refused once expired or once its key is revoked. It is what to hand
an agent inside a sandbox instead of a long-lived key. The SDK's ``Sandbox.create`` and
``Sandbox.connect`` build a client without an org id, which the SDK allows only for a JWT.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import ApiKey
from audit.services import audit_record
from core.actor import Actor
from core.errors import Forbidden, InvalidInput, Unauthorized
from core.ids import new_id

ALGORITHM = "HS256"
ISSUER = "stowage"
AUDIENCE = "stowage-api"
TOKEN_MIN_SECONDS = 60
TOKEN_MAX_SECONDS = 24 * 3600
TOKEN_DEFAULT_SECONDS = 3600
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def looks_like_jwt(secret: str) -> bool:
    """The SDK's own test: three non-empty base64url parts. API keys never pass it (no dots)."""
    parts = secret.split(".")
    return len(parts) == 3 and all(_BASE64URL.match(part) for part in parts)


def _signing_keys() -> list[bytes]:
    """The key that signs new tokens first, then those still accepted while a rotation runs."""
    if settings.ACCESS_TOKEN_SIGNING_KEYS:
        return [secret.encode() for secret in settings.ACCESS_TOKEN_SIGNING_KEYS]
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [
        salted_hmac("stowage.accounts.tokens", "access-token", secret=secret, algorithm="sha256").digest()
        for secret in secrets
    ]


def _check_expires_in(expires_in: object) -> int:
    if expires_in is None:
        return TOKEN_DEFAULT_SECONDS
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not (TOKEN_MIN_SECONDS <= expires_in <= TOKEN_MAX_SECONDS)
    ):
        raise InvalidInput(
            f"expires_in must be a whole number of seconds between {TOKEN_MIN_SECONDS} and {TOKEN_MAX_SECONDS} (a day)",
            details={"field": "expires_in"},
        )
    return expires_in


def access_token_mint(
    *, key: ApiKey, actor: Actor, expires_in: int | None = None, scopes: list[str] | None = None
) -> dict[str, object]:
    """A token for ``key``: the OAuth 2 token answer (``access_token``, ``token_type``, ``expires_in``)."""
    lifetime = _check_expires_in(expires_in)
    granted = set(key.scopes)
    wanted = granted if scopes is None else set(scopes)
    if not wanted:
        raise InvalidInput("scopes must name at least one scope", details={"field": "scopes"})
    beyond = sorted(wanted - granted)
    if beyond:
        raise Forbidden(
            f"a token can carry only the scopes of its key; this key lacks {', '.join(beyond)}",
            code="INSUFFICIENT_SCOPE",
            details={"field": "scopes", "missing": beyond},
        )
    now = timezone.now().replace(microsecond=0)
    expires_at = now + timedelta(seconds=lifetime)
    if key.expires_at is not None and key.expires_at < expires_at:
        # Never outlives its key.
        expires_at = key.expires_at.replace(microsecond=0)
        lifetime = max(0, int((expires_at - now).total_seconds()))
    token_id = new_id("tok")
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": key.id,
        "org": key.organization_id,
        "scope": " ".join(sorted(wanted)),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": token_id,
    }
    token = jwt.encode(claims, _signing_keys()[0], algorithm=ALGORITHM)
    audit_record(
        actor=actor,
        action="auth.token",
        resource=f"apikey:{key.id}",
        details={"token_id": token_id, "expires_in": lifetime, "scopes": sorted(wanted), "prefix": key.prefix},
        organization_id=key.organization_id,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": claims["scope"],
        "expires_at": expires_at,
    }


def _claims(token: str) -> dict[str, object]:
    for signing_key in _signing_keys():
        try:
            return jwt.decode(
                token,
                signing_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "org", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("this access token has expired; ask for a new one", code="TOKEN_EXPIRED") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError:
            break
    raise Unauthorized("invalid access token", code="INVALID_TOKEN")


def access_token_authenticate(token: str, *, now: datetime | None = None) -> tuple[ApiKey, frozenset[str], str]:
    """The key a valid token acts for, the scopes it may use and its id; Unauthorized otherwise."""
    if len(token) > 4096:
        raise Unauthorized("invalid access token", code="INVALID_TOKEN")
    claims = _claims(token)
    key = ApiKey.objects.select_related("organization").filter(id=claims["sub"], organization_id=claims["org"]).first()
    if key is None or not key.is_active:
        raise Unauthorized("the API key this access token was made from is revoked or expired", code="INVALID_TOKEN")
    scopes = frozenset(str(claims.get("scope", "")).split()) & frozenset(key.scopes)
    return key, scopes, str(claims["jti"])
