"""Opening a folder artifact: its entries a page at a time, one file's bytes and presigned URL, the
whole folder as a streamed .tar.gz or .zip; the dashboard's file browser; the manifest's checks."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile

import pytest
from django.urls import reverse

from artifacts.manifests import (
    FolderTooLarge,
    FolderTooManyEntries,
    ManifestEntry,
    ManifestInvalid,
    manifest_check,
    manifest_checksum,
)
from audit.models import AuditEvent
from tests.factories import make_folder, put_artifact

TREE = {
    "README.md": b"# Hello\n<script>alert(1)</script>\n",
    "bin/run.sh": b"#!/bin/sh\necho run\n",
    "bin/tool": "run.sh",
    "data/a.csv": b"a,b\n1,2\n",
    "data/empty": None,
    "suid": b"x",
}
MODES = {"bin/run.sh": 0o755, "suid": 0o4755}


@pytest.fixture
def folder(owner):
    return make_folder(owner.org_id, "builds/site", TREE, modes=MODES)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_entries_are_listed_by_directory_and_by_prefix_a_page_at_a_time(owner, folder):
    top = owner.get(f"/artifacts/{folder.id}/files", {"dir": ""}).json()
    assert [e["path"] for e in top["entries"]] == ["README.md", "bin", "data", "suid"]
    assert top["checksum"] == folder.checksum
    run = owner.get(f"/artifacts/{folder.id}/files", {"dir": "bin"}).json()["entries"]
    assert run[0] == {
        "path": "bin/run.sh",
        "name": "run.sh",
        "type": "file",
        "mode": 0o755,
        "size": len(TREE["bin/run.sh"]),
        "checksum": "sha256:" + hashlib.sha256(TREE["bin/run.sh"]).hexdigest(),
        "modified_at": run[0]["modified_at"],
        "link_target": "",
    }
    assert run[1]["type"] == "symlink" and run[1]["link_target"] == "run.sh"
    seen, cursor = [], None
    while True:
        page = owner.get(f"/artifacts/{folder.id}/files", {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["path"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == folder.entry_count == 8
    prefixed = owner.get(f"/artifacts/{folder.id}/files", {"prefix": "data/"}).json()["entries"]
    assert [e["path"] for e in prefixed] == ["data/a.csv", "data/empty"]


def test_listing_refuses_what_is_not_its_own(owner, stranger, folder):
    assert owner.get(f"/artifacts/{folder.id}/files", {"cursor": "%%%"}).json()["error"]["code"] == "INVALID_CURSOR"
    assert stranger.get(f"/artifacts/{folder.id}/files").status_code == 404
    single = put_artifact(owner, "one.txt", b"one")
    refused = owner.get(f"/artifacts/{single.id}/files")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "NOT_A_FOLDER"


def test_one_file_is_served_and_others_are_refused(owner, stranger, folder):
    got = owner.get(f"/artifacts/{folder.id}/files/content", {"path": "bin/run.sh"})
    assert got.status_code == 200 and body(got) == TREE["bin/run.sh"]
    assert 'filename="run.sh"' in got["Content-Disposition"]
    ranged = owner.client.get(
        f"/api/v1/artifacts/{folder.id}/files/content?path=data/a.csv",
        headers={**owner.headers(), "Range": "bytes=0-2"},
    )
    assert ranged.status_code == 206 and body(ranged) == b"a,b"
    for path, status, code in [
        ("nope", 404, "FILE_NOT_FOUND"),
        ("bin", 400, "NOT_A_FILE"),
        ("bin/tool", 400, "NOT_A_FILE"),
        ("../etc/passwd", 404, "FILE_NOT_FOUND"),
    ]:
        refused = owner.get(f"/artifacts/{folder.id}/files/content", {"path": path})
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), path
    assert stranger.get(f"/artifacts/{folder.id}/files/content", {"path": "suid"}).status_code == 404
    assert AuditEvent.objects.filter(action="artifact.download", details__path="bin/run.sh").exists()


def test_a_presigned_url_of_one_file_serves_that_file_only(owner, folder, client):
    made = owner.get(f"/artifacts/{folder.id}/files/url", {"path": "data/a.csv", "expires_in": 60})
    assert made.status_code == 200, made.content
    url = made.json()["url"]
    got = client.get(url)
    assert got.status_code == 200 and body(got) == TREE["data/a.csv"]
    assert client.get(url.replace("data%2Fa.csv", "suid")).status_code == 403
    assert client.get(url.replace("sig=", "sig=0")).status_code == 403


def test_the_whole_folder_streams_as_a_tar_gz_with_modes_and_links(owner, folder, client):
    got = owner.get(f"/artifacts/{folder.id}/content")
    assert got.status_code == 200 and got.streaming
    assert got["Content-Type"] == "application/gzip"
    assert 'filename="site.tar.gz"' in got["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(body(got)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members["site/README.md"]).read() == TREE["README.md"]
        assert members["site/bin/run.sh"].mode == 0o755
        assert members["site/bin/tool"].issym() and members["site/bin/tool"].linkname == "run.sh"
        assert members["site/data/empty"].isdir()
        assert members["site/suid"].mode == 0o755  # never setuid
    # Through the presigned URL too.
    url = owner.get(f"/artifacts/{folder.id}/url", {"expires_in": 60}).json()["url"]
    assert body(client.get(url))[:2] == b"\x1f\x8b"


def test_the_whole_folder_streams_as_a_zip(owner, folder):
    got = owner.get(f"/artifacts/{folder.id}/content", {"format": "zip"})
    assert got.status_code == 200 and got["Content-Type"] == "application/zip"
    assert 'filename="site.zip"' in got["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body(got))) as archive:
        assert archive.read("site/data/a.csv") == TREE["data/a.csv"]
        info = archive.getinfo("site/bin/run.sh")
        assert stat.S_IMODE(info.external_attr >> 16) == 0o755
        link = archive.getinfo("site/bin/tool")
        assert stat.S_ISLNK(link.external_attr >> 16) and archive.read(link) == b"run.sh"
    refused = owner.get(f"/artifacts/{folder.id}/content", {"format": "rar"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "VALIDATION_ERROR"


def test_the_dashboard_browses_a_folder_with_breadcrumbs_and_previews(owner, dashboard, folder):
    page = dashboard.viewer.get(reverse("artifact-detail", args=[folder.id])).content.decode()
    assert 'id="folder-browser"' in page and "bin/</a>" in page and "-rwsr-xr-x" in page
    inside = dashboard.viewer.get(reverse("artifact-detail", args=[folder.id]), {"dir": "bin"}).content.decode()
    assert "run.sh" in inside and "-rwxr-xr-x" in inside and "→" in inside and 'aria-current="page">bin<' in inside
    readme = dashboard.viewer.get(reverse("artifact-file", args=[folder.id]), {"path": "README.md"})
    assert readme.status_code == 200
    text = readme.content.decode()
    # Markdown, cut down to its allow-list as a single file's preview is: the script is gone.
    assert "<h1>Hello</h1>" in text and "alert(1)" not in text
    csv = dashboard.viewer.get(reverse("artifact-file", args=[folder.id]), {"path": "data/a.csv"}).content.decode()
    assert '<th scope="col">a</th>' in csv
    download = dashboard.viewer.get(reverse("artifact-file-download", args=[folder.id]), {"path": "suid"})
    assert body(download) == b"x"
    assert dashboard.stranger.get(reverse("artifact-detail", args=[folder.id])).status_code == 404
    assert dashboard.stranger.get(reverse("artifact-file", args=[folder.id]), {"path": "suid"}).status_code == 404
    assert dashboard.viewer.get(reverse("artifact-file", args=[folder.id]), {"path": "../x"}).status_code == 404


def entry(path: str, kind: str = "file", **fields) -> ManifestEntry:
    if kind == "file":
        fields.setdefault("sha256", "0" * 64)
    if kind == "symlink":
        fields.setdefault("link_target", "elsewhere")
    return ManifestEntry(path=path, type=kind, **fields)


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([entry("../x")], "'..'"),
        ([entry("a/../x")], "'..'"),
        ([entry("/etc/passwd")], "absolute"),
        ([entry("a\x00b")], "NUL"),
        ([entry("a" * 256)], "longer than 255"),
        ([entry("a/" * 1100 + "b")], "longer than 1024"),
        ([entry("link", "symlink"), entry("link/x")], "goes through the link"),
        ([entry("f"), entry("f/x")], "inside the file"),
        ([entry("x"), entry("x")], "twice"),
        ([entry("x", sha256="nothex")], "sha256"),
        ([entry("x", mode=0o10000)], "mode"),
        ([entry("x", "fifo")], "type"),
        ([entry("x", "symlink", link_target="")], "target"),
    ],
)
def test_a_manifest_entry_that_could_leave_its_folder_is_refused(entries, words):
    with pytest.raises(ManifestInvalid) as refused:
        manifest_check(entries, add_parents=True)
    assert words in refused.value.message
    assert refused.value.status == 422


def test_limits_and_the_canonical_checksum(settings):
    settings.FOLDER_MAX_ENTRIES = 2
    with pytest.raises(FolderTooManyEntries):
        manifest_check([entry("a"), entry("b"), entry("c")])
    with pytest.raises(FolderTooManyEntries):  # the directories added count too
        manifest_check([entry("d/a"), entry("d/b")], add_parents=True)
    settings.FOLDER_MAX_ENTRIES = 100
    settings.FOLDER_MAX_BYTES = 10
    with pytest.raises(FolderTooLarge) as too_large:
        manifest_check([entry("a", size=6), entry("b", size=6)])
    assert too_large.value.status == 413
    checked = manifest_check([entry("b/x", size=1), entry("a", "symlink")], add_parents=True)
    assert [e.path for e in checked] == ["a", "b", "b/x"]
    lines = (
        b'{"path":"a","type":"symlink","mode":420,"size":0,"sha256":"","link_target":"elsewhere"}\n'
        b'{"path":"b","type":"directory","mode":493,"size":0,"sha256":"","link_target":""}\n'
        b'{"path":"b/x","type":"file","mode":420,"size":1,"sha256":"' + b"0" * 64 + b'","link_target":""}\n'
    )
    assert manifest_checksum(checked) == "sha256:" + hashlib.sha256(lines).hexdigest()


def test_the_longest_paths_are_stored_and_listed(owner):
    import secrets

    names = [secrets.token_hex(125) for _ in range(4)]  # 4 names of 250 bytes: a path of 1003
    deep = "/".join(names)
    folder = make_folder(owner.org_id, "deep", {deep: b"deep"})
    listed = owner.get(f"/artifacts/{folder.id}/files", {"dir": "/".join(names[:3])}).json()["entries"]
    assert [e["path"] for e in listed] == [deep]
    with pytest.raises(ManifestInvalid):
        manifest_check([entry(deep + "/" + "x" * 30)], add_parents=True)
