"""Listings sorted and filtered by downloads, on the API and the dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from artifacts import views as artifact_views
from artifacts.models import Artifact
from tests.artifacts.test_dashboard import all_pages, listed_ids, page_text
from tests.factories import make_artifacts

pytestmark = pytest.mark.django_db


def _with_downloads(org_id: str) -> dict[str, Artifact]:
    """Five artifacts: two never downloaded, three downloaded 1, 40 and 90 days ago, with counts."""
    made = make_artifacts(org_id, 5, remote_path=lambda i: f"d/{i}.txt")
    now = timezone.now()
    stats = {0: (3, 1), 1: (9, 40), 2: (1, 90)}
    for index, (count, days) in stats.items():
        Artifact.objects.filter(id=made[index].id).update(
            download_count=count, last_downloaded_at=now - timedelta(days=days)
        )
    return {name: made[i] for i, name in enumerate(["recent", "popular", "old", "never_a", "never_b"])}


def _api_pages(owner, params: dict) -> list[str]:
    ids, cursor = [], None
    for _ in range(20):
        response = owner.get("/artifacts", {**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [a["id"] for a in body["artifacts"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("too many pages")


def test_artifact_json_carries_its_download_count_and_time(owner):
    made = _with_downloads(owner.org_id)
    body = owner.get(f"/artifacts/{made['popular'].id}").json()
    assert body["download_count"] == 9 and body["last_downloaded_at"]
    listed = {a["id"]: a for a in owner.get("/artifacts").json()["artifacts"]}
    assert listed[made["never_a"].id]["download_count"] == 0
    assert listed[made["never_a"].id]["last_downloaded_at"] is None


def test_api_sorts_by_downloads_across_pages(owner):
    made = _with_downloads(owner.org_id)
    ids = _api_pages(owner, {"sort": "downloads"})
    assert ids[:3] == [made["popular"].id, made["recent"].id, made["old"].id]
    assert sorted(ids[3:]) == sorted([made["never_a"].id, made["never_b"].id])


def test_api_sorts_by_last_download_with_the_never_downloaded_last(owner):
    made = _with_downloads(owner.org_id)
    ids = _api_pages(owner, {"sort": "last_downloaded"})
    assert ids == [made[n].id for n in ("recent", "popular", "old")] + sorted(
        [made["never_a"].id, made["never_b"].id], reverse=True
    )


def test_api_filters_artifacts_not_downloaded_in_n_days(owner):
    made = _with_downloads(owner.org_id)
    stale = set(_api_pages(owner, {"not_downloaded_days": 30}))
    assert stale == {made[n].id for n in ("popular", "old", "never_a", "never_b")}
    staler = {a["id"] for a in owner.get("/artifacts", {"not_downloaded_days": 60}).json()["artifacts"]}
    assert staler == {made[n].id for n in ("old", "never_a", "never_b")}


def test_api_filter_and_sort_combine(owner):
    made = _with_downloads(owner.org_id)
    ids = _api_pages(owner, {"not_downloaded_days": 30, "sort": "downloads"})
    assert ids[:2] == [made["popular"].id, made["old"].id] and len(ids) == 4


@pytest.mark.parametrize(
    "params, code",
    [
        ({"sort": "popularity"}, "VALIDATION_ERROR"),
        ({"not_downloaded_days": 0}, None),
        ({"not_downloaded_days": "soon"}, None),
        ({"sort": "last_downloaded", "cursor": "garbage"}, "INVALID_CURSOR"),
        ({"sort": "downloads", "cursor": "WyJzaXplIiwgMSwgImEiXQ"}, "INVALID_CURSOR"),
    ],
)
def test_api_refuses_a_bad_sort_filter_or_cursor_with_a_4xx(owner, params, code):
    response = owner.get("/artifacts", params)
    assert 400 <= response.status_code < 500, response.content
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_api_keeps_the_default_order_and_its_cursors(owner):
    made = make_artifacts(owner.org_id, 3)
    first = owner.get("/artifacts", {"limit": 2}).json()
    again = owner.get("/artifacts", {"limit": 2, "sort": "newest"}).json()
    assert [a["id"] for a in first["artifacts"]] == [made[2].id, made[1].id] == [a["id"] for a in again["artifacts"]]
    rest = owner.get("/artifacts", {"limit": 2, "sort": "newest", "cursor": first["next_cursor"]}).json()
    assert [a["id"] for a in rest["artifacts"]] == [made[0].id]


def test_another_organizations_downloads_are_not_listed(owner, stranger):
    _with_downloads(owner.org_id)
    assert stranger.get("/artifacts", {"sort": "downloads"}).json()["artifacts"] == []
    assert stranger.get("/artifacts", {"not_downloaded_days": 1}).json()["artifacts"] == []


@pytest.mark.parametrize("sort", ["downloads", "last_downloaded"])
def test_dashboard_pages_through_download_sorts(dashboard, monkeypatch, sort):
    monkeypatch.setattr(artifact_views, "PAGE_SIZE", 2)
    made = _with_downloads(dashboard.org_id)
    ids = all_pages(dashboard.viewer, reverse("artifact-list") + f"?sort={sort}")
    assert sorted(ids) == sorted(a.id for a in made.values())
    first = {"downloads": "popular", "last_downloaded": "recent"}[sort]
    assert ids[0] == made[first].id


def test_dashboard_filters_not_downloaded_in_30_days(dashboard):
    made = _with_downloads(dashboard.org_id)
    response = dashboard.viewer.get(reverse("artifact-list"), {"stale": "on"})
    assert response.status_code == 200
    assert set(listed_ids(response)) == {made[n].id for n in ("popular", "old", "never_a", "never_b")}
    text = page_text(response)
    assert "Not downloaded in 30 days" in text and "Clear search and filters" in text


def test_dashboard_rows_show_downloads(dashboard):
    _with_downloads(dashboard.org_id)
    text = page_text(dashboard.viewer.get(reverse("artifact-list"), {"sort": "downloads"}))
    assert "9 downloads, last" in text and "1 download, last" in text


def _queries(client, url: str, params: dict) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured.captured_queries)


def test_dashboard_download_sorts_cost_what_the_plain_list_costs(dashboard):
    _with_downloads(dashboard.org_id)
    url = reverse("artifact-list")
    dashboard.viewer.get(url)
    plain = _queries(dashboard.viewer, url, {})
    assert _queries(dashboard.viewer, url, {"sort": "downloads", "stale": "on"}) == plain
    make_artifacts(dashboard.org_id, 60)
    assert _queries(dashboard.viewer, url, {"sort": "downloads", "stale": "on"}) == plain
    # The downloaded half and the never-downloaded half are read apart.
    assert _queries(dashboard.viewer, url, {"sort": "last_downloaded"}) == plain + 1
