from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core import secrets as sealed
from core.actor import Actor
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token
from shares.worker import share_link_activate
from tests.factories import put_artifact


def create(user, artifact_id: str, **body) -> dict:
    response = user.post(f"/artifacts/{artifact_id}/shares?wait=false", body)
    assert response.status_code == 202, response.content
    share_link_activate(share_id=response.json()["id"], actor=Actor.system(user.org_id))
    return response.json()


def token_of(share: dict) -> str:
    return share["url"].rsplit("/", 1)[-1]


@pytest.fixture
def artifact(owner, broker):
    return put_artifact(owner, "reports/q3.txt", b"quarterly numbers\n", "text/plain")


def test_a_link_keeps_its_label_note_and_picked_expiry(owner, artifact):
    expires_at = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    share = create(
        owner, artifact.id, label="For Ana", note="The numbers\nwe spoke of.", expires_at=expires_at.isoformat()
    )
    assert share["label"] == "For Ana" and share["note"] == "The numbers\nwe spoke of."
    link = ShareLink.objects.get(id=share["id"])
    assert link.expires_at == expires_at and link.label == "For Ana"
    assert share["created_by"].startswith("API key ")


def test_a_get_of_a_link_returns_its_url_to_those_who_may_manage_it(owner, artifact):
    share = create(owner, artifact.id, label="again")
    one = owner.get(f"/artifacts/{artifact.id}/shares/{share['id']}").json()
    listed = owner.get(f"/artifacts/{artifact.id}/shares").json()["shares"]
    assert one["url"] == share["url"] and listed[0]["url"] == share["url"] and one["label"] == "again"
    key = owner.post("/api-keys", {"name": "reader", "scopes": ["artifacts:read"]}).json()["key"]
    headers = {"Authorization": f"ApiKey {key}", "X-Org-Id": owner.org_id}
    reader = Client().get(f"/api/v1/artifacts/{artifact.id}/shares/{share['id']}", headers=headers).json()
    assert reader["url"] is None and reader["label"] == "again"
    listed = Client().get(f"/api/v1/artifacts/{artifact.id}/shares", headers=headers).json()["shares"]
    assert listed[0]["url"] is None


def test_a_stranger_and_anonymous_cannot_get_a_link(owner, stranger, artifact):
    share = create(owner, artifact.id)
    path = f"/artifacts/{artifact.id}/shares/{share['id']}"
    assert stranger.get(path).status_code == 404
    assert Client().get("/api/v1" + path).status_code == 401
    assert owner.get(f"/artifacts/{artifact.id}/shares/shr_nope").json()["error"]["code"] == "SHARE_NOT_FOUND"


def test_the_token_is_kept_encrypted_beside_its_hash(owner, artifact):
    share = create(owner, artifact.id)
    token = token_of(share)
    link = ShareLink.objects.get(id=share["id"])
    assert token not in link.token_encrypted and link.token_hash == hash_share_token(token)
    assert sealed.decrypt(link.token_encrypted) == token


def test_under_another_secrets_key_a_link_still_opens_but_is_not_copied(owner, artifact, settings):
    share = create(owner, artifact.id)
    settings.STOWAGE_SECRETS_KEY = "another key entirely, after a rotation"
    assert owner.get(f"/artifacts/{artifact.id}/shares/{share['id']}").json()["url"] is None
    assert Client().get("/s/" + token_of(share)).status_code == 200


def test_a_ciphertext_moved_to_another_row_does_not_hand_out_that_link(owner, artifact):
    first, second = create(owner, artifact.id), create(owner, artifact.id)
    moved = ShareLink.objects.get(id=first["id"]).token_encrypted
    ShareLink.objects.filter(id=second["id"]).update(token_encrypted=moved)
    assert owner.get(f"/artifacts/{artifact.id}/shares/{second['id']}").json()["url"] is None


def test_a_link_made_before_tokens_were_kept_opens_but_cannot_be_copied(owner, artifact):
    share = create(owner, artifact.id)
    ShareLink.objects.filter(id=share["id"]).update(token_encrypted="")
    assert owner.get(f"/artifacts/{artifact.id}/shares/{share['id']}").json()["url"] is None
    assert Client().get("/s/" + token_of(share)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "x" * 101}, "label"),
        ({"label": "two\nlines"}, "label"),
        ({"label": "nul\u0000"}, "label"),
        ({"label": 7}, "label"),
        ({"note": "y" * 1001}, "note"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "next week"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00Z", "expires_in": 60}, "expires_at"),
    ],
)
def test_bad_labels_notes_and_expiries_are_refused_and_create_nothing(owner, artifact, body, field):
    if field == "expires_at" and "expires_in" in body:
        body["expires_at"] = (timezone.now() + timedelta(days=1)).isoformat()
    response = owner.post(f"/artifacts/{artifact.id}/shares?wait=false", body)
    assert response.status_code in (400, 422), response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in str(error)
    assert not ShareLink.objects.exists()


def test_a_label_at_its_limit_is_kept(owner, artifact):
    share = create(owner, artifact.id, label="x" * 100, note="n" * 1000)
    assert len(share["label"]) == 100 and len(share["note"]) == 1000
    assert ShareLink.objects.get(id=share["id"]).state == ShareLinkState.ACTIVE
