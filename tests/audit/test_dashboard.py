from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit import views as audit_views
from audit.export import csv_cell
from audit.models import AuditEvent
from audit.services import audit_record
from core.actor import Actor
from tests.factories import make_shared_chain_events

HTMX = {"HTTP_HX_REQUEST": "true"}
# Session, user, membership (org_view), one page of events, and the org switcher's memberships.
AUDIT_LIST_QUERIES = 5


def record(org_id: str, n: int = 1, *, actor: str = "agent", action: str = "file.read", **fields) -> list[AuditEvent]:
    who = Actor(organization_id=org_id, label=actor)
    return [
        audit_record(actor=who, action=action, resource=fields.pop("resource", f"res-{index}"), **fields)
        for index in range(n)
    ]


def export_rows(response) -> list[dict[str, str]]:
    """The exported events: the rows of the manifest, the trailer and the links between are left out."""
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return [row for row in csv.DictReader(io.StringIO(text)) if row["record"] == "event"]


def _sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


# --- access --------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(dashboard):
    for response in (
        dashboard.anonymous.get(reverse("audit-list")),
        dashboard.anonymous.get(reverse("audit-export")),
        dashboard.anonymous.post(reverse("audit-verify")),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role, allowed", [("owner", True), ("admin", True), ("member", False), ("viewer", False)])
def test_only_admins_and_owners_read_the_audit_log(dashboard, role, allowed):
    record(dashboard.org_id, actor="someone")
    client = dashboard.by_role()[role]
    expected = 200 if allowed else 404
    assert client.get(reverse("audit-list")).status_code == expected
    assert client.get(reverse("audit-export")).status_code == expected
    assert client.post(reverse("audit-verify"), **HTMX).status_code == expected
    nav = client.get(reverse("home")).content.decode()
    assert (reverse("audit-list") in nav) is allowed


def test_a_stranger_sees_only_their_own_organizations_events(dashboard, stranger):
    record(dashboard.org_id, actor="acme-agent", resource="acme-secret-resource")
    record(stranger.org_id, actor="globex-agent", resource="globex-resource")
    page = dashboard.stranger.get(reverse("audit-list")).content.decode()
    assert "globex-resource" in page
    assert "acme-secret-resource" not in page
    rows = export_rows(dashboard.stranger.get(reverse("audit-export")))
    assert {row["resource"] for row in rows} >= {"globex-resource"}
    assert "acme-secret-resource" not in {row["resource"] for row in rows}


def test_verify_only_accepts_post(dashboard):
    assert dashboard.owner.get(reverse("audit-verify")).status_code == 405


# --- list ----------------------------------------------------------------------------------------


def test_the_list_shows_events_newest_first(dashboard):
    record(dashboard.org_id, actor="first-actor", resource="older-thing")
    record(
        dashboard.org_id,
        actor="second-actor",
        action="artifact.upload",
        resource="newer-thing",
        outcome="failure",
        error_message="disk full",
    )
    page = dashboard.admin.get(reverse("audit-list")).content.decode()
    assert page.index("newer-thing") < page.index("older-thing")
    assert 'class="badge badge-failure"' in page and "disk full" in page
    assert "second-actor" in page and "artifact.upload" in page


def test_filters_narrow_the_events(dashboard):
    events = [
        *record(dashboard.org_id, actor="alice", action="file.read", resource="alice-read"),
        *record(dashboard.org_id, actor="bob", action="file.write", resource="bob-write", outcome="failure"),
        *record(
            dashboard.org_id, actor="bob", action="file.read", resource="bob-sandbox-read", sandbox_id="sbx_target"
        ),
    ]

    def shown(**params) -> set[str]:
        page = dashboard.admin.get(reverse("audit-list"), params).content.decode()
        return {name for name in ("alice-read", "bob-write", "bob-sandbox-read") if name in page}

    assert shown(actor="BOB") == {"bob-write", "bob-sandbox-read"}
    assert shown(action="file.read") == {"alice-read", "bob-sandbox-read"}
    assert shown(outcome="failure") == {"bob-write"}
    assert shown(sandbox="sbx_target") == {"bob-sandbox-read"}
    assert shown(actor="bob", action="file.read") == {"bob-sandbox-read"}
    # The days the events were stamped on, not a date read afterwards: midnight may fall between.
    days = [timezone.localdate(event.timestamp) for event in events]
    first, last = min(days), max(days)
    assert shown(start=first.isoformat(), end=last.isoformat()) == {"alice-read", "bob-write", "bob-sandbox-read"}
    assert shown(end=(first - timedelta(days=1)).isoformat()) == set()
    assert (
        "No event matches these filters"
        in dashboard.admin.get(reverse("audit-list"), {"actor": "nobody"}).content.decode()
    )


def test_bad_filters_are_reported_not_ignored_silently(dashboard):
    page = dashboard.admin.get(
        reverse("audit-list"), {"start": "2024-05-02", "end": "2024-05-01", "outcome": "maybe"}
    ).content.decode()
    assert "Some filters were not applied" in page
    assert "before the start date" in page
    export = dashboard.admin.get(reverse("audit-export"), {"outcome": "maybe"}, follow=True)
    assert "The export was not started" in export.content.decode()


def test_the_list_pages_by_keyset_without_overlap(dashboard):
    record(dashboard.org_id, 60)
    newest_first = list(
        AuditEvent.objects.filter(organization_id=dashboard.org_id).order_by("-seq").values_list("id", flat=True)
    )
    assert len(newest_first) > 50
    first = dashboard.admin.get(reverse("audit-list")).content.decode()
    assert set(re.findall(r"evt_[0-9a-z]+", first)) == set(newest_first[:50])
    older = unescape(re.search(r'href="(/audit/\?[^"]*before=[^"]+)"', first).group(1))
    assert "before=evt_" in older, "the cursor is an event id, not a global sequence number"
    second = dashboard.admin.get(older).content.decode()
    assert set(re.findall(r"evt_[0-9a-z]+", second)) == set(newest_first[50:])
    assert "Older events" not in second and "Newest" in second


def test_the_cursor_of_another_organization_shows_nothing(dashboard, stranger):
    theirs = record(stranger.org_id, 1)[0]
    record(dashboard.org_id, 3)
    page = dashboard.admin.get(reverse("audit-list"), {"before": theirs.id}).content.decode()
    assert "evt_" not in page.split('id="audit-events"')[1]


def test_the_list_costs_the_same_queries_at_5_and_50_rows(dashboard, django_assert_num_queries):
    record(dashboard.org_id, 5, details={"k": "v"})
    with django_assert_num_queries(AUDIT_LIST_QUERIES):
        assert dashboard.admin.get(reverse("audit-list")).status_code == 200
    record(dashboard.org_id, 45, sandbox_id="sbx_x", details={"k": "v"})
    with django_assert_num_queries(AUDIT_LIST_QUERIES):
        response = dashboard.admin.get(reverse("audit-list"), {"actor": "agent"})
    assert response.content.decode().count("<summary>Details") == 50


def test_the_events_fragment_for_htmx(dashboard):
    record(dashboard.org_id, 2, actor="frag")
    response = dashboard.admin.get(
        reverse("audit-list"), {"actor": "frag"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="audit-events"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="audit-events"')
    assert "<html" not in body
    assert f'href="{reverse("audit-export")}?actor=frag"' in body, "the export link follows the filters"
    full = dashboard.admin.get(reverse("audit-list"), {"actor": "frag"}).content.decode()
    assert "<html" in full and '<div id="audit-events"' in full


def test_an_empty_log_says_so(dashboard, stranger):
    page = dashboard.admin.get(reverse("audit-list"), {"action": "nothing.here"}).content.decode()
    assert "No event matches these filters" in page


def test_event_content_is_escaped(dashboard):
    record(
        dashboard.org_id,
        actor="<img src=x onerror=alert(1)>",
        resource="<script>alert(2)</script>",
        details={"html": "<b>x</b>"},
    )
    page = dashboard.admin.get(reverse("audit-list")).content.decode()
    assert "<script>alert(2)" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page


# --- CSV export ----------------------------------------------------------------------------------


def test_the_export_streams_every_matching_event(dashboard):
    record(dashboard.org_id, 120, actor="bulk", action="file.read")
    record(dashboard.org_id, 3, actor="other", action="file.write", sandbox_id="sbx_one")
    response = dashboard.admin.get(reverse("audit-export"), {"actor": "bulk"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = export_rows(response)
    assert len(rows) == 120
    assert {row["actor"] for row in rows} == {"bulk"}
    assert rows[0]["id"].startswith("evt_") and rows[0]["timestamp"]
    by_sandbox = export_rows(dashboard.admin.get(reverse("audit-export"), {"sandbox": "sbx_one"}))
    assert len(by_sandbox) == 3 and {row["action"] for row in by_sandbox} == {"file.write"}


def test_the_export_is_itself_audited(dashboard):
    b"".join(dashboard.admin.get(reverse("audit-export"), {"action": "file.read"}).streaming_content)
    event = AuditEvent.objects.get(action="audit.export")
    assert event.actor == "admin-user" and event.details == {"filters": {"action": "file.read"}}


def test_the_export_cannot_smuggle_spreadsheet_formulas(dashboard):
    record(dashboard.org_id, actor='=HYPERLINK("http://evil")', resource="+1+1", error_message="-2+3", details={"x": 1})
    record(dashboard.org_id, actor="@SUM(A1:A9)", resource="\t=1", action="file.read")
    record(dashboard.org_id, actor="plain", resource="a=b")
    rows = export_rows(dashboard.admin.get(reverse("audit-export")))
    by_actor = {row["actor"]: row for row in rows}
    assert '\'=HYPERLINK("http://evil")' in by_actor
    assert by_actor['\'=HYPERLINK("http://evil")']["resource"] == "'+1+1"
    assert by_actor['\'=HYPERLINK("http://evil")']["error_message"] == "'-2+3"
    assert by_actor["'@SUM(A1:A9)"]["resource"] == "'\t=1"
    assert by_actor["plain"]["resource"] == "a=b"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_csv_cells():
    assert csv_cell(None) == ""
    assert csv_cell(42) == 42
    assert csv_cell("-5") == "'-5"
    assert csv_cell({"a": "=x"}) == '{"a": "=x"}'
    assert csv_cell("ok") == "ok"


# --- chain check ---------------------------------------------------------------------------------


def test_the_chain_check_runs_only_on_demand(dashboard, monkeypatch):
    record(dashboard.org_id, 3)

    def explode():
        raise AssertionError("the chain was checked on a page load")

    monkeypatch.setattr(audit_views, "audit_verify_chain", explode)
    page = dashboard.admin.get(reverse("audit-list")).content.decode()
    assert "Check the audit chain" in page
    assert "Intact." not in page and "Altered." not in page


def test_the_chain_check_shows_intact_then_altered_after_a_raw_edit(dashboard):
    events = record(dashboard.org_id, 5)
    intact = dashboard.admin.post(reverse("audit-verify"), **HTMX)
    body = intact.content.decode()
    assert intact.status_code == 200
    assert body.lstrip().startswith('<section id="chain-check"') and "<html" not in body
    assert "Intact." in body

    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", events[2].id)
    altered = dashboard.admin.post(reverse("audit-verify"), **HTMX).content.decode()
    assert "Altered." in altered
    assert events[2].id in altered
    assert "edited" in altered


def test_the_chain_check_without_javascript(dashboard):
    events = record(dashboard.org_id, 3)
    ok = dashboard.owner.post(reverse("audit-verify"), follow=True)
    assert ok.redirect_chain[-1][0] == reverse("audit-list")
    assert "The audit log is intact" in ok.content.decode()
    _sql("DELETE FROM audit_auditevent WHERE id = %s", events[1].id)
    broken = dashboard.owner.post(reverse("audit-verify"), follow=True).content.decode()
    assert "has been altered" in broken and events[2].id in broken


def test_a_bad_event_of_another_organization_in_the_shared_chain_is_not_named(dashboard, stranger):
    theirs = make_shared_chain_events([stranger.org_id, dashboard.org_id, stranger.org_id])
    record(dashboard.org_id, 2)
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", theirs[2].id)
    body = dashboard.admin.post(reverse("audit-verify"), **HTMX).content.decode()
    assert "Altered." in body
    assert theirs[2].id not in body
    assert "another organization" in body


def test_a_bad_event_in_another_organizations_chain_leaves_this_one_intact(dashboard, stranger):
    theirs = record(stranger.org_id, 2)
    record(dashboard.org_id, 2)
    _sql("UPDATE audit_auditevent SET resource = %s WHERE id = %s", "tampered", theirs[1].id)
    body = dashboard.admin.post(reverse("audit-verify"), **HTMX).content.decode()
    assert "Intact." in body
    assert theirs[1].id not in body
