"""Aliases of versions: setting and moving them (one audited step), fetching by path and alias,
and every bad input refused with nothing changed."""

from __future__ import annotations

import itertools
import json

import pytest

from artifacts.alias_services import alias_set
from artifacts.models import Artifact, ArtifactAlias
from artifacts.services import artifact_delete
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from core.actor import Actor
from core.errors import NotFound
from tests.artifacts.test_concurrency import race
from tests.factories import make_artifact, make_artifacts, put_artifact


def put_json(user, path: str, body=None):
    return user.client.put(
        "/api/v1" + path, json.dumps(body or {}), content_type="application/json", headers=user.headers()
    )


def versions(user, remote_path: str = "models/model.bin", count: int = 3) -> list[Artifact]:
    return [put_artifact(user, remote_path, f"weights {n}\n".encode()) for n in range(count)]


def moves() -> list[dict]:
    return [
        event.details for event in AuditEvent.objects.filter(action="artifact.alias.move").order_by("timestamp", "id")
    ]


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_an_alias_is_created_then_moved_and_each_step_is_audited(owner):
    v1, v2, _v3 = versions(owner)
    response = put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    assert response.status_code == 200, response.content
    assert response.json()["artifact_id"] == v1.id and response.json()["version"] == v1.version
    response = put_json(owner, f"/artifacts/{v2.id}/aliases/production")
    assert response.status_code == 200
    alias = ArtifactAlias.objects.get(name="production")
    assert alias.artifact_id == v2.id and alias.remote_path == "models/model.bin"
    assert [(m["from"], m["to"]) for m in moves()] == [
        (None, {"artifact_id": v1.id, "version": 1}),
        ({"artifact_id": v1.id, "version": 1}, {"artifact_id": v2.id, "version": 2}),
    ]


def test_setting_an_alias_where_it_already_is_changes_nothing(owner):
    v1 = versions(owner, count=1)[0]
    for _ in range(3):
        assert put_json(owner, f"/artifacts/{v1.id}/aliases/stable").status_code == 200
    assert ArtifactAlias.objects.count() == 1
    assert len(moves()) == 1


def test_an_artifact_lists_its_aliases(owner):
    v1, v2, _v3 = versions(owner)
    put_json(owner, f"/artifacts/{v1.id}/aliases/stable")
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    assert owner.get(f"/artifacts/{v1.id}").json()["aliases"] == ["production", "stable"]
    assert owner.get(f"/artifacts/{v2.id}").json()["aliases"] == []
    listed = {a["id"]: a["aliases"] for a in owner.get("/artifacts").json()["artifacts"]}
    assert listed[v1.id] == ["production", "stable"]
    by_version = {a["version"]: a["aliases"] for a in owner.get(f"/artifacts/{v2.id}/versions").json()["versions"]}
    assert by_version == {1: ["production", "stable"], 2: [], 3: []}


def test_by_path_finds_the_alias_latest_and_a_version(owner):
    v1, v2, v3 = versions(owner)
    put_json(owner, f"/artifacts/{v2.id}/aliases/production")
    get = lambda **q: owner.get("/artifacts/by-path", {"remote_path": "models/model.bin", **q})  # noqa: E731
    assert get(alias="production").json()["id"] == v2.id
    assert get().json()["id"] == v3.id
    assert get(alias="latest").json()["id"] == v3.id
    assert get(version=1).json()["id"] == v1.id
    artifact_delete(actor=Actor.system(owner.org_id), artifact=v3)
    assert get().json()["id"] == v2.id


def test_by_path_misses_are_404_with_a_code(owner):
    versions(owner, count=1)
    get = lambda **q: owner.get("/artifacts/by-path", q)  # noqa: E731
    assert error_code(get(remote_path="models/model.bin", alias="nope")) == "ALIAS_NOT_FOUND"
    assert error_code(get(remote_path="models/model.bin", version=9)) == "ARTIFACT_NOT_FOUND"
    assert error_code(get(remote_path="models/other.bin")) == "ARTIFACT_NOT_FOUND"
    response = get(remote_path="models/model.bin", alias="production", version=1)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    response = get(remote_path="models/model.bin", alias="Not An Alias")
    assert response.status_code == 400 and error_code(response) == "INVALID_ALIAS"
    assert get().status_code == 400
    assert get(remote_path="models/model.bin", version=10**30).status_code == 400
    assert get(remote_path="models/model.bin", version=0).status_code == 400


def test_by_path_url_names_the_version_the_alias_is_on_when_made(owner):
    v1, v2 = versions(owner, count=2)
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    response = owner.get("/artifacts/by-path/url", {"remote_path": "models/model.bin", "alias": "production"})
    assert response.status_code == 200, response.content
    url = response.json()["url"]
    assert f"/dl/{v1.id}" in url
    put_json(owner, f"/artifacts/{v2.id}/aliases/production")
    download = owner.client.get(url.split("testserver", 1)[-1])
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"weights 0\n"
    assert AuditEvent.objects.filter(action="artifact.url", resource=f"artifact:{v1.id}").count() == 1
    response = owner.get("/artifacts/by-path/url", {"remote_path": "models/model.bin", "expires_in": 0})
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["", "latest", "x" * 64, "Production", "-lead", "a b", "a/b", "é"])
def test_a_bad_alias_name_is_refused_and_changes_nothing(owner, name):
    v1 = versions(owner, count=1)[0]
    events = AuditEvent.objects.count()
    response = owner.post("/aliases", {"remote_path": v1.remote_path, "name": name, "artifact_id": v1.id})
    assert response.status_code == 400, response.content
    assert error_code(response) in ("INVALID_ALIAS", "VALIDATION_ERROR")
    if name:
        response = put_json(owner, f"/artifacts/{v1.id}/aliases/{name}")
        assert 400 <= response.status_code < 500 and error_code(response) in ("INVALID_ALIAS", "NOT_FOUND")
    assert not ArtifactAlias.objects.exists()
    assert AuditEvent.objects.count() == events


def test_an_empty_alias_name_in_the_url_is_a_json_4xx(owner):
    v1 = versions(owner, count=1)[0]
    response = put_json(owner, f"/artifacts/{v1.id}/aliases/")
    assert 400 <= response.status_code < 500 and "error" in response.json()
    assert not ArtifactAlias.objects.exists()


def test_moving_an_alias_onto_another_paths_version_is_refused(owner):
    v1 = versions(owner, count=1)[0]
    other = put_artifact(owner, "models/other.bin", b"other\n")
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    events = AuditEvent.objects.count()
    response = owner.post("/aliases", {"remote_path": v1.remote_path, "name": "production", "artifact_id": other.id})
    assert response.status_code == 400 and error_code(response) == "ALIAS_PATH_MISMATCH"
    assert ArtifactAlias.objects.get().artifact_id == v1.id
    assert AuditEvent.objects.count() == events


def test_only_visible_versions_carry_aliases(owner):
    v1 = versions(owner, count=1)[0]
    pending = make_artifact(owner.org_id, None, v1.remote_path, state="pending")
    response = owner.post("/aliases", {"remote_path": v1.remote_path, "name": "stable", "artifact_id": pending.id})
    assert response.status_code == 404 and error_code(response) == "ARTIFACT_NOT_FOUND"
    assert not ArtifactAlias.objects.exists()


def test_compare_and_set_moves_only_from_the_expected_version(owner):
    v1, v2, v3 = versions(owner)
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    body = {"remote_path": v1.remote_path, "name": "production", "artifact_id": v3.id, "expected_artifact_id": v2.id}
    response = owner.post("/aliases", body)
    assert response.status_code == 409 and error_code(response) == "ALIAS_CHANGED"
    assert response.json()["error"]["details"]["current_artifact_id"] == v1.id
    assert ArtifactAlias.objects.get().artifact_id == v1.id
    response = owner.post("/aliases", {**body, "expected_artifact_id": v1.id})
    assert response.status_code == 200 and ArtifactAlias.objects.get().artifact_id == v3.id


def test_removing_an_alias_is_audited_and_only_from_the_version_that_has_it(owner):
    v1, v2 = versions(owner, count=2)
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    response = owner.delete(f"/artifacts/{v2.id}/aliases/production")
    assert response.status_code == 404 and error_code(response) == "ALIAS_NOT_FOUND"
    assert ArtifactAlias.objects.exists()
    assert owner.delete(f"/artifacts/{v1.id}/aliases/production").json() == {"success": True}
    assert not ArtifactAlias.objects.exists()
    event = AuditEvent.objects.get(action="artifact.alias.delete")
    assert event.details["from"] == {"artifact_id": v1.id, "version": 1} and event.details["reason"] == "requested"


def test_deleting_an_artifact_drops_its_aliases_in_the_same_step(owner):
    v1, v2 = versions(owner, count=2)
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    put_json(owner, f"/artifacts/{v2.id}/aliases/stable")
    assert owner.delete(f"/artifacts/{v1.id}").status_code == 200
    assert list(ArtifactAlias.objects.values_list("name", flat=True)) == ["stable"]
    event = AuditEvent.objects.get(action="artifact.alias.delete")
    assert event.details["alias"] == "production" and event.details["reason"] == "artifact requested"
    response = owner.get("/artifacts/by-path", {"remote_path": v1.remote_path, "alias": "production"})
    assert error_code(response) == "ALIAS_NOT_FOUND"


def test_a_stranger_can_neither_see_nor_move_the_aliases(owner, stranger):
    v1 = versions(owner, count=1)[0]
    put_json(owner, f"/artifacts/{v1.id}/aliases/production")
    assert error_code(stranger.get("/artifacts/by-path", {"remote_path": v1.remote_path})) == "ARTIFACT_NOT_FOUND"
    assert stranger.get("/artifacts/by-path", {"remote_path": v1.remote_path, "alias": "production"}).status_code == 404
    assert put_json(stranger, f"/artifacts/{v1.id}/aliases/stable").status_code == 404
    assert stranger.delete(f"/artifacts/{v1.id}/aliases/production").status_code == 404
    response = stranger.post("/aliases", {"remote_path": v1.remote_path, "name": "production", "artifact_id": v1.id})
    assert response.status_code == 404
    assert list(ArtifactAlias.objects.values_list("name", "artifact_id")) == [("production", v1.id)]


def test_anonymous_requests_are_refused(owner, client):
    v1 = versions(owner, count=1)[0]
    assert client.get("/api/v1/artifacts/by-path", {"remote_path": v1.remote_path}).status_code == 401
    assert client.put(f"/api/v1/artifacts/{v1.id}/aliases/stable").status_code == 401
    assert not ArtifactAlias.objects.exists()


def test_a_read_only_key_cannot_move_an_alias(owner):
    v1 = versions(owner, count=1)[0]
    key = owner.post("/api-keys", {"name": "reader", "scopes": ["artifacts:read"]}).json()
    secret = key.get("key") or key.get("api_key", {}).get("key")
    response = owner.client.put(
        f"/api/v1/artifacts/{v1.id}/aliases/stable",
        headers={"Authorization": f"ApiKey {secret}", "X-Org-Id": owner.org_id},
    )
    assert response.status_code == 403
    assert not ArtifactAlias.objects.exists()


def test_the_list_costs_the_same_queries_with_aliases_on_every_row(owner):
    from tests.artifacts.test_version_pages import queries_of

    rows = make_artifacts(owner.org_id, 40, remote_path=lambda i: f"bulk/{i}.txt")
    actor = Actor(organization_id=owner.org_id, label="test")
    for artifact in rows[:5]:
        alias_set(actor=actor, artifact=artifact, name="stable")
    owner.get("/artifacts")  # the key's last use is written at most once a while
    few = queries_of(lambda: owner.get("/artifacts", {"limit": 5}))
    for artifact in rows[5:]:
        alias_set(actor=actor, artifact=artifact, name="stable")
    assert queries_of(lambda: owner.get("/artifacts", {"limit": 40})) == few
    listed = owner.get("/artifacts", {"limit": 40}).json()["artifacts"]
    assert len(listed) == 40 and all(a["aliases"] == ["stable"] for a in listed)
    # One more: the artifact whose versions they are.
    assert queries_of(lambda: owner.get(f"/artifacts/{rows[0].id}/versions")) == few + 1


def test_concurrent_moves_of_one_alias_line_up(owner, transactional_db):
    targets = versions(owner, count=8)
    actor = Actor(organization_id=owner.org_id, label="race-test")

    def move(index: int):
        return alias_set(actor=actor, artifact=targets[index], name="production")

    race(len(targets), move)
    recorded = moves()
    assert len(recorded) == len(targets)
    assert recorded[0]["from"] is None
    for before, after in itertools.pairwise(recorded):
        assert after["from"] == before["to"]
    assert ArtifactAlias.objects.get().artifact_id == recorded[-1]["to"]["artifact_id"]
    assert {m["to"]["artifact_id"] for m in recorded} == {t.id for t in targets}
    assert audit_verify_chain().ok


def test_an_alias_never_lands_on_a_version_deleted_at_the_same_moment(owner, broker, transactional_db):
    actor = Actor(organization_id=owner.org_id, label="race-test")
    for round_ in range(4):
        keep, doomed = versions(owner, remote_path=f"race/{round_}.bin", count=2)
        alias_set(actor=actor, artifact=keep, name="production")

        def step(index: int, doomed=doomed):
            if index == 0:
                artifact_delete(actor=actor, artifact=doomed)
                return None
            try:
                return alias_set(actor=actor, artifact=doomed, name="production")
            except NotFound:
                return None

        race(2, step)
        doomed.refresh_from_db()
        assert doomed.state == "trashed"
        alias = ArtifactAlias.objects.filter(remote_path=doomed.remote_path).first()
        # Moved then dropped with its version, or never moved: never left on the deleted one.
        assert alias is None or alias.artifact_id == keep.id
    assert not ArtifactAlias.objects.exclude(artifact__state="ready").exists()
    assert audit_verify_chain().ok
