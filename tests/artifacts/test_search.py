"""Search through the index, on whichever database the suite runs (SQLite's FTS5 or PostgreSQL's
tsvector): the same semantics, complete, newest first, and the index in step with the artifacts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from artifacts.models import Artifact, ArtifactSearchEntry
from artifacts.search import parse_search
from artifacts.search_index import FTS_TABLE, search_index_update
from artifacts.selectors import ArtifactFilters, artifact_browse, artifact_path_groups
from artifacts.services import artifact_delete, artifact_expire
from core.actor import Actor
from tests.factories import make_artifacts, put_artifact


def found(org_id: str, text: str, **options) -> list[str]:
    """Every remote_path the search finds, page after page, in its order."""
    paths, cursor = [], None
    for _ in range(100):
        page = artifact_browse(organization_id=org_id, search=parse_search(text), cursor=cursor, limit=3, **options)
        paths += [artifact.remote_path for artifact in page.artifacts]
        cursor = page.next_cursor
        if cursor is None:
            return paths
    raise AssertionError("too many pages")


@pytest.fixture
def catalogue(owner):
    now = timezone.now()
    rows = [
        ("runs/claude-sonnet/report.pdf", {"model": "claude-sonnet-4", "step": "7"}, "sbx_alpha1", ""),
        ("runs/claude/notes.txt", {"model": "Claude-3"}, "sbx_beta2", "sess-agent-x"),
        ("data/gpt_4o.out.json", {"model": "gpt-4o", "run-id": "2025.01/xyz"}, "", ""),
        ("data/other.bin", {"note": "modèle français", "q": 'he said "hi" (z) * OR NEAR'}, "", "sess-agent-y"),
        ("exports/claudette.csv", {}, "", ""),
    ]
    for offset, (path, metadata, sandbox_id, session_id) in enumerate(rows):
        make_artifacts(
            owner.org_id,
            1,
            remote_path=path,
            metadata=metadata,
            sandbox_id=sandbox_id,
            session_id=session_id,
            created_at=now - timedelta(hours=len(rows) - offset),
        )
    return owner.org_id


def test_a_word_matches_whole_words_and_their_beginnings(catalogue):
    assert found(catalogue, "claude") == [
        "exports/claudette.csv",
        "runs/claude/notes.txt",
        "runs/claude-sonnet/report.pdf",
    ]
    assert found(catalogue, "sonnet") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "son") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "laude") == []  # a word's middle is not its beginning
    assert found(catalogue, "CLAUDE-SONNET") == ["runs/claude-sonnet/report.pdf"]


def test_words_are_found_in_metadata_keys_values_and_ids(catalogue):
    assert found(catalogue, "français") == ["data/other.bin"]
    assert found(catalogue, "note") == ["data/other.bin", "runs/claude/notes.txt"]
    assert found(catalogue, "alpha1") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "sbx_beta2") == ["runs/claude/notes.txt"]
    assert found(catalogue, "agent") == ["data/other.bin", "runs/claude/notes.txt"]
    assert found(catalogue, "sess-agent-x") == ["runs/claude/notes.txt"]


def test_several_terms_must_all_match(catalogue):
    assert found(catalogue, "claude report") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "claude gpt") == []
    assert found(catalogue, "model=gpt-4o data") == ["data/gpt_4o.out.json"]


def test_key_equals_value_is_exact_and_key_colon_value_a_prefix(catalogue):
    assert found(catalogue, "model=Claude-3") == ["runs/claude/notes.txt"]
    assert found(catalogue, "model=claude-3") == []
    assert found(catalogue, "model=claude") == []
    assert found(catalogue, "model:claude") == ["runs/claude/notes.txt", "runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "model:claude-s") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "model:sonnet") == []
    assert found(catalogue, "step:") == ["runs/claude-sonnet/report.pdf"]
    assert found(catalogue, "nokey:claude") == []


def test_metadata_with_punctuation_and_search_syntax_is_plain_text(catalogue):
    assert found(catalogue, "run-id=2025.01/xyz") == ["data/gpt_4o.out.json"]
    assert found(catalogue, "run-id:2025.0") == ["data/gpt_4o.out.json"]
    assert found(catalogue, "2025.01") == ["data/gpt_4o.out.json"]
    assert found(catalogue, "xyz") == ["data/gpt_4o.out.json"]
    # FTS5 and tsquery operators in the box are words like any other, never syntax.
    for text in ('"hi"', "NEAR", "OR", "*", "(z)", "'", '"', "a:*", "!", "&|", "model:'", "NOT claude", "^x"):
        found(catalogue, text)
    assert found(catalogue, 'q:he said "hi"') == ["data/other.bin"]  # q:he, said and hi
    assert found(catalogue, "'q:he said \"hi\"'") == ["data/other.bin"]
    assert found(catalogue, "near") == ["data/other.bin"]
    assert found(catalogue, "NOT claude") == ["runs/claude/notes.txt"]  # "not", the start of "notes"


def test_a_key_with_a_colon_is_matched_exactly_with_equals():
    assert parse_search("k8s:ns=prod model:cl word").metadata == (("k8s:ns", "prod"),)
    assert parse_search("k8s:ns=prod model:cl word").prefixes == (("model", "cl"),)
    assert parse_search("k8s:ns=prod model:cl word").terms == ("word",)


def test_punctuation_alone_searches_for_nothing_and_lists_everything(catalogue):
    assert len(found(catalogue, "---")) == 5


def test_another_organizations_artifacts_are_never_found(catalogue, stranger):
    make_artifacts(stranger.org_id, 2, remote_path=lambda i: f"runs/claude-{i}.txt", metadata={"model": "Claude-3"})
    assert len(found(catalogue, "claude")) == 3
    assert found(stranger.org_id, "model=Claude-3") == ["runs/claude-1.txt", "runs/claude-0.txt"]


def test_an_old_artifact_is_on_the_first_page_among_many_newer(owner):
    make_artifacts(owner.org_id, 1, remote_path="archive/needle.txt", start=timezone.now() - timedelta(days=900))
    make_artifacts(owner.org_id, 300, remote_path=lambda i: f"new/hay-{i}.txt")
    page = artifact_browse(organization_id=owner.org_id, search=parse_search("needle"), limit=50)
    assert [a.remote_path for a in page.artifacts] == ["archive/needle.txt"]
    assert page.next_cursor is None


def test_results_are_newest_first_complete_and_keyset_paged(owner):
    made = make_artifacts(owner.org_id, 25, remote_path=lambda i: f"{'keep' if i % 3 else 'skip'}/{i:02d}.log")
    kept = [a.remote_path for a in sorted(made, key=lambda a: a.created_at, reverse=True) if a.remote_path[0] == "k"]
    assert found(owner.org_id, "keep") == kept
    assert found(owner.org_id, "keep", sort="oldest") == kept[::-1]
    assert found(owner.org_id, "keep", sort="name") == sorted(kept)
    assert found(owner.org_id, "log", filters=ArtifactFilters(path_prefix="keep/")) == kept


def test_artifacts_made_in_the_same_microsecond_each_have_a_place(owner):
    same = timezone.now() - timedelta(days=1)
    made = make_artifacts(owner.org_id, 7, remote_path=lambda i: f"twins/{i}.txt", created_at=same)
    assert sorted(found(owner.org_id, "twins")) == sorted(a.remote_path for a in made)
    assert ArtifactSearchEntry.objects.filter(artifact__in=made).values("sort_key").distinct().count() == 7


def test_the_path_view_groups_search_results(owner):
    for version in (1, 2):
        make_artifacts(owner.org_id, 1, remote_path="models/claude.bin", version=version)
    make_artifacts(owner.org_id, 1, remote_path="models/gpt.bin")
    page = artifact_path_groups(organization_id=owner.org_id, search=parse_search("claude"))
    assert [(group.remote_path, group.versions) for group in page.groups] == [("models/claude.bin", 2)]


def test_a_long_key_colon_value_is_checked_beyond_what_the_index_keeps(owner):
    long = "x" * 60
    make_artifacts(owner.org_id, 1, remote_path="a.txt", metadata={"k": long + "A"})
    make_artifacts(owner.org_id, 1, remote_path="b.txt", metadata={"k": long + "B"})
    assert found(owner.org_id, f"k:{long}b") == ["b.txt"]
    assert found(owner.org_id, f"k:{long}b", sort="size") == ["b.txt"]
    assert found(owner.org_id, f"k:{long}") == ["b.txt", "a.txt"]


def _index_size() -> int:
    if connection.vendor != "sqlite":
        return ArtifactSearchEntry.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {FTS_TABLE}")  # noqa: S608
        return cursor.fetchone()[0]


def test_an_upload_is_searchable_and_a_delete_takes_it_out(owner):
    artifact = put_artifact(owner, "uploads/quarterly-report.pdf", b"%PDF", metadata=json.dumps({"team": "Finance"}))
    assert found(owner.org_id, "quarterly team:fin") == ["uploads/quarterly-report.pdf"]
    listed = owner.get("/artifacts", {"q": "quarterly"}).json()
    assert [a["id"] for a in listed["artifacts"]] == [artifact.id]
    assert owner.delete(f"/artifacts/{artifact.id}").status_code == 200
    assert found(owner.org_id, "quarterly") == []
    assert not ArtifactSearchEntry.objects.filter(artifact_id=artifact.id).exists()
    assert _index_size() == 0


def test_expiry_takes_artifacts_out_of_the_index_and_hides_them_before_the_sweep(owner):
    soon = timezone.now() + timedelta(hours=1)
    made = make_artifacts(owner.org_id, 3, remote_path=lambda i: f"tmp/scratch-{i}.txt", expires_at=soon)
    make_artifacts(owner.org_id, 1, remote_path="tmp/scratch-kept.txt", start=timezone.now() - timedelta(days=1))
    Artifact.objects.filter(id=made[0].id).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Expired, not yet swept: still indexed, never shown, and the page still fills up.
    assert found(owner.org_id, "scratch") == ["tmp/scratch-kept.txt", "tmp/scratch-2.txt", "tmp/scratch-1.txt"]
    assert artifact_expire() == 1
    assert not ArtifactSearchEntry.objects.filter(artifact_id=made[0].id).exists()
    assert _index_size() == 3


def test_a_deleted_artifact_deleted_again_changes_nothing(owner):
    (artifact,) = make_artifacts(owner.org_id, 1, remote_path="once.txt")
    artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    assert _index_size() == 0


def test_indexing_again_replaces_the_words(owner):
    (artifact,) = make_artifacts(owner.org_id, 1, remote_path="first-name.txt")
    artifact.remote_path = "second-name.txt"
    search_index_update(artifact)
    assert found(owner.org_id, "first") == []
    assert found(owner.org_id, "second") == ["first-name.txt"]  # the row still holds its own path
    assert _index_size() == 1


def test_the_api_searches_with_its_filters_and_cursor(catalogue, owner):
    first = owner.get("/artifacts", {"q": "claude", "limit": 2}).json()
    assert [a["remote_path"] for a in first["artifacts"]] == ["exports/claudette.csv", "runs/claude/notes.txt"]
    rest = owner.get("/artifacts", {"q": "claude", "limit": 2, "cursor": first["next_cursor"]}).json()
    assert [a["remote_path"] for a in rest["artifacts"]] == ["runs/claude-sonnet/report.pdf"]
    assert rest["next_cursor"] is None
    narrowed = owner.get("/artifacts", {"q": "claude", "prefix": "runs/", "sandbox_id": "sbx_beta2"}).json()
    assert [a["remote_path"] for a in narrowed["artifacts"]] == ["runs/claude/notes.txt"]
    bad = owner.get("/artifacts", {"q": "claude", "cursor": "garbage"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_CURSOR"
    assert owner.get("/artifacts", {"q": "x" * 201}).status_code in (400, 422)


def test_the_api_search_is_scoped_to_the_callers_organization(catalogue, stranger):
    assert stranger.get("/artifacts", {"q": "claude"}).json()["artifacts"] == []


def test_a_long_word_is_found_by_all_of_its_beginning_not_only_what_the_index_keeps(owner):
    make_artifacts(owner.org_id, 1, remote_path="docs/internationalization.md")
    make_artifacts(owner.org_id, 1, remote_path="docs/internationalizing.md")
    assert found(owner.org_id, "internationalization") == ["docs/internationalization.md"]
    assert found(owner.org_id, "internationaliz") == ["docs/internationalizing.md", "docs/internationalization.md"]
    assert found(owner.org_id, "internationalizi", sort="name") == ["docs/internationalizing.md"]
    assert found(owner.org_id, "internationalizationx") == []


def test_matches_older_than_the_newest_window_are_found_in_order(owner, monkeypatch):
    from artifacts import search

    monkeypatch.setattr(search, "PG_WINDOW", 4)
    make_artifacts(
        owner.org_id, 3, remote_path=lambda i: f"old/rare-{i}.txt", start=timezone.now() - timedelta(days=90)
    )
    make_artifacts(owner.org_id, 12, remote_path=lambda i: f"new/common-{i}.txt")
    make_artifacts(owner.org_id, 1, remote_path="new/rare-newest.txt", start=timezone.now())
    assert found(owner.org_id, "rare") == ["new/rare-newest.txt", "old/rare-2.txt", "old/rare-1.txt", "old/rare-0.txt"]
    assert found(owner.org_id, "rare", sort="oldest") == [
        "old/rare-0.txt",
        "old/rare-1.txt",
        "old/rare-2.txt",
        "new/rare-newest.txt",
    ]
    assert len(found(owner.org_id, "common")) == 12
