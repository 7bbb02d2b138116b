"""Staff set quotas in the admin; a bad value is shown on the form and changes nothing."""

from __future__ import annotations

from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from quotas.models import OrganizationQuota


def staff_client(db) -> Client:
    user = get_user_model().objects.create_user(
        username="staff", password="staff-pass-1234", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(user)
    return client


def form(org_id: str, **values: str) -> dict[str, str]:
    return {"organization": org_id, "bytes": "", "artifacts": "", "largest": "", "sandboxes": "", **values}


def test_staff_set_a_quota_with_a_size_in_binary_units(owner, db):
    client = staff_client(db)
    response = client.post("/admin/quotas/organizationquota/add/", form(owner.org_id, bytes="50GiB", sandboxes="2"))
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = OrganizationQuota.objects.get(organization_id=owner.org_id)
    assert (quota.bytes, quota.sandboxes, quota.artifacts) == (50 << 30, 2, None)
    assert AuditEvent.objects.filter(action="quota.set", organization_id=owner.org_id).exists()


def test_a_negative_or_absurd_quota_is_shown_on_the_form_and_changes_nothing(owner, db):
    client = staff_client(db)
    for values in ({"bytes": "-1"}, {"largest": "9EiB"}, {"artifacts": "many"}):
        response = client.post("/admin/quotas/organizationquota/add/", form(owner.org_id, **values))
        assert response.status_code == 200
        assert "the " + next(iter(values)) + " quota" in response.content.decode()
    assert not OrganizationQuota.objects.exists()
    assert not AuditEvent.objects.filter(action="quota.set").exists()


def test_an_organization_owner_who_is_not_staff_never_reaches_the_quota_admin(dashboard):
    # The owner fixture's account is the instance's first administrator; the stranger owns Globex only.
    response = dashboard.stranger.get("/admin/quotas/organizationquota/")
    assert response.status_code in (302, 403, 404)


def test_staff_clear_a_quota_in_the_admin_back_to_the_default(owner, db, settings):
    settings.STOWAGE_QUOTA_ARTIFACTS = "7"
    client = staff_client(db)
    client.post("/admin/quotas/organizationquota/add/", form(owner.org_id, bytes="1Gi", artifacts="3"))
    # The admin escapes a key in its links: an id holding "_24" would otherwise read back as "$".
    changed = client.post(
        f"/admin/quotas/organizationquota/{quote(owner.org_id)}/change/",
        {"bytes": "2Gi", "artifacts": "", "largest": "", "sandboxes": ""},
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    quota = OrganizationQuota.objects.get(organization_id=owner.org_id)
    assert (quota.bytes, quota.artifacts) == (2 << 30, None)
    assert AuditEvent.objects.filter(action="quota.set").count() == 2
