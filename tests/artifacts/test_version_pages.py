"""The artifact page's aliases (shown on each version, moved by members, through htmx or a plain
form) and the compare view, tried as each role, a stranger and anonymous."""

from __future__ import annotations

import json
import re

import pytest

from artifacts.alias_services import alias_set
from artifacts.models import ArtifactAlias
from audit.models import AuditEvent
from core.actor import Actor
from tests.factories import put_artifact

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "aliases"}


@pytest.fixture
def three(owner):
    return [
        put_artifact(owner, "models/model.txt", f"weights {n}\n".encode(), "text/plain", json.dumps({"run": str(n)}))
        for n in range(3)
    ]


def set_alias(client, page_artifact, name: str, target, **extra):
    return client.post(f"/artifacts/{page_artifact.id}/aliases/", {"name": name, "artifact_id": target.id}, **extra)


def version_row(html: str, version: int) -> str:
    return re.search(rf'<tr id="version-{version}".*?</tr>', html, re.S).group(0)


def test_the_page_shows_aliases_on_their_versions_and_latest_on_the_newest(dashboard, owner, three):
    alias_set(actor=Actor(organization_id=owner.org_id, label="ci"), artifact=three[0], name="production")
    html = dashboard.viewer.get(f"/artifacts/{three[1].id}/").content.decode()
    assert "production" in version_row(html, 1) and "latest" not in version_row(html, 1)
    assert "latest" in version_row(html, 3) and "production" not in version_row(html, 3)
    assert 'id="alias-name"' not in html  # a viewer gets no form


def test_a_member_moves_an_alias_with_htmx_and_both_blocks_come_back(dashboard, three):
    assert set_alias(dashboard.member, three[2], "production", three[0], **HTMX).status_code == 200
    response = set_alias(dashboard.member, three[2], "production", three[1], **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="aliases"' in html and 'hx-swap-oob="outerHTML"' in html
    assert "production" in version_row(html, 2) and "production" not in version_row(html, 1)
    assert ArtifactAlias.objects.get().artifact_id == three[1].id
    event = AuditEvent.objects.filter(action="artifact.alias.move").order_by("-timestamp").first()
    assert event.actor == "member-user" and event.details["from"]["version"] == 1


def test_without_javascript_the_form_redirects_back_to_the_page(dashboard, three):
    response = set_alias(dashboard.member, three[2], "stable", three[2])
    assert response.status_code == 302 and response["Location"] == f"/artifacts/{three[2].id}/#aliases"
    assert ArtifactAlias.objects.get().name == "stable"
    response = dashboard.member.post(f"/artifacts/{three[2].id}/aliases/stable/remove/")
    assert response.status_code == 302 and not ArtifactAlias.objects.exists()


@pytest.mark.parametrize("name", ["", "latest", "x" * 64, "Bad Name"])
def test_a_bad_alias_name_shows_the_rule_and_changes_nothing(dashboard, three, name):
    response = set_alias(dashboard.member, three[0], name, three[0], **HTMX)
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    response = set_alias(dashboard.member, three[0], name, three[0], follow=True)
    assert "The alias was not set" in response.content.decode()
    assert not ArtifactAlias.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="artifact.alias").exists()


def test_the_form_cannot_put_an_alias_on_another_paths_version(dashboard, owner, three):
    other = put_artifact(owner, "models/other.txt", b"other\n")
    response = set_alias(dashboard.member, three[0], "production", other, **HTMX)
    assert "not of" in response.content.decode()
    assert not ArtifactAlias.objects.exists()


def test_a_viewer_a_stranger_and_anonymous_cannot_move_aliases(dashboard, three):
    assert set_alias(dashboard.viewer, three[0], "production", three[0]).status_code == 404
    assert set_alias(dashboard.stranger, three[0], "production", three[0]).status_code == 404
    assert set_alias(dashboard.anonymous, three[0], "production", three[0]).status_code == 302
    assert not ArtifactAlias.objects.exists()


def test_a_stranger_cannot_aim_an_alias_at_their_own_artifact(dashboard, stranger, three):
    theirs = put_artifact(stranger, "models/model.txt", b"theirs\n")
    response = set_alias(dashboard.member, three[0], "production", theirs, **HTMX)
    assert "not found" in response.content.decode()
    assert not ArtifactAlias.objects.exists()


def test_the_compare_view_shows_metadata_changes_and_an_escaped_diff(dashboard, owner):
    before = put_artifact(owner, "web/page.txt", b"<p>hello</p>\nsame\n", "text/plain", json.dumps({"k": "<i>a</i>"}))
    after = put_artifact(owner, "web/page.txt", b"<script>alert(1)</script>\nsame\n", "text/plain")
    response = dashboard.viewer.get(f"/artifacts/{after.id}/compare/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)" not in html and "+&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "-&lt;p&gt;hello&lt;/p&gt;" in html
    assert "&lt;i&gt;a&lt;/i&gt;" in html and "removed" in html
    assert AuditEvent.objects.filter(action="artifact.compare", details__against=before.id).exists()


def test_the_compare_view_takes_any_artifact_of_the_organization_by_id(dashboard, owner, three):
    other = put_artifact(owner, "elsewhere/x.txt", b"weights 0\n", "text/plain")
    html = dashboard.viewer.get(f"/artifacts/{three[0].id}/compare/", {"against_id": other.id}).content.decode()
    assert "elsewhere/x.txt" in html and "The same bytes." in html
    fragment = dashboard.viewer.get(
        f"/artifacts/{three[0].id}/compare/", {"against": three[2].id}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<section class="card" id="compare-result"')


def test_comparing_with_another_organizations_artifact_is_not_found(dashboard, stranger, three):
    theirs = put_artifact(stranger, "models/model.txt", b"theirs\n")
    response = dashboard.owner.get(f"/artifacts/{three[0].id}/compare/", {"against_id": theirs.id})
    assert response.status_code == 404 and "There is no artifact" in response.content.decode()
    assert "theirs" not in response.content.decode()
    assert dashboard.stranger.get(f"/artifacts/{three[0].id}/compare/").status_code == 404
    assert dashboard.anonymous.get(f"/artifacts/{three[0].id}/compare/").status_code == 302
    assert not AuditEvent.objects.filter(action="artifact.compare").exists()
    assert AuditEvent.objects.filter(action="auth.foreign_id", resource=f"artifact:{theirs.id}").exists()


def queries_of(request) -> int:
    """How many queries ``request()`` makes (counted as they run, not from the debug log, which
    each request clears)."""
    from django.db import connection

    count = 0

    def counter(execute, sql, params, many, context):
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        assert request().status_code == 200
    return count


def test_the_page_costs_the_same_queries_with_many_aliased_versions(dashboard, owner, three):
    actor = Actor(organization_id=owner.org_id, label="ci")
    alias_set(actor=actor, artifact=three[0], name="a")
    page = lambda: dashboard.viewer.get(f"/artifacts/{three[2].id}/")  # noqa: E731
    page()
    few = queries_of(page)
    for n in range(8):
        put_artifact(owner, "models/model.txt", f"more {n}\n".encode(), "text/plain")
    for n, version in enumerate(three):
        alias_set(actor=actor, artifact=version, name=f"b{n}")
        alias_set(actor=actor, artifact=version, name=f"c{n}")
    page()
    assert queries_of(page) == few


def test_the_compare_view_lists_a_folders_changed_entries(dashboard, owner):
    from tests.artifacts.test_diff import put_folder

    before = put_folder(owner, "data/site", {"index.html": b"<h1>old</h1>", "gone.css": b"x", "run.sh": (b"#!", 0o644)})
    after = put_folder(
        owner, "data/site", {"index.html": b"<h1>new</h1>", "<img src=x>.txt": b"y", "run.sh": (b"#!", 0o755)}
    )
    html = dashboard.viewer.get(f"/artifacts/{after.id}/compare/", {"against": before.id}).content.decode()
    entries = re.search(r'<table id="compare-entries"[^>]*>.*?</table>', html, re.S).group(0)
    assert "&lt;img src=x&gt;.txt" in entries and "<img" not in entries
    assert "gone.css" in entries and "removed" in entries
    assert "644" in entries and "755" in entries
    assert 'id="compare-text"' not in html
