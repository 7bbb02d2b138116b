"""The dashboard's quota banner: from 80 % of a quota, and louder at 100 %, at no query of its own."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership
from quotas.context_processors import quota_warnings
from quotas.counters import usage_add
from quotas.models import OrganizationQuota


def home(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_no_banner_below_eighty_percent(dashboard, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    usage_add(organization_id=dashboard.org_id, stored_bytes=799)
    assert 'id="quota-banner-' not in home(dashboard.owner)


def test_a_warning_at_eighty_percent(dashboard, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    usage_add(organization_id=dashboard.org_id, stored_bytes=800)
    page = home(dashboard.viewer)
    assert 'id="quota-banner-bytes"' in page and "80% full" in page
    assert "banner-error" not in page.split('id="quota-banner-bytes"')[0].rsplit("<div", 1)[-1]


def test_an_error_at_one_hundred_percent_that_says_what_to_do(dashboard):
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, artifacts=4)
    usage_add(organization_id=dashboard.org_id, artifacts=4)
    page = home(dashboard.member)
    assert 'id="quota-banner-artifacts"' in page
    assert "quota is reached" in page and "New uploads are refused" in page and "empty the trash" in page


def test_another_organizations_use_shows_no_banner(dashboard, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    usage_add(organization_id=dashboard.org_id, stored_bytes=1000)
    assert 'id="quota-banner-' not in home(dashboard.stranger)


def test_the_banner_costs_no_query_of_its_own(dashboard, settings):
    settings.STOWAGE_QUOTA_BYTES = "1000"
    quiet = count_queries(dashboard.owner)
    usage_add(organization_id=dashboard.org_id, stored_bytes=950)
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, artifacts=10)
    assert count_queries(dashboard.owner) == quiet
    organization = (
        Membership.objects.select_related("organization__usage", "organization__quota")
        .get(organization_id=dashboard.org_id, role="owner")
        .organization
    )
    with CaptureQueriesContext(connection) as queries:
        warnings = quota_warnings(organization)
    assert len(queries) == 0
    assert [(w["name"], w["percent"], w["full"]) for w in warnings] == [("bytes", 95, False)]


def count_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        home(client)
    return len(queries)
