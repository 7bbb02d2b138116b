from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Organization, Role
from audit.models import AuditEvent


def signed_in(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def test_only_the_first_administrator_is_staff(owner, stranger):
    """Guards the finding that every owner made by `manage.py bootstrap` was a superuser."""
    User = get_user_model()
    first, later = User.objects.get(username=owner.username), User.objects.get(username=stranger.username)
    assert first.is_staff and first.is_superuser
    assert not later.is_staff and not later.is_superuser
    assert Membership.objects.get(user=later).role == Role.OWNER


def test_an_owner_of_one_organization_cannot_read_the_others_in_the_admin(owner, stranger):
    """Guards the finding that an owner read every organization's events, keys and sandboxes in /admin/."""
    client = signed_in(stranger.username)
    for url in ("/admin/", "/admin/audit/auditevent/", "/admin/accounts/apikey/", "/admin/sandboxes/sandbox/"):
        response = client.get(url)
        assert response.status_code in {302, 403, 404}, url
        assert owner.org_id.encode() not in response.content
    assert signed_in(owner.username).get("/admin/accounts/apikey/").status_code == 200


def test_the_admin_sends_anonymous_visitors_to_the_one_sign_in_page(client, db):
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("login") + "?next=/admin/"
    assert "Sign in to Stowage" in response.content.decode()


def test_staff_are_promoted_and_demoted_with_a_command(owner, stranger):
    out = io.StringIO()
    call_command("staff", "promote", stranger.username, stdout=out)
    assert get_user_model().objects.get(username=stranger.username).is_superuser
    call_command("staff", "list", stdout=out)
    assert stranger.username in out.getvalue()
    call_command("staff", "demote", stranger.username, stdout=out)
    assert not get_user_model().objects.get(username=stranger.username).is_staff
    assert AuditEvent.objects.filter(action="staff.promote", organization__isnull=True).count() == 1
    with pytest.raises(CommandError, match="one superuser"):
        call_command("staff", "demote", owner.username, stdout=out)


def test_staff_create_an_organization_with_an_owner_invitation(owner, stranger):
    page = signed_in(owner.username).post(reverse("staff-organizations"), {"name": "Initech"})
    assert page.status_code == 200
    organization = Organization.objects.get(name="Initech")
    assert f"/join/{organization.id}/" in page.content.decode()
    assert not Membership.objects.filter(organization=organization).exists()
    with_owner = signed_in(owner.username).post(
        reverse("staff-organizations"), {"name": "Hooli", "owner": stranger.username}
    )
    assert with_owner.status_code == 200
    assert Membership.objects.get(organization__name="Hooli").role == Role.OWNER


def test_organizations_are_created_by_staff_only(owner, stranger):
    response = signed_in(stranger.username).post(reverse("staff-organizations"), {"name": "Sneaky"})
    assert response.status_code == 404
    assert not Organization.objects.filter(name="Sneaky").exists()


def test_manage_py_creates_an_organization(owner):
    out = io.StringIO()
    call_command("create_organization", "Vandelay", stdout=out)
    assert "/join/org_" in out.getvalue()
    call_command("create_organization", "Kramerica", "--owner", owner.username, stdout=out)
    assert Membership.objects.get(organization__name="Kramerica").user.username == owner.username


def _warnings(capsys) -> str:
    call_command("check", "--database", "default")
    return capsys.readouterr().err


def test_superusers_who_own_organizations_are_named_by_a_system_check(owner, stranger, capsys):
    """Guards the finding that upgraded instances kept the owners earlier versions made superusers
    without a word."""
    assert "accounts.W001" not in _warnings(capsys), "the first administrator owns the first organization"
    get_user_model().objects.filter(username=stranger.username).update(is_staff=True, is_superuser=True)
    warning = _warnings(capsys)
    assert "accounts.W001" in warning
    assert warning.split("(accounts.W001) ")[1].split(" is a superuser")[0] == stranger.username
    assert f"manage.py staff demote {stranger.username}" in warning
    call_command("staff", "demote", stranger.username, stdout=io.StringIO())
    assert "accounts.W001" not in _warnings(capsys)


def test_an_owner_promoted_on_purpose_is_not_named(owner, stranger, capsys):
    call_command("staff", "promote", stranger.username, stdout=io.StringIO())
    assert "accounts.W001" not in _warnings(capsys)
