"""The dashboard's folder upload: a plan checked before anything is stored, each file streamed,
one commit makes them one folder artifact; bad paths and limits refused with nothing stored."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import pytest
from django.http import HttpRequest
from django.urls import reverse

from artifacts.models import Artifact, ArtifactEntry, ArtifactState, Blob
from transfers.models import Transfer

FILES = {
    "index.html": b"<h1>hi</h1>",
    "css/site.css": b"body{}",
    "img/logo.png": b"\x89PNG...",
    "copy.html": b"<h1>hi</h1>",
}


def begin(client, remote_path="site", files=None):
    plan = [{"path": p, "size": len(b)} for p, b in (files or FILES).items()]
    return client.post(
        reverse("artifact-folder-begin"), {"remote_path": remote_path, "files": plan}, content_type="application/json"
    )


def send(client, plan: dict, path: str, data: bytes):
    return client.put(plan["file_url"] + "?" + urlencode({"path": path}), data, content_type="application/octet-stream")


def test_a_folder_is_sent_file_by_file_and_committed_as_one_artifact(dashboard):
    client = dashboard.member
    begun = begin(client)
    assert begun.status_code == 201, begun.content
    plan = begun.json()
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    for path, data in FILES.items():
        sent = send(client, plan, path, data)
        assert sent.status_code == 201, sent.content
        assert sent.json()["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    # The same bytes twice are one blob.
    assert Blob.objects.count() == 3
    committed = client.post(
        plan["commit_url"], {"entries": [{"path": "empty", "type": "directory"}]}, content_type="application/json"
    )
    assert committed.status_code == 201, committed.content
    artifact = Artifact.objects.get(id=committed.json()["id"])
    assert artifact.state == ArtifactState.READY and artifact.is_folder and artifact.version == 1
    paths = set(ArtifactEntry.objects.filter(artifact=artifact).values_list("path", flat=True))
    assert paths == {*FILES, "css", "img", "empty"}
    assert artifact.size == sum(len(b) for b in FILES.values())
    assert Transfer.objects.get(id=plan["upload_id"]).state == "succeeded"
    # Done: the upload no longer takes files.
    assert send(client, plan, "late.txt", b"x").status_code == 404
    page = client.get(reverse("artifact-detail", args=[artifact.id])).content.decode()
    assert 'id="folder-browser"' in page and "css/</a>" in page


def test_files_are_streamed_never_read_whole(dashboard, monkeypatch):
    plan = begin(dashboard.member, files={"big.bin": b"x" * (3 << 20)}).json()

    def refuse(self):
        raise AssertionError("request.body was read")

    monkeypatch.setattr(HttpRequest, "body", property(refuse))
    assert send(dashboard.member, plan, "big.bin", b"x" * (3 << 20)).status_code == 201


@pytest.mark.parametrize(
    ("path", "words"),
    [("../x", "'..'"), ("/etc/passwd", "absolute"), ("a\x00b", "NUL"), ("n" * 256, "longer than 255")],
)
def test_a_bad_path_in_the_plan_or_a_file_is_refused_with_nothing_stored(dashboard, path, words):
    refused = begin(dashboard.member, files={path: b"x"})
    if "\x00" in path:
        # The middleware refuses NUL in a JSON body's text before any view.
        assert refused.status_code in (400, 422)
    else:
        assert refused.status_code == 422, refused.content
        assert refused.json()["error"]["code"] == "INVALID_MANIFEST" and words in refused.json()["error"]["message"]
    assert not Artifact.objects.exists() and not Transfer.objects.exists()
    plan = begin(dashboard.member, files={"ok.txt": b"x"}).json()
    if "\x00" not in path:
        sent = send(dashboard.member, plan, path, b"x")
        assert sent.status_code == 422 and sent.json()["error"]["code"] == "INVALID_MANIFEST"
    assert not Blob.objects.exists() and not ArtifactEntry.objects.exists()


def test_a_link_entry_cannot_hold_files_and_the_commit_changes_nothing(dashboard):
    plan = begin(dashboard.member, files={"l/x": b"x"}).json()
    assert send(dashboard.member, plan, "l/x", b"x").status_code == 201
    refused = dashboard.member.post(
        plan["commit_url"],
        {"entries": [{"path": "l", "type": "symlink", "link_target": "/etc"}]},
        content_type="application/json",
    )
    assert refused.status_code == 422 and "goes through the link" in refused.json()["error"]["message"]
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    assert list(ArtifactEntry.objects.values_list("path", flat=True)) == ["l/x"]
    aborted = dashboard.member.post(plan["abort_url"], {}, content_type="application/json")
    assert aborted.status_code == 200
    assert not ArtifactEntry.objects.exists()


def test_a_folder_over_the_limits_is_refused_before_anything_is_stored(dashboard, settings):
    settings.FOLDER_MAX_ENTRIES = 3
    refused = begin(dashboard.member)  # 4 files and 2 directories
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "FOLDER_TOO_MANY_ENTRIES"
    settings.FOLDER_MAX_ENTRIES = 100
    settings.FOLDER_MAX_BYTES = 10
    refused = begin(dashboard.member)
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "FOLDER_TOO_LARGE"
    assert not Artifact.objects.exists()
    # A file bigger than planned still meets the limit when it arrives.
    plan = begin(dashboard.member, files={"a": b"x"}).json()
    assert send(dashboard.member, plan, "a", b"x" * 11).status_code == 413
    assert not ArtifactEntry.objects.exists()


def test_only_members_of_the_organization_send_folders(dashboard):
    assert begin(dashboard.viewer).status_code == 404
    assert begin(dashboard.anonymous).status_code == 401
    plan = begin(dashboard.member).json()
    # Another member's or organization's upload is not one's own.
    assert send(dashboard.admin, plan, "index.html", b"x").status_code == 404
    assert send(dashboard.stranger, plan, "index.html", b"x").status_code == 404
