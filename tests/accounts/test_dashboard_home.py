from __future__ import annotations

import pytest
from django.urls import reverse


def test_anonymous_visitors_are_sent_to_sign_in(dashboard):
    response = dashboard.anonymous.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_member_sees_their_organizations_home(dashboard, role):
    response = dashboard.by_role()[role].get(reverse("home"))
    assert response.status_code == 200
    assert b"Acme" in response.content
    assert b"Globex" not in response.content


def test_sign_in_and_out(owner, client):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    response = client.post(reverse("login"), {"username": owner.username, "password": owner.password})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_a_wrong_password_shows_a_readable_error(owner, client):
    response = client.post(reverse("login"), {"username": owner.username, "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_switching_organization_only_to_ones_you_belong_to(dashboard, owner, stranger):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership

    user = get_user_model().objects.get(username=owner.username)
    Membership.objects.create(user=user, organization_id=stranger.org_id, role="viewer")
    response = dashboard.owner.post(reverse("switch-organization"), {"organization_id": stranger.org_id, "next": "/"})
    assert response.status_code == 302
    assert b"Globex" in dashboard.owner.get(reverse("home")).content
    refused = dashboard.member.post(reverse("switch-organization"), {"organization_id": stranger.org_id})
    assert refused.status_code == 404
