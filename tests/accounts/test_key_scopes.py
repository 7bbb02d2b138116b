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


def mint(owner, headers: dict[str, str], **body) -> dict:
    response = owner.client.post(
        "/api/v1/api-keys", {"name": "child", **body}, content_type="application/json", headers=headers
    )
    assert response.status_code == 201, response.content
    return response.json()


def works(owner, secret: str) -> bool:
    return owner.client.get("/api/v1/sandboxes", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_revoking_a_key_revokes_the_keys_made_with_it_and_with_those(owner):
    manager = key_with(owner, "keys:manage", "sandboxes:read")
    child = mint(owner, manager, scopes=["keys:manage", "sandboxes:read"])
    grandchild = mint(owner, {"Authorization": f"Bearer {child['key']}"}, scopes=["sandboxes:read"])
    parent_id = ApiKey.objects.get(id=child["api_key"]["id"]).parent_key_id
    assert ApiKey.objects.get(id=grandchild["api_key"]["id"]).parent_key_id == child["api_key"]["id"]
    assert owner.delete(f"/api-keys/{parent_id}").status_code == 200
    assert not works(owner, child["key"]) and not works(owner, grandchild["key"])
    revoked = set(AuditEvent.objects.filter(action="apikey.revoke").values_list("resource", flat=True))
    assert revoked == {
        f"apikey:{parent_id}",
        f"apikey:{child['api_key']['id']}",
        f"apikey:{grandchild['api_key']['id']}",
    }


def test_a_key_made_by_a_key_belongs_to_whoever_made_that_one(owner):
    child = mint(owner, owner.headers(), scopes=["sandboxes:read"])
    made = ApiKey.objects.get(id=child["api_key"]["id"])
    assert made.created_by.username == owner.username


def test_a_key_cannot_make_a_key_that_outlives_it(owner):
    """Guards the finding that a keys:manage key could mint a child that never expires."""
    parent = owner.post("/api-keys", {"name": "short", "scopes": ["keys:manage"], "expires_in_days": 5}).json()
    headers = {"Authorization": f"Bearer {parent['key']}"}
    parent_expires = ApiKey.objects.get(id=parent["api_key"]["id"]).expires_at
    forever = mint(owner, headers, scopes=["keys:manage"])
    longer = mint(owner, headers, scopes=["keys:manage"], expires_in_days=30)
    shorter = mint(owner, headers, scopes=["keys:manage"], expires_in_days=1)
    assert ApiKey.objects.get(id=forever["api_key"]["id"]).expires_at == parent_expires
    assert ApiKey.objects.get(id=longer["api_key"]["id"]).expires_at == parent_expires
    assert ApiKey.objects.get(id=shorter["api_key"]["id"]).expires_at < parent_expires
    assert forever["api_key"]["expires_at"] is not None
