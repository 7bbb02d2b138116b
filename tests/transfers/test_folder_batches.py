"""A folder's files are recorded a batch at a time: every file of every batch is recorded once with
its own blob, bytes the organization already has are not stored again, and a batch that fails
after others were recorded leaves no entry behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import transfers.folders as folders
from artifacts.models import ArtifactEntry, ArtifactState, Blob
from sandboxes.runtime import LocalRuntime
from tests.factories import make_artifact, make_sandbox, make_transfer
from transfers.folder_files import FileChanged

FILES = {f"d/f{i:02d}": f"file {i % 7}".encode() for i in range(23)}  # 7 digests over 23 files
FILES["top.txt"] = b"top"


@pytest.fixture
def folder(owner, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(folders, "BATCH_FILES", 4)
    runtime = LocalRuntime(tmp_path / "root")
    sandbox = make_sandbox(owner.org_id)
    runtime.create(sandbox.id, env={}, memory_bytes=None, cpus=None)
    top = tmp_path / "root" / sandbox.id / "workspace" / "dist"
    for path, data in FILES.items():
        (top / path).parent.mkdir(parents=True, exist_ok=True)
        (top / path).write_bytes(data)

    def upload(remote_path: str = "builds/dist"):
        artifact = make_artifact(owner.org_id, sandbox, remote_path, state=ArtifactState.PENDING)
        transfer = make_transfer(owner.org_id, sandbox, artifact, path="/workspace/dist")
        return artifact, folders.folder_upload(transfer, runtime, lambda done: None)

    yield upload, top
    runtime.destroy(sandbox.id)


def test_every_file_of_every_batch_is_recorded_once_with_its_blob(folder):
    upload, _top = folder
    artifact, (entries, _skipped, writer) = upload()
    rows = {row.path: row for row in ArtifactEntry.objects.filter(artifact=artifact).select_related("blob")}
    assert set(rows) == {*FILES, "d"}
    for path, data in FILES.items():
        digest = hashlib.sha256(data).hexdigest()
        assert rows[path].sha256 == rows[path].blob.sha256 == digest
    assert Blob.objects.filter(organization_id=artifact.organization_id).count() == 8
    assert writer.files_sent == 8 and [entry.path for entry in entries] == sorted(rows)


def test_bytes_recorded_by_an_earlier_upload_are_not_stored_again(folder):
    upload, _top = folder
    upload()
    _artifact, (_entries, _skipped, writer) = upload("builds/again")
    assert writer.files_sent == 0 and writer.bytes_sent == 0


def test_a_batch_that_fails_after_others_were_recorded_leaves_no_entry(folder, monkeypatch):
    upload, top = folder
    read = folders.files_read
    calls = []

    def read_changed(pool, tree, base, batch):
        calls.append(batch)
        if len(calls) == 4:  # batches one to three are recorded by now
            (top / batch[0].path).write_bytes(b"changed since the walk")
        return read(pool, tree, base, batch)

    monkeypatch.setattr(folders, "files_read", read_changed)
    with pytest.raises(FileChanged):
        upload()
    assert len(calls) == 4
    assert not ArtifactEntry.objects.exists()
