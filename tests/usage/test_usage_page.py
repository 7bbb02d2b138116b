"""The usage page of an organization, the staff page of every organization, and the daily snapshot."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from quotas.counters import usage_recount
from quotas.models import OrganizationQuota
from tests.factories import make_artifacts, make_sandbox, put_artifact
from usage.models import UsageSnapshot
from usage.services import usage_snapshot_take
from usage.worker import snapshot_daily

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return response.content.decode()


def _table(text: str, table_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', text, re.S)
    assert match, table_id
    return match.group(0)


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user(username="staff", password="pw-unused", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def test_the_page_shows_each_breakdown_with_a_chart_and_a_table(dashboard, owner):
    sandbox = make_sandbox(owner.org_id)
    put_artifact(owner, "reports/q1.pdf", b"x" * 3000, content_type="application/pdf")
    put_artifact(owner, "logs/run.txt", b"y" * 100, content_type="text/plain")
    make_artifacts(owner.org_id, 2, sandbox_id=sandbox.id, remote_path=lambda i: f"models/w{i}.bin", size=5000)
    response = dashboard.member.get(reverse("usage-page"))
    assert response.status_code == 200
    text = _text(response)
    for chart in ("history", "prefixes", "sandboxes", "types"):
        assert f'id="{chart}-chart"' in text and f'aria-labelledby="{chart}-title {chart}-desc"' in text
    prefixes = _table(text, "prefixes-table")
    assert prefixes.index("models/") < prefixes.index("reports/") < prefixes.index("logs/")
    assert sandbox.id in _table(text, "sandboxes-table") and "(uploaded, no sandbox)" in text
    types = _table(text, "types-table")
    assert "text/plain" in types and "application/pdf" in types
    largest = _table(text, "largest-table")
    assert largest.index("models/w") < largest.index("reports/q1.pdf") < largest.index("logs/run.txt")
    assert all('data-label="' in cell for cell in re.findall(r"<td[^>]*>", text))


def test_quota_use_is_shown_against_the_limits(dashboard, owner):
    put_artifact(owner, "a.bin", b"z" * 800)
    OrganizationQuota.objects.create(organization_id=owner.org_id, bytes=1000, artifacts=0)
    quotas = _table(_text(dashboard.viewer.get(reverse("usage-page"))), "quota-table")
    assert "80%" in quotas and "of the stored bytes quota" in quotas and "meter-near" in quotas
    assert "unlimited" in quotas


def one_day(monkeypatch):
    """Today, for the test and the code it runs alike: midnight may fall while the test runs."""
    today, real = timezone.localdate(), timezone.localdate
    monkeypatch.setattr(
        timezone, "localdate", lambda *args, **kwargs: real(*args, **kwargs) if args or kwargs else today
    )
    return today


def test_the_history_comes_from_daily_snapshots_and_today_from_the_counters(dashboard, owner, monkeypatch):
    today = one_day(monkeypatch)
    for days, stored in ((3, 111_000), (2, 222_000)):
        UsageSnapshot.objects.create(
            organization_id=owner.org_id, date=today - timedelta(days=days), stored_bytes=stored, artifact_count=1
        )
    put_artifact(owner, "a.bin", b"z" * 5000)
    history = _table(_text(dashboard.viewer.get(reverse("usage-page"))), "history-table")
    days = re.findall(r'<time datetime="([0-9-]+)"', history)
    assert days == [str(today), str(today - timedelta(days=2)), str(today - timedelta(days=3))]
    assert "216.8\xa0KB" in history and "4.9\xa0KB" in history


def test_the_snapshot_is_one_row_a_day_however_often_it_runs(owner, stranger, monkeypatch):
    today = one_day(monkeypatch)
    put_artifact(owner, "a.bin", b"z" * 5000)
    assert snapshot_daily() == 2
    put_artifact(owner, "b.bin", b"q" * 1000, content_type="text/csv")
    usage_snapshot_take()
    rows = UsageSnapshot.objects.filter(organization_id=owner.org_id)
    assert rows.count() == 1
    row = rows.get()
    assert (row.stored_bytes, row.artifact_count) == (6000, 2)
    assert row.by_content_type == [["application/octet-stream", 5000, 1], ["text/csv", 1000, 1]]
    assert UsageSnapshot.objects.get(organization_id=stranger.org_id).stored_bytes == 0
    usage_snapshot_take(day=today + timedelta(days=1))
    assert rows.count() == 2


def test_a_breakdown_past_its_top_groups_sums_the_rest(owner):
    for i in range(14):
        make_artifacts(owner.org_id, 1, content_type=f"type/{i:02d}", remote_path=f"t/{i}", size=100 + i)
    usage_recount(organization_id=owner.org_id)
    usage_snapshot_take()
    breakdown = UsageSnapshot.objects.get(organization_id=owner.org_id).by_content_type
    assert len(breakdown) == 11 and breakdown[-1][0] is None and breakdown[-1][2] == 4
    assert breakdown[0] == ["type/13", 113, 1]


def test_the_page_reads_the_snapshot_not_every_artifact(dashboard, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert dashboard.viewer.get(reverse("usage-page")).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    make_artifacts(owner.org_id, 30)
    usage_snapshot_take()
    dashboard.viewer.get(reverse("usage-page"))
    few = queries()
    make_artifacts(owner.org_id, 200, remote_path=lambda i: f"more/{i}.bin", sandbox_id="sbx_other")
    usage_snapshot_take()
    many = queries()
    assert len(few) == len(many) and not any("GROUP BY" in sql for sql in many)


def test_user_content_on_the_page_is_escaped(dashboard, owner):
    make_artifacts(owner.org_id, 1, remote_path="<b>x</b>/<i>y</i>", content_type="<script>alert(1)</script>")
    text = _text(dashboard.viewer.get(reverse("usage-page")))
    assert "<script>alert(1)" not in text and "<b>x</b>" not in text
    assert "&lt;script&gt;" in text


def test_the_page_is_for_members_only(dashboard, stranger):
    put_artifact(stranger, "secret/plan.pdf", b"s" * 10)
    assert dashboard.anonymous.get(reverse("usage-page")).status_code == 302
    text = _text(dashboard.viewer.get(reverse("usage-page")))
    assert "secret/plan.pdf" not in text and "secret/" not in text


def test_staff_see_every_organization_side_by_side(staff, owner, stranger):
    put_artifact(owner, "a.bin", b"z" * 5000)
    put_artifact(stranger, "b.bin", b"z" * 2500)
    OrganizationQuota.objects.create(organization_id=stranger.org_id, bytes=10000)
    usage_snapshot_take(day=timezone.localdate() - timedelta(days=1))
    usage_snapshot_take()
    response = staff.get(reverse("usage-all"))
    assert response.status_code == 200
    table = _table(_text(response), "usage-all-table")
    assert f'id="usage-{owner.org_id}"' in table and f'id="usage-{stranger.org_id}"' in table
    assert "Acme" in table and "Globex" in table and "(25%)" in table and 'class="sparkline"' in table


def test_the_staff_page_costs_the_same_queries_for_more_organizations(staff, owner, django_assert_num_queries):
    from accounts.services import organization_bootstrap

    staff.get(reverse("usage-all"))
    with django_assert_num_queries(QUERIES := 6):
        staff.get(reverse("usage-all"))
    for i in range(3):
        organization_bootstrap(org_name=f"Org {i}", email=f"o{i}@x.test")
    usage_snapshot_take()
    with django_assert_num_queries(QUERIES):
        staff.get(reverse("usage-all"))


def test_the_staff_page_is_not_for_organization_admins_or_members(dashboard):
    assert dashboard.admin.get(reverse("usage-all")).status_code == 404
    assert dashboard.member.get(reverse("usage-all")).status_code == 404
    assert dashboard.anonymous.get(reverse("usage-all")).status_code == 302


def test_a_large_organization_waits_for_its_first_snapshot_instead_of_grouping_on_the_page(
    dashboard, owner, monkeypatch, django_assert_max_num_queries
):
    from usage import selectors

    monkeypatch.setattr(selectors, "LIVE_BREAKDOWN_LIMIT", 5)
    make_artifacts(owner.org_id, 6)
    url = reverse("usage-page")
    dashboard.viewer.get(url)
    with django_assert_max_num_queries(20) as captured:
        text = _text(dashboard.viewer.get(url))
    assert not any("GROUP BY" in q["sql"] for q in captured.captured_queries)
    assert text.count("Counted with the first usage snapshot") == 2
    usage_snapshot_take()
    text = _text(dashboard.viewer.get(url))
    assert "Counted with the first usage snapshot" not in text and "text/plain" in _table(text, "types-table")
