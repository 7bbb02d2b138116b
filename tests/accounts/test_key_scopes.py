from __future__ import annotations

from accounts.models import ApiKey
from audit.models import AuditEvent, Outcome


def key_with(owner, *scopes: str) -> dict[str, str]:
    created = owner.post("/api-keys", {"name": "limited", "scopes": list(scopes)}).json()
    return {"Authorization": f"ApiKey {created['key']}", "X-Org-Id": owner.org_id}


def test_a_key_that_only_manages_keys_cannot_mint_a_key_with_every_scope(owner):
    """Guards the finding that a keys:manage key could create a key with every scope."""
    manager = key_with(owner, "keys:manage")
    before = ApiKey.objects.count()
    response = owner.client.post(
        "/api/v1/api-keys",
        {"name": "escalated", "scopes": ["sandboxes:write", "artifacts:write", "keys:manage"]},
        content_type="application/json",
        headers=manager,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    assert ApiKey.objects.count() == before
    refusal = AuditEvent.objects.get(action="apikey.create", outcome=Outcome.DENIED)
    assert refusal.details["missing"] == ["artifacts:write", "sandboxes:write"]


def test_a_key_may_hand_on_the_scopes_it_has(owner):
    manager = key_with(owner, "keys:manage", "artifacts:read")
    response = owner.client.post(
        "/api/v1/api-keys",
        {"name": "reader", "scopes": ["artifacts:read"]},
        content_type="application/json",
        headers=manager,
    )
    assert response.status_code == 201
    assert response.json()["api_key"]["scopes"] == ["artifacts:read"]


def test_a_key_created_without_scopes_gets_read_only_scopes(owner):
    """Guards the finding that a key created without scopes got all of them."""
    created = owner.post("/api-keys", {"name": "no scopes named"})
    assert created.status_code == 201
    assert created.json()["api_key"]["scopes"] == ["sandboxes:read", "artifacts:read"]
    headers = {"Authorization": f"ApiKey {created.json()['key']}", "X-Org-Id": owner.org_id}
    assert owner.client.get("/api/v1/sandboxes", headers=headers).status_code == 200
    assert (
        owner.client.post("/api/v1/sandbox/create", {}, content_type="application/json", headers=headers).status_code
        == 403
    )
