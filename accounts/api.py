from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from accounts.models import ApiKey
from accounts.selectors import api_key_list, organization_get
from accounts.services import MAX_KEY_DAYS, api_key_create, api_key_revoke
from accounts.tokens import TOKEN_MAX_SECONDS, access_token_mint
from config.auth import require_scope
from config.schemas import BODY, errors, strict_int
from core.errors import Forbidden

router = Router(tags=["api keys"])

Days = strict_int(1, MAX_KEY_DAYS)


class ApiKeyOut(Schema):
    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @staticmethod
    def from_key(key: ApiKey) -> dict:
        return {
            "id": key.id,
            "name": key.name,
            "key_prefix": key.prefix,
            "scopes": key.scopes,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
            "last_used_at": key.last_used_at,
            "revoked_at": key.revoked_at,
        }


class ApiKeyCreateIn(Schema):
    name: str
    expires_in_days: Days | None = None
    scopes: list[str] | None = None


class ApiKeyCreatedOut(Schema):
    api_key: ApiKeyOut
    key: str


class ApiKeyListOut(Schema):
    api_keys: list[ApiKeyOut]


class SuccessOut(Schema):
    success: bool


@router.get("/api-keys", response={200: ApiKeyListOut, **errors()})
def list_api_keys(request: HttpRequest):
    require_scope(request.auth, "keys:manage")
    return {"api_keys": [ApiKeyOut.from_key(k) for k in api_key_list(organization_id=request.auth.organization_id)]}


@router.post("/api-keys", response={201: ApiKeyCreatedOut, **errors(BODY)})
def create_api_key(request: HttpRequest, payload: ApiKeyCreateIn):
    require_scope(request.auth, "keys:manage")
    org = organization_get(organization_id=request.auth.organization_id)
    key, secret = api_key_create(
        organization=org,
        name=payload.name,
        scopes=payload.scopes,
        expires_in_days=payload.expires_in_days,
        actor=request.auth,
    )
    return Status(201, {"api_key": ApiKeyOut.from_key(key), "key": secret})


@router.delete("/api-keys/{key_id}", response={200: SuccessOut, **errors(404)})
def revoke_api_key(request: HttpRequest, key_id: str):
    require_scope(request.auth, "keys:manage")
    org = organization_get(organization_id=request.auth.organization_id)
    api_key_revoke(organization=org, key_id=key_id, actor=request.auth)
    return {"success": True}


class TokenIn(Schema):
    expires_in: strict_int(60, TOKEN_MAX_SECONDS) | None = Field(
        None, description=f"seconds, at most {TOKEN_MAX_SECONDS}; an hour by default"
    )
    scopes: list[str] | None = Field(None, description="some of the key's scopes; all of them by default")


class TokenOut(Schema):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    expires_at: datetime


@router.post("/auth/token", response={200: TokenOut, **errors(BODY)}, tags=["auth"])
def create_access_token(request: HttpRequest, payload: TokenIn | None = None):
    """A short-lived access token (a signed JWT) acting for the calling API key: send it as
    `Authorization: Bearer <token>`. Hand this, not the key, to an agent inside a sandbox."""
    if request.auth.credential != "api_key":
        # Otherwise a token could renew itself for ever, outliving the day it was given.
        raise Forbidden("access tokens are made with an API key, not with another token", code="API_KEY_REQUIRED")
    payload = payload or TokenIn()
    key = ApiKey.objects.get(id=request.auth.api_key_id)
    return access_token_mint(key=key, actor=request.auth, expires_in=payload.expires_in, scopes=payload.scopes)
