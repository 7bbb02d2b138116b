"""The total above the artifact list and the folder view: exact from the folder summaries or
when few, "more than N" past the bound, in one query whatever the number of artifacts."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from artifacts import totals
from artifacts.search import parse_search
from artifacts.selectors import ArtifactFilters
from artifacts.totals import Total, artifact_list_total, folder_entries_total
from tests.factories import make_artifacts


def shown_total(client, **params) -> str:
    page = client.get(reverse("artifact-list"), params).content.decode()
    return " ".join(re.search(r'id="artifact-total"[^>]*>(.*?)</p>', page, re.S).group(1).split())


def test_the_words_of_a_total():
    assert str(Total(1, True)) == "1 artifact"
    assert str(Total(12_345, True)) == "12,345 artifacts"
    assert str(Total(10_000, False)) == "more than 10,000 artifacts"
    assert str(Total(3, True, "path")) == "3 paths"


def test_the_whole_organization_and_a_folder_are_counted_from_their_summaries(owner, django_assert_num_queries):
    make_artifacts(owner.org_id, 7, remote_path=lambda i: f"runs/{i}.txt")
    make_artifacts(owner.org_id, 3, remote_path=lambda i: f"other/{i}.txt")
    with django_assert_num_queries(1):
        whole = artifact_list_total(organization_id=owner.org_id, filters=ArtifactFilters(), search=None, grouped=False)
    assert whole == Total(10, True)
    folder = ArtifactFilters(path_prefix="runs/")
    assert artifact_list_total(organization_id=owner.org_id, filters=folder, search=None, grouped=False) == Total(
        7, True
    )


def test_a_search_or_filter_is_counted_up_to_the_bound(owner, monkeypatch, django_assert_num_queries):
    make_artifacts(owner.org_id, 8, sandbox_id="sbx_a", remote_path=lambda i: f"a/{i}.txt")
    make_artifacts(owner.org_id, 2, sandbox_id="sbx_b", remote_path=lambda i: f"b/{i}.txt")
    by_sandbox = ArtifactFilters(sandbox_id="sbx_a")
    with django_assert_num_queries(1):
        assert artifact_list_total(
            organization_id=owner.org_id, filters=by_sandbox, search=None, grouped=False
        ) == Total(8, True)
    monkeypatch.setattr(totals, "TOTAL_BOUND", 5)
    assert artifact_list_total(organization_id=owner.org_id, filters=by_sandbox, search=None, grouped=False) == Total(
        5, False
    )
    narrow = ArtifactFilters(sandbox_id="sbx_b")
    assert artifact_list_total(organization_id=owner.org_id, filters=narrow, search=None, grouped=False) == Total(
        2, True
    )
    searched = artifact_list_total(
        organization_id=owner.org_id, filters=ArtifactFilters(), search=parse_search("sbx_b"), grouped=False
    )
    assert searched == Total(2, True)


def test_paths_are_counted_once_each_in_the_grouped_view(owner):
    for version in (1, 2, 3):
        make_artifacts(owner.org_id, 1, remote_path="m/weights.bin", version=version, sandbox_id="sbx_x")
    make_artifacts(owner.org_id, 2, remote_path=lambda i: f"m/log{i}.txt", sandbox_id="sbx_x")
    for filters in (ArtifactFilters(), ArtifactFilters(path_prefix="m/"), ArtifactFilters(sandbox_id="sbx_x")):
        assert artifact_list_total(organization_id=owner.org_id, filters=filters, search=None, grouped=True) == Total(
            3, True, "path"
        )


def test_the_list_page_shows_its_total(dashboard):
    make_artifacts(dashboard.org_id, 60, remote_path=lambda i: f"out/{i}.txt")
    make_artifacts(dashboard.org_id, 2, remote_path=lambda i: f"keep/{i}.txt", sandbox_id="sbx_k")
    assert shown_total(dashboard.viewer) == "62 artifacts."
    assert shown_total(dashboard.viewer, sandbox="sbx_k") == "2 artifacts match this search."
    assert shown_total(dashboard.viewer, sandbox="sbx_none") == "0 artifacts match this search."


def test_the_list_page_says_more_than_the_bound(dashboard, monkeypatch):
    make_artifacts(dashboard.org_id, 12, sandbox_id="sbx_m")
    monkeypatch.setattr(totals, "TOTAL_BOUND", 10)
    assert shown_total(dashboard.viewer, sandbox="sbx_m") == "More than 10 artifacts match this search."


@pytest.mark.parametrize("bound, expected", [(100, Total(63, True, "item")), (50, Total(53, False, "item"))])
def test_a_folder_with_pages_counts_what_lies_directly_in_it(owner, monkeypatch, bound, expected):
    make_artifacts(owner.org_id, 60, remote_path=lambda i: f"d/{i}.txt")
    make_artifacts(owner.org_id, 3, remote_path=lambda i: f"d/sub{i}/x.txt")
    monkeypatch.setattr(totals, "TOTAL_BOUND", bound)
    assert folder_entries_total(organization_id=owner.org_id, path="d/") == expected


def test_the_folder_page_shows_its_totals(dashboard):
    make_artifacts(dashboard.org_id, 55, remote_path=lambda i: f"d/{i}.txt")
    page = dashboard.viewer.get(reverse("artifact-folders"), {"path": "d/"}).content.decode()
    total = " ".join(re.search(r'id="folder-total">(.*?)</p>', page, re.S).group(1).split())
    assert total.startswith("55 artifacts (every version)") and "55 items directly in it" in total
    small = dashboard.viewer.get(reverse("artifact-folders")).content.decode()
    assert "directly in it" not in small
