from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import hash_api_key


def test_bearer_and_apikey_schemes_both_authenticate(owner):
    assert owner.client.get("/api/v1/sandboxes", headers={"Authorization": f"Bearer {owner.key}"}).status_code == 200
    assert owner.client.get("/api/v1/sandboxes", headers={"Authorization": f"ApiKey {owner.key}"}).status_code == 200
    assert owner.get("/sandboxes").status_code == 200


def test_keys_never_look_like_a_jwt_and_are_stored_hashed(owner):
    assert owner.key.count(".") == 0
    assert len(owner.key) >= 40
    stored = ApiKey.objects.get(organization_id=owner.org_id)
    assert stored.key_hash == hash_api_key(owner.key)
    assert owner.key not in {str(v) for v in ApiKey.objects.values_list("key_hash", "prefix", "name").first()}


@pytest.mark.parametrize(
    "header",
    [None, "ApiKey", "Basic abc", "ApiKey stow_wrong", "Bearer ", "Token x"],
)
def test_missing_or_malformed_credentials_get_401_json(owner, header):
    headers = {"Authorization": header} if header is not None else {}
    response = owner.client.get("/api/v1/sandboxes", headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] in {"UNAUTHORIZED", "INVALID_API_KEY"}
    assert error["message"]
    assert response["X-Request-Id"] == error["request_id"]


def test_revoked_and_expired_keys_get_401(owner):
    created = owner.post("/api-keys", {"name": "ci", "expires_in_days": 1}).json()
    secret, key_id = created["key"], created["api_key"]["id"]
    headers = {"Authorization": f"ApiKey {secret}", "X-Org-Id": owner.org_id}
    assert owner.client.get("/api/v1/sandboxes", headers=headers).status_code == 200
    ApiKey.objects.filter(id=key_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert owner.client.get("/api/v1/sandboxes", headers=headers).status_code == 401
    ApiKey.objects.filter(id=key_id).update(expires_at=None)
    assert owner.delete(f"/api-keys/{key_id}").json() == {"success": True}
    response = owner.client.get("/api/v1/sandboxes", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"


def test_a_key_with_another_organizations_id_is_refused(owner, stranger):
    response = owner.client.get(
        "/api/v1/sandboxes", headers={"Authorization": f"ApiKey {owner.key}", "X-Org-Id": stranger.org_id}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "ORG_MISMATCH"


def test_api_key_lifecycle_shows_the_secret_once(owner):
    created = owner.post("/api-keys", {"name": "deploy", "scopes": ["sandboxes:read"]})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith(body["api_key"]["key_prefix"])
    listed = owner.get("/api-keys").json()["api_keys"]
    assert body["key"] not in str(listed)
    assert {k["name"] for k in listed} == {"bootstrap", "deploy"}
    limited = {"Authorization": f"ApiKey {body['key']}", "X-Org-Id": owner.org_id}
    response = owner.client.post("/api/v1/sandbox/create", {}, content_type="application/json", headers=limited)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "INSUFFICIENT_SCOPE"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": "soon"},
        {},
    ],
)
def test_bad_api_key_requests_change_nothing(owner, body):
    response = owner.post("/api-keys", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"]
    assert ApiKey.objects.filter(organization_id=owner.org_id).count() == 1


def test_another_organizations_key_cannot_be_revoked(owner, stranger):
    theirs = ApiKey.objects.get(organization_id=stranger.org_id)
    response = owner.delete(f"/api-keys/{theirs.id}")
    assert response.status_code == 404
    assert ApiKey.objects.get(id=theirs.id).revoked_at is None


def test_request_id_is_echoed_and_unknown_routes_answer_json(owner):
    response = owner.get("/nowhere", **{"X-Request-Id": "abc-123"})
    assert response.status_code == 404
    assert response["X-Request-Id"] == "abc-123"
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/sandbox/create" in schema.json()["paths"]
    # One credential for every operation, those that wait on a sandbox host included.
    assert list(schema.json()["components"]["securitySchemes"]) == ["ApiKeyAuth"]
    securities = {str(op.get("security")) for path in schema.json()["paths"].values() for op in path.values()}
    assert securities <= {"[{'ApiKeyAuth': []}]", "None"}
    assert client.get("/api/v1/docs").status_code == 200


def test_bootstrap_prints_json_with_working_credentials(db, client, capsys):
    call_command("bootstrap", "--org", "Initech", "--email", "peter@initech.test", "--json")
    import json

    created = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(created) == {"org_id", "api_key", "username", "password"}
    response = client.get(
        "/api/v1/sandboxes", headers={"Authorization": f"ApiKey {created['api_key']}", "X-Org-Id": created["org_id"]}
    )
    assert response.status_code == 200
    assert client.login(username=created["username"], password=created["password"])
