from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from artifacts import selectors
from artifacts import views as artifact_views
from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from core.actor import Actor
from sandboxes.models import Sandbox
from shares import views as share_views
from shares.models import ShareLink, ShareLinkState
from shares.worker import share_link_activate
from tests.factories import make_artifacts, put_artifact
from transfers import views as upload_views
from transfers.models import Transfer, TransferKind, TransferState

HTMX = {"HTTP_HX_REQUEST": "true"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def page_text(response) -> str:
    return response.content.decode()


def listed_ids(response) -> list[str]:
    return re.findall(r'href="/artifacts/(art_[0-9a-z]+)/"', page_text(response))


def next_link(response) -> str | None:
    """The "Load more" link: the one link that carries a cursor."""
    links = set(re.findall(r'href="(/artifacts/\?[^"]*cursor=[^"]+)"', page_text(response)))
    assert len(links) <= 1, links
    return links.pop().replace("&amp;", "&") if links else None


def all_pages(client, url: str, *, limit: int = 50) -> list[str]:
    ids: list[str] = []
    for _ in range(limit):
        response = client.get(url)
        assert response.status_code == 200
        ids += listed_ids(response)
        url = next_link(response)
        if url is None:
            return ids
    raise AssertionError("too many pages")


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(artifact_views, "PAGE_SIZE", 5)


# --- who may do what ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_everywhere(dashboard, owner):
    artifact = put_artifact(owner, "a.txt", b"hello", "text/plain")
    urls = [
        reverse("artifact-list"),
        reverse("artifact-upload"),
        reverse("artifact-detail", args=[artifact.id]),
        reverse("artifact-download", args=[artifact.id]),
        reverse("artifact-content", args=[artifact.id]),
        reverse("artifact-delete", args=[artifact.id]),
        reverse("artifact-share-list", args=[artifact.id]),
    ]
    for url in urls:
        response = dashboard.anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    for url in (reverse("artifact-share-create", args=[artifact.id]), reverse("artifact-upload")):
        assert dashboard.anonymous.post(url).status_code == 302
    # The upload page's script gets JSON it can show, not the sign-in page.
    for response in (
        dashboard.anonymous.post(reverse("artifact-upload-check"), {}, content_type="application/json"),
        dashboard.anonymous.put(reverse("artifact-upload-stream") + "?remote_path=x", b"x", content_type="text/plain"),
        dashboard.anonymous.post(reverse("artifact-upload-direct"), {}, content_type="application/json"),
    ):
        assert response.status_code == 401 and response.json()["error"]["code"] == "SIGNED_OUT"
    assert Artifact.objects.count() == 1


@pytest.mark.parametrize(
    "role, can_upload, can_share, can_delete",
    [
        ("viewer", False, False, False),
        ("member", True, True, False),
        ("admin", True, True, True),
        ("owner", True, True, True),
    ],
)
def test_the_role_matrix(dashboard, owner, role, can_upload, can_share, can_delete):
    client = dashboard.by_role()[role]
    artifact = put_artifact(owner, "docs/readme.txt", b"hello", "text/plain")
    # Everyone in the organization reads.
    assert client.get(reverse("artifact-list")).status_code == 200
    detail = client.get(reverse("artifact-detail", args=[artifact.id]))
    assert detail.status_code == 200
    download = client.get(reverse("artifact-download", args=[artifact.id]))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"hello"
    # Members and above upload and share; the page only offers what the role may do.
    assert client.get(reverse("artifact-upload")).status_code == (200 if can_upload else 404)
    stream = client.put(reverse("artifact-upload-stream") + "?remote_path=new.txt", b"new", content_type="text/plain")
    assert stream.status_code == (201 if can_upload else 404)
    check = client.post(
        reverse("artifact-upload-check"), {"remote_path": "x.txt", "size": 1}, content_type="application/json"
    )
    assert check.status_code == (200 if can_upload else 404)
    share = client.post(reverse("artifact-share-create", args=[artifact.id]), {"expires_in": 3600}, **HTMX)
    assert share.status_code == (200 if can_share else 404)
    assert (b"Create a share link" in detail.content) is can_share
    # Admins and owners delete.
    assert (b"Delete\xe2\x80\xa6" in detail.content) is can_delete
    assert client.get(reverse("artifact-delete", args=[artifact.id])).status_code == (200 if can_delete else 404)
    assert client.post(reverse("artifact-delete", args=[artifact.id])).status_code == (302 if can_delete else 404)
    assert Artifact.objects.get(id=artifact.id).state == (ArtifactState.TRASHED if can_delete else ArtifactState.READY)


def test_a_stranger_gets_404_for_every_artifact_of_another_organization(dashboard, owner):
    artifact = put_artifact(owner, "secret/plan.png", PNG, "image/png")
    link = ShareLink.objects.create(
        organization_id=owner.org_id, artifact=artifact, token_hash="0" * 64, state=ShareLinkState.ACTIVE
    )
    client = dashboard.stranger
    for name in ("artifact-detail", "artifact-download", "artifact-content", "artifact-delete", "artifact-share-list"):
        assert client.get(reverse(name, args=[artifact.id])).status_code == 404, name
    assert client.post(reverse("artifact-delete", args=[artifact.id])).status_code == 404
    assert client.post(reverse("artifact-share-create", args=[artifact.id]), {"expires_in": 3600}).status_code == 404
    assert client.get(reverse("artifact-share-status", args=[artifact.id, link.id]), **HTMX).status_code == 404
    assert client.post(reverse("artifact-share-revoke", args=[artifact.id, link.id])).status_code == 404
    listing = client.get(reverse("artifact-list"))
    assert listing.status_code == 200 and b"secret/plan.png" not in listing.content
    assert b"No artifacts yet" in listing.content
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.READY
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.ACTIVE


def test_a_member_cannot_reach_another_organizations_share_link_through_their_own_artifact(dashboard, owner, stranger):
    mine = put_artifact(owner, "mine.txt", b"mine", "text/plain")
    theirs = put_artifact(stranger, "theirs.txt", b"theirs", "text/plain")
    link = ShareLink.objects.create(
        organization_id=stranger.org_id, artifact=theirs, token_hash="1" * 64, state=ShareLinkState.ACTIVE
    )
    assert dashboard.owner.get(reverse("artifact-share-revoke", args=[mine.id, link.id])).status_code == 404
    assert dashboard.owner.post(reverse("artifact-share-revoke", args=[mine.id, link.id])).status_code == 404
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.ACTIVE


# --- the list ---------------------------------------------------------------------------------------


def test_the_list_shows_newest_first_with_humanized_sizes_and_times(dashboard):
    make_artifacts(dashboard.org_id, 3, size=5 * 1024 * 1024)
    response = dashboard.viewer.get(reverse("artifact-list"))
    text = page_text(response)
    assert response.status_code == 200
    assert text.index("out/file-0002.txt") < text.index("out/file-0001.txt") < text.index("out/file-0000.txt")
    assert "5.0\xa0MB" in text
    assert "ago" in text


def test_an_empty_organization_gets_a_clear_empty_state(dashboard):
    response = dashboard.member.get(reverse("artifact-list"))
    assert b"No artifacts yet" in response.content
    assert reverse("artifact-upload").encode() in response.content
    # A viewer is not offered an upload it may not make.
    assert reverse("artifact-upload").encode() not in dashboard.viewer.get(reverse("artifact-list")).content


def test_a_search_without_results_says_so(dashboard):
    make_artifacts(dashboard.org_id, 3)
    response = dashboard.viewer.get(reverse("artifact-list"), {"q": "nothing-like-this"})
    assert b"No artifact matches this search" in response.content
    assert b"clear the search" in response.content


def test_htmx_requests_get_the_fragment_alone(dashboard):
    make_artifacts(dashboard.org_id, 3)
    response = dashboard.viewer.get(
        reverse("artifact-list"), {"q": "file", "sort": "newest", "path": "", "sandbox": ""}, **HTMX
    )
    text = page_text(response)
    assert response.status_code == 200
    assert text.lstrip().startswith('<section id="artifact-results"')
    assert "<html" not in text and "<nav" not in text and "out/file-0001.txt" in text
    assert "HX-Request" in response["Vary"]
    # The address bar shows the search, not the form's empty fields.
    assert response["HX-Push-Url"] == "/artifacts/?q=file"


def test_a_history_restore_gets_the_whole_page(dashboard):
    make_artifacts(dashboard.org_id, 3)
    response = dashboard.viewer.get(reverse("artifact-list"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)
    assert b"<html" in response.content and b'id="artifact-results"' in response.content


def test_load_more_appends_the_next_rows_through_htmx_with_a_plain_link_too(dashboard, small_pages):
    make_artifacts(dashboard.org_id, 12)
    first = dashboard.viewer.get(reverse("artifact-list"))
    more = next_link(first)
    assert more and "cursor=" in more
    assert re.search(
        r'id="artifact-more".*hx-get="/artifacts/\?[^"]*cursor=[^"]*" hx-target="#artifact-more" hx-swap="outerHTML"',
        page_text(first),
        re.DOTALL,
    )
    fragment = dashboard.viewer.get(more, HTTP_HX_TARGET="artifact-more", **HTMX)
    text = page_text(fragment)
    assert text.lstrip().startswith("<tr") and "artifact-results" not in text and "<table" not in text
    assert listed_ids(fragment) and not set(listed_ids(fragment)) & set(listed_ids(first))
    assert 'id="artifact-more"' in text
    # Without JavaScript the same URL is a whole page from that point.
    page = dashboard.viewer.get(more)
    assert b"<html" in page.content and listed_ids(page) == listed_ids(fragment)
    assert b"Back to the first page" in page.content


@pytest.mark.parametrize("sort", ["newest", "oldest", "name", "size"])
def test_keyset_pages_cover_every_artifact_once_in_order(dashboard, small_pages, sort):
    made = make_artifacts(dashboard.org_id, 23, size=7, remote_path=lambda i: f"p/{(i * 7) % 23:02d}.txt")
    ids = all_pages(dashboard.viewer, reverse("artifact-list") + f"?sort={sort}")
    assert sorted(ids) == sorted(a.id for a in made)
    rows = {a.id: a for a in Artifact.objects.filter(id__in=ids)}
    keys = {
        "newest": lambda a: (-a.created_at.timestamp(), a.id),
        "oldest": lambda a: (a.created_at.timestamp(), a.id),
        "name": lambda a: (a.remote_path, -a.version),
        "size": lambda a: (-a.size, [-ord(c) for c in a.id]),
    }
    assert ids == sorted(ids, key=lambda i: keys[sort](rows[i]))


def test_a_mangled_cursor_starts_over_instead_of_failing(dashboard):
    make_artifacts(dashboard.org_id, 3)
    for cursor in ("garbage", "eyJ4IjogMX0", selectors._encode_sort_cursor(["a", 1], "name")):
        response = dashboard.viewer.get(reverse("artifact-list"), {"cursor": cursor, "sort": "size"})
        assert response.status_code == 200
        assert b"here is its first page" in response.content
        assert len(listed_ids(response)) == 3


def test_search_finds_words_in_the_path_and_in_metadata_values(dashboard):
    make_artifacts(
        dashboard.org_id, 2, remote_path=lambda i: f"reports/q{i + 1}-summary.pdf", content_type="application/pdf"
    )
    make_artifacts(dashboard.org_id, 1, remote_path="data/raw.bin", metadata={"model": "Claude-3", "step": "7"})
    make_artifacts(dashboard.org_id, 1, remote_path="data/other.bin", metadata={"note": "modèle français"})

    def found(**params) -> set[str]:
        response = dashboard.viewer.get(reverse("artifact-list"), params)
        assert response.status_code == 200
        return set(re.findall(r'class="path">([^<]+)</a>', page_text(response)))

    assert found(q="SUMMARY") == {"reports/q1-summary.pdf", "reports/q2-summary.pdf"}
    assert found(q="q2 summary") == {"reports/q2-summary.pdf"}
    assert found(q="claude") == {"data/raw.bin"}
    assert found(q="français") == {"data/other.bin"}
    assert found(q="model=Claude-3") == {"data/raw.bin"}
    assert found(q="model=claude") == set()  # key=value is exact
    assert found(q="model:claude") == {"data/raw.bin"}  # key:value, the start of the value
    assert found(q='step=7 "raw"') == {"data/raw.bin"}
    assert found(q="100%") == set()  # LIKE wildcards are taken literally


def test_filters_by_path_prefix_sandbox_session_type_and_dates(dashboard):
    now = timezone.now()
    make_artifacts(
        dashboard.org_id,
        2,
        remote_path=lambda i: f"runs/a/{i}.txt",
        sandbox_id="sbx_a",
        session_id="sess-1",
        created_at=now - timedelta(days=10),
    )
    make_artifacts(
        dashboard.org_id,
        2,
        remote_path=lambda i: f"runs/b/{i}.csv",
        sandbox_id="sbx_b",
        session_id="sess-2",
        content_type="text/csv",
        created_at=now - timedelta(days=2),
    )
    make_artifacts(dashboard.org_id, 1, remote_path="RUNS/upper.txt", created_at=now)

    def found(**params) -> set[str]:
        return set(
            re.findall(r'class="path">([^<]+)</a>', page_text(dashboard.viewer.get(reverse("artifact-list"), params)))
        )

    assert found(path="runs/") == {"runs/a/0.txt", "runs/a/1.txt", "runs/b/0.csv", "runs/b/1.csv"}
    assert found(path="runs/b") == {"runs/b/0.csv", "runs/b/1.csv"}
    assert found(sandbox="sbx_a") == {"runs/a/0.txt", "runs/a/1.txt"}
    assert found(session="sess-2") == {"runs/b/0.csv", "runs/b/1.csv"}
    assert found(content_type="text/csv") == {"runs/b/0.csv", "runs/b/1.csv"}
    day = (now - timedelta(days=10)).date().isoformat()
    assert found(created_from=day, created_to=day) == {"runs/a/0.txt", "runs/a/1.txt"}
    assert found(created_from=(now - timedelta(days=3)).date().isoformat()) == {
        "runs/b/0.csv",
        "runs/b/1.csv",
        "RUNS/upper.txt",
    }
    assert found(sandbox="sbx_b", q="1") == {"runs/b/1.csv"}


def test_a_broad_prefix_is_read_along_the_order_and_still_complete(dashboard, small_pages, monkeypatch):
    monkeypatch.setattr(selectors, "PREFIX_INDEX_LIMIT", 3)
    made = make_artifacts(dashboard.org_id, 12, remote_path=lambda i: f"{'keep' if i % 2 else 'skip'}/{i:02d}.txt")
    ids = all_pages(dashboard.viewer, reverse("artifact-list") + "?path=keep/")
    assert sorted(ids) == sorted(a.id for a in made if a.remote_path.startswith("keep/"))


def test_a_prefix_is_narrow_below_the_index_limit_and_broad_from_it(dashboard):
    make_artifacts(dashboard.org_id, 3, remote_path=lambda i: f"three/{i}.txt")
    make_artifacts(dashboard.org_id, 2, remote_path=lambda i: f"two/{i}.txt")
    assert selectors._prefix_is_narrow(dashboard.org_id, "two/", 3)
    assert not selectors._prefix_is_narrow(dashboard.org_id, "three/", 3)
    assert selectors._prefix_is_narrow(dashboard.org_id, "three/", 4)
    assert selectors._prefix_is_narrow(dashboard.org_id, "none/", 1)


def test_bad_filters_are_reported(dashboard):
    response = dashboard.viewer.get(
        reverse("artifact-list"), {"created_from": "2025-02-10", "created_to": "2025-02-01", "sort": "bogus"}
    )
    assert response.status_code == 200
    assert b"The end date is before the start date." in response.content
    assert b"Select a valid choice" in response.content


def test_a_search_finds_old_artifacts_on_its_first_page_in_every_order(dashboard, small_pages):
    make_artifacts(
        dashboard.org_id,
        3,
        remote_path=lambda i: f"old/needle-{i}.txt",
        start=timezone.now() - timedelta(days=600),
        size=1,
    )
    make_artifacts(dashboard.org_id, 40, remote_path=lambda i: f"new/hay-{i}.txt", size=100)
    first = dashboard.viewer.get(reverse("artifact-list"), {"q": "needle"})
    assert len(listed_ids(first)) == 3
    assert next_link(first) is None
    assert b"Search further" not in first.content
    for params in ("?q=needle", "?q=needle&sort=size", "?q=needle&sort=name&path=n", "?q=needle&view=paths"):
        ids = all_pages(dashboard.viewer, reverse("artifact-list") + params)
        assert len(ids) == (3 if "path=n" not in params else 0), params
    assert len(all_pages(dashboard.viewer, reverse("artifact-list") + "?q=hay&sort=oldest")) == 40


def test_versions_grouped_by_path_show_the_newest_and_a_count(dashboard, small_pages):
    start = timezone.now() - timedelta(days=1)
    for version in (1, 2, 3):
        make_artifacts(
            dashboard.org_id,
            1,
            remote_path="models/weights.bin",
            version=version,
            size=version * 1024,
            created_at=start + timedelta(minutes=version),
            sandbox_id="sbx_x" if version < 3 else "sbx_y",
        )
    make_artifacts(dashboard.org_id, 7, remote_path=lambda i: f"logs/{i}.txt", created_at=start)
    newest = Artifact.objects.get(remote_path="models/weights.bin", version=3)
    response = dashboard.viewer.get(reverse("artifact-list"), {"view": "paths", "path": "models/"})
    text = page_text(response)
    assert text.count('class="path">models/weights.bin<') == 1
    assert "3 versions" in text and f'href="/artifacts/{newest.id}/"' in text and "v3" in text and "3.0\xa0KB" in text
    # One row per path over several pages, in path order.
    paths = []
    url = reverse("artifact-list") + "?view=paths"
    while url:
        page = dashboard.viewer.get(url)
        paths += re.findall(r'class="path">([^<]+)</a>', page_text(page))
        url = next_link(page)
    assert paths == sorted({f"logs/{i}.txt" for i in range(7)} | {"models/weights.bin"})
    # A narrowing filter counts only the versions it keeps.
    filtered = page_text(dashboard.viewer.get(reverse("artifact-list"), {"view": "paths", "sandbox": "sbx_x"}))
    assert "2 versions" in filtered and "v2" in filtered


def test_the_list_costs_the_same_queries_at_10_and_200_artifacts(dashboard, django_assert_num_queries):
    make_artifacts(dashboard.org_id, 10, metadata={"k": "v"})
    url = reverse("artifact-list")
    dashboard.viewer.get(url)  # the session's first use
    with django_assert_num_queries(LIST_QUERIES):
        assert len(listed_ids(dashboard.viewer.get(url))) == 10
    make_artifacts(
        dashboard.org_id,
        190,
        start=timezone.now() - timedelta(days=300),
        metadata={"k": "v"},
        remote_path=lambda i: f"older/{i}.txt",
    )
    with django_assert_num_queries(LIST_QUERIES):
        assert len(listed_ids(dashboard.viewer.get(url))) == artifact_views.PAGE_SIZE


@pytest.mark.parametrize(
    "params, queries",
    [
        # Newest first, a search reads the index's keys, then their artifacts.
        ({"q": "file"}, 1),
        ({"q": "file model=x"}, 0),
        ({"sandbox": "sbx_1", "content_type": "text/plain", "created_from": "2020-01-01"}, 0),
        ({"path": "out/"}, 1),
        ({"sort": "size", "q": "file"}, 0),
        ({"view": "paths"}, 1),
        ({"view": "paths", "q": "file"}, 1),
        ({"view": "paths", "sandbox": "sbx_1"}, 1),
    ],
)
def test_searches_and_filters_cost_a_constant_number_of_queries(dashboard, django_assert_num_queries, params, queries):
    if connection.vendor == "postgresql" and "q" in params and not {"sort", "view"} & set(params):
        # PostgreSQL reads the newest window of the index first, then the GIN index for older ones.
        queries += 1
    make_artifacts(dashboard.org_id, 10, sandbox_id="sbx_1")
    url = reverse("artifact-list")
    dashboard.viewer.get(url)
    with django_assert_num_queries(LIST_QUERIES + queries):
        dashboard.viewer.get(url, params)
    make_artifacts(
        dashboard.org_id,
        190,
        sandbox_id="sbx_1",
        start=timezone.now() - timedelta(days=300),
        remote_path=lambda i: f"out/more-{i}.txt",
    )
    with django_assert_num_queries(LIST_QUERIES + queries):
        dashboard.viewer.get(url, params)


# session, user, membership, the organization switcher's memberships, the page of artifacts
LIST_QUERIES = 5


def test_user_content_in_the_list_is_escaped(dashboard):
    make_artifacts(
        dashboard.org_id,
        1,
        remote_path="<script>alert(1)</script>.txt",
        metadata={"<b>k</b>": "<img src=x onerror=alert(1)>"},
    )
    text = page_text(dashboard.viewer.get(reverse("artifact-list")))
    assert "<script>alert(1)" not in text and "<img src=x" not in text and "<b>k</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.txt" in text


# --- the detail page ------------------------------------------------------------------------------


def test_the_detail_page_shows_every_field_versions_and_a_copy_button(dashboard, owner):
    first = put_artifact(
        owner, "reports/q3.csv", b"a,b\n1,2\n", "text/csv", metadata='{"team": "finance", "quarter": "q3"}'
    )
    second = put_artifact(owner, "reports/q3.csv", b"a,b\n1,2\n3,4\n", "text/csv")
    response = dashboard.viewer.get(reverse("artifact-detail", args=[second.id]))
    text = page_text(response)
    for value in (second.id, second.checksum, "reports/q3.csv", "text/csv", str(second.size), "never"):
        assert value in text
    assert 'data-copy-target="artifact-checksum"' in text and "js/copy.js" in text
    assert f'href="/artifacts/{first.id}/"' in text and "(this one)" in text
    assert reverse("artifact-download", args=[second.id]) in text
    first_page = page_text(dashboard.viewer.get(reverse("artifact-detail", args=[first.id])))
    assert "finance" in first_page and "quarter" in first_page


def test_lineage_shows_the_sandbox_that_made_it_and_those_it_went_into(dashboard, owner):
    artifact = put_artifact(owner, "out/model.bin", b"weights")
    common = {
        "organization_id": owner.org_id,
        "host": "h",
        "cpus": "1",
        "memory": "1Gi",
        "memory_bytes": 1 << 30,
        "expires_at": timezone.now() + timedelta(hours=1),
    }
    maker = Sandbox.objects.create(session_id="sess-maker", **common)
    reader = Sandbox.objects.create(**common)
    Artifact.objects.filter(id=artifact.id).update(
        sandbox_id=maker.id, session_id="sess-maker", source_path="/workspace/out/model.bin"
    )
    Transfer.objects.create(
        organization_id=owner.org_id,
        kind=TransferKind.DOWNLOAD,
        artifact=artifact,
        sandbox_id=reader.id,
        path="/workspace/in/model.bin",
        state=TransferState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    Transfer.objects.create(
        organization_id=owner.org_id,
        kind=TransferKind.DOWNLOAD,
        artifact=artifact,
        sandbox_id="sbx_gone",
        path="/workspace/x",
        state=TransferState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    Transfer.objects.create(
        organization_id=owner.org_id,
        kind=TransferKind.DOWNLOAD,
        artifact=artifact,
        sandbox_id="sbx_failed",
        path="/workspace/y",
        state=TransferState.FAILED,
    )
    text = page_text(dashboard.viewer.get(reverse("artifact-detail", args=[artifact.id])))
    assert f'href="{reverse("sandbox-detail", args=[maker.id])}"' in text and "sess-maker" in text
    assert f'href="{reverse("sandbox-detail", args=[reader.id])}"' in text and "/workspace/in/model.bin" in text
    assert "sbx_gone" in text and 'href="/sandboxes/sbx_gone/"' not in text
    assert "sbx_failed" not in text


def test_download_is_an_audited_attachment(dashboard, owner):
    artifact = put_artifact(owner, "a <b>.html", b"<script>alert(1)</script>", "text/html")
    response = dashboard.viewer.get(reverse("artifact-download", args=[artifact.id]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff" and "sandbox" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"
    event = AuditEvent.objects.filter(action="artifact.download", resource=f"artifact:{artifact.id}").get()
    assert event.details["via"] == "dashboard" and event.actor == "viewer-user"


# --- previews ---------------------------------------------------------------------------------------


def preview_of(client, artifact) -> str:
    text = page_text(client.get(reverse("artifact-detail", args=[artifact.id])))
    return text[text.index('id="preview"') : text.index('id="lineage-heading"')]


def test_html_is_never_previewed(dashboard, owner):
    artifact = put_artifact(owner, "page.html", b"<script>alert(1)</script><h1>hi</h1>", "text/html")
    preview = preview_of(dashboard.viewer, artifact)
    assert "<script>alert(1)" not in preview and "&lt;script&gt;" not in preview and "<h1>hi" not in preview
    assert "No preview" in preview and reverse("artifact-download", args=[artifact.id]) in preview
    assert dashboard.viewer.get(reverse("artifact-content", args=[artifact.id])).status_code == 404


def test_plain_text_is_shown_escaped(dashboard, owner):
    artifact = put_artifact(owner, "notes.txt", b"before <script>alert(1)</script> after", "text/plain")
    preview = preview_of(dashboard.viewer, artifact)
    assert "<script>alert(1)" not in preview
    assert "before &lt;script&gt;alert(1)&lt;/script&gt; after" in preview and "<pre" in preview
    event = AuditEvent.objects.filter(action="artifact.preview", resource=f"artifact:{artifact.id}").get()
    assert event.details["bytes"] == artifact.size


def test_json_is_pretty_printed(dashboard, owner):
    artifact = put_artifact(owner, "data.json", b'{"b":[1,2],"a":"<x>"}', "application/json")
    preview = preview_of(dashboard.viewer, artifact)
    assert "{\n  &quot;b&quot;: [\n    1," in preview and "&lt;x&gt;" in preview


def test_a_long_text_shows_only_its_first_part(dashboard, owner):
    from artifacts.preview import PREVIEW_BYTES

    artifact = put_artifact(owner, "big.log", b"line\n" * (PREVIEW_BYTES // 5 + 1000), "text/plain")
    preview = preview_of(dashboard.viewer, artifact)
    assert "Showing the first 256.0\xa0KB" in preview
    assert preview.count("line") <= PREVIEW_BYTES // 5 + 10


def test_csv_becomes_an_escaped_table_of_the_first_rows(dashboard, owner):
    from artifacts.preview import CSV_ROWS

    body = "name,value\n" + "".join(f"<b>row{i}</b>,{i}\n" for i in range(CSV_ROWS + 50))
    artifact = put_artifact(owner, "table.csv", body.encode(), "text/csv")
    preview = preview_of(dashboard.viewer, artifact)
    assert '<th scope="col">name</th>' in preview
    assert "<td>&lt;b&gt;row0&lt;/b&gt;</td>" in preview and "<b>row" not in preview
    assert preview.count("<tr>") == CSV_ROWS and f"Showing the first {CSV_ROWS} rows" in preview


def test_markdown_is_rendered_and_sanitized(dashboard, owner):
    source = b'# Title\n\nSome *text* and [a link](https://example.com) and [bad](javascript:alert(1)).\n\n<img src=x onerror=alert(1)>\n\n<script>alert(2)</script>\n\n<a href="/artifacts/" onclick="x()">rel</a>\n'
    artifact = put_artifact(owner, "README.md", source, "text/markdown")
    preview = preview_of(dashboard.viewer, artifact)
    assert "<h1>Title</h1>" in preview and "<em>text</em>" in preview
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">a link</a>' in preview
    for bad in ("onerror", "<img", "alert(1)", "alert(2)", "<script", "javascript:", "onclick", 'href="/artifacts/"'):
        assert bad not in preview, bad


def test_svg_is_not_inlined(dashboard, owner):
    artifact = put_artifact(
        owner,
        "logo.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script></svg>',
        "image/svg+xml",
    )
    preview = preview_of(dashboard.viewer, artifact)
    assert "<svg" not in preview and "<img" not in preview and "No preview" in preview
    assert dashboard.viewer.get(reverse("artifact-content", args=[artifact.id])).status_code == 404


def test_images_load_from_a_sandboxed_content_route(dashboard, owner):
    artifact = put_artifact(owner, "shot.png", PNG, "image/png")
    preview = preview_of(dashboard.viewer, artifact)
    assert f'<img class="preview-image" src="{reverse("artifact-content", args=[artifact.id])}"' in preview
    response = dashboard.viewer.get(reverse("artifact-content", args=[artifact.id]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == "inline"
    assert response["X-Content-Type-Options"] == "nosniff" and response["Content-Security-Policy"].startswith("sandbox")
    assert b"".join(response.streaming_content) == PNG


def test_a_pdf_shows_in_a_sandboxed_frame(dashboard, owner):
    artifact = put_artifact(owner, "doc.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")
    preview = preview_of(dashboard.viewer, artifact)
    assert f'<iframe class="preview-pdf" sandbox src="{reverse("artifact-content", args=[artifact.id])}"' in preview
    response = dashboard.viewer.get(reverse("artifact-content", args=[artifact.id]))
    assert response["Content-Type"] == "application/pdf" and response["Content-Disposition"] == "inline"
    assert response["Content-Security-Policy"].startswith("sandbox") and response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    # A viewer's later range requests are not each recorded.
    dashboard.viewer.get(reverse("artifact-content", args=[artifact.id]), HTTP_RANGE="bytes=5-9")
    assert AuditEvent.objects.filter(action="artifact.preview", resource=f"artifact:{artifact.id}").count() == 1


def test_binary_files_get_no_preview(dashboard, owner):
    artifact = put_artifact(owner, "blob.bin", bytes(range(256)), "application/octet-stream")
    assert "No preview" in preview_of(dashboard.viewer, artifact)
    text_labelled = put_artifact(owner, "lies.txt", b"\x00\x01\x02binary", "text/plain")
    assert "does not look like text" in preview_of(dashboard.viewer, text_labelled)


# --- uploading ----------------------------------------------------------------------------------------


def stream_url(remote_path: str) -> str:
    from urllib.parse import urlencode

    return reverse("artifact-upload-stream") + "?" + urlencode({"remote_path": remote_path})


@pytest.fixture
def body_is_never_read(monkeypatch):
    """Fails any test whose request handling reads the whole body into memory."""

    def refuse(self):
        raise AssertionError("request.body was read")

    monkeypatch.setattr(HttpRequest, "body", property(refuse))


def test_the_upload_page_offers_drop_picker_progress_and_a_no_js_form(dashboard):
    text = page_text(dashboard.member.get(reverse("artifact-upload")))
    assert 'id="dropzone"' in text and 'type="file" multiple' in text and "<progress" in text
    assert "js/upload.js" in text
    assert f'data-stream-url="{reverse("artifact-upload-stream")}"' in text
    assert 'enctype="multipart/form-data"' in text and "csrfmiddlewaretoken" in text


def test_an_upload_is_streamed_into_exactly_one_artifact(dashboard, body_is_never_read, monkeypatch):
    from transfers import put

    chunks: list[int] = []
    real_write = put.blob_write

    def spy(key, source, **kwargs):
        def counted():
            for chunk in source:
                chunks.append(len(chunk))
                yield chunk

        return real_write(key, counted(), **kwargs)

    monkeypatch.setattr(put, "blob_write", spy)
    body = bytes(range(256)) * (12 * 1024)  # 3 MiB
    response = dashboard.member.put(
        stream_url("uploads/big.bin"),
        body,
        content_type="application/octet-stream",
        HTTP_X_ARTIFACT_METADATA='{"source": "dashboard", "note": "caf\\u00e9"}',
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert Artifact.objects.count() == 1
    artifact = Artifact.objects.get(id=data["id"])
    assert artifact.size == len(body) and artifact.checksum == "sha256:" + hashlib.sha256(body).hexdigest()
    assert artifact.metadata == {"source": "dashboard", "note": "café"} and artifact.created_by_label == "member-user"
    assert data["url"] == reverse("artifact-detail", args=[artifact.id])
    assert len(chunks) >= 3 and max(chunks) <= 1 << 20
    assert AuditEvent.objects.filter(action="artifact.upload", resource=f"artifact:{artifact.id}").count() == 1


def test_the_browser_type_is_kept_and_a_generic_one_guessed(dashboard):
    typed = dashboard.member.put(stream_url("a/readme.md"), b"# hi", content_type="text/markdown")
    assert typed.json()["content_type"] == "text/markdown"
    guessed = dashboard.member.put(stream_url("a/pic.png"), PNG, content_type="application/octet-stream")
    assert guessed.json()["content_type"] == "image/png"


def test_an_upload_over_the_limit_is_refused_before_reading_and_changes_nothing(
    dashboard, settings, body_is_never_read
):
    settings.ARTIFACT_MAX_BYTES = 1024
    response = dashboard.member.put(stream_url("too/big.bin"), b"x" * 2048, content_type="application/octet-stream")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "FILE_TOO_LARGE" and "2.0\xa0KB" in error["message"] and "1.0\xa0KB" in error["message"]
    assert Artifact.objects.count() == 0 and Transfer.objects.count() == 0


@pytest.mark.parametrize(
    "remote_path, message",
    [("", "must not be empty"), ("../etc/passwd", "'..'"), ("a//b", "empty"), ("bad\x01name", "control characters")],
)
def test_an_upload_with_a_bad_name_is_refused_with_a_readable_message(dashboard, remote_path, message):
    response = dashboard.member.put(stream_url(remote_path), b"data", content_type="text/plain")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REMOTE_PATH" and message in response.json()["error"]["message"]
    assert Artifact.objects.count() == 0 and Transfer.objects.count() == 0


def test_an_upload_with_bad_metadata_is_refused(dashboard):
    for header in ("not json", '["list"]', '{"k": 1}'):
        response = dashboard.member.put(
            stream_url("x.txt"), b"data", content_type="text/plain", HTTP_X_ARTIFACT_METADATA=header
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_METADATA"
    assert Artifact.objects.count() == 0


def test_the_upload_endpoint_keeps_csrf_protection(dashboard):
    from django.contrib.auth import get_user_model

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username="member-user"))
    refused = browser.put(stream_url("x.txt"), b"data", content_type="text/plain")
    assert refused.status_code == 403 and Artifact.objects.count() == 0
    page = browser.get(reverse("artifact-upload"))
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page_text(page)).group(1)
    accepted = browser.put(stream_url("x.txt"), b"data", content_type="text/plain", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201 and Artifact.objects.count() == 1
    check = browser.post(
        reverse("artifact-upload-check"), {"remote_path": "y.txt", "size": 3}, content_type="application/json"
    )
    assert check.status_code == 403


def test_the_check_reports_a_bad_name_or_size_before_any_byte_is_sent(dashboard, settings):
    settings.ARTIFACT_MAX_BYTES = 1000
    url = reverse("artifact-upload-check")
    ok = dashboard.member.post(
        url, {"remote_path": "/reports//q3.pdf/", "size": 10, "metadata": {"a": "b"}}, content_type="application/json"
    )
    assert ok.status_code == 400  # an empty segment
    ok = dashboard.member.post(
        url, {"remote_path": "/reports/q3.pdf", "size": 10, "metadata": {"a": "b"}}, content_type="application/json"
    )
    assert ok.status_code == 200 and ok.json()["remote_path"] == "reports/q3.pdf"
    large = dashboard.member.post(url, {"remote_path": "a.bin", "size": 5000}, content_type="application/json")
    assert large.status_code == 413 and "more than" in large.json()["error"]["message"]
    bad = dashboard.member.post(url, {"remote_path": "a/../b", "size": 1}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "remote_path"
    meta = dashboard.member.post(
        url, {"remote_path": "a", "size": 1, "metadata": {"k": 5}}, content_type="application/json"
    )
    assert meta.status_code == 400 and meta.json()["error"]["code"] == "INVALID_METADATA"
    assert dashboard.member.post(url, "nope", content_type="application/json").status_code == 400
    assert Artifact.objects.count() == 0


def test_the_plain_form_uploads_one_file_without_javascript(dashboard):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("q3 report.csv", b"a,b\n1,2\n", content_type="text/csv")
    response = dashboard.member.post(
        reverse("artifact-upload"),
        {"file": upload, "remote_path": "", "meta_key": ["team", ""], "meta_value": ["finance", ""]},
    )
    artifact = Artifact.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("artifact-detail", args=[artifact.id])
    assert (
        artifact.remote_path == "q3 report.csv"
        and artifact.content_type == "text/csv"
        and artifact.metadata == {"team": "finance"}
    )
    renamed = SimpleUploadedFile("x.bin", b"123")
    dashboard.member.post(reverse("artifact-upload"), {"file": renamed, "remote_path": "folder/y.bin"})
    assert Artifact.objects.filter(remote_path="folder/y.bin", size=3).exists()


def test_the_plain_form_refuses_large_files_and_bad_names_readably(dashboard, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    monkeypatch.setattr(upload_views, "FORM_UPLOAD_MAX_BYTES", 100)
    too_big = dashboard.member.post(reverse("artifact-upload"), {"file": SimpleUploadedFile("big.bin", b"x" * 100_000)})
    assert too_big.status_code == 413 and b"This form takes files up to 100" in too_big.content
    just_over = dashboard.member.post(reverse("artifact-upload"), {"file": SimpleUploadedFile("big.bin", b"x" * 101)})
    assert just_over.status_code == 413 and b"more than the 100" in just_over.content
    bad_name = dashboard.member.post(
        reverse("artifact-upload"), {"file": SimpleUploadedFile("ok.bin", b"x"), "remote_path": "a/../b"}
    )
    assert (
        bad_name.status_code == 400
        and b"must not contain empty, &#x27;.&#x27; or &#x27;..&#x27; segments" in bad_name.content
    )
    orphan_value = dashboard.member.post(
        reverse("artifact-upload"), {"file": SimpleUploadedFile("ok.bin", b"x"), "meta_key": [""], "meta_value": ["v"]}
    )
    assert orphan_value.status_code == 400 and b"needs a key" in orphan_value.content
    assert Artifact.objects.count() == 0


def test_the_plain_form_checks_csrf(dashboard):
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username="member-user"))
    response = browser.post(reverse("artifact-upload"), {"file": SimpleUploadedFile("a.txt", b"a")})
    assert response.status_code == 403 and Artifact.objects.count() == 0


# --- share links --------------------------------------------------------------------------------------


def test_creating_a_share_link_polls_until_it_is_active_then_shows_it_once(dashboard, owner, broker):
    artifact = put_artifact(owner, "share/me.txt", b"shared bytes", "text/plain")
    created = dashboard.member.post(
        reverse("artifact-share-create", args=[artifact.id]),
        {"expires_in": 86400, "max_downloads": 3, "password": ""},
        **HTMX,
    )
    text = page_text(created)
    assert created.status_code == 200 and text.lstrip().startswith('<section class="card" id="share-links"')
    link = ShareLink.objects.get(artifact=artifact)
    assert link.state == ShareLinkState.PENDING and link.max_downloads == 3 and not link.has_password
    status_url = reverse("artifact-share-status", args=[artifact.id, link.id])
    assert f'hx-get="{status_url}" hx-trigger="every 1s" hx-swap="outerHTML"' in text
    assert "no-store" in created["Cache-Control"]
    # Still pending: keep polling.
    pending = dashboard.member.get(status_url, **HTMX)
    assert pending.status_code == 200 and 'hx-trigger="every 1s"' in page_text(pending)
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    ready = dashboard.member.get(status_url, **HTMX)
    assert ready.status_code == 286 and "share-links-changed" in ready["HX-Trigger"]
    url = re.search(r'value="(http://testserver/s/[^"]+)"', page_text(ready)).group(1)
    assert 'hx-trigger="every 1s"' not in page_text(ready) and 'data-copy-target="share-url-' in page_text(ready)
    # The new-link block shows it once; afterwards the list of links offers it to copy again.
    again = dashboard.member.get(status_url, **HTMX)
    assert again.status_code == 286 and "/s/" not in page_text(again) and "copied again" in page_text(again)
    detail = dashboard.member.get(reverse("artifact-detail", args=[artifact.id]))
    assert f'value="{url}"' in page_text(detail) and "no-store" in detail["Cache-Control"]
    assert (
        share_views.SESSION_SHARE_TOKENS not in dashboard.member.session
        or not dashboard.member.session[share_views.SESSION_SHARE_TOKENS]
    )
    # The link works for anyone.
    assert Client().get(url.replace("http://testserver", "")).status_code == 200


def test_without_javascript_the_detail_page_shows_the_new_link_once(dashboard, owner):
    artifact = put_artifact(owner, "share/plain.txt", b"x", "text/plain")
    response = dashboard.member.post(reverse("artifact-share-create", args=[artifact.id]), {"expires_in": 3600})
    assert response.status_code == 302 and response["Location"].endswith("#share-links")
    link = ShareLink.objects.get(artifact=artifact)
    detail = dashboard.member.get(reverse("artifact-detail", args=[artifact.id]))
    assert b"Creating the share link" in detail.content and b"Reload this page" in detail.content
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    shown = dashboard.member.get(reverse("artifact-detail", args=[artifact.id]))
    assert re.search(rb'value="http://testserver/s/[A-Za-z0-9_-]{40,}"', shown.content)
    assert "no-store" in shown["Cache-Control"]
    # The new-link block shows once; later the list of links offers it to those who may manage it.
    later = dashboard.member.get(reverse("artifact-detail", args=[artifact.id]))
    assert (
        b"Your share link is ready" not in later.content and f'id="share-row-url-{link.id}"'.encode() in later.content
    )
    assert (
        b"Your share link is ready" not in dashboard.admin.get(reverse("artifact-detail", args=[artifact.id])).content
    )
    # A viewer may not manage links, so never sees one.
    assert b"/s/" not in dashboard.viewer.get(reverse("artifact-detail", args=[artifact.id])).content


def test_polling_gives_up_when_the_worker_takes_too_long_and_the_link_shows_later(dashboard, owner):
    artifact = put_artifact(owner, "share/slow.txt", b"x", "text/plain")
    dashboard.member.post(reverse("artifact-share-create", args=[artifact.id]), {"expires_in": 3600}, **HTMX)
    link = ShareLink.objects.get(artifact=artifact)
    ShareLink.objects.filter(id=link.id).update(
        created_at=timezone.now() - timedelta(seconds=share_views.SHARE_POLL_SECONDS + 5)
    )
    status_url = reverse("artifact-share-status", args=[artifact.id, link.id])
    slow = dashboard.member.get(status_url, **HTMX)
    assert (
        slow.status_code == 286
        and "taking longer" in page_text(slow)
        and 'hx-trigger="every 1s"' not in page_text(slow)
    )
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    assert re.search(
        rb'value="http://testserver/s/', dashboard.member.get(reverse("artifact-detail", args=[artifact.id])).content
    )


def test_share_form_errors_are_shown_and_create_nothing(dashboard, owner):
    artifact = put_artifact(owner, "share/bad.txt", b"x", "text/plain")
    response = dashboard.member.post(
        reverse("artifact-share-create", args=[artifact.id]),
        {"expires_in": 5, "max_downloads": 0, "password": "short"},
        **HTMX,
    )
    text = page_text(response)
    assert "Select a valid choice" in text and "greater than or equal to 1" in text and "at least 8 characters" in text
    assert ShareLink.objects.count() == 0


def test_the_share_list_shows_state_and_download_counts_and_revokes_after_confirmation(dashboard, owner):
    artifact = put_artifact(owner, "share/list.txt", b"x", "text/plain")
    link = ShareLink.objects.create(
        organization_id=owner.org_id,
        artifact=artifact,
        token_hash="2" * 64,
        state=ShareLinkState.ACTIVE,
        max_downloads=5,
        download_count=2,
        expires_at=timezone.now() + timedelta(days=1),
    )
    ShareLink.objects.create(
        organization_id=owner.org_id,
        artifact=artifact,
        token_hash="3" * 64,
        state=ShareLinkState.ACTIVE,
        expires_at=timezone.now() - timedelta(days=1),
    )
    fragment = dashboard.viewer.get(reverse("artifact-share-list", args=[artifact.id]), **HTMX)
    text = page_text(fragment)
    assert text.lstrip().startswith('<div id="share-list"') and 'hx-trigger="share-links-changed from:body"' in text
    assert "2 of 5" in text and "badge-active" in text and "badge-expired" in text
    assert "Revoke" not in text  # a viewer may not
    revoke_url = reverse("artifact-share-revoke", args=[artifact.id, link.id])
    assert dashboard.viewer.get(revoke_url).status_code == 404
    assert revoke_url in page_text(dashboard.member.get(reverse("artifact-detail", args=[artifact.id])))
    confirm = dashboard.member.get(revoke_url)
    assert confirm.status_code == 200 and b"Revoke this share link?" in confirm.content
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.ACTIVE
    done = dashboard.member.post(revoke_url)
    assert done.status_code == 302
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.REVOKED
    assert AuditEvent.objects.filter(action="share.revoke").count() == 1


def test_deleting_asks_for_confirmation_and_then_hides_the_artifact(dashboard, owner):
    artifact = put_artifact(owner, "gone.txt", b"x", "text/plain")
    confirm = dashboard.admin.get(reverse("artifact-delete", args=[artifact.id]))
    assert (
        b"Delete this artifact?" in confirm.content
        and Artifact.objects.get(id=artifact.id).state == ArtifactState.READY
    )
    response = dashboard.admin.post(reverse("artifact-delete", args=[artifact.id]))
    assert response.status_code == 302 and response["Location"] == reverse("artifact-list")
    assert dashboard.admin.get(reverse("artifact-detail", args=[artifact.id])).status_code == 404
    assert b'class="path">gone.txt<' not in dashboard.admin.get(reverse("artifact-list")).content
    assert AuditEvent.objects.filter(action="artifact.delete", resource=f"artifact:{artifact.id}").count() == 1


@pytest.mark.worker
def test_a_share_link_made_on_the_dashboard_is_activated_by_the_worker(dashboard, owner, live):
    artifact = put_artifact(owner, "live/shared.txt", b"live bytes", "text/plain")
    created = dashboard.member.post(reverse("artifact-share-create", args=[artifact.id]), {"expires_in": 3600}, **HTMX)
    assert created.status_code == 200
    link = ShareLink.objects.get(artifact=artifact)
    status_url = reverse("artifact-share-status", args=[artifact.id, link.id])
    shown_url = re.compile(r'value="http://testserver(/s/[^"]+)"')
    # A fast worker may have activated the link before the create response was rendered:
    # then that response shows the URL (once) and polling is not needed.
    response = created
    deadline = time.monotonic() + 30
    while not shown_url.search(page_text(response)):
        response = dashboard.member.get(status_url, **HTMX)
        if response.status_code == 286:
            break
        assert response.status_code == 200 and 'hx-trigger="every 1s"' in page_text(response)
        assert time.monotonic() < deadline, "the worker did not activate the link"
        time.sleep(0.2)
    url = shown_url.search(page_text(response)).group(1)
    recipient = Client()
    assert recipient.get(url).status_code == 200
    download = recipient.get(url + "/download")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"live bytes"
    assert ShareLink.objects.get(id=link.id).state == ShareLinkState.ACTIVE
