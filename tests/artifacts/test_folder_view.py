"""The folder view and the summaries behind it, kept in step through upload, delete and expiry."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from artifacts.models import Artifact, ArtifactFolder, ArtifactPathHead
from artifacts.prefix_selectors import artifact_folder_page
from artifacts.prefixes import folder_chain, folder_of
from artifacts.services import artifact_delete, artifact_expire
from core.actor import Actor
from tests.factories import make_artifacts, put_artifact


def listing(org_id: str, path: str = "", sort: str = "name", limit: int = 3) -> list[str]:
    """Every folder name, then every path, page after page."""
    names, cursor = [], None
    for _ in range(100):
        page = artifact_folder_page(organization_id=org_id, path=path, sort=sort, cursor=cursor, limit=limit)
        names += [f"{f.name} ({f.artifact_count}, {f.total_size})" for f in page.folders]
        names += [f"{h.remote_path} v{h.latest.version}/{h.versions}" for h in page.heads]
        cursor = page.next_cursor
        if cursor is None:
            return names
    raise AssertionError("too many pages")


def test_folder_of_and_its_chain():
    assert folder_of("a/b/c.txt") == "a/b/"
    assert folder_of("c.txt") == ""
    assert folder_chain("a/b/") == [("", ""), ("a/", ""), ("a/b/", "a/")]
    assert folder_chain("") == [("", "")]


def test_a_folder_lists_its_subfolders_with_totals_then_one_row_per_path(owner):
    start = timezone.now() - timedelta(days=1)
    for version in (1, 2, 3):
        make_artifacts(
            owner.org_id,
            1,
            remote_path="runs/model.bin",
            version=version,
            size=100 * version,
            created_at=start + timedelta(minutes=version),
        )
    make_artifacts(owner.org_id, 2, remote_path=lambda i: f"runs/r{i}/log.txt", size=10)
    make_artifacts(owner.org_id, 1, remote_path="runs/r0/deep/x.txt", size=5)
    make_artifacts(owner.org_id, 1, remote_path="top.txt", size=1)
    assert listing(owner.org_id) == ["runs/ (6, 625)", "top.txt v1/1"]
    assert listing(owner.org_id, "runs/") == ["r0/ (2, 15)", "r1/ (1, 10)", "runs/model.bin v3/3"]
    assert listing(owner.org_id, "runs/r0/", limit=1) == ["deep/ (1, 5)", "runs/r0/log.txt v1/1"]
    page = artifact_folder_page(organization_id=owner.org_id, path="runs/r0")
    assert (page.path, page.artifact_count, page.total_size) == ("runs/r0/", 2, 15)
    assert [(c.name, c.path) for c in page.crumbs] == [("All artifacts", ""), ("runs", "runs/"), ("r0", "runs/r0/")]


def test_files_sort_by_name_newest_and_size_across_pages(owner):
    made = make_artifacts(owner.org_id, 7, remote_path=lambda i: f"d/f{i}.txt")
    for i, artifact in enumerate(made):
        Artifact.objects.filter(id=artifact.id).update(size=(i * 37) % 11)
        ArtifactPathHead.objects.filter(latest=artifact).update(latest_size=(i * 37) % 11)
    by_name = [f"d/f{i}.txt v1/1" for i in range(7)]
    assert listing(owner.org_id, "d/", limit=2) == by_name
    assert listing(owner.org_id, "d/", sort="newest", limit=2) == by_name[::-1]
    sizes = {f"d/f{i}.txt v1/1": (i * 37) % 11 for i in range(7)}
    assert listing(owner.org_id, "d/", sort="size", limit=2) == sorted(sizes, key=lambda n: (-sizes[n], n))


def test_upload_delete_and_expiry_keep_the_summaries_in_step(owner):
    first = put_artifact(owner, "reports/q1.pdf", b"12345")
    second = put_artifact(owner, "reports/q1.pdf", b"1234567")
    assert listing(owner.org_id, "reports/") == ["reports/q1.pdf v2/2"]
    assert ArtifactFolder.objects.get(organization_id=owner.org_id, path="reports/").total_size == 12
    artifact_delete(actor=Actor.system(owner.org_id), artifact=Artifact.objects.get(id=second.id))
    assert listing(owner.org_id, "reports/") == ["reports/q1.pdf v1/1"]
    assert listing(owner.org_id) == ["reports/ (1, 5)"]
    Artifact.objects.filter(id=first.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert artifact_expire() == 1
    assert listing(owner.org_id) == []
    assert not ArtifactFolder.objects.filter(organization_id=owner.org_id).exists()
    assert not ArtifactPathHead.objects.filter(organization_id=owner.org_id).exists()


def test_the_folder_page_for_owner_stranger_and_anonymous(dashboard, django_assert_num_queries):
    make_artifacts(dashboard.org_id, 3, remote_path=lambda i: f"out/{i}/a.txt")
    make_artifacts(dashboard.org_id, 2, remote_path=lambda i: f"out/b{i}.txt")
    url = reverse("artifact-folders")
    page = dashboard.viewer.get(url, {"path": "out/"})
    text = page.content.decode()
    assert page.status_code == 200
    assert re.findall(r'class="path" href="/artifacts/folders/\?path=([^"]+)"', text)[-3:] == [
        "out/0/",
        "out/1/",
        "out/2/",
    ]
    assert "b0.txt" in text and "b1.txt" in text and "5 artifacts" in text
    assert "Download" in text and "Copy link" in text and "1 version" in text
    # A viewer cannot make share links, so only a member is offered one.
    assert "Share<span" not in text
    assert "Share<span" in dashboard.member.get(url, {"path": "out/"}).content.decode()
    assert dashboard.stranger.get(url, {"path": "out/"}).content.decode().count("b0.txt") == 0
    assert dashboard.anonymous.get(url).status_code == 302
    bad = dashboard.viewer.get(url, {"path": "out/", "cursor": "garbage", "sort": "size"})
    assert bad.status_code == 200 and b"here is its first page" in bad.content
    dashboard.viewer.get(url)
    make_artifacts(dashboard.org_id, 60, remote_path=lambda i: f"out/more-{i}.txt")
    with django_assert_num_queries(FOLDER_QUERIES):
        dashboard.viewer.get(url, {"path": "out/"})


# Seven for the page, and two bounded counts of what lies directly in a folder of more than one page
FOLDER_QUERIES = 9
