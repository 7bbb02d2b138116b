from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest
from django.test import Client

from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.storage import blob_exists, blob_storage
from audit.models import AuditEvent
from transfers.models import Transfer

pytestmark = pytest.mark.worker


def write(owner, sid: str, path: str, data: bytes) -> None:
    response = owner.post(
        f"/sandbox/{sid}/files", {"files": [{"path": path, "content": base64.b64encode(data).decode()}]}
    )
    assert response.status_code == 200, response.content


def run(owner, sid: str, command: str) -> dict:
    return owner.post(f"/sandbox/{sid}/execute", {"command": command}).json()


@pytest.fixture
def second_sandbox(owner, live):
    response = owner.post("/sandbox/create", {"timeout_seconds": 600})
    assert response.status_code == 201
    return response.json()


def test_upload_then_download_into_another_sandbox_keeps_bytes_and_checksum(owner, sandbox, second_sandbox):
    sid = sandbox["sandbox_id"]
    data = bytes(range(256)) * 4096 + b"tail"
    write(owner, sid, "/workspace/out/report.pdf", data)
    uploaded = owner.post(
        f"/sandbox/{sid}/artifacts/upload",
        {
            "path": "/workspace/out/report.pdf",
            "remote_path": "reports/weekly.pdf",
            "content_type": "application/pdf",
            "metadata": {"generated_by": "pipeline"},
            "expires_in": 3600,
        },
    )
    assert uploaded.status_code == 200, uploaded.content
    artifact = uploaded.json()
    assert artifact["id"].startswith("art_")
    assert artifact["size"] == len(data)
    assert artifact["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifact["remote_path"] == "reports/weekly.pdf"
    assert artifact["content_type"] == "application/pdf"
    assert artifact["metadata"] == {"generated_by": "pipeline"}
    assert artifact["version"] == 1
    assert artifact["sandbox_id"] == sid
    assert artifact["expires_at"] is not None

    target = second_sandbox["sandbox_id"]
    downloaded = owner.post(
        f"/sandbox/{target}/artifacts/download",
        {"artifact_id": artifact["id"], "target_path": "/workspace/input/report.pdf"},
    )
    assert downloaded.status_code == 200, downloaded.content
    assert downloaded.json()["success"] is True
    result = run(owner, target, "sha256sum /workspace/input/report.pdf")
    assert result["stdout"].split()[0] == artifact["checksum"].removeprefix("sha256:")
    actions = set(AuditEvent.objects.filter(resource=f"artifact:{artifact['id']}").values_list("action", flat=True))
    assert {"artifact.upload", "artifact.download"} <= actions


def test_same_remote_path_gets_increasing_versions_and_content_type_is_guessed(owner, sandbox):
    sid = sandbox["sandbox_id"]
    write(owner, sid, "data.json", b'{"a": 1}')
    first = owner.post(
        f"/sandbox/{sid}/artifacts/upload", {"path": "data.json", "remote_path": "shared/data.json"}
    ).json()
    write(owner, sid, "data.json", b'{"a": 2}')
    second = owner.post(
        f"/sandbox/{sid}/artifacts/upload", {"path": "data.json", "remote_path": "shared/data.json"}
    ).json()
    assert (first["version"], second["version"]) == (1, 2)
    assert second["content_type"] == "application/json"
    versions = owner.get(f"/artifacts/{first['id']}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]


def test_a_retried_upload_returns_the_same_artifact(owner, sandbox):
    sid = sandbox["sandbox_id"]
    write(owner, sid, "out.bin", b"same bytes")
    body = {"path": "out.bin", "remote_path": "x/out.bin"}
    first = owner.post(f"/sandbox/{sid}/artifacts/upload", body).json()
    again = owner.post(f"/sandbox/{sid}/artifacts/upload", body).json()
    assert again["id"] == first["id"]
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 1


def test_the_same_file_with_new_metadata_content_type_or_expiry_is_a_new_version_sharing_one_blob(owner, sandbox):
    sid = sandbox["sandbox_id"]
    write(owner, sid, "model.bin", b"weights" * 1000)
    base = {"path": "model.bin", "remote_path": "models/model.bin"}
    bodies = [
        base,
        {**base, "metadata": {"epoch": "2"}},
        {**base, "content_type": "application/x-model"},
        {**base, "expires_in": 3600},
    ]
    answers = [owner.post(f"/sandbox/{sid}/artifacts/upload", body).json() for body in bodies]
    assert [answer["version"] for answer in answers] == [1, 2, 3, 4]
    assert answers[1]["metadata"] == {"epoch": "2"} and answers[2]["content_type"] == "application/x-model"
    assert answers[3]["expires_at"] is not None
    # A true retry of the last one is folded into it.
    again = owner.post(f"/sandbox/{sid}/artifacts/upload", bodies[3]).json()
    assert again["id"] == answers[3]["id"]
    ready = Artifact.objects.filter(state=ArtifactState.READY)
    assert ready.count() == 4 and Blob.objects.count() == 1
    assert set(ready.values_list("blob_id", flat=True)) == {Blob.objects.get().id}
    storage = Path(blob_storage().location)
    # Stored once: every upload's own object but the first was dropped on publish.
    assert [p.name for p in (storage / "blobs" / owner.org_id).iterdir()] == [
        Blob.objects.get().storage_key.rsplit("/", 1)[1]
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"path": "missing.txt"}, 404, "FILE_NOT_FOUND"),
        ({"path": "../etc/passwd"}, 400, "INVALID_PATH"),
        ({"path": "/etc/passwd"}, 400, "INVALID_PATH"),
        ({"path": "ok.txt", "remote_path": "a/../b"}, 400, "INVALID_REMOTE_PATH"),
        ({"path": "ok.txt", "remote_path": "bad\nname"}, 400, "INVALID_REMOTE_PATH"),
        ({"path": "ok.txt", "remote_path": "x" * 1025}, 400, "INVALID_REMOTE_PATH"),
        ({"path": "ok.txt", "metadata": {"k": 1}}, 400, "INVALID_METADATA"),
        ({"path": "ok.txt", "metadata": {f"k{i}": "v" for i in range(65)}}, 400, "INVALID_METADATA"),
        ({"path": "ok.txt", "metadata": {"k" * 129: "v"}}, 400, "INVALID_METADATA"),
        ({"path": "ok.txt", "metadata": {"k": "v" * 1025}}, 400, "INVALID_METADATA"),
        ({"path": "ok.txt", "expires_in": 0}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_uploads_leave_nothing_visible(owner, sandbox, body, status, code):
    sid = sandbox["sandbox_id"]
    write(owner, sid, "ok.txt", b"ok")
    response = owner.post(f"/sandbox/{sid}/artifacts/upload", body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert owner.get("/artifacts").json()["artifacts"] == []


def test_a_symlink_out_of_the_sandbox_is_not_uploaded(owner, sandbox):
    sid = sandbox["sandbox_id"]
    run(owner, sid, "ln -s /etc/passwd /workspace/passwd")
    response = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "passwd"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_PATH"
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    failed = Artifact.objects.get()
    assert failed.state == ArtifactState.FAILED and not blob_exists(failed.storage_key)


def test_a_file_over_the_size_limit_is_refused(owner, sandbox):
    # The test worker runs with STOWAGE_ARTIFACT_MAX_BYTES = WORKER_ARTIFACT_MAX_BYTES.
    from tests.conftest import WORKER_ARTIFACT_MAX_BYTES

    sid = sandbox["sandbox_id"]
    run(owner, sid, f"truncate -s {WORKER_ARTIFACT_MAX_BYTES + 1} /workspace/big.bin")
    response = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "big.bin"})
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "FILE_TOO_LARGE"
    assert owner.get("/artifacts").json()["artifacts"] == []
    assert not blob_exists(Artifact.objects.get().storage_key)


def test_a_body_over_the_size_limit_is_refused(owner, live, settings):
    settings.ARTIFACT_MAX_BYTES = 1000
    response = owner.client.put(
        "/api/v1/artifacts?remote_path=big.bin",
        b"x" * 1001,
        content_type="application/octet-stream",
        headers=owner.headers(),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "FILE_TOO_LARGE"
    assert owner.get("/artifacts").json()["artifacts"] == []


def test_download_refuses_a_directory_target_a_stopped_sandbox_and_anothers_artifact(
    owner, stranger, sandbox, second_sandbox
):
    sid = sandbox["sandbox_id"]
    write(owner, sid, "a.txt", b"a")
    artifact = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "a.txt"}).json()
    target = second_sandbox["sandbox_id"]
    run(owner, target, "mkdir -p /workspace/dir")
    into_dir = owner.post(
        f"/sandbox/{target}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "/workspace/dir"}
    )
    assert into_dir.status_code == 400
    assert into_dir.json()["error"]["code"] == "NOT_A_FILE"
    theirs = stranger.post("/sandbox/create", {}).json()
    not_theirs = stranger.post(
        f"/sandbox/{theirs['sandbox_id']}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "x"}
    )
    assert not_theirs.status_code == 404
    assert not_theirs.json()["error"]["code"] == "ARTIFACT_NOT_FOUND"
    assert stranger.get(f"/artifacts/{artifact['id']}").status_code == 404
    assert stranger.get("/artifacts").json()["artifacts"] == []
    owner.post(f"/sandbox/{target}/stop")
    stopped = owner.post(f"/sandbox/{target}/artifacts/download", {"artifact_id": artifact["id"], "target_path": "x"})
    assert stopped.status_code == 409


def test_wait_false_answers_202_with_a_transfer_that_shows_progress(owner, sandbox):
    sid = sandbox["sandbox_id"]
    run(owner, sid, "head -c 3000000 /dev/urandom > /workspace/r.bin")
    response = owner.post(f"/sandbox/{sid}/artifacts/upload?wait=false", {"path": "r.bin"})
    assert response.status_code == 202
    transfer_id = response.json()["transfer_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = owner.get(f"/transfers/{transfer_id}").json()
        if state["state"] == "succeeded":
            break
        time.sleep(0.1)
    assert state["state"] == "succeeded"
    assert state["bytes_done"] == state["bytes_total"] == 3000000
    assert state["progress"] == 1.0


def test_put_and_content_stream_bytes_with_ranges_and_safe_headers(owner, live):
    data = b"0123456789" * 1000
    put = owner.client.put(
        "/api/v1/artifacts?remote_path=docs/evil%22%3B%20name%5C.html",
        data,
        content_type="text/html",
        headers={**owner.headers(), "X-Artifact-Metadata": '{"source": "ci"}'},
    )
    assert put.status_code == 201, put.content
    artifact = put.json()
    assert artifact["size"] == len(data)
    assert artifact["metadata"] == {"source": "ci"}
    full = owner.get(f"/artifacts/{artifact['id']}/content")
    assert b"".join(full.streaming_content) == data
    assert full["X-Content-Type-Options"] == "nosniff"
    assert full["Content-Disposition"].startswith("attachment")
    assert full["Content-Disposition"] == 'attachment; filename="evil__ name_.html"'
    part = owner.get(f"/artifacts/{artifact['id']}/content", Range="bytes=10-19")
    assert part.status_code == 206
    assert b"".join(part.streaming_content) == data[10:20]
    assert part["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert owner.get(f"/artifacts/{artifact['id']}/content", Range="bytes=99999-").status_code == 416


def test_presigned_url_works_until_it_expires_and_rejects_tampering(owner, live):
    artifact = owner.client.put(
        "/api/v1/artifacts?remote_path=a.txt", b"hello", content_type="text/plain", headers=owner.headers()
    ).json()
    url = owner.get(f"/artifacts/{artifact['id']}/url", {"expires_in": 1}).json()["url"]
    anonymous = Client()
    path = url.split("testserver", 1)[1]
    assert b"".join(anonymous.get(path).streaming_content) == b"hello"
    assert anonymous.get(path.replace("sig=", "sig=0")).status_code == 403
    time.sleep(2.1)
    assert anonymous.get(path).status_code == 403
    for bad in (0, 7 * 86400 + 1):
        assert owner.get(f"/artifacts/{artifact['id']}/url", {"expires_in": bad}).status_code == 400


def test_listing_filters_and_paginates_newest_first(owner, sandbox):
    sid = sandbox["sandbox_id"]
    ids = []
    for i in range(5):
        ids.append(
            owner.client.put(
                f"/api/v1/artifacts?remote_path=logs/{i}.txt", b"x", content_type="text/plain", headers=owner.headers()
            ).json()["id"]
        )
    write(owner, sid, "a.csv", b"a,b")
    from_sandbox = owner.post(f"/sandbox/{sid}/artifacts/upload", {"path": "a.csv"}).json()
    page = owner.get("/artifacts", {"limit": 2}).json()
    seen = [a["id"] for a in page["artifacts"]]
    while page["next_cursor"]:
        page = owner.get("/artifacts", {"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [a["id"] for a in page["artifacts"]]
    assert seen == [from_sandbox["id"], *reversed(ids)]
    assert [a["id"] for a in owner.get("/artifacts", {"sandbox_id": sid}).json()["artifacts"]] == [from_sandbox["id"]]
    assert len(owner.get("/artifacts", {"prefix": "logs/"}).json()["artifacts"]) == 5
    assert [a["id"] for a in owner.get("/artifacts", {"content_type": "text/csv"}).json()["artifacts"]] == [
        from_sandbox["id"]
    ]
    assert owner.get("/artifacts", {"cursor": "garbage!"}).status_code == 400


def test_delete_removes_bytes_and_keeps_the_row(owner, live):
    artifact = owner.client.put(
        "/api/v1/artifacts?remote_path=a.txt", b"bye", content_type="text/plain", headers=owner.headers()
    ).json()
    assert owner.delete(f"/artifacts/{artifact['id']}").json() == {"success": True}
    assert owner.get(f"/artifacts/{artifact['id']}").status_code == 404
    assert owner.delete(f"/trash/{artifact['id']}").json() == {"success": True}
    row = Artifact.objects.get(id=artifact["id"])
    assert row.state == ArtifactState.DELETED
    # The worker removes the bytes: on a loaded machine that may take a while, so wait long enough.
    deadline = time.monotonic() + 60
    while blob_exists(row.storage_key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not blob_exists(row.storage_key)


def test_agent_session_upload_tags_the_artifact(owner, live):
    sandbox = owner.post("/sandbox/create", {"session_id": "agent-run-7"}).json()
    write(owner, sandbox["sandbox_id"], "result.json", b"{}")
    artifact = owner.post(
        "/agent/sessions/agent-run-7/artifacts/upload",
        {"path": "/workspace/result.json", "metadata": {"step": "final"}},
    ).json()
    assert artifact["session_id"] == "agent-run-7"
    assert artifact["sandbox_id"] == sandbox["sandbox_id"]
    assert [a["id"] for a in owner.get("/artifacts", {"session_id": "agent-run-7"}).json()["artifacts"]] == [
        artifact["id"]
    ]
    assert owner.post("/agent/sessions/nobody/artifacts/upload", {"path": "x"}).status_code == 404
    assert Transfer.objects.count() == 1
