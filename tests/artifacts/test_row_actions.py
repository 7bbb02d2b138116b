"""The row actions' presigned link: made for the copy button by a POST, as JSON, for anyone in
the organization; a URL anyone can then download the bytes with, until it expires."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import put_artifact


def presign(client, artifact_id: str, **data: str):
    return client.post(reverse("artifact-presign", args=[artifact_id]), data)


def test_a_viewer_gets_a_url_that_downloads_the_bytes(dashboard, owner):
    artifact = put_artifact(owner, "runs/report.csv", b"a,b\n1,2\n", "text/csv")
    response = presign(dashboard.viewer, artifact.id)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3600 and body["expires_at"]
    assert "no-store" in response["Cache-Control"]
    url = urlsplit(body["url"])
    download = Client().get(url.path, dict(parse_qsl(url.query)))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"a,b\n1,2\n"
    made = AuditEvent.objects.get(action="artifact.url", resource=f"artifact:{artifact.id}")
    assert made.details["via"] == "dashboard" and made.details["expires_in"] == 3600


def test_the_url_lasts_as_long_as_asked(dashboard, owner):
    artifact = put_artifact(owner, "a.txt", b"x")
    assert presign(dashboard.member, artifact.id, expires_in="60").json()["expires_in"] == 60


def test_a_bad_expiry_is_a_json_error_and_makes_nothing(dashboard, owner):
    artifact = put_artifact(owner, "a.txt", b"x")
    for bad in ("0", "-5", "ten", "99999999999", "1.5"):
        response = presign(dashboard.owner, artifact.id, expires_in=bad)
        assert response.status_code == 400, bad
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and "expires_in" in error["message"]
    assert not AuditEvent.objects.filter(action="artifact.url").exists()


def test_a_stranger_gets_the_same_404_as_for_a_missing_artifact(dashboard, owner):
    artifact = put_artifact(owner, "a.txt", b"x")
    theirs = presign(dashboard.stranger, artifact.id)
    missing = presign(dashboard.owner, "art_doesnotexist")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "ARTIFACT_NOT_FOUND"
    assert "url" not in theirs.json()
    assert AuditEvent.objects.filter(action="auth.foreign_id", resource=f"artifact:{artifact.id}").exists()


def test_anonymous_is_sent_to_sign_in_and_get_is_refused(dashboard, owner):
    artifact = put_artifact(owner, "a.txt", b"x")
    assert presign(dashboard.anonymous, artifact.id).status_code == 302
    assert dashboard.owner.get(reverse("artifact-presign", args=[artifact.id])).status_code == 405


def test_a_forged_post_without_the_csrf_token_is_refused(dashboard, owner):
    from django.contrib.auth import get_user_model

    artifact = put_artifact(owner, "a.txt", b"x")
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(get_user_model().objects.get(username=owner.username))
    assert presign(forged, artifact.id).status_code == 403
    assert not AuditEvent.objects.filter(action="artifact.url").exists()
