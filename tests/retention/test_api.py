"""/api/v1/retention-policies: create, list, read, change, delete and preview, each audited; keys
need the artifacts:admin scope; another organization's policy is a 404; every bad input is a 4xx
with a code and changes nothing."""

from __future__ import annotations

import pytest

from accounts.models import Organization
from accounts.services import api_key_create
from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from core.actor import Actor
from retention.models import RetentionPolicy
from tests.retention.conftest import alias

pytestmark = pytest.mark.django_db

BASE = "/retention-policies"


def _patch(user, path, body):
    return user.client.patch("/api/v1" + path, body, content_type="application/json", headers=user.headers())


def _create(user, **body):
    return user.post(BASE, {"name": "tidy", "kind": "keep_last", "value": 3, **body})


def test_create_list_get_patch_and_delete_each_audited(owner):
    response = _create(owner, prefix="/reports/")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["prefix"] == "reports/" and created["enabled"] is True and created["last_run_at"] is None
    assert created["rule"] == "keep the last 3 versions of each path under reports/"
    assert owner.get(BASE).json()["retention_policies"] == [created]
    assert owner.get(f"{BASE}/{created['id']}").json() == created
    changed = _patch(owner, f"{BASE}/{created['id']}", {"kind": "max_age", "value": 90, "enabled": False})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["kind"], changed.json()["value"], changed.json()["enabled"]) == ("max_age", 90, False)
    assert owner.delete(f"{BASE}/{created['id']}").json() == {"success": True}
    assert not RetentionPolicy.objects.exists()
    actions = list(
        AuditEvent.objects.filter(resource=f"retention_policy:{created['id']}").values_list("action", flat=True)
    )
    assert sorted(actions) == ["retention_policy.create", "retention_policy.delete", "retention_policy.update"]
    update = AuditEvent.objects.get(action="retention_policy.update")
    assert update.details["changed"] == ["enabled", "kind", "value"] and update.details["before"]["kind"] == "keep_last"


BAD_CREATES = [
    ({"value": -1}, "INVALID_RETENTION_VALUE"),
    ({"value": 0}, "INVALID_RETENTION_VALUE"),
    ({"value": 10_001}, "INVALID_RETENTION_VALUE"),
    ({"kind": "max_age", "value": 36_501}, "INVALID_RETENTION_VALUE"),
    ({"kind": "not_downloaded", "value": 10**30}, "INVALID_RETENTION_VALUE"),
    ({"value": "10"}, "VALIDATION_ERROR"),
    ({"value": True}, "VALIDATION_ERROR"),
    ({"value": 2.5}, "VALIDATION_ERROR"),
    ({"kind": "forever"}, "INVALID_RETENTION_KIND"),
    ({"prefix": "reports/../secrets/"}, "INVALID_PREFIX"),
    ({"prefix": "a//b"}, "INVALID_PREFIX"),
    ({"prefix": "./a"}, "INVALID_PREFIX"),
    ({"prefix": "a\x00b"}, "INVALID_PREFIX"),
    ({"prefix": "tab\there"}, "INVALID_PREFIX"),
    ({"prefix": "x" * 1025}, "INVALID_PREFIX"),
    ({"prefix": "é" * 600}, "INVALID_PREFIX"),
    ({"prefix": 7}, "VALIDATION_ERROR"),
    ({"name": ""}, "VALIDATION_ERROR"),
    ({"name": "   "}, "VALIDATION_ERROR"),
    ({"name": "x" * 101}, "VALIDATION_ERROR"),
    ({"name": "bell\x07"}, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("change", "code"), BAD_CREATES)
def test_bad_input_is_refused_with_a_code_and_nothing_is_made(owner, change, code):
    events = AuditEvent.objects.count()
    response = _create(owner, **change)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert not RetentionPolicy.objects.exists() and AuditEvent.objects.count() == events


@pytest.mark.parametrize(("change", "code"), [(c, code) for c, code in BAD_CREATES if "name" not in c])
def test_a_bad_preview_is_refused_the_same_way(owner, change, code):
    response = owner.post(f"{BASE}/preview", {"kind": "keep_last", "value": 3, **change})
    assert response.status_code == 400 and response.json()["error"]["code"] == code


@pytest.mark.parametrize(("change", "code"), BAD_CREATES)
def test_a_bad_change_is_refused_and_the_policy_stays_as_it_was(owner, change, code):
    policy = _create(owner).json()
    events = AuditEvent.objects.count()
    response = _patch(owner, f"{BASE}/{policy['id']}", change)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert owner.get(f"{BASE}/{policy['id']}").json() == policy
    assert AuditEvent.objects.count() == events


def test_a_change_of_kind_is_checked_against_the_new_kinds_bounds(owner):
    policy = _create(owner, kind="max_age", value=20_000).json()
    response = _patch(owner, f"{BASE}/{policy['id']}", {"kind": "keep_last"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_RETENTION_VALUE"
    assert RetentionPolicy.objects.get().kind == "max_age"


def test_names_are_unique_within_an_organization(owner, stranger):
    assert _create(owner).status_code == 201
    again = _create(owner, value=5)
    assert again.status_code == 409 and again.json()["error"]["code"] == "RETENTION_POLICY_EXISTS"
    assert _create(stranger).status_code == 201
    other = _create(owner, name="other").json()
    renamed = _patch(owner, f"{BASE}/{other['id']}", {"name": "tidy"})
    assert renamed.status_code == 409 and RetentionPolicy.objects.get(id=other["id"]).name == "other"
    assert RetentionPolicy.objects.filter(organization_id=owner.org_id).count() == 2


def test_preview_of_an_unsaved_and_a_saved_policy(owner, versions):
    made = versions(owner.org_id, "reports/a.csv", 5, size=10)
    alias(made[0])
    body = {"kind": "keep_last", "value": 2, "prefix": "reports/"}
    preview = owner.post(f"{BASE}/preview", body)
    assert preview.status_code == 200, preview.content
    answer = preview.json()
    # v1 is aliased; v2 and v3 would go.
    assert (answer["count"], answer["bytes"]) == (2, 20 + 30)
    assert [s["version"] for s in answer["sample"]] == [2, 3]
    assert answer["rule"] == "keep the last 2 versions of each path under reports/"
    assert not RetentionPolicy.objects.exists()
    policy = owner.post(BASE, {"name": "keep two", **body}).json()
    assert owner.post(f"{BASE}/{policy['id']}/preview").json() == answer
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 5


def test_a_key_without_the_scope_is_refused(owner):
    org = Organization.objects.get(id=owner.org_id)
    _, secret = api_key_create(organization=org, name="reader", actor=Actor.system(org.id), scopes=["artifacts:read"])
    headers = {"Authorization": f"ApiKey {secret}", "X-Org-Id": owner.org_id}
    listed = owner.client.get("/api/v1" + BASE, headers=headers)
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    made = owner.client.post(
        "/api/v1" + BASE,
        {"name": "x", "kind": "keep_last", "value": 1},
        content_type="application/json",
        headers=headers,
    )
    assert made.status_code == 403 and not RetentionPolicy.objects.exists()


def test_another_organizations_policy_is_not_found(owner, stranger):
    policy = _create(owner).json()
    path = f"{BASE}/{policy['id']}"
    for response in (
        stranger.get(path),
        _patch(stranger, path, {"value": 1}),
        stranger.delete(path),
        stranger.post(path + "/preview"),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "RETENTION_POLICY_NOT_FOUND"
    assert stranger.get(BASE).json() == {"retention_policies": []}
    assert RetentionPolicy.objects.get().value == 3


def test_anonymous_calls_are_unauthorized(client):
    assert client.get("/api/v1" + BASE).status_code == 401
    response = client.post("/api/v1" + BASE, {"name": "x"}, content_type="application/json")
    assert response.status_code == 401 and not RetentionPolicy.objects.exists()
