"""Comparing two artifacts: field and metadata changes, a unified diff of text within a bound,
a folder's added, removed and changed entries; another organization's artifact is a 404."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from artifacts.entries import FolderEntry, folder_entries
from artifacts.models import Artifact
from audit.models import AuditEvent
from tests.factories import make_folder, put_artifact


def diff(user, artifact: Artifact, against: Artifact | str):
    against_id = against if isinstance(against, str) else against.id
    return user.get(f"/artifacts/{artifact.id}/diff", {"against": against_id})


def tar_gz(entries: dict[str, bytes | tuple[str, str] | tuple[bytes, int]]) -> bytes:
    """A folder archive as the worker writes one: files (bytes, or bytes and a mode), links ("link", target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, tuple) and value[0] == "link":
                info.type, info.linkname = tarfile.SYMTYPE, value[1]
                tar.addfile(info)
                continue
            data, mode = value if isinstance(value, tuple) else (value, 0o644)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def put_folder(user, remote_path: str, entries) -> Artifact:
    artifact = put_artifact(user, remote_path, tar_gz(entries), content_type="application/gzip")
    Artifact.objects.filter(id=artifact.id).update(is_archive=True)
    artifact.refresh_from_db()
    return artifact


def test_text_versions_get_a_unified_diff_and_their_metadata_changes(owner):
    v1 = put_artifact(owner, "notes/a.txt", b"one\ntwo\nthree\n", "text/plain", json.dumps({"run": "1", "old": "x"}))
    v2 = put_artifact(
        owner, "notes/a.txt", b"one\n2\nthree\n<b>four</b>\n", "text/plain", json.dumps({"run": "2", "new": "y"})
    )
    body = diff(owner, v2, v1).json()
    assert body["artifact_id"] == v2.id and body["against_id"] == v1.id and not body["identical"]
    changed = {c["field"]: (c["before"], c["after"]) for c in body["changes"]}
    assert changed["version"] == (1, 2) and changed["size"] == (v1.size, v2.size) and "checksum" in changed
    assert "content_type" not in changed
    assert body["metadata"] == {
        "added": {"new": "y"},
        "removed": {"old": "x"},
        "changed": {"run": {"before": "1", "after": "2"}},
    }
    text = body["text_diff"]
    assert text["status"] == "shown" and not text["truncated"]
    assert text["diff"].splitlines() == [
        "--- notes/a.txt (v1)",
        "+++ notes/a.txt (v2)",
        "@@ -1,3 +1,4 @@",
        " one",
        "-two",
        "+2",
        " three",
        "+<b>four</b>",
    ]
    assert body["entries"] is None
    event = AuditEvent.objects.get(action="artifact.compare")
    assert event.resource == f"artifact:{v2.id}" and event.details["against"] == v1.id


def test_the_same_bytes_are_identical_without_reading_them(owner):
    v1 = put_artifact(owner, "notes/a.txt", b"same\n", "text/plain")
    v2 = put_artifact(owner, "notes/b.txt", b"same\n", "text/plain", json.dumps({"k": "v"}))
    body = diff(owner, v2, v1).json()
    assert body["text_diff"]["status"] == "identical"
    assert {c["field"] for c in body["changes"]} == {"remote_path"}
    assert body["metadata"]["added"] == {"k": "v"}


def test_binary_and_oversized_files_get_no_text_diff(owner, settings):
    a = put_artifact(owner, "bin/x", b"\x00\x01\x02")
    b = put_artifact(owner, "bin/x", b"\x00\x01\x03")
    assert diff(owner, b, a).json()["text_diff"]["status"] == "binary"
    settings.DIFF_TEXT_MAX_BYTES = 10
    big = put_artifact(owner, "notes/big.txt", b"x" * 11 + b"\n", "text/plain")
    small = put_artifact(owner, "notes/big.txt", b"y\n", "text/plain")
    assert diff(owner, big, small).json()["text_diff"] == {"status": "too_large", "diff": "", "truncated": False}


def test_a_long_diff_is_cut_at_the_line_bound(owner, settings):
    settings.DIFF_MAX_LINES = 10
    a = put_artifact(owner, "notes/long.txt", "".join(f"a{i}\n" for i in range(100)).encode(), "text/plain")
    b = put_artifact(owner, "notes/long.txt", "".join(f"b{i}\n" for i in range(100)).encode(), "text/plain")
    text = diff(owner, b, a).json()["text_diff"]
    assert text["truncated"] and len(text["diff"].splitlines()) == 10


def test_folders_show_added_removed_and_changed_entries(owner):
    before = put_folder(
        owner,
        "data/shards",
        {
            "keep.txt": b"same",
            "gone.txt": b"bye",
            "edit.txt": b"old",
            "run.sh": (b"#!/bin/sh\n", 0o644),
            "ln": ("link", "keep.txt"),
        },
    )
    after = put_folder(
        owner,
        "data/shards",
        {
            "keep.txt": b"same",
            "new.txt": b"hi",
            "edit.txt": b"new!",
            "run.sh": (b"#!/bin/sh\n", 0o755),
            "ln": ("link", "new.txt"),
        },
    )
    body = diff(owner, after, before).json()
    assert body["text_diff"] is None
    entries = body["entries"]
    assert entries["complete"] is True
    assert [e["path"] for e in entries["added"]] == ["new.txt"]
    assert [e["path"] for e in entries["removed"]] == ["gone.txt"]
    changed = {c["path"]: (c["before"], c["after"]) for c in entries["changed"]}
    assert set(changed) == {"edit.txt", "ln", "run.sh"}
    assert changed["run.sh"][0]["mode"] == 0o644 and changed["run.sh"][1]["mode"] == 0o755
    assert changed["ln"][1] == {
        "path": "ln",
        "type": "symlink",
        "size": 0,
        "sha256": "",
        "mode": 0o644,
        "target": "new.txt",
    }
    assert changed["edit.txt"][1]["size"] == 4 and len(changed["edit.txt"][1]["sha256"]) == 64


def test_a_folder_listing_stops_at_the_entry_bound_and_says_so(owner, settings):
    settings.DIFF_MAX_ENTRIES = 3
    before = put_folder(owner, "data/many", {f"f{i}": b"x" for i in range(5)})
    after = put_folder(owner, "data/many", {f"f{i}": b"y" for i in range(5)})
    entries = diff(owner, after, before).json()["entries"]
    assert entries["complete"] is False and "first 3" in entries["reason"]
    assert len(entries["changed"]) == 3


def test_a_folder_over_the_archive_bound_is_not_read(owner, settings):
    folder = put_folder(owner, "data/big", {"a": b"x" * 1000})
    settings.DIFF_ARCHIVE_MAX_BYTES = 10
    listing = folder_entries(folder)
    assert listing is not None and not listing.complete and listing.entries == []


def test_a_damaged_archive_is_an_incomplete_listing_not_an_error(owner):
    folder = put_artifact(owner, "data/broken", b"\x1f\x8b not really gzip")
    Artifact.objects.filter(id=folder.id).update(is_archive=True)
    folder.refresh_from_db()
    listing = folder_entries(folder)
    assert listing is not None and not listing.complete


def test_a_file_has_no_folder_entries(owner):
    assert folder_entries(put_artifact(owner, "notes/a.txt", b"x")) is None


def test_a_folder_against_a_file_lists_the_folder_as_added(owner):
    file = put_artifact(owner, "data/thing", b"plain")
    folder = put_folder(owner, "data/thing", {"a.txt": b"a"})
    body = diff(owner, folder, file).json()
    assert {c["field"]: c["after"] for c in body["changes"]}["kind"] == "folder"
    assert [e["path"] for e in body["entries"]["added"]] == ["a.txt"]


def test_the_entry_sources_can_be_extended(owner, monkeypatch):
    from artifacts import entries

    file = put_artifact(owner, "data/listed", b"x")
    entry = FolderEntry("a", "file", 1, "00", 0o600)
    monkeypatch.setattr(entries, "ENTRY_SOURCES", [lambda artifact, limit: entries.FolderListing([entry])])
    assert folder_entries(file).entries == [entry]


def test_a_diff_against_another_organizations_artifact_is_a_404(owner, stranger):
    mine = put_artifact(owner, "notes/a.txt", b"mine\n", "text/plain")
    theirs = put_artifact(stranger, "notes/a.txt", b"theirs\n", "text/plain")
    for response in (diff(owner, mine, theirs), diff(stranger, mine, theirs), diff(owner, mine, "art_missing")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "ARTIFACT_NOT_FOUND"
    assert not AuditEvent.objects.filter(action="artifact.compare").exists()
    refusal = AuditEvent.objects.get(action="auth.foreign_id", organization_id=owner.org_id)
    assert refusal.resource == f"artifact:{theirs.id}" and refusal.outcome == "denied"


@pytest.mark.parametrize("query", [{}, {"against": "x" * 41}])
def test_a_diff_without_a_usable_against_is_a_400(owner, query):
    mine = put_artifact(owner, "notes/a.txt", b"mine\n", "text/plain")
    response = owner.get(f"/artifacts/{mine.id}/diff", query)
    assert response.status_code == 400 and "error" in response.json()


def test_an_anonymous_diff_is_refused(owner, client):
    mine = put_artifact(owner, "notes/a.txt", b"mine\n", "text/plain")
    assert client.get(f"/api/v1/artifacts/{mine.id}/diff", {"against": mine.id}).status_code == 401


def test_versions_stored_on_s3_are_compared_the_same_way(owner, s3):
    v1 = put_artifact(owner, "notes/s3.txt", b"alpha\nbeta\n", "text/plain")
    v2 = put_artifact(owner, "notes/s3.txt", b"alpha\ngamma\n", "text/plain")
    text = diff(owner, v2, v1).json()["text_diff"]
    assert text["status"] == "shown" and "-beta" in text["diff"] and "+gamma" in text["diff"]
    before = put_folder(owner, "data/s3-folder", {"a.txt": b"a", "b.txt": b"b"})
    after = put_folder(owner, "data/s3-folder", {"a.txt": b"A", "c.txt": b"c"})
    entries = diff(owner, after, before).json()["entries"]
    assert entries["complete"] and [e["path"] for e in entries["added"]] == ["c.txt"]
    assert [e["path"] for e in entries["removed"]] == ["b.txt"] and entries["changed"][0]["path"] == "a.txt"


def test_folder_artifacts_are_compared_by_their_manifests(owner):
    before = make_folder(
        owner.org_id, "data/tree", {"keep.txt": b"same", "gone.txt": b"bye", "run.sh": b"#!/bin/sh\n", "ln": "keep.txt"}
    )
    after = make_folder(
        owner.org_id,
        "data/tree-2",
        {"keep.txt": b"same", "new.txt": b"hi", "run.sh": b"#!/bin/sh\n", "ln": "new.txt"},
        modes={"run.sh": 0o755},
    )
    entries = diff(owner, after, before).json()["entries"]
    assert entries["complete"] is True
    assert [e["path"] for e in entries["added"]] == ["new.txt"]
    assert [e["path"] for e in entries["removed"]] == ["gone.txt"]
    changed = {c["path"]: (c["before"], c["after"]) for c in entries["changed"]}
    assert set(changed) == {"ln", "run.sh"}
    assert changed["run.sh"][1]["mode"] == 0o755 and changed["ln"][1]["target"] == "new.txt"
