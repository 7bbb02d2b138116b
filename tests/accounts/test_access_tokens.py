"""Short-lived access tokens: minted with an API key, accepted as Bearer, never more than the key."""

from __future__ import annotations

import time

import jwt
import pytest
from django.test import Client

from accounts.models import ApiKey
from accounts.tokens import looks_like_jwt
from audit.models import AuditEvent


def mint(owner, **body):
    return owner.post("/auth/token", body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_key_mints_a_token_in_the_oauth_shape(owner):
    answer = mint(owner, expires_in=600)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert looks_like_jwt(body["access_token"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["org"] == owner.org_id and claims["exp"] - claims["iat"] == 600
    assert AuditEvent.objects.filter(action="auth.token", organization_id=owner.org_id).count() == 1


def test_a_token_works_as_bearer_without_an_org_id(owner):
    token = mint(owner).json()["access_token"]
    listed = Client().get("/api/v1/sandboxes", headers=bearer(token))
    assert listed.status_code == 200


def test_a_token_carries_only_the_scopes_asked_for(owner):
    token = mint(owner, scopes=["artifacts:read"]).json()["access_token"]
    refused = Client().get("/api/v1/sandboxes", headers=bearer(token))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    assert Client().get("/api/v1/artifacts", headers=bearer(token)).status_code == 200


def test_a_token_never_carries_more_than_its_key(owner):
    narrow = owner.post("/api-keys", {"name": "reader", "scopes": ["artifacts:read"]}).json()["key"]
    headers = {"Authorization": f"ApiKey {narrow}", "X-Org-Id": owner.org_id}
    answer = owner.client.post(
        "/api/v1/auth/token", {"scopes": ["sandboxes:write"]}, content_type="application/json", headers=headers
    )
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "INSUFFICIENT_SCOPE"


@pytest.mark.parametrize("expires_in", [0, 59, 86401, -5, True])
def test_a_lifetime_over_a_day_or_absurd_is_refused(owner, expires_in):
    answer = mint(owner, expires_in=expires_in)
    assert answer.status_code == 400, answer.content
    assert AuditEvent.objects.filter(action="auth.token").count() == 0


def test_a_token_cannot_mint_another(owner):
    token = mint(owner).json()["access_token"]
    again = Client().post("/api/v1/auth/token", {}, content_type="application/json", headers=bearer(token))
    assert again.status_code == 403 and again.json()["error"]["code"] == "API_KEY_REQUIRED"


def test_a_token_is_refused_once_its_key_is_revoked(owner):
    token = mint(owner).json()["access_token"]
    ApiKey.objects.filter(organization_id=owner.org_id).update(revoked_at="2026-01-01T00:00:00Z")
    refused = Client().get("/api/v1/sandboxes", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "INVALID_TOKEN"


def test_an_expired_or_forged_token_is_refused(owner, settings):
    token = mint(owner, expires_in=60).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "exp": int(time.time()) + 3600},
        "not-our-key-but-long-enough-for-hs256-0123456789",
        algorithm="HS256",
    )
    assert Client().get("/api/v1/sandboxes", headers=bearer(forged)).json()["error"]["code"] == "INVALID_TOKEN"
    from accounts import tokens

    expired = jwt.encode({**claims, "exp": int(time.time()) - 1}, tokens._signing_keys()[0], algorithm="HS256")
    answer = Client().get("/api/v1/sandboxes", headers=bearer(expired))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "TOKEN_EXPIRED"


def test_api_keys_never_look_like_a_jwt(owner):
    assert not looks_like_jwt(owner.key)


def test_an_api_key_in_x_api_key_is_accepted(owner):
    assert Client().get("/api/v1/sandboxes", headers={"X-Api-Key": owner.key}).status_code == 200
    assert Client().get("/api/v1/sandboxes", headers={"X-Api-Key": "stow_nope"}).status_code == 401


def test_an_admin_mints_a_token_from_the_dashboard(dashboard, owner):
    key = ApiKey.objects.get(organization_id=owner.org_id)
    page = dashboard.admin.post(f"/keys/{key.id}/token/", {"expires_in": "900"})
    assert page.status_code == 200
    token = page.context["token"]["access_token"]
    assert token in page.content.decode()
    assert Client().get("/api/v1/sandboxes", headers=bearer(token)).status_code == 200
    assert dashboard.member.post(f"/keys/{key.id}/token/", {"expires_in": "900"}).status_code == 404
    assert dashboard.stranger.post(f"/keys/{key.id}/token/", {"expires_in": "900"}).status_code == 404
