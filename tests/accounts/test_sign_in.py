from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent, Outcome


def sign_in(client: Client, username: str, password: str, ip: str = "198.51.100.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_many_wrong_passwords_then_the_right_one_is_still_refused(owner):
    """Guards the finding that 95 wrong passwords in three minutes, then the right one, signed in."""
    client = Client()
    for _ in range(20):
        assert sign_in(client, owner.username, "wrong-guess").status_code in {200, 429}
    response = sign_in(client, owner.username, owner.password)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_burst_at_one_account_from_many_addresses_locks_the_account(owner):
    client = Client()
    for index in range(5):
        sign_in(client, owner.username, "wrong", ip=f"203.0.113.{index + 1}")
    response = sign_in(client, owner.username, owner.password, ip="192.0.2.200")
    assert response.status_code == 429
    page = response.content.decode()
    assert "too many wrong passwords" in page and "15 minutes" in page and "try again after" in page
    assert "_auth_user_id" not in client.session


def test_a_burst_from_one_address_locks_that_address(owner, stranger):
    client = Client()
    for index in range(5):
        sign_in(client, f"nobody-{index}", "wrong", ip="203.0.113.50")
    assert sign_in(client, stranger.username, stranger.password, ip="203.0.113.50").status_code == 429
    elsewhere = Client()
    assert sign_in(elsewhere, stranger.username, stranger.password, ip="203.0.113.51").status_code == 302


def test_sign_ins_are_audited_in_the_organizations_of_the_account(owner):
    """Guards the finding that sign-in was not audited at all."""
    client = Client()
    assert sign_in(client, owner.username, "wrong").status_code == 200
    assert sign_in(client, owner.username, owner.password).status_code == 302
    failure = AuditEvent.objects.get(action="auth.signin", outcome=Outcome.FAILURE)
    success = AuditEvent.objects.get(action="auth.signin", outcome=Outcome.SUCCESS)
    assert failure.organization_id == success.organization_id == owner.org_id
    assert failure.ip == "198.51.100.1" and failure.details["username"] == owner.username
    assert success.actor == owner.username and success.details == {"method": "password"}
    client.post(reverse("logout"))
    assert AuditEvent.objects.filter(action="auth.signout", organization_id=owner.org_id).exists()


def test_a_locked_out_attempt_is_audited_as_denied(owner):
    """Guards the finding that no denied attempt of any kind reached the audit log."""
    client = Client()
    for _ in range(6):
        sign_in(client, owner.username, "wrong")
    assert AuditEvent.objects.filter(
        action="auth.signin", outcome=Outcome.DENIED, organization_id=owner.org_id
    ).exists()


def test_a_sign_in_as_no_one_goes_to_the_instance_security_log(db, refusal_counters):
    sign_in(Client(), "ghost", "whatever")
    event = AuditEvent.objects.get(action="auth.signin")
    assert event.organization_id is None and event.outcome == Outcome.FAILURE


def test_password_sign_in_can_be_turned_off(owner, settings):
    settings.PASSWORD_SIGN_IN = False
    client = Client()
    page = client.get(reverse("login")).content.decode()
    assert 'name="password"' not in page
    assert sign_in(client, owner.username, owner.password).status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/admin/", "/admin/login/"])
def test_a_signed_in_non_staff_user_is_refused_by_the_admin_without_a_loop(owner, stranger, path):
    client = Client()
    assert sign_in(client, stranger.username, stranger.password).status_code == 302
    response = client.get(path, follow=True)
    assert response.status_code == 403
    assert "You may not do that" in response.content.decode()


def test_signing_in_from_an_address_keeps_the_failures_against_other_accounts_from_it(owner, stranger):
    """Guards the finding that a sign-in of one's own reset the wrong passwords tried from the same
    address against everyone else, so an insider could guess a colleague's password forever."""
    insider, address = Client(), "198.51.100.9"
    for _ in range(2):
        for _ in range(2):
            sign_in(insider, owner.username, "a-guess", ip=address)
        assert sign_in(insider, stranger.username, stranger.password, ip=address).status_code == 302
        insider.post(reverse("logout"))
    sign_in(insider, owner.username, "a-guess", ip=address)
    response = sign_in(Client(), owner.username, owner.password, ip="192.0.2.33")
    assert response.status_code == 429


def test_a_correct_sign_in_forgets_the_accounts_own_failures(owner):
    client = Client()
    for _ in range(4):
        sign_in(client, owner.username, "typo")
    assert sign_in(client, owner.username, owner.password).status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        sign_in(client, owner.username, "typo")
    assert sign_in(client, owner.username, owner.password).status_code == 302
