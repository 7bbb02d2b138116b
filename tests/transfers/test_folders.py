"""A directory uploaded from a sandbox is a folder artifact (a manifest of blobs) and comes back
into another sandbox as the same folder: modes, links, checksums; bad manifests and targets are
refused with nothing changed."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from artifacts.manifests import ManifestEntry, manifest_checksum
from artifacts.models import Artifact, ArtifactEntry, ArtifactState, Blob
from audit.models import AuditEvent
from tests.conftest import WORKER_FOLDER_MAX_ENTRIES
from tests.factories import make_artifact

pytestmark = pytest.mark.worker

TREE = (
    "mkdir -p /workspace/dist/sub/deep /workspace/dist/empty"
    " && printf hello > /workspace/dist/a.txt"
    " && printf 'echo run' > /workspace/dist/sub/run.sh && chmod 755 /workspace/dist/sub/run.sh"
    " && printf secret > /workspace/dist/sub/deep/key && chmod 600 /workspace/dist/sub/deep/key"
    " && printf suid > /workspace/dist/suid && chmod 4755 /workspace/dist/suid"
    " && printf hello > /workspace/dist/sub/same.txt"
    " && ln -s /etc/passwd /workspace/dist/link"
    " && ln -s ../a.txt /workspace/dist/sub/rel"
    " && mkfifo /workspace/dist/pipe"
    " && chmod 700 /workspace/dist/sub/deep"
)


def run(owner, sid: str, command: str) -> dict:
    response = owner.post(f"/sandbox/{sid}/execute", {"command": command})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def second_sandbox(owner, live):
    response = owner.post("/sandbox/create", {"timeout_seconds": 600})
    assert response.status_code == 201
    return response.json()


def upload(owner, sid: str, path: str = "/workspace/dist", remote_path: str = "builds/dist"):
    return owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": path, "remote_path": remote_path})


def download(owner, sid: str, artifact_id: str, target: str):
    return owner.post(f"/sandbox/{sid}/artifacts/download", {"artifact_id": artifact_id, "target_path": target})


def folder_round_trip(owner, source: str, target: str) -> dict:
    run(owner, source, TREE)
    uploaded = upload(owner, source)
    assert uploaded.status_code == 200, uploaded.content
    artifact = uploaded.json()
    assert artifact["is_folder"] is True and artifact["is_archive"] is False
    assert artifact["content_type"] == "inode/directory"
    assert artifact["skipped"] == [{"path": "pipe", "reason": "a FIFO"}]
    entries = {entry.path: entry for entry in ArtifactEntry.objects.filter(artifact_id=artifact["id"])}
    assert set(entries) == {
        "a.txt",
        "empty",
        "link",
        "sub",
        "sub/deep",
        "sub/deep/key",
        "sub/rel",
        "sub/run.sh",
        "sub/same.txt",
        "suid",
    }
    assert artifact["entry_count"] == len(entries)
    assert entries["link"].type == "symlink" and entries["link"].link_target == "/etc/passwd"
    assert entries["sub/run.sh"].mode == 0o755 and entries["sub/deep/key"].mode == 0o600
    assert entries["suid"].mode == 0o4755  # recorded as it was; never made so (below)
    assert entries["a.txt"].sha256 == hashlib.sha256(b"hello").hexdigest()
    # Same bytes, one blob.
    assert entries["a.txt"].blob_id == entries["sub/same.txt"].blob_id
    assert artifact["size"] == len(b"hello") * 2 + len(b"echo run") + len(b"secret") + len(b"suid")
    manifest = sorted(
        (
            ManifestEntry(
                path=e.path, type=e.type, mode=e.mode, size=e.size, sha256=e.sha256, link_target=e.link_target
            )
            for e in entries.values()
        ),
        key=lambda e: e.path.encode(),
    )
    assert artifact["checksum"] == manifest_checksum(manifest)

    downloaded = download(owner, target, artifact["id"], "/workspace/restored")
    assert downloaded.status_code == 200, downloaded.content
    listing = run(owner, target, "cd /workspace/restored && find . -printf '%M %p %l\\n' | sort")["stdout"]
    lines = set(listing.splitlines())
    assert {
        "-rwxr-xr-x ./sub/run.sh ",
        "-rw------- ./sub/deep/key ",
        "drwx------ ./sub/deep ",
        "lrwxrwxrwx ./link /etc/passwd",
        "lrwxrwxrwx ./sub/rel ../a.txt",
        "-rwxr-xr-x ./suid ",
        "drwxr-xr-x ./empty ",
    } <= lines, listing
    assert not any("pipe" in line for line in lines)
    sums = run(owner, target, "cd /workspace/restored && sha256sum a.txt sub/deep/key")["stdout"]
    assert hashlib.sha256(b"hello").hexdigest() in sums and hashlib.sha256(b"secret").hexdigest() in sums
    # No temporary directory is left beside it.
    assert ".stowage-" not in run(owner, target, "ls -a /workspace")["stdout"]
    return artifact


def test_a_folder_goes_from_one_sandbox_into_another_as_the_same_folder(owner, sandbox, second_sandbox):
    source, target = sandbox["sandbox_id"], second_sandbox["sandbox_id"]
    artifact = folder_round_trip(owner, source, target)
    actions = set(AuditEvent.objects.filter(resource=f"artifact:{artifact['id']}").values_list("action", flat=True))
    assert {"artifact.upload", "artifact.download"} <= actions

    # The same request again is a retry; another remote_path is a new artifact that sends no bytes.
    blobs = Blob.objects.count()
    assert upload(owner, source).json()["id"] == artifact["id"]
    again = upload(owner, source, remote_path="builds/dist-copy").json()
    assert again["id"] != artifact["id"] and again["checksum"] == artifact["checksum"]
    assert Blob.objects.count() == blobs
    event = AuditEvent.objects.filter(resource=f"artifact:{again['id']}", action="artifact.upload").get()
    assert event.details["bytes_sent"] == 0 and event.details["files_sent"] == 0


def test_a_download_onto_an_existing_file_or_folder_is_refused_with_nothing_changed(owner, sandbox, second_sandbox):
    source, target = sandbox["sandbox_id"], second_sandbox["sandbox_id"]
    run(owner, source, "mkdir -p /workspace/dist && printf x > /workspace/dist/x")
    artifact = upload(owner, source).json()
    run(owner, target, "printf mine > /workspace/taken")
    refused = download(owner, target, artifact["id"], "/workspace/taken")
    assert refused.status_code == 409, refused.content
    assert refused.json()["error"]["code"] == "FILE_EXISTS"
    assert run(owner, target, "cat /workspace/taken")["stdout"] == "mine"
    assert download(owner, target, artifact["id"], "/workspace/there").status_code == 200
    assert download(owner, target, artifact["id"], "/workspace/there").status_code == 409
    assert ".stowage-" not in run(owner, target, "ls -a /workspace")["stdout"]


def test_a_download_under_a_planted_link_is_refused(owner, sandbox, second_sandbox):
    source, target = sandbox["sandbox_id"], second_sandbox["sandbox_id"]
    run(owner, source, "mkdir -p /workspace/dist && printf x > /workspace/dist/x")
    artifact = upload(owner, source).json()
    run(owner, target, "mkdir -p /workspace/elsewhere && ln -s /workspace/elsewhere /workspace/planted")
    refused = download(owner, target, artifact["id"], "/workspace/planted/dist")
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["code"] == "INVALID_PATH"
    assert run(owner, target, "ls -A /workspace/elsewhere")["stdout"] == ""


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("../escape", "file")], "'..'"),
        ([("/etc/cron.d/x", "file")], "absolute"),
        ([("a\x00b", "file")], "NUL"),
        ([("n" * 256, "file")], "longer than 255"),
        ([("link", "symlink"), ("link/x", "file")], "goes through the link"),
    ],
)
def test_a_stored_manifest_that_would_leave_its_folder_is_refused(owner, second_sandbox, entries, reason):
    if reason == "NUL" and connection.vendor == "postgresql":
        pytest.skip("PostgreSQL text cannot hold a NUL, so no stored manifest there can carry one")
    artifact = make_artifact(owner.org_id, None, "evil", size=0, is_folder=True)
    for path, kind in entries:
        ArtifactEntry.objects.create(
            artifact=artifact,
            path=path,
            parent=path.rpartition("/")[0],
            type=kind,
            mode=0o644,
            size=0,
            sha256=hashlib.sha256(b"").hexdigest() if kind == "file" else "",
            link_target="/tmp" if kind == "symlink" else "",
        )
    target = second_sandbox["sandbox_id"]
    refused = download(owner, target, artifact.id, "/workspace/evil")
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["code"] == "INVALID_MANIFEST"
    assert reason in refused.json()["error"]["message"]
    assert run(owner, target, "ls -A /workspace")["stdout"] == ""


def test_a_folder_over_the_entry_limit_stores_nothing(owner, sandbox):
    sid = sandbox["sandbox_id"]
    count = WORKER_FOLDER_MAX_ENTRIES + 1
    run(
        owner,
        sid,
        f"mkdir -p /workspace/many && cd /workspace/many && for i in $(seq {count}); do printf $i > f$i; done",
    )
    blobs = Blob.objects.count()
    refused = upload(owner, sid, "/workspace/many", "many")
    assert refused.status_code == 413, refused.content
    assert refused.json()["error"]["code"] == "FOLDER_TOO_MANY_ENTRIES"
    assert not Artifact.objects.filter(remote_path="many", state=ArtifactState.READY).exists()
    assert not ArtifactEntry.objects.exists() and Blob.objects.count() == blobs


def test_a_folder_over_the_size_limit_stores_nothing(owner, sandbox):
    sid = sandbox["sandbox_id"]
    run(
        owner,
        sid,
        "mkdir -p /workspace/big && head -c 16M /dev/zero > /workspace/big/a && head -c 16M /dev/zero > /workspace/big/b",
    )
    refused = upload(owner, sid, "/workspace/big", "big")
    assert refused.status_code == 413, refused.content
    assert refused.json()["error"]["code"] == "FOLDER_TOO_LARGE"
    assert not ArtifactEntry.objects.exists() and not Blob.objects.exists()
