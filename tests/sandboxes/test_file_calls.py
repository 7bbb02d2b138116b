"""glob, mkdir, move, copy and status through the API on a real worker, with the same path and
link safety as the other file calls: nothing climbs out of /workspace or goes through a link."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.worker


def put(owner, sandbox_id: str, path: str, data: bytes = b"x") -> None:
    files = [{"path": path, "content": base64.b64encode(data).decode()}]
    assert owner.post(f"/sandbox/{sandbox_id}/files", {"files": files}).status_code == 200


def workspace(sandbox_id: str) -> Path:
    return Path(settings.SANDBOX_ROOT) / sandbox_id / "workspace"


def test_glob_finds_files_across_directories(owner, sandbox):
    sid = sandbox["sandbox_id"]
    for path in ("src/a.py", "src/pkg/b.py", "README.md"):
        put(owner, sid, path)
    found = owner.post(f"/sandbox/{sid}/files/glob", {"pattern": "**/*.py"}).json()["files"]
    assert [f["path"] for f in found] == ["/workspace/src/a.py", "/workspace/src/pkg/b.py"]
    top = owner.post(f"/sandbox/{sid}/files/glob", {"pattern": "/workspace/*.md"}).json()["files"]
    assert [f["path"] for f in top] == ["/workspace/README.md"]


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "/*/passwd", "src/../../*", "/work*/x", ""])
def test_a_glob_that_climbs_out_of_the_workspace_is_refused(owner, sandbox, pattern):
    answer = owner.post(f"/sandbox/{sandbox['sandbox_id']}/files/glob", {"pattern": pattern})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] in {"INVALID_PATH", "VALIDATION_ERROR"}


def test_mkdir_move_and_copy(owner, sandbox):
    sid = sandbox["sandbox_id"]
    made = owner.post(f"/sandbox/{sid}/files/mkdir", {"path": "out/reports", "recursive": True}).json()
    assert made["entry"]["type"] == "directory" and made["path"] == "/workspace/out/reports"
    put(owner, sid, "draft.txt", b"draft")
    moved = owner.post(f"/sandbox/{sid}/files/move", {"source": "draft.txt", "destination": "out/reports/final.txt"})
    assert moved.status_code == 200 and moved.json()["entry"]["size"] == 5
    copied = owner.post(f"/sandbox/{sid}/files/copy", {"source": "out", "destination": "backup/out"})
    assert copied.status_code == 200
    assert (workspace(sid) / "backup/out/reports/final.txt").read_bytes() == b"draft"
    assert not (workspace(sid) / "draft.txt").exists()


def test_mkdir_without_parents_needs_the_parent(owner, sandbox):
    answer = owner.post(f"/sandbox/{sandbox['sandbox_id']}/files/mkdir", {"path": "a/b/c", "recursive": False})
    assert answer.status_code == 404
    assert not (workspace(sandbox["sandbox_id"]) / "a").exists()


@pytest.mark.parametrize("call", ["move", "copy"])
def test_move_or_copy_onto_or_through_a_symlink_is_refused(owner, sandbox, call, tmp_path):
    sid = sandbox["sandbox_id"]
    outside = tmp_path / "outside"
    outside.mkdir()
    put(owner, sid, "secret.txt", b"mine")
    os.symlink(outside, workspace(sid) / "escape")
    os.symlink(outside / "target.txt", workspace(sid) / "link.txt")
    through = owner.post(f"/sandbox/{sid}/files/{call}", {"source": "secret.txt", "destination": "escape/stolen.txt"})
    onto = owner.post(f"/sandbox/{sid}/files/{call}", {"source": "secret.txt", "destination": "link.txt"})
    for answer in (through, onto):
        assert answer.status_code == 400, answer.content
        assert answer.json()["error"]["code"] == "INVALID_PATH"
    assert list(outside.iterdir()) == []
    assert (workspace(sid) / "secret.txt").read_bytes() == b"mine"
    assert os.readlink(workspace(sid) / "link.txt") == str(outside / "target.txt")


def test_move_or_copy_out_of_the_workspace_is_refused(owner, sandbox):
    sid = sandbox["sandbox_id"]
    put(owner, sid, "a.txt")
    for destination in ("/etc/a.txt", "../a.txt", "/workspace/../a.txt"):
        answer = owner.post(f"/sandbox/{sid}/files/copy", {"source": "a.txt", "destination": destination})
        assert answer.status_code == 400


def test_status_tells_how_far_the_sandbox_may_be_extended(owner, sandbox):
    status = owner.get(f"/sandbox/{sandbox['sandbox_id']}/status").json()
    assert status["status"] == "running"
    gap = datetime.fromisoformat(status["expires_at"]) - datetime.fromisoformat(sandbox["expires_at"])
    assert abs(gap.total_seconds()) < 0.01
    assert status["max_lifetime_seconds"] == settings.SANDBOX_MAX_TIMEOUT_SECONDS
    assert 0 < status["remaining_extend_seconds"] <= settings.SANDBOX_MAX_TIMEOUT_SECONDS
    assert 0 <= status["lifetime_used_percent"] < 5


def test_file_calls_on_another_organizations_sandbox_are_404(owner, stranger, sandbox):
    sid = sandbox["sandbox_id"]
    for path, body in [
        ("files/glob", {"pattern": "*"}),
        ("files/mkdir", {"path": "x"}),
        ("files/move", {"source": "a", "destination": "b"}),
        ("files/copy", {"source": "a", "destination": "b"}),
    ]:
        assert stranger.post(f"/sandbox/{sid}/{path}", body).status_code == 404
    assert stranger.get(f"/sandbox/{sid}/status").status_code == 404
