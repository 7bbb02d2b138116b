from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Membership, Role
from audit.models import AuditEvent, Outcome
from members.models import Invitation


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def owner_user(owner):
    return get_user_model().objects.get(username=owner.username)


def invite(client: Client, role: str = "member", **fields) -> str:
    response = client.post(
        reverse("members-invite"), {"role": role, "note": "a colleague", "expires_in_days": 7, **fields}
    )
    assert response.status_code == 200, response.content
    return re.search(
        r'id="invite-link" class="mono" type="text" value="http://testserver(/join/[^"]+)"', response.content.decode()
    ).group(1)


def membership_of(username: str, org_id: str) -> Membership:
    return Membership.objects.get(user__username=username, organization_id=org_id)


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role, allowed", [("owner", True), ("admin", True), ("member", False), ("viewer", False)])
def test_only_admins_and_owners_see_the_members_page(dashboard, role, allowed):
    assert dashboard.by_role()[role].get(reverse("members-list")).status_code == (200 if allowed else 404)


def test_anonymous_visitors_and_strangers(dashboard):
    assert dashboard.anonymous.get(reverse("members-list")).status_code == 302
    page = dashboard.stranger.get(reverse("members-list")).content.decode()
    assert "admin-user" not in page
    target = membership_of("member-user", dashboard.org_id)
    assert dashboard.stranger.post(reverse("members-role", args=[target.pk]), {"role": "viewer"}).status_code == 404
    assert dashboard.stranger.post(reverse("members-remove", args=[target.pk]), {"keys": "revoke"}).status_code == 404
    assert membership_of("member-user", dashboard.org_id).role == Role.MEMBER


# --- invitations ---------------------------------------------------------------------------------


def test_a_new_user_accepts_an_invitation_and_is_in_at_once(dashboard):
    """Guards the finding that there was no way to add a colleague to an organization except the Django admin."""
    link = invite(dashboard.admin, "viewer")
    invitation = Invitation.objects.get(organization_id=dashboard.org_id)
    assert link.rsplit("/", 2)[-2] not in {invitation.token_hash, invitation.id}, "only the hash is kept"
    newcomer = Client()
    assert "Join Acme" in newcomer.get(link).content.decode()
    response = newcomer.post(
        link, {"username": "newcomer", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"}
    )
    assert response.status_code == 302
    assert membership_of("newcomer", dashboard.org_id).role == Role.VIEWER
    assert newcomer.get(reverse("artifact-list")).status_code == 200
    join = AuditEvent.objects.get(action="member.join", organization_id=dashboard.org_id, outcome=Outcome.SUCCESS)
    assert join.details["role"] == "viewer"
    assert AuditEvent.objects.filter(action="member.invite", organization_id=dashboard.org_id).exists()


def test_an_existing_user_accepts_an_invitation(dashboard, stranger):
    link = invite(dashboard.owner, "admin")
    assert dashboard.stranger.post(link).status_code == 302
    assert membership_of(stranger.username, dashboard.org_id).role == Role.ADMIN
    assert membership_of(stranger.username, stranger.org_id).role == Role.OWNER


def test_a_reused_invitation_is_refused(dashboard, stranger):
    link = invite(dashboard.admin)
    assert dashboard.stranger.post(link).status_code == 302
    again = Client()
    response = again.post(
        link, {"username": "second", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"}
    )
    assert response.status_code == 410
    assert not get_user_model().objects.filter(username="second").exists()
    assert AuditEvent.objects.filter(
        action="member.join", outcome=Outcome.DENIED, organization_id=dashboard.org_id
    ).exists()


def test_an_expired_invitation_is_refused(dashboard, stranger):
    link = invite(dashboard.admin)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert dashboard.stranger.post(link).status_code == 410
    assert not Membership.objects.filter(user__username=stranger.username, organization_id=dashboard.org_id).exists()


def test_a_revoked_invitation_is_refused(dashboard, stranger):
    link = invite(dashboard.admin)
    invitation = Invitation.objects.get()
    assert dashboard.admin.post(reverse("members-invitation-revoke", args=[invitation.id])).status_code == 302
    assert dashboard.stranger.post(link).status_code == 410


def test_an_invitation_for_another_organization_is_refused(dashboard, stranger):
    link = invite(dashboard.admin)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    wrong = reverse("members-join", args=[stranger.org_id, token])
    assert dashboard.viewer.post(wrong).status_code == 404
    assert not Membership.objects.filter(user__username="viewer-user", organization_id=stranger.org_id).exists()


def test_a_guessed_invitation_is_refused(dashboard, stranger):
    guess = reverse("members-join", args=[dashboard.org_id, "x" * 43])
    assert dashboard.stranger.get(guess).status_code == 404
    assert dashboard.stranger.post(guess).status_code == 404
    assert not Membership.objects.filter(user__username=stranger.username, organization_id=dashboard.org_id).exists()
    assert AuditEvent.objects.filter(
        action="member.join", outcome=Outcome.DENIED, organization_id=dashboard.org_id
    ).exists()


def test_an_invitation_with_a_role_that_does_not_exist_is_refused(dashboard):
    response = dashboard.owner.post(reverse("members-invite"), {"role": "emperor", "expires_in_days": 7})
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_an_admin_cannot_invite_an_owner(dashboard):
    response = dashboard.admin.post(reverse("members-invite"), {"role": "owner", "expires_in_days": 7})
    assert response.status_code == 400
    assert not Invitation.objects.exists()


# --- roles ---------------------------------------------------------------------------------------


def test_an_admin_changes_a_role(dashboard):
    target = membership_of("member-user", dashboard.org_id)
    assert dashboard.admin.post(reverse("members-role", args=[target.pk]), {"role": "viewer"}).status_code == 302
    assert membership_of("member-user", dashboard.org_id).role == Role.VIEWER
    event = AuditEvent.objects.get(action="member.role_change")
    assert event.details == {"username": "member-user", "from": "member", "to": "viewer"}
    # A write the member could do a moment ago is refused on their next request.
    member = Client()
    member.force_login(target.user)
    assert member.get(reverse("artifact-upload")).status_code == 404


def test_a_role_that_does_not_exist_is_refused(dashboard):
    target = membership_of("member-user", dashboard.org_id)
    assert dashboard.admin.post(reverse("members-role", args=[target.pk]), {"role": "superuser"}).status_code == 400
    assert membership_of("member-user", dashboard.org_id).role == Role.MEMBER


def test_a_member_cannot_raise_their_own_role(dashboard):
    mine = membership_of("admin-user", dashboard.org_id)
    assert dashboard.admin.post(reverse("members-role", args=[mine.pk]), {"role": "owner"}).status_code == 403
    assert membership_of("admin-user", dashboard.org_id).role == Role.ADMIN


def test_an_admin_cannot_demote_an_owner(dashboard, owner):
    theirs = membership_of(owner.username, dashboard.org_id)
    assert dashboard.admin.post(reverse("members-role", args=[theirs.pk]), {"role": "viewer"}).status_code == 403
    assert membership_of(owner.username, dashboard.org_id).role == Role.OWNER


def test_the_last_owner_cannot_be_demoted(dashboard, owner):
    mine = membership_of(owner.username, dashboard.org_id)
    assert dashboard.owner.post(reverse("members-role", args=[mine.pk]), {"role": "admin"}).status_code == 409
    assert membership_of(owner.username, dashboard.org_id).role == Role.OWNER


def test_an_owner_steps_down_once_there_is_another(dashboard, owner):
    other = membership_of("admin-user", dashboard.org_id)
    assert dashboard.owner.post(reverse("members-role", args=[other.pk]), {"role": "owner"}).status_code == 302
    mine = membership_of(owner.username, dashboard.org_id)
    assert dashboard.owner.post(reverse("members-role", args=[mine.pk]), {"role": "admin"}).status_code == 302
    assert membership_of(owner.username, dashboard.org_id).role == Role.ADMIN


# --- removal and leaving -------------------------------------------------------------------------


def _key_made_by(user, org_id: str) -> ApiKey:
    return ApiKey.objects.create(
        organization_id=org_id, name="their ci", prefix="stow_x", key_hash=f"h-{user.pk}", created_by=user
    )


def test_a_removed_member_loses_access_at_once_and_their_keys_are_revoked(dashboard):
    target = membership_of("member-user", dashboard.org_id)
    key = _key_made_by(target.user, dashboard.org_id)
    assert dashboard.member.get(reverse("artifact-list")).status_code == 200
    response = dashboard.admin.post(reverse("members-remove", args=[target.pk]), {"keys": "revoke"})
    assert response.status_code == 302
    assert dashboard.member.get(reverse("artifact-list")).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is not None
    removal = AuditEvent.objects.get(action="member.remove")
    assert removal.details["keys"] == "revoke" and removal.details["key_ids"] == [key.id]


def test_a_removed_members_keys_can_be_reassigned(dashboard):
    target = membership_of("member-user", dashboard.org_id)
    key = _key_made_by(target.user, dashboard.org_id)
    dashboard.admin.post(reverse("members-remove", args=[target.pk]), {"keys": "reassign"})
    key.refresh_from_db()
    assert key.revoked_at is None and key.created_by.username == "admin-user"


def test_the_last_owner_cannot_be_removed_or_leave(dashboard, owner):
    mine = membership_of(owner.username, dashboard.org_id)
    assert dashboard.admin.post(reverse("members-remove", args=[mine.pk]), {"keys": "revoke"}).status_code == 403
    assert dashboard.owner.post(reverse("members-leave")).status_code == 409
    assert membership_of(owner.username, dashboard.org_id).role == Role.OWNER


def test_a_member_leaves(dashboard):
    assert dashboard.viewer.post(reverse("members-leave")).status_code == 302
    assert not Membership.objects.filter(user__username="viewer-user").exists()
    assert AuditEvent.objects.filter(action="member.leave", organization_id=dashboard.org_id).exists()


def test_the_members_page_costs_the_same_queries_at_3_and_13_members(dashboard, django_assert_num_queries):
    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert dashboard.admin.get(reverse("members-list")).status_code == 200
        return len(queries)

    few = count()
    User = get_user_model()
    for index in range(10):
        Membership.objects.create(
            user=User.objects.create_user(username=f"extra-{index}"), organization_id=dashboard.org_id
        )
    assert count() == few


def _key_minted_through_the_api(client_of_admin_key: str, owner) -> tuple[str, str]:
    response = owner.client.post(
        "/api/v1/api-keys",
        {"name": "made by their key", "scopes": ["sandboxes:read"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {client_of_admin_key}"},
    )
    assert response.status_code == 201, response.content
    return response.json()["api_key"]["id"], response.json()["key"]


def _dashboard_key(client: Client) -> str:
    page = client.post(
        reverse("apikey-create"), {"name": "their manager", "scopes": ["keys:manage", "sandboxes:read"]}
    ).content.decode()
    return re.search(r"stow_[A-Za-z0-9_-]+", page).group(0)


def _works(owner, secret: str) -> bool:
    return owner.client.get("/api/v1/sandboxes", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


@pytest.mark.parametrize("how", ["remove", "leave"])
def test_the_keys_a_removed_members_keys_made_stop_working_too(dashboard, owner, how):
    """Guards the finding that keys minted through the API by a member's key outlived the member."""
    target = membership_of("admin-user", dashboard.org_id)
    manager = _dashboard_key(dashboard.admin)
    child_id, child = _key_minted_through_the_api(manager, owner)
    if how == "remove":
        assert dashboard.owner.post(reverse("members-remove", args=[target.pk]), {"keys": "revoke"}).status_code == 302
    else:
        assert dashboard.admin.post(reverse("members-leave")).status_code == 302
    assert not _works(owner, manager) and not _works(owner, child)
    ended = AuditEvent.objects.get(action=f"member.{how}")
    assert child_id in ended.details["key_ids"]


def test_the_keys_a_removed_members_keys_made_can_be_reassigned(dashboard, owner):
    target = membership_of("admin-user", dashboard.org_id)
    child_id, child = _key_minted_through_the_api(_dashboard_key(dashboard.admin), owner)
    dashboard.owner.post(reverse("members-remove", args=[target.pk]), {"keys": "reassign"})
    assert _works(owner, child)
    assert ApiKey.objects.get(id=child_id).created_by.username == owner.username


def test_the_removal_page_lists_the_keys_their_keys_made(dashboard, owner):
    target = membership_of("admin-user", dashboard.org_id)
    child_id, _child = _key_minted_through_the_api(_dashboard_key(dashboard.admin), owner)
    page = dashboard.owner.get(reverse("members-remove", args=[target.pk])).content.decode()
    assert ApiKey.objects.get(id=child_id).prefix in page


def _newcomer_joins(link: str, username: str = "newcomer"):
    password = "a-long-passphrase-9"
    return Client().post(link, {"username": username, "password1": password, "password2": password})


@pytest.mark.parametrize("how", ["remove", "leave"])
def test_a_departing_admins_invitations_stop_working(dashboard, how):
    """Guards the finding that a removed admin could rejoin through a link they had made."""
    link = invite(dashboard.admin, "admin")
    invitation = Invitation.objects.get()
    target = membership_of("admin-user", dashboard.org_id)
    if how == "remove":
        dashboard.owner.post(reverse("members-remove", args=[target.pk]), {"keys": "revoke"})
    else:
        dashboard.admin.post(reverse("members-leave"))
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert dashboard.admin.post(link).status_code == 410
    assert not Membership.objects.filter(user__username="admin-user", organization_id=dashboard.org_id).exists()
    revoked = AuditEvent.objects.get(action="member.invite_revoke", resource=f"invitation:{invitation.id}")
    assert "admin-user" in revoked.details["reason"]
    assert AuditEvent.objects.get(action=f"member.{how}").details["invitation_ids"] == [invitation.id]


def test_an_invitation_is_refused_once_its_inviter_ranks_below_its_role(dashboard):
    link = invite(dashboard.admin, "admin")
    target = membership_of("admin-user", dashboard.org_id)
    assert dashboard.owner.post(reverse("members-role", args=[target.pk]), {"role": "member"}).status_code == 302
    assert Client().get(link).status_code == 410
    assert _newcomer_joins(link).status_code == 410
    assert not get_user_model().objects.filter(username="newcomer").exists()
    refusals = AuditEvent.objects.filter(action="member.join", outcome=Outcome.DENIED)
    assert refusals.count() == 2 and "admin-user" in refusals.first().error_message


def test_an_invitation_whose_inviter_is_gone_is_refused(dashboard):
    link = invite(dashboard.admin, "member")
    get_user_model().objects.filter(username="admin-user").delete()
    assert _newcomer_joins(link).status_code == 410
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_a_first_owner_invitation_from_staff_or_a_command_still_works(owner):
    from io import StringIO

    from django.core.management import call_command

    staff = client_of(owner_user(owner))
    page = staff.post(reverse("staff-organizations"), {"name": "Initech"}).content.decode()
    link = re.search(r"http://testserver(/join/[^\"<\s]+)", page).group(1)
    assert _newcomer_joins(link, "initech-owner").status_code == 302
    assert membership_of("initech-owner", Invitation.objects.get().organization_id).role == Role.OWNER
    out = StringIO()
    call_command("create_organization", "Vandelay", stdout=out)
    path = re.search(r"https?://[^/\s]+(/join/\S+)", out.getvalue()).group(1)
    assert _newcomer_joins(path, "vandelay-owner").status_code == 302
