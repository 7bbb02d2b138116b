from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from audit.models import AuditEvent, Outcome
from audit.refusals import THROTTLED_ACTION, audit_refusal
from core.actor import Actor
from sandboxes.models import Sandbox, SandboxStatus
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token


def a_sandbox(org_id: str) -> Sandbox:
    """A running sandbox's row; the refusals here happen before any worker is asked."""
    return Sandbox.objects.create(
        organization_id=org_id,
        host="nowhere",
        status=SandboxStatus.RUNNING,
        cpus="1",
        memory="1Gi",
        memory_bytes=1 << 30,
        expires_at=timezone.now() + timedelta(hours=1),
    )


def refusals(**filters):
    return AuditEvent.objects.filter(outcome=Outcome.DENIED, **filters)


def test_an_unknown_api_key_goes_to_the_instance_security_log(client, db, refusal_counters):
    """Guards the finding that no denied attempt of any kind reached the audit log."""
    response = client.get("/api/v1/sandboxes", headers={"Authorization": "ApiKey stow_abcdefgh_not_a_key"})
    assert response.status_code == 401
    event = refusals(action="auth.api_key").get()
    assert event.organization_id is None
    assert event.details["key_prefix"] == "stow_abcdefgh" and event.details["path"] == "/api/v1/sandboxes"


def test_a_revoked_key_is_refused_in_its_organizations_log(owner):
    created = owner.post("/api-keys", {"name": "old"}).json()
    ApiKey.objects.filter(id=created["api_key"]["id"]).update(revoked_at="2020-01-01T00:00:00Z")
    response = owner.client.get("/api/v1/sandboxes", headers={"Authorization": f"Bearer {created['key']}"})
    assert response.status_code == 401
    event = refusals(action="auth.api_key").get()
    assert event.organization_id == owner.org_id and event.actor_api_key_id == created["api_key"]["id"]
    assert "revoked" in event.error_message


def test_a_missing_scope_is_recorded(owner):
    reader = owner.post("/api-keys", {"name": "reader", "scopes": ["artifacts:read"]}).json()["key"]
    headers = {"Authorization": f"ApiKey {reader}", "X-Org-Id": owner.org_id}
    assert owner.client.get("/api/v1/audit", headers=headers).status_code == 403
    event = refusals(action="auth.scope").get()
    assert event.organization_id == owner.org_id and event.details["scope"] == "audit:read"


def test_another_organizations_ids_are_recorded_in_the_asking_organizations_log(owner, stranger):
    theirs = a_sandbox(stranger.org_id)
    assert owner.get(f"/sandbox/{theirs.id}").status_code == 404
    assert owner.get("/sandbox/sbx_0000000000000000000000000").status_code == 404
    event = refusals(action="auth.foreign_id").get()
    assert event.organization_id == owner.org_id and event.resource == f"sandbox:{theirs.id}"
    assert stranger.org_id not in str(event.details) + event.error_message, "whose it is is not told"


def test_another_organizations_ids_in_the_dashboard_are_recorded_too(dashboard, stranger):
    theirs = a_sandbox(stranger.org_id)
    assert dashboard.member.get(reverse("sandbox-detail", args=[theirs.id])).status_code == 404
    assert refusals(action="auth.foreign_id", organization_id=dashboard.org_id).count() == 1


def test_a_path_outside_the_sandbox_is_recorded(owner):
    sandbox = a_sandbox(owner.org_id)
    response = owner.get(f"/sandbox/{sandbox.id}/files", {"path": "/etc/passwd"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_PATH"
    event = refusals(action="sandbox.path_refused").get()
    assert event.organization_id == owner.org_id and event.sandbox_id == sandbox.id
    assert "outside /workspace" in event.error_message


@pytest.fixture
def counters(refusal_counters, monkeypatch):
    """The refusal counters live in the cache (the embedded Redis); each test starts with none,
    and counts in one minute of its own, so a flood that spans a minute's end still adds up."""
    _one_minute(monkeypatch, 4_102_358_400.0)


def test_a_wrong_share_link_password_is_recorded_in_the_sharing_organizations_log(owner, counters):
    from django.contrib.auth.hashers import make_password

    put = owner.client.put(
        "/api/v1/artifacts?remote_path=a.txt", b"x", content_type="text/plain", headers=owner.headers()
    )
    link = ShareLink.objects.create(
        organization_id=owner.org_id,
        artifact_id=put.json()["id"],
        token_hash=hash_share_token("t" * 43),
        state=ShareLinkState.ACTIVE,
        password_hash=make_password("right-password"),
    )
    response = owner.client.post(f"/s/{'t' * 43}/download", {"password": "wrong-password"}, REMOTE_ADDR="198.51.100.77")
    assert response.status_code == 403
    event = refusals(action="share.wrong_password").get()
    assert event.organization_id == owner.org_id and event.details["share_id"] == link.id
    assert event.ip == "198.51.100.77"


def test_an_unauthenticated_flood_grows_the_log_by_a_bounded_number_of_events(client, db, counters, settings):
    settings.AUDIT_REFUSALS_PER_SOURCE = 5
    for _ in range(60):
        client.get("/api/v1/sandboxes", headers={"Authorization": "ApiKey stow_flood"}, REMOTE_ADDR="203.0.113.66")
    assert refusals(action="auth.api_key").count() == 5
    throttled = AuditEvent.objects.get(action=THROTTLED_ACTION)
    assert throttled.details["action"] == "auth.api_key" and throttled.details["source"] == "ip:203.0.113.66"
    # Another address is still recorded, up to the limit of every source together.
    client.get("/api/v1/sandboxes", headers={"Authorization": "ApiKey stow_flood"}, REMOTE_ADDR="203.0.113.67")
    assert refusals(action="auth.api_key").count() == 6


def test_many_sources_together_are_bounded_too(db, counters, settings):
    settings.AUDIT_REFUSALS_PER_KIND = 20
    for index in range(100):
        audit_refusal(
            actor=Actor(organization_id=None, ip=f"2001:db8::{index:x}"),
            action="auth.signin",
            reason="wrong username or password",
            organization_id=None,
        )
    assert AuditEvent.objects.filter(action="auth.signin").count() == 20
    assert AuditEvent.objects.get(action=THROTTLED_ACTION).details["source"] == "*"


def _one_minute(monkeypatch, at: float) -> None:
    """Every refusal of the test falls in the same minute, one no other test counts in."""
    from types import SimpleNamespace

    from audit import refusals

    monkeypatch.setattr(refusals, "time", SimpleNamespace(time=lambda: at))


def test_many_sources_each_over_their_own_limit_stay_within_the_documented_bound(db, counters, settings, monkeypatch):
    """Guards the finding that every source crossing its own limit wrote a notice of its own, so
    N addresses added about N events a minute whatever the limit of every source together."""
    _one_minute(monkeypatch, 4_102_444_800.0)
    for index in range(300):
        actor = Actor(organization_id=None, ip=f"2001:db8::1:{index:x}")
        for _ in range(settings.AUDIT_REFUSALS_PER_SOURCE + 1):
            audit_refusal(actor=actor, action="auth.signin", reason="wrong username or password", organization_id=None)
    written = AuditEvent.objects.filter(organization__isnull=True)
    assert written.count() <= settings.AUDIT_REFUSALS_PER_KIND + 1
    assert written.filter(action=THROTTLED_ACTION, details__source="*").count() == 1


def test_the_next_minute_says_how_many_refusals_were_only_counted(db, counters, settings, monkeypatch):
    settings.AUDIT_REFUSALS_PER_SOURCE = 3
    actor = Actor(organization_id=None, ip="198.51.100.200")
    _one_minute(monkeypatch, 4_102_531_200.0)
    for _ in range(8):
        audit_refusal(actor=actor, action="share.wrong_password", reason="wrong password", organization_id=None)
    _one_minute(monkeypatch, 4_102_531_260.0)
    event = audit_refusal(actor=actor, action="share.wrong_password", reason="wrong password", organization_id=None)
    assert event.details["left_out_in_previous_minute"] == 5
