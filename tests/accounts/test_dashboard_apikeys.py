from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Organization
from accounts.services import api_key_create, hash_api_key
from audit.models import AuditEvent
from core.actor import Actor

ALL_SCOPES = list(settings.API_KEY_SCOPES)


def create_key(client, **fields):
    data = {"name": "nightly CI", "scopes": ["sandboxes:read", "artifacts:read"], **fields}
    return client.post(reverse("apikey-create"), data)


def shown_secret(response) -> str:
    return re.search(r'id="new-key" class="mono" type="text" value="([^"]+)"', response.content.decode()).group(1)


def api_status(client, org_id: str, secret: str) -> int:
    return client.get(
        "/api/v1/sandboxes", headers={"Authorization": f"ApiKey {secret}", "X-Org-Id": org_id}
    ).status_code


# --- access --------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(dashboard):
    key = ApiKey.objects.get(organization_id=dashboard.org_id)
    for response in (
        dashboard.anonymous.get(reverse("apikey-list")),
        dashboard.anonymous.post(reverse("apikey-create"), {"name": "x", "scopes": ALL_SCOPES}),
        dashboard.anonymous.post(reverse("apikey-revoke", args=[key.id])),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert ApiKey.objects.filter(organization_id=dashboard.org_id).count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.parametrize("role, allowed", [("owner", True), ("admin", True), ("member", False), ("viewer", False)])
def test_only_admins_and_owners_manage_keys(dashboard, role, allowed):
    key = ApiKey.objects.get(organization_id=dashboard.org_id)
    client = dashboard.by_role()[role]
    assert client.get(reverse("apikey-list")).status_code == (200 if allowed else 404)
    if allowed:
        return
    assert create_key(client).status_code == 404
    assert client.post(reverse("apikey-revoke", args=[key.id])).status_code == 404
    assert ApiKey.objects.filter(organization_id=dashboard.org_id).count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_stranger_neither_sees_nor_revokes_another_organizations_keys(dashboard, stranger):
    ours = ApiKey.objects.get(organization_id=dashboard.org_id)
    theirs = ApiKey.objects.get(organization_id=stranger.org_id)
    page = dashboard.stranger.get(reverse("apikey-list")).content.decode()
    assert theirs.prefix in page
    assert ours.prefix not in page
    assert dashboard.stranger.post(reverse("apikey-revoke", args=[ours.id])).status_code == 404
    ours.refresh_from_db()
    assert ours.revoked_at is None


# --- create --------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_never_again(dashboard, owner):
    response = create_key(dashboard.admin, name="research agent", expires_in_days=30)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = shown_secret(response)
    assert secret.startswith("stow_") and "." not in secret
    assert "Copy it now" in response.content.decode()

    key = ApiKey.objects.get(organization_id=dashboard.org_id, name="research agent")
    assert key.key_hash == hash_api_key(secret)
    assert secret not in {key.prefix, key.name, key.key_hash}
    assert key.scopes == ["sandboxes:read", "artifacts:read"]
    assert timezone.now() + timedelta(days=29) < key.expires_at <= timezone.now() + timedelta(days=30)

    assert api_status(owner.client, dashboard.org_id, secret) == 200
    listing = dashboard.admin.get(reverse("apikey-list")).content.decode()
    assert "research agent" in listing and key.prefix in listing
    assert secret not in listing
    assert secret[len(key.prefix) :] not in listing
    assert secret not in dashboard.owner.get(reverse("audit-list")).content.decode()
    event = AuditEvent.objects.get(action="apikey.create", resource=f"apikey:{key.id}")
    assert event.actor == "admin-user"
    assert secret not in str(event.details)


def test_a_key_without_expiry_never_expires(dashboard):
    create_key(dashboard.owner, name="forever", scopes=ALL_SCOPES)
    key = ApiKey.objects.get(name="forever")
    assert key.expires_at is None and key.scopes == ALL_SCOPES


def test_the_form_starts_with_only_the_read_scopes_checked(dashboard):
    """Guards the finding that a new key was offered every scope: it starts with read scopes only."""
    page = dashboard.owner.get(reverse("apikey-list")).content.decode()
    for scope in ALL_SCOPES:
        checked = re.search(rf'<input type="checkbox" name="scopes" value="{scope}"[^>]*checked', page)
        assert bool(checked) is (scope in {"sandboxes:read", "artifacts:read"}), scope
    assert "<legend>Scopes</legend>" in page


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": ""}, "This field is required."),
        ({"scopes": []}, "Pick at least one scope."),
        ({"scopes": ["everything:all"]}, "is not one of the available choices"),
        ({"expires_in_days": 0}, "greater than or equal to 1"),
        ({"expires_in_days": 99999}, "less than or equal to 3650"),
        ({"name": "   "}, "This field is required."),
    ],
)
def test_bad_input_is_explained_and_creates_nothing(dashboard, fields, message):
    response = create_key(dashboard.admin, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="new-key"' not in response.content.decode()
    assert ApiKey.objects.filter(organization_id=dashboard.org_id).count() == 1


def test_a_service_error_is_shown_in_the_form(dashboard, monkeypatch):
    from accounts import views
    from core.errors import InvalidInput

    def refuse(**kwargs):
        raise InvalidInput("the key store is read-only right now")

    monkeypatch.setattr(views, "api_key_create", refuse)
    response = create_key(dashboard.admin)
    assert response.status_code == 400
    assert "the key store is read-only right now" in response.content.decode()


# --- list and revoke -----------------------------------------------------------------------------


def test_the_list_shows_prefix_state_last_use_and_expiry(dashboard, owner):
    org_actor = Actor(organization_id=dashboard.org_id)
    org = Organization.objects.get(id=dashboard.org_id)
    expired, _ = api_key_create(organization=org, name="old job", actor=org_actor, expires_in_days=1)
    ApiKey.objects.filter(id=expired.id).update(expires_at=timezone.now() - timedelta(days=2))
    revoked, _ = api_key_create(organization=org, name="leaked", actor=org_actor)
    ApiKey.objects.filter(id=revoked.id).update(revoked_at=timezone.now())
    owner.get("/sandboxes")
    page = dashboard.owner.get(reverse("apikey-list")).content.decode()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr>\s*<td[^>]*>([^<]+)</td>.*?</tr>", page, re.DOTALL)}
    assert 'badge-expired">expired' in rows["old job"]
    assert 'badge-revoked">revoked' in rows["leaked"] and "Revoke…" not in rows["leaked"]
    assert 'badge-active">active' in rows["bootstrap"]
    # Used moments ago through the API; it has no expiry, so "never" appears once, under Expires.
    assert rows["bootstrap"].count('<span class="muted">never</span>') == 1
    assert rows["leaked"].count('<span class="muted">never</span>') == 1, "never used"
    assert ApiKey.objects.get(id=revoked.id).prefix + "…" in rows["leaked"]


def test_revoking_a_key_stops_it_working(dashboard, owner):
    response = create_key(dashboard.owner, name="to revoke", scopes=ALL_SCOPES)
    secret = shown_secret(response)
    key = ApiKey.objects.get(name="to revoke")
    assert api_status(owner.client, dashboard.org_id, secret) == 200
    page = dashboard.owner.get(reverse("apikey-list")).content.decode()
    assert f'action="{reverse("apikey-revoke", args=[key.id])}"' in page
    assert dashboard.owner.get(reverse("apikey-revoke", args=[key.id])).status_code == 405
    revoked = dashboard.owner.post(reverse("apikey-revoke", args=[key.id]), follow=True)
    assert "Revoked “to revoke”" in revoked.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_status(owner.client, dashboard.org_id, secret) == 401
    assert AuditEvent.objects.filter(action="apikey.revoke", resource=f"apikey:{key.id}").exists()
    again = dashboard.owner.post(reverse("apikey-revoke", args=[key.id]))
    assert again.status_code == 302
    assert AuditEvent.objects.filter(action="apikey.revoke", resource=f"apikey:{key.id}").count() == 1


def test_an_unknown_key_is_404(dashboard):
    assert dashboard.owner.post(reverse("apikey-revoke", args=["key_nope"])).status_code == 404


def test_a_database_dump_holds_no_working_key(dashboard, owner, tmp_path):
    secret = shown_secret(create_key(dashboard.owner, name="dumped", scopes=ALL_SCOPES))
    dump = tmp_path / "dump.json"
    call_command("dumpdata", "accounts", "audit", output=str(dump))
    assert secret not in dump.read_text()
