from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent, Outcome
from core.actor import Actor
from shares.models import ShareLink, ShareLinkState
from shares.services import _guess_key
from shares.worker import share_link_activate

pytestmark = pytest.mark.worker

DATA = bytes(range(256)) * 8  # 2048 bytes: "2.0 KB"
CLIENT_IPS = ("127.0.0.1", "198.51.100.7", "198.51.100.8", "unknown")


@pytest.fixture(autouse=True)
def clean_guess_counters():
    # Only our keys: the cache shares its Redis with the Celery broker, so no cache.clear().
    keys = [_guess_key(ip) for ip in CLIENT_IPS]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


def put_artifact(
    user,
    remote_path: str = "reports/q3 <final>.bin",
    data: bytes = DATA,
    content_type: str = "application/octet-stream",
) -> dict:
    response = user.client.put(
        f"/api/v1/artifacts?remote_path={remote_path}", data, content_type=content_type, headers=user.headers()
    )
    assert response.status_code == 201, response.content
    return response.json()


def create_share(user, artifact_id: str, **body) -> dict:
    response = user.post(f"/artifacts/{artifact_id}/shares", body)
    assert response.status_code == 201, response.content
    return response.json()


def local(url: str) -> str:
    return url.split("testserver", 1)[1]


def token_of(share: dict) -> str:
    return share["url"].rstrip("/").rsplit("/", 1)[-1]


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def downloads(share_id: str) -> int:
    return ShareLink.objects.get(id=share_id).download_count


def test_a_share_link_shows_a_landing_page_and_downloads_the_bytes_for_anyone(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], max_downloads=5)
    assert share["id"].startswith("shr_")
    assert share["state"] == "active"
    assert share["max_downloads"] == 5 and share["download_count"] == 0 and share["has_password"] is False
    assert share["url"].startswith("http://testserver/s/")
    expires_at = timezone.datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires_at - timezone.now() <= timedelta(days=7)

    recipient = Client()
    landing = recipient.get(local(share["url"]))
    assert landing.status_code == 200
    page = landing.content.decode()
    # The name is user content: escaped, never markup.
    assert "q3 &lt;final&gt;.bin" in page and "<final>" not in page
    assert "2.0\xa0KB" in page
    assert "application/octet-stream" in page
    assert "5" in page
    assert landing["Referrer-Policy"] == "no-referrer"
    assert (
        "script-src" not in landing["Content-Security-Policy"]
        and "default-src 'none'" in landing["Content-Security-Policy"]
    )
    assert 'action="/s/' in page and "/download" in page

    download = recipient.get(local(share["url"]) + "/download")
    assert download.status_code == 200
    assert content(download) == DATA
    assert download["Content-Disposition"].startswith("attachment")
    assert download["X-Content-Type-Options"] == "nosniff"
    listed = owner.get(f"/artifacts/{artifact['id']}/shares").json()["shares"]
    assert [(s["id"], s["download_count"], s["downloads_left"]) for s in listed] == [(share["id"], 1, 4)]
    # The owner may manage links, so the listing carries the link again.
    assert listed[0]["url"] == share["url"]


def test_the_token_is_stored_only_as_a_hash(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], password="correct horse")
    token = token_of(share)
    assert len(token) >= 43  # 256 random bits
    row = ShareLink.objects.get(id=share["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    for field in ShareLink._meta.concrete_fields:
        assert token not in str(getattr(row, field.attname))
        assert "correct horse" not in str(getattr(row, field.attname))
    assert not AuditEvent.objects.filter(details__icontains=token).exists()


def test_a_download_limit_is_never_exceeded(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], max_downloads=2)
    recipient = Client()
    path = local(share["url"]) + "/download"
    assert content(recipient.get(path)) == DATA
    assert content(recipient.get(path)) == DATA
    assert recipient.get(path).status_code == 404
    assert recipient.get(local(share["url"])).status_code == 404
    assert downloads(share["id"]) == 2
    listed = owner.get(f"/artifacts/{artifact['id']}/shares").json()["shares"][0]
    assert (listed["state"], listed["downloads_left"]) == ("exhausted", 0)


def test_an_expired_link_is_missing(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], expires_in=3600)
    ShareLink.objects.filter(id=share["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    recipient = Client()
    assert recipient.get(local(share["url"])).status_code == 404
    assert recipient.get(local(share["url"]) + "/download").status_code == 404
    assert downloads(share["id"]) == 0
    assert owner.get(f"/artifacts/{artifact['id']}/shares").json()["shares"][0]["state"] == "expired"


def test_a_revoked_link_is_missing_and_revoking_again_changes_nothing(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    recipient = Client()
    assert recipient.get(local(share["url"])).status_code == 200
    revoked = owner.post(f"/artifacts/{artifact['id']}/shares/{share['id']}/revoke")
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
    again = owner.post(f"/artifacts/{artifact['id']}/shares/{share['id']}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="share.revoke").count() == 1
    assert recipient.get(local(share["url"])).status_code == 404
    assert recipient.get(local(share["url"]) + "/download").status_code == 404
    assert owner.get(f"/artifacts/{artifact['id']}/shares").json()["shares"][0]["state"] == "revoked"
    assert (
        owner.post(f"/artifacts/{artifact['id']}/shares/shr_nope/revoke").json()["error"]["code"] == "SHARE_NOT_FOUND"
    )


def test_a_password_protected_link_asks_for_the_password(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], password="open sesame")
    assert share["has_password"] is True
    # No CSRF token: the form is public and scoped by the token, so it needs none.
    recipient = Client(enforce_csrf_checks=True)
    landing = recipient.get(local(share["url"]))
    assert landing.status_code == 200
    page = landing.content.decode()
    assert 'type="password"' in page and 'name="password"' in page and 'for="share-password"' in page
    assert 'href="/s/' not in page
    path = local(share["url"]) + "/download"
    assert recipient.get(path).status_code == 302
    wrong = recipient.post(path, {"password": "open sesame!"})
    assert wrong.status_code == 403
    assert "password is not right" in wrong.content.decode()
    assert recipient.post(path, {}).status_code == 403
    assert downloads(share["id"]) == 0
    assert not AuditEvent.objects.filter(action="share.download").exists()
    right = recipient.post(path, {"password": "open sesame"})
    assert right.status_code == 200
    assert content(right) == DATA
    assert downloads(share["id"]) == 1


def test_unknown_expired_revoked_and_used_up_tokens_get_the_same_404(owner, live):
    artifact = put_artifact(owner)
    expired = create_share(owner, artifact["id"])
    ShareLink.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = create_share(owner, artifact["id"])
    owner.post(f"/artifacts/{artifact['id']}/shares/{revoked['id']}/revoke")
    used_up = create_share(owner, artifact["id"], max_downloads=1)
    recipient = Client()
    assert content(recipient.get(local(used_up["url"]) + "/download")) == DATA
    paths = ["/s/" + secrets.token_urlsafe(32), local(expired["url"]), local(revoked["url"]), local(used_up["url"])]
    answers = [recipient.get(path) for path in paths] + [recipient.get(path + "/download") for path in paths]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert b"not available" in answers[0].content


def test_guessing_tokens_or_passwords_is_throttled_per_ip(owner, live, settings):
    settings.SHARE_GUESS_LIMIT_PER_MINUTE = 3
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    guesser = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(3):
        assert guesser.get("/s/" + secrets.token_urlsafe(32)).status_code == 404
    throttled = guesser.get("/s/" + secrets.token_urlsafe(32))
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "60"
    assert b"Too many attempts" in throttled.content
    # Once over the limit, a right token answers the same, or the guesser would learn it is right.
    assert guesser.get(local(share["url"])).status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.8").get(local(share["url"])).status_code == 200

    protected = create_share(owner, artifact["id"], password="open sesame")
    cracker = Client(REMOTE_ADDR="198.51.100.8")
    path = local(protected["url"]) + "/download"
    for _ in range(3):
        assert cracker.post(path, {"password": secrets.token_hex(8)}).status_code == 403
    assert cracker.post(path, {"password": "open sesame"}).status_code == 429
    assert downloads(protected["id"]) == 0


def test_every_download_is_audited(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    created = AuditEvent.objects.get(action="share.create")
    assert (created.organization_id, created.resource, created.outcome) == (
        owner.org_id,
        f"artifact:{artifact['id']}",
        Outcome.SUCCESS,
    )
    assert created.actor_api_key_id is not None
    recipient = Client(HTTP_USER_AGENT="curl/8")
    for _ in range(3):
        assert content(recipient.get(local(share["url"]) + "/download")) == DATA
    recipient.get(local(share["url"]))
    events = list(AuditEvent.objects.filter(action="share.download").order_by("seq"))
    assert len(events) == 3
    assert {(e.actor, e.organization_id, e.ip, e.resource, e.user_agent) for e in events} == {
        (f"share link {share['id']}", owner.org_id, "127.0.0.1", f"artifact:{artifact['id']}", "curl/8")
    }
    assert [e.details["download_count"] for e in events] == [1, 2, 3]


def test_a_stranger_cannot_create_list_or_revoke_shares_of_anothers_artifact(owner, stranger, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    answers = [
        stranger.post(f"/artifacts/{artifact['id']}/shares", {}),
        stranger.get(f"/artifacts/{artifact['id']}/shares"),
        stranger.post(f"/artifacts/{artifact['id']}/shares/{share['id']}/revoke"),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.content
        assert answer.json()["error"]["code"] == "ARTIFACT_NOT_FOUND"
    assert ShareLink.objects.count() == 1
    assert ShareLink.objects.get().state == ShareLinkState.ACTIVE
    anonymous = Client()
    assert (
        anonymous.post(f"/api/v1/artifacts/{artifact['id']}/shares", {}, content_type="application/json").status_code
        == 401
    )
    assert anonymous.get(f"/api/v1/artifacts/{artifact['id']}/shares").status_code == 401


def test_a_read_only_key_can_list_but_not_create_or_revoke(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    key = owner.post("/api-keys", {"name": "reader", "scopes": ["artifacts:read"]}).json()["key"]
    headers = {"Authorization": f"ApiKey {key}", "X-Org-Id": owner.org_id}
    reader = Client()
    base = f"/api/v1/artifacts/{artifact['id']}/shares"
    assert reader.get(base, headers=headers).status_code == 200
    assert (
        reader.post(base, {}, content_type="application/json", headers=headers).json()["error"]["code"]
        == "INSUFFICIENT_SCOPE"
    )
    assert (
        reader.post(f"{base}/{share['id']}/revoke", {}, content_type="application/json", headers=headers).status_code
        == 403
    )
    assert ShareLink.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_downloads": 0}, "max_downloads"),
        ({"max_downloads": 1_000_001}, "max_downloads"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": -60}, "expires_in"),
        ({"expires_in": 90 * 86400 + 1}, "expires_in"),
        ({"password": "short"}, "password"),
        ({"password": ""}, "password"),
        ({"password": 12345678}, "password"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"expires_in": "3600"}, "expires_in"),
        ({"max_downloads": True}, "max_downloads"),
        ({"max_downloads": 2.5}, "max_downloads"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(owner, live, body, field):
    artifact = put_artifact(owner)
    response = owner.post(f"/artifacts/{artifact['id']}/shares", body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["message"]
    assert ShareLink.objects.count() == 0


def test_concurrent_downloads_never_exceed_the_limit(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"], max_downloads=3)
    path = local(share["url"]) + "/download"
    start = threading.Barrier(10)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def download() -> None:
        try:
            start.wait()
            response = Client().get(path)
            body = content(response)
            with lock:
                results.append((response.status_code, body))
        finally:
            connection.close()

    threads = [threading.Thread(target=download) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 10
    assert sorted(status for status, _ in results) == [200] * 3 + [404] * 7
    assert all(body == DATA for status, body in results if status == 200)
    assert downloads(share["id"]) == 3
    assert AuditEvent.objects.filter(action="share.download").count() == 3


def test_wait_false_answers_202_and_the_link_becomes_active(owner, live):
    artifact = put_artifact(owner)
    response = owner.post(f"/artifacts/{artifact['id']}/shares?wait=false", {})
    assert response.status_code == 202, response.content
    share = response.json()
    assert share["url"].startswith("http://testserver/s/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = owner.get(f"/artifacts/{artifact['id']}/shares").json()["shares"][0]["state"]
        if state == "active":
            break
        time.sleep(0.1)
    assert state == "active"
    assert Client().get(local(share["url"])).status_code == 200


def test_a_deleted_artifact_takes_its_links_with_it(owner, live):
    artifact = put_artifact(owner)
    share = create_share(owner, artifact["id"])
    assert owner.delete(f"/artifacts/{artifact['id']}").status_code == 200
    assert Client().get(local(share["url"])).status_code == 404
    assert Client().get(local(share["url"]) + "/download").status_code == 404
    assert owner.post(f"/artifacts/{artifact['id']}/shares", {}).status_code == 404


def test_activation_revokes_a_link_whose_artifact_went_away(owner, live):
    artifact = put_artifact(owner)
    link = ShareLink.objects.create(organization_id=owner.org_id, artifact_id=artifact["id"], token_hash="0" * 64)
    Artifact.objects.filter(id=artifact["id"]).update(state=ArtifactState.DELETED)
    actor = Actor(organization_id=owner.org_id, label="test")
    assert share_link_activate(share_id=link.id, actor=actor).state == ShareLinkState.REVOKED
    # A redelivered task finds the work done.
    assert share_link_activate(share_id=link.id, actor=actor).state == ShareLinkState.REVOKED
    event = AuditEvent.objects.get(action="share.create")
    assert event.outcome == Outcome.FAILURE and "deleted" in event.error_message
