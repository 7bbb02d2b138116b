"""Every artifact flow of the brief, driven over HTTP by the stateset-sandbox SDK against the
whole stack (`manage.py runstack`), as the public artifacts doc shows them to a user.

Two gaps of the SDK (2.x) shape some calls here:
- its `UploadArtifactOptions` model has no `remote_path` field, so pydantic drops it silently;
  an upload that names a remote_path goes through `client._request` with the documented body;
- its `get_artifact_url` returns the url string only; the `expires_in` of the answer is read
  with `client._request` where a test needs it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from stateset_sandbox import StateSetSandbox
from stateset_sandbox.errors import SandboxApiError
from stateset_sandbox.types import Artifact, CreateSandboxOptions, Sandbox, UploadArtifactOptions

from tests.conftest import StackOrganization

pytestmark = pytest.mark.e2e

# Something PDF-like with every byte value in it, so that nothing on the way may treat it as text.
REPORT = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
REPORT_SHA256 = hashlib.sha256(REPORT).hexdigest()
BIG_SIZE = 50 * 1024 * 1024


def sdk(stack: StackOrganization, key: str | None = None, org_id: str | None = None, **options) -> StateSetSandbox:
    return StateSetSandbox(
        base_url=stack.base_url, auth_token=key or stack.api_key, org_id=org_id or stack.org_id, **options
    )


@pytest.fixture(scope="module")
def client(stack: StackOrganization) -> Iterator[StateSetSandbox]:
    with sdk(stack, timeout=120_000) as made:
        yield made


@pytest.fixture(scope="module")
def strict(stack: StackOrganization) -> Iterator[StateSetSandbox]:
    """A client that reports an error at once instead of retrying it."""
    with sdk(stack, max_retries=0, timeout=120_000) as made:
        yield made


@pytest.fixture(scope="module")
def public() -> Iterator[httpx.Client]:
    """Someone holding only a link: no API key, no cookie."""
    with httpx.Client(timeout=60, follow_redirects=False) as anonymous:
        yield anonymous


def api_headers(stack: StackOrganization) -> dict[str, str]:
    return {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}


def new_sandbox(client: StateSetSandbox, **options) -> Sandbox:
    return client.create(CreateSandboxOptions(timeout_seconds=600, **options))


def api_error(call, *args, **kwargs) -> SandboxApiError:
    with pytest.raises(SandboxApiError) as caught:
        call(*args, **kwargs)
    assert caught.value.code and caught.value.message, caught.value
    return caught.value


def run_ok(client: StateSetSandbox, sandbox_id: str, command) -> str:
    result = client.execute(sandbox_id, command)
    assert result.exit_code == 0, (command, result.stdout, result.stderr)
    return result.stdout


def sha256_in(client: StateSetSandbox, sandbox_id: str, path: str) -> str:
    return run_ok(client, sandbox_id, ["sha256sum", path]).split()[0]


def read_bytes(client: StateSetSandbox, sandbox_id: str, path: str) -> bytes:
    return base64.b64decode(client.read_file_raw(sandbox_id, path).content)


def upload_with_remote_path(client: StateSetSandbox, sandbox_id: str, **body) -> Artifact:
    # The SDK's UploadArtifactOptions silently drops `remote_path`: send the documented body raw.
    return Artifact(**client._request("POST", f"/sandbox/{sandbox_id}/artifacts/upload", body))


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- flow 1: the doc's upload example ----------------------------------------------------------


@pytest.fixture(scope="module")
def producer(client: StateSetSandbox) -> Sandbox:
    """Sandbox A of the doc: it produces /workspace/output/report.pdf with a command."""
    made = new_sandbox(client)
    script = f"import os, base64; os.makedirs('/workspace/output', exist_ok=True); open('/workspace/output/report.pdf', 'wb').write(base64.b64decode({base64.b64encode(REPORT).decode()!r}))"
    run_ok(client, made.sandbox_id, ["python3", "-c", script])
    return made


@pytest.fixture(scope="module")
def report(client: StateSetSandbox, producer: Sandbox) -> Artifact:
    return upload_with_remote_path(
        client,
        producer.sandbox_id,
        path="/workspace/output/report.pdf",
        remote_path="reports/weekly-report.pdf",
        content_type="application/pdf",
        metadata={"generated_by": "analytics-pipeline"},
        expires_in=86400,
    )


def test_upload_returns_id_size_and_checksum_of_the_file_in_the_sandbox(stack, client, producer, report):
    local = read_bytes(client, producer.sandbox_id, "/workspace/output/report.pdf")
    assert local == REPORT
    assert report.id
    assert report.size == len(local)
    assert report.checksum == "sha256:" + hashlib.sha256(local).hexdigest()
    assert report.checksum == "sha256:" + sha256_in(client, producer.sandbox_id, "/workspace/output/report.pdf")
    assert (report.sandbox_id, report.org_id) == (producer.sandbox_id, stack.org_id)
    assert (report.path, report.remote_path, report.content_type) == (
        "/workspace/output/report.pdf",
        "reports/weekly-report.pdf",
        "application/pdf",
    )
    assert report.metadata == {"generated_by": "analytics-pipeline"}
    assert report.expires_at is not None
    assert abs((report.expires_at - report.created_at) - timedelta(seconds=86400)) < timedelta(seconds=5)
    assert abs(report.created_at.timestamp() - time.time()) < 120
    # What the API answers later is what the upload answered.
    assert client.get_artifact(report.id) == report


def test_sdk_upload_without_remote_path_uses_the_file_path(client, producer):
    client.write_file(producer.sandbox_id, "/workspace/dist/bundle.js", "console.log('built');\n")
    built = client.upload_artifact(
        producer.sandbox_id,
        UploadArtifactOptions(
            path="/workspace/dist/bundle.js", content_type="application/javascript", metadata={"build": "42"}
        ),
    )
    assert (built.path, built.remote_path, built.content_type, built.metadata) == (
        "/workspace/dist/bundle.js",
        "dist/bundle.js",
        "application/javascript",
        {"build": "42"},
    )
    assert built.checksum == "sha256:" + hashlib.sha256(b"console.log('built');\n").hexdigest()
    assert built.expires_at is None


def test_a_retried_upload_does_not_make_a_duplicate(client, producer):
    client.write_file(producer.sandbox_id, "/workspace/retry/once.txt", "only once")
    # What the SDK sends again when the first answer was lost (it retries every 5xx).
    first = client.upload_artifact(producer.sandbox_id, UploadArtifactOptions(path="/workspace/retry/once.txt"))
    again = client.upload_artifact(producer.sandbox_id, UploadArtifactOptions(path="/workspace/retry/once.txt"))
    assert again.id == first.id
    assert [
        a.id for a in client.list_artifacts(sandbox_id=producer.sandbox_id) if a.remote_path == "retry/once.txt"
    ] == [first.id]


# --- flow 2: download into another sandbox -----------------------------------------------------


def test_download_into_a_second_sandbox_keeps_bytes_and_checksum(client, report):
    consumer = new_sandbox(client).sandbox_id
    assert client.download_artifact(consumer, report.id, "/workspace/input/report.pdf") is True
    assert "sha256:" + sha256_in(client, consumer, "/workspace/input/report.pdf") == report.checksum
    listing = run_ok(client, consumer, ["ls", "-la", "/workspace/input/report.pdf"])
    assert "/workspace/input/report.pdf" in listing and f" {len(REPORT)} " in listing, listing
    assert read_bytes(client, consumer, "/workspace/input/report.pdf") == REPORT
    # Running the step again replaces the file.
    client.write_file(consumer, "/workspace/input/report.pdf", "stale")
    assert client.download_artifact(consumer, report.id, "/workspace/input/report.pdf") is True
    assert read_bytes(client, consumer, "/workspace/input/report.pdf") == REPORT
    downloads = client.list_audit_events(sandbox_id=consumer, action="artifact.download")["events"]
    assert [(e.action, e.outcome, e.resource) for e in downloads] == [
        ("artifact.download", "success", f"artifact:{report.id}")
    ] * 2


# --- flow 3: presigned URLs --------------------------------------------------------------------


def test_presigned_url_downloads_without_credentials_as_an_attachment(client, public, report):
    url = client.get_artifact_url(report.id, expires_in=3600)
    assert isinstance(url, str) and url.startswith("http")
    response = public.get(url)
    assert response.status_code == 200, response.text[:500]
    assert response.content == REPORT
    assert response.headers["content-disposition"].startswith("attachment")
    assert "weekly-report.pdf" in response.headers["content-disposition"]
    assert response.headers["content-type"].startswith("application/pdf")
    # The doc prints `result.expires_in`: the answer carries it (the SDK drops it).
    raw = client._request("GET", f"/artifacts/{report.id}/url", params={"expires_in": 3600})
    assert raw["expires_in"] == 3600 and raw["url"].startswith("http")


def test_presigned_url_is_refused_after_it_expires_or_when_tampered(client, public, report):
    short = client.get_artifact_url(report.id, expires_in=1)
    good = client.get_artifact_url(report.id, expires_in=600)
    signature = parse_qs(urlsplit(good).query)["sig"][0]
    tampered = with_query(good, sig=signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert public.get(tampered).status_code == 403
    later = str(int(parse_qs(urlsplit(good).query)["expires"][0]) + 86400)
    assert public.get(with_query(good, expires=later)).status_code == 403
    assert public.get(with_query(good, sig="")).status_code == 403
    # A signature is for one artifact only.
    client.write_file(report.sandbox_id, "/workspace/other.txt", "other")
    sibling = client.upload_artifact(report.sandbox_id, UploadArtifactOptions(path="/workspace/other.txt"))
    assert public.get(good.replace(f"/{report.id}?", f"/{sibling.id}?")).status_code == 403
    # The untampered URL still works: the refusals above were for the tampering.
    assert public.get(good).content == REPORT
    time.sleep(2)
    expired = public.get(short)
    assert expired.status_code == 403
    assert REPORT[:16] not in expired.content


def test_an_artifact_past_its_expires_in_is_gone(client, strict, public, producer):
    client.write_file(producer.sandbox_id, "/workspace/tmp/brief.txt", "brief")
    brief = client.upload_artifact(
        producer.sandbox_id, UploadArtifactOptions(path="/workspace/tmp/brief.txt", expires_in=1)
    )
    url = client.get_artifact_url(brief.id, expires_in=3600)
    time.sleep(2.5)
    # Whether or not the periodic sweep has run yet, an expired artifact is not served.
    gone = api_error(strict.get_artifact, brief.id)
    assert (gone.status_code, gone.code) == (404, "ARTIFACT_NOT_FOUND")
    assert brief.id not in {a.id for a in client.list_artifacts(sandbox_id=producer.sandbox_id)}
    assert public.get(url).status_code in (403, 404)
    assert (
        api_error(strict.download_artifact, producer.sandbox_id, brief.id, "/workspace/tmp/again.txt").status_code
        == 404
    )


# --- flow 4: listings --------------------------------------------------------------------------


def test_list_by_organization_and_by_sandbox(client, producer, report):
    other = new_sandbox(client).sandbox_id
    client.write_file(other, "/workspace/notes.txt", "from another sandbox")
    elsewhere = client.upload_artifact(other, UploadArtifactOptions(path="/workspace/notes.txt"))

    everything = client.list_artifacts()
    ids = [a.id for a in everything]
    assert {report.id, elsewhere.id} <= set(ids)
    assert next(a for a in everything if a.id == report.id) == report
    created = [a.created_at for a in everything]
    assert created == sorted(created, reverse=True), "newest first"
    assert ids.index(elsewhere.id) < ids.index(report.id)

    mine = client.list_artifacts(sandbox_id=producer.sandbox_id)
    assert report.id in {a.id for a in mine}
    assert elsewhere.id not in {a.id for a in mine}
    assert {a.sandbox_id for a in mine} == {producer.sandbox_id}
    assert [a.id for a in client.list_artifacts(sandbox_id=other)] == [elsewhere.id]


def test_agent_session_upload_is_tagged_and_listed_by_session(client):
    session_id = f"agent-session-{uuid.uuid4().hex[:12]}"
    # CreateSandboxOptions has no session_id: the documented request body, raw.
    made = Sandbox(**client._request("POST", "/sandbox/create", {"session_id": session_id, "timeout_seconds": 600}))
    assert made.session_id == session_id
    client.write_file(made.sandbox_id, "/workspace/result.json", '{"answer": 42}\n')
    uploaded = client._request(
        "POST",
        f"/agent/sessions/{session_id}/artifacts/upload",
        {"path": "/workspace/result.json", "metadata": {"step": "final"}},
    )
    assert uploaded["session_id"] == session_id
    assert (uploaded["sandbox_id"], uploaded["path"], uploaded["metadata"]) == (
        made.sandbox_id,
        "/workspace/result.json",
        {"step": "final"},
    )
    assert uploaded["checksum"] == "sha256:" + hashlib.sha256(b'{"answer": 42}\n').hexdigest()
    listed = client._request("GET", "/artifacts", params={"session_id": session_id})["artifacts"]
    assert [(a["id"], a["session_id"]) for a in listed] == [(uploaded["id"], session_id)]
    assert client._request("GET", "/artifacts", params={"session_id": "no-such-session"})["artifacts"] == []
    missing = api_error(
        client._request, "POST", "/agent/sessions/no-such-session/artifacts/upload", {"path": "/workspace/result.json"}
    )
    assert missing.status_code == 404


# --- flow 5: the doc's "Share Data Between Sandboxes" and "Data Pipeline" ----------------------


def test_share_data_between_sandboxes(client):
    sandbox_a, sandbox_b = new_sandbox(client).sandbox_id, new_sandbox(client).sandbox_id
    csv = "id,value\n1,10\n2,20\n"
    client.write_file(sandbox_a, "/workspace/data/processed.csv", csv)
    # Sandbox A: produce data
    artifact = client.upload_artifact(sandbox_a, UploadArtifactOptions(path="/workspace/data/processed.csv"))
    assert (artifact.remote_path, artifact.size) == ("data/processed.csv", len(csv))
    assert artifact.content_type.startswith("text/csv")
    # Sandbox B: consume data
    assert client.download_artifact(sandbox_b, artifact.id, "/workspace/input/processed.csv") is True
    assert client.read_file(sandbox_b, "/workspace/input/processed.csv") == csv


EXTRACT = """
import json
rows = [{"id": i, "value": i * i} for i in range(1, 1001)]
with open("/workspace/raw_data.parquet", "w") as out:
    for row in rows:
        out.write(json.dumps(row) + "\\n")
"""

TRANSFORM = """
import json
rows = [json.loads(line) for line in open("/workspace/raw_data.parquet")]
total = sum(row["value"] for row in rows)
with open("/workspace/output.parquet", "w") as out:
    json.dump({"rows": len(rows), "total": total}, out)
"""


def test_data_pipeline(client, public):
    sandbox_id = new_sandbox(client).sandbox_id
    client.write_file(sandbox_id, "/workspace/extract.py", EXTRACT)
    # Step 1: Extract
    extract_result = client.execute(sandbox_id, command=["python3", "extract.py"])
    assert extract_result.exit_code == 0, extract_result.stderr
    # Step 2: Upload intermediate result
    artifact = client.upload_artifact(sandbox_id, UploadArtifactOptions(path="/workspace/raw_data.parquet"))
    assert artifact.remote_path == "raw_data.parquet"
    # Step 3: Download into a fresh sandbox for transformation
    transform_sandbox = client.create(CreateSandboxOptions(cpus="4", memory="8Gi", timeout_seconds=600))
    # The hosted API's own example asks for 4 cpus; a smaller host gives what it has, and says so.
    granted = str(min(4, os.cpu_count() or 1))
    assert (transform_sandbox.cpus, transform_sandbox.memory) == (granted, "8Gi")
    assert client.download_artifact(transform_sandbox.sandbox_id, artifact.id, "/workspace/raw_data.parquet") is True
    client.write_file(transform_sandbox.sandbox_id, "/workspace/transform.py", TRANSFORM)
    transformed = client.execute(transform_sandbox.sandbox_id, command=["python3", "transform.py"])
    assert transformed.exit_code == 0, transformed.stderr
    # Step 4: Upload final output
    final = client.upload_artifact(
        transform_sandbox.sandbox_id, UploadArtifactOptions(path="/workspace/output.parquet")
    )
    assert final.id != artifact.id and final.sandbox_id == transform_sandbox.sandbox_id
    expected = f'{{"rows": 1000, "total": {sum(i * i for i in range(1, 1001))}}}'.encode()
    assert public.get(client.get_artifact_url(final.id, expires_in=60)).content == expected
    assert final.checksum == "sha256:" + hashlib.sha256(expected).hexdigest()


# --- flow 6: delete ----------------------------------------------------------------------------


def test_delete_removes_the_artifact_everywhere(client, strict, public, producer):
    client.write_file(producer.sandbox_id, "/workspace/tmp/doomed.txt", "short-lived")
    doomed = client.upload_artifact(producer.sandbox_id, UploadArtifactOptions(path="/workspace/tmp/doomed.txt"))
    url = client.get_artifact_url(doomed.id, expires_in=3600)
    assert public.get(url).content == b"short-lived"
    assert doomed.id in {a.id for a in client.list_artifacts()}

    assert client.delete_artifact(doomed.id) is True

    gone = api_error(strict.get_artifact, doomed.id)
    assert (gone.status_code, gone.code) == (404, "ARTIFACT_NOT_FOUND")
    assert public.get(url).status_code in (403, 404)
    assert doomed.id not in {a.id for a in client.list_artifacts()}
    assert doomed.id not in {a.id for a in client.list_artifacts(sandbox_id=producer.sandbox_id)}
    refused = api_error(strict.download_artifact, producer.sandbox_id, doomed.id, "/workspace/tmp/again.txt")
    assert (refused.status_code, refused.code) == (404, "ARTIFACT_NOT_FOUND")
    assert (api_error(strict.get_artifact_url, doomed.id).status_code) == 404
    deletions = client.list_audit_events(sandbox_id=producer.sandbox_id, action="artifact.delete")["events"]
    assert f"artifact:{doomed.id}" in {e.resource for e in deletions}


# --- flow 7: share links -----------------------------------------------------------------------


def test_share_link_with_one_download(client, public, report):
    share = client._request("POST", f"/artifacts/{report.id}/shares", {"max_downloads": 1, "expires_in": 3600})
    assert (share["artifact_id"], share["state"], share["max_downloads"], share["downloads_left"]) == (
        report.id,
        "active",
        1,
        1,
    )
    url = share["url"]
    assert url.startswith("http")

    landing = public.get(url)
    assert landing.status_code == 200
    assert "weekly-report.pdf" in landing.text
    assert landing.headers["content-type"].startswith("text/html")

    first = public.get(url.rstrip("/") + "/download")
    assert first.status_code == 200
    assert first.content == REPORT
    assert first.headers["content-disposition"].startswith("attachment")

    second = public.get(url.rstrip("/") + "/download")
    assert second.status_code == 404
    assert REPORT[:16] not in second.content
    assert public.get(url).status_code == 404

    listed = {s["id"]: s for s in client._request("GET", f"/artifacts/{report.id}/shares")["shares"]}
    assert (
        listed[share["id"]]["download_count"],
        listed[share["id"]]["downloads_left"],
        listed[share["id"]]["state"],
    ) == (1, 0, "exhausted")
    # The key may manage links, so the listing carries the link again.
    assert listed[share["id"]]["url"] == url


# --- flow 8: bad input as the SDK reports it -----------------------------------------------------


def test_bad_uploads_and_downloads_are_refused_and_change_nothing(client, strict, producer, report):
    sid = producer.sandbox_id
    before = [a.id for a in client.list_artifacts(sandbox_id=sid)]

    missing = api_error(strict.upload_artifact, sid, UploadArtifactOptions(path="/workspace/output/nope.pdf"))
    assert (missing.status_code, missing.code) == (404, "FILE_NOT_FOUND")
    for path in ("../etc/passwd", "/workspace/../etc/passwd", "/etc/passwd"):
        escaped = api_error(strict.upload_artifact, sid, UploadArtifactOptions(path=path))
        assert (escaped.status_code, escaped.code) == (400, "INVALID_PATH"), path
    for target in ("../outside.pdf", "/workspace/../outside.pdf", "/tmp/outside.pdf"):
        escaped = api_error(strict.download_artifact, sid, report.id, target)
        assert (escaped.status_code, escaped.code) == (400, "INVALID_PATH"), target
    bad_remote = api_error(
        strict._request,
        "POST",
        f"/sandbox/{sid}/artifacts/upload",
        {"path": "/workspace/output/report.pdf", "remote_path": "a/../../b"},
    )
    assert bad_remote.status_code == 400
    # Links planted by a process in the sandbox are never followed, out of it or into it.
    run_ok(
        client,
        sid,
        "ln -sfn /etc/passwd /workspace/passwd-link && ln -sfn /etc /workspace/etc-link && mkdir -p /workspace/real && ln -sfn /tmp /workspace/real/tmp-link",
    )
    for path in ("/workspace/passwd-link", "/workspace/etc-link/passwd", "/workspace/etc-link"):
        planted = api_error(strict.upload_artifact, sid, UploadArtifactOptions(path=path))
        assert (planted.status_code, planted.code) == (400, "INVALID_PATH"), path
    for target in ("/workspace/real/tmp-link/landed.pdf", "/workspace/passwd-link"):
        planted = api_error(strict.download_artifact, sid, report.id, target)
        assert (planted.status_code, planted.code) == (400, "INVALID_PATH"), target
    assert run_ok(client, sid, ["readlink", "/workspace/passwd-link"]) == "/etc/passwd\n"
    assert not Path("/tmp/landed.pdf").exists()
    unknown = api_error(strict.get_artifact, "art_doesnotexist")
    assert (unknown.status_code, unknown.code) == (404, "ARTIFACT_NOT_FOUND")

    for expires_in in (0, -5, 7 * 86400 + 1):
        out_of_range = api_error(strict.get_artifact_url, report.id, expires_in=expires_in)
        assert out_of_range.status_code == 400, expires_in
        assert "expires_in" in out_of_range.message

    assert [a.id for a in client.list_artifacts(sandbox_id=sid)] == before


def test_stopped_sandbox_refuses_transfers(client, strict, report):
    stopped = new_sandbox(client).sandbox_id
    client.write_file(stopped, "/workspace/late.txt", "late")
    assert client.stop(stopped) is True
    into = api_error(strict.download_artifact, stopped, report.id, "/workspace/input/report.pdf")
    assert into.status_code == 409
    assert into.code == "SANDBOX_NOT_RUNNING"
    out_of = api_error(strict.upload_artifact, stopped, UploadArtifactOptions(path="/workspace/late.txt"))
    assert (out_of.status_code, out_of.code) == (409, "SANDBOX_NOT_RUNNING")
    assert client.list_artifacts(sandbox_id=stopped) == []


def test_another_organization_sees_no_artifact(stack, client, report):
    other = stack.bootstrap("Initech", "bob@initech.test")
    with sdk(stack, key=other["api_key"], org_id=other["org_id"], max_retries=0) as stranger:
        own = stranger.create(CreateSandboxOptions(timeout_seconds=300)).sandbox_id
        nobody = "art_doesnotexist"
        calls = {
            "get_artifact": lambda artifact_id: stranger.get_artifact(artifact_id),
            "download_artifact": lambda artifact_id: stranger.download_artifact(
                own, artifact_id, "/workspace/stolen.pdf"
            ),
            "get_artifact_url": lambda artifact_id: stranger.get_artifact_url(artifact_id, expires_in=60),
            "delete_artifact": lambda artifact_id: stranger.delete_artifact(artifact_id),
            "share": lambda artifact_id: stranger._request("POST", f"/artifacts/{artifact_id}/shares", {}),
        }
        for name, call in calls.items():
            theirs = api_error(call, report.id)
            absent = api_error(call, nobody)
            assert (theirs.status_code, theirs.code) == (404, "ARTIFACT_NOT_FOUND"), name
            assert (theirs.status_code, theirs.code, theirs.message.replace(report.id, "ID")) == (
                absent.status_code,
                absent.code,
                absent.message.replace(nobody, "ID"),
            ), name
        assert report.id not in {a.id for a in stranger.list_artifacts()}
        assert stranger.list_artifacts(sandbox_id=report.sandbox_id) == []
        into_ours = api_error(stranger.download_artifact, report.sandbox_id, report.id, "/workspace/x.pdf")
        assert into_ours.status_code == 404
        content = httpx.get(
            f"{stack.base_url}/api/v1/artifacts/{report.id}/content",
            headers={"Authorization": f"ApiKey {other['api_key']}", "X-Org-Id": other["org_id"]},
        )
        assert content.status_code == 404 and REPORT[:16] not in content.content
        assert "/workspace/stolen.pdf" not in {f["path"] for f in stranger.list_files(own, "/workspace")}
    # Still there for its owner.
    assert client.get_artifact(report.id) == report


# --- flow 9: a big file, streamed ----------------------------------------------------------------


def peak_memory(stack: StackOrganization, *, reset: bool = False) -> dict[int, tuple[str, int]]:
    """Peak resident memory (VmHWM, bytes) of every process of the stack, by pid; with ``reset``,
    each peak is first brought down to what the process holds now."""
    mark = b"STOWAGE_VAR_DIR=" + str(stack.var_dir).encode() + b"\0"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark not in (entry / "environ").read_bytes():
                continue
            if reset:
                # A process that refuses keeps its old peak, against which growth shows less.
                with contextlib.suppress(OSError):
                    (entry / "clear_refs").write_text("5")
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        peak = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        found[int(entry.name)] = (cmdline[:120], peak)
    return found


def test_big_file_round_trip_and_ranges(stack, client, public):
    source, target = new_sandbox(client).sandbox_id, new_sandbox(client).sandbox_id
    # The stack served other tests first, and a peak one of them left would hide this one's.
    peaks_before = peak_memory(stack, reset=True)
    run_ok(client, source, f"head -c {BIG_SIZE} /dev/urandom > /workspace/big.bin")
    digest = sha256_in(client, source, "/workspace/big.bin")

    big = client.upload_artifact(source, UploadArtifactOptions(path="/workspace/big.bin"))
    assert (big.size, big.checksum) == (BIG_SIZE, "sha256:" + digest)

    assert client.download_artifact(target, big.id, "/workspace/copy/big.bin") is True
    assert sha256_in(client, target, "/workspace/copy/big.bin") == digest

    # Ranges, one across the storage's 1 MiB chunk boundary and one suffix range.
    content = f"{stack.base_url}/api/v1/artifacts/{big.id}/content"
    for header, start, length in (("bytes=1048000-1049999", 1048000, 2000), ("bytes=-100", BIG_SIZE - 100, 100)):
        sliced = httpx.get(content, headers={**api_headers(stack), "Range": header}, timeout=60)
        assert sliced.status_code == 206, (header, sliced.text[:300])
        assert sliced.headers["content-range"] == f"bytes {start}-{start + length - 1}/{BIG_SIZE}"
        assert len(sliced.content) == length
        expected = run_ok(
            client,
            source,
            ["python3", "-c", f"f = open('/workspace/big.bin', 'rb'); f.seek({start}); print(f.read({length}).hex())"],
        ).strip()
        assert sliced.content.hex() == expected, header
    unsatisfiable = httpx.get(content, headers={**api_headers(stack), "Range": f"bytes={BIG_SIZE}-"}, timeout=60)
    assert unsatisfiable.status_code == 416

    # The whole body, streamed through a presigned URL, hashes the same.
    hasher, received = hashlib.sha256(), 0
    with public.stream("GET", client.get_artifact_url(big.id, expires_in=300)) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(BIG_SIZE)
        for chunk in response.iter_bytes():
            hasher.update(chunk)
            received += len(chunk)
    assert (received, hasher.hexdigest()) == (BIG_SIZE, digest)

    # Streamed, never held whole: no process of the stack grew by anything like the file's size.
    peaks_after = peak_memory(stack)
    grown = {
        pid: (name, (peaks_after[pid][1] - peak) >> 20)
        for pid, (name, peak) in peaks_before.items()
        if pid in peaks_after
    }
    assert grown and all(growth < 32 for _, growth in grown.values()), grown
