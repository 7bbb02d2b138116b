"""Browser uploads straight to S3: the dashboard's direct-upload endpoints against moto's S3 server.

Each test plays the browser: it asks Stowage for a plan, hashes each part, asks for that part's
presigned URL and PUTs the part to the S3 server with a plain HTTP client, then asks Stowage to
join the parts. The check that follows (a worker reads the object back and records its SHA-256)
runs in-process here, through Celery's eager mode; tests/browser/test_direct_upload.py runs the
same flow in Chromium against the whole stack with its real worker.

moto does not check signatures or the checksums of parts (see tests/artifacts/test_s3.py), so
what the store would refuse is asserted on the URL: the part's length and SHA-256 are signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from kombu.exceptions import OperationalError

from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.multipart import s3_multipart_complete, s3_multipart_parts
from artifacts.storage import UploadGone
from audit.models import AuditEvent
from config.celery import app as celery_app
from transfers import direct as transfers_direct
from transfers import services, sweeps
from transfers.models import Transfer, TransferState

MiB = 1 << 20
PART = 8 * MiB


@pytest.fixture
def direct(s3, settings):
    """S3 storage with direct uploads from 1 MiB, and the worker's check run in-process."""
    settings.DIRECT_UPLOADS = True
    settings.DIRECT_UPLOAD_MIN_BYTES = MiB
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield s3
    celery_app.conf.task_always_eager = eager


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class Browser:
    """What upload.js does, one request at a time, as a signed-in dashboard user."""

    def __init__(self, client) -> None:
        self.client = client

    def post(self, url: str, payload: dict | None = None):
        return self.client.post(url, payload or {}, content_type="application/json")

    def begin(self, remote_path: str, size: int, **extra):
        return self.post("/artifacts/upload/direct/", {"remote_path": remote_path, "size": size, **extra})

    def sign(self, plan: dict, number: int, part: bytes):
        return self.post(plan["urls"]["part"], {"number": number, "sha256": sha256_b64(part)})

    def put(self, plan: dict, number: int, part: bytes) -> httpx.Response:
        signed = self.sign(plan, number, part)
        assert signed.status_code == 200, signed.content
        answer = signed.json()
        return httpx.request(answer["method"], answer["url"], content=part, headers=answer["headers"])

    def send_parts(self, plan: dict, data: bytes, numbers=None) -> None:
        for number in numbers or range(1, plan["part_count"] + 1):
            start = (number - 1) * plan["part_size"]
            response = self.put(plan, number, data[start : start + plan["part_size"]])
            assert response.status_code == 200, response.text

    def complete(self, plan: dict):
        return self.post(plan["urls"]["complete"])

    def status(self, plan: dict) -> dict:
        response = self.client.get(plan["urls"]["status"])
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def browser(dashboard) -> Browser:
    return Browser(dashboard.member)


def begin(browser: Browser, remote_path: str, size: int, **extra) -> dict:
    response = browser.begin(remote_path, size, **extra)
    assert response.status_code == 201, response.content
    return response.json()


# --- the whole flow ---------------------------------------------------------------------------


def test_a_direct_upload_of_bytes_already_stored_is_a_new_version_sharing_their_blob(browser, direct, transactional_db):
    data = os.urandom(PART + 4321)
    artifacts = []
    for metadata in ({"run": "1"}, {"run": "2"}):
        plan = begin(browser, "big/same.bin", len(data), metadata=metadata)
        browser.send_parts(plan, data)
        assert browser.complete(plan).status_code == 202
        status = browser.status(plan)
        assert status["state"] == "succeeded", status
        artifacts.append(Artifact.objects.get(id=status["artifact"]["id"]))
    assert [a.version for a in artifacts] == [1, 2] and [a.metadata for a in artifacts] == [{"run": "1"}, {"run": "2"}]
    blob = Blob.objects.get()
    assert {a.blob_id for a in artifacts} == {blob.id}
    # The first upload's object is the blob; the second's was dropped once it was published.
    assert blob.storage_key == artifacts[0].storage_key
    assert direct.object_keys() == {blob.storage_key} and direct.uploads() == []


def test_a_direct_upload_lands_in_the_bucket_checked_and_versioned(browser, direct):
    data = os.urandom(2 * PART + 12345)
    check = browser.post("/artifacts/upload/check/", {"remote_path": "big/data.bin", "size": len(data), "metadata": {}})
    assert check.status_code == 200 and check.json()["direct"] is True

    plan = begin(browser, "big/data.bin", len(data), metadata={"team": "ml"})
    assert (plan["state"], plan["part_size"], plan["part_count"], plan["size"]) == ("uploading", PART, 3, len(data))
    transfer = Transfer.objects.get(id=plan["id"])
    assert [upload["UploadId"] for upload in direct.uploads()] == [transfer.upload_id]
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.PENDING

    browser.send_parts(plan, data)
    assert direct.object_keys() == set()  # nothing under a final key until the parts are joined
    completed = browser.complete(plan)
    assert completed.status_code == 202, completed.content

    status = browser.status(plan)
    assert status["state"] == "succeeded", status
    artifact = Artifact.objects.get(id=status["artifact"]["id"])
    assert (artifact.state, artifact.version, artifact.size, artifact.remote_path) == (
        ArtifactState.READY,
        1,
        len(data),
        "big/data.bin",
    )
    assert artifact.checksum == "sha256:" + hashlib.sha256(data).hexdigest() == status["artifact"]["checksum"]
    assert artifact.metadata == {"team": "ml"}
    assert direct.object_keys() == {artifact.storage_key} and direct.uploads() == []
    assert hashlib.sha256(direct.body(artifact.storage_key)).digest() == hashlib.sha256(data).digest()
    event = AuditEvent.objects.get(action="artifact.upload", resource=f"artifact:{artifact.id}")
    assert event.details["via"] == "direct" and event.details["size"] == len(data) and event.outcome == "success"

    # A second upload to the same name is its next version, as through Stowage.
    again = os.urandom(MiB + 1)
    plan = begin(browser, "big/data.bin", len(again))
    browser.send_parts(plan, again)
    assert browser.complete(plan).status_code == 202
    assert browser.status(plan)["artifact"]["version"] == 2

    # The artifact page serves it from S3 like any other.
    download = browser.client.get(f"/artifacts/{artifact.id}/download/")
    assert download.status_code == 302 and download["Location"].startswith(direct.endpoint)


@pytest.mark.parametrize(
    ("size", "part_size"),
    [
        (16 * MiB, 8 * MiB),
        (256 * MiB, 8 * MiB),
        (256 * MiB + 1, 9 * MiB),
        (1 << 30, 32 * MiB),
        (5 << 30, 32 * MiB),
        (400 << 30, 41 * MiB),
    ],
)
def test_parts_grow_with_the_file_and_stay_within_s3s_part_count(size, part_size):
    assert transfers_direct.direct_part_size(size) == part_size
    assert -(-size // part_size) <= 10_000


def test_each_part_url_signs_its_length_and_sha256_for_put(browser, direct, settings):
    data = os.urandom(PART + 100)
    plan = begin(browser, "signed.bin", len(data))
    signed = browser.sign(plan, 2, data[PART:]).json()
    query = parse_qs(urlsplit(signed["url"]).query)
    assert signed["method"] == "PUT" and signed["size"] == 100
    assert query["partNumber"] == ["2"] and query["uploadId"] == [Transfer.objects.get(id=plan["id"]).upload_id]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(settings.DIRECT_UPLOAD_PART_URL_SECONDS)]
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) == {"content-length", "host", "x-amz-checksum-sha256"}
    assert signed["headers"] == {"x-amz-checksum-sha256": sha256_b64(data[PART:])}
    assert urlsplit(signed["url"]).path.endswith(Transfer.objects.get(id=plan["id"]).artifact.storage_key)


def test_several_parts_are_signed_in_one_request_or_none_is(browser, direct):
    data = os.urandom(2 * PART + 7)
    plan = begin(browser, "batch.bin", len(data))
    pieces = {n: data[(n - 1) * PART : n * PART] for n in (1, 2, 3)}
    signed = browser.post(
        plan["urls"]["part"], {"parts": [{"number": n, "sha256": sha256_b64(pieces[n])} for n in (1, 2, 3)]}
    )
    assert signed.status_code == 200, signed.content
    answers = signed.json()["parts"]
    assert [(a["number"], a["size"]) for a in answers] == [(1, PART), (2, PART), (3, 7)]
    for answer in answers:
        assert httpx.put(answer["url"], content=pieces[answer["number"]], headers=answer["headers"]).status_code == 200
    assert browser.complete(plan).status_code == 202 and browser.status(plan)["state"] == "succeeded"

    plan = begin(browser, "batch2.bin", len(data))
    for parts in (
        [],
        [{"number": 1, "sha256": sha256_b64(b"x")}] * 9,
        [{"number": 1, "sha256": sha256_b64(b"x")}, {"number": 4, "sha256": sha256_b64(b"x")}],
        "1,2",
        [1, 2],
    ):
        refused = browser.post(plan["urls"]["part"], {"parts": parts})
        assert refused.status_code == 400, (parts, refused.content)
        assert refused.json()["error"]["details"]["field"] in ("parts", "number")


def test_the_check_sends_small_files_and_local_storage_through_stowage(browser, direct, settings):
    small = browser.post("/artifacts/upload/check/", {"remote_path": "a.txt", "size": MiB - 1, "metadata": {}})
    assert small.json()["direct"] is False
    refused = browser.begin("a.txt", MiB - 1)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "TOO_SMALL_FOR_DIRECT_UPLOAD"
    settings.DIRECT_UPLOADS = False
    assert (
        browser.post("/artifacts/upload/check/", {"remote_path": "a.txt", "size": 10 * MiB, "metadata": {}}).json()[
            "direct"
        ]
        is False
    )
    off = browser.begin("a.txt", 10 * MiB)
    assert off.status_code == 409 and off.json()["error"]["code"] == "DIRECT_UPLOAD_UNAVAILABLE"
    assert direct.uploads() == [] and not Artifact.objects.exists()


def test_direct_uploads_need_s3(browser, settings, db):
    settings.DIRECT_UPLOADS = True
    assert (
        browser.post("/artifacts/upload/check/", {"remote_path": "a.txt", "size": 100 * MiB, "metadata": {}}).json()[
            "direct"
        ]
        is False
    )
    refused = browser.begin("a.txt", 100 * MiB)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "DIRECT_UPLOAD_UNAVAILABLE"


# --- bad input changes nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"remote_path": "../etc/passwd", "size": 2 * MiB}, 400, "INVALID_REMOTE_PATH"),
        ({"remote_path": "ok.bin", "size": -1}, 400, "VALIDATION_ERROR"),
        ({"remote_path": "ok.bin", "size": "big"}, 400, "VALIDATION_ERROR"),
        ({"remote_path": "ok.bin", "size": 2 * MiB, "metadata": {"k": 5}}, 400, "INVALID_METADATA"),
        ({"remote_path": "ok.bin", "size": (5 << 30) + 1}, 413, "FILE_TOO_LARGE"),
    ],
)
def test_a_bad_plan_is_refused_and_opens_nothing(browser, direct, payload, status, code):
    response = browser.post("/artifacts/upload/direct/", payload)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert direct.uploads() == [] and not Artifact.objects.exists() and not Transfer.objects.exists()


def test_a_body_that_is_not_json_is_refused(browser, direct):
    response = browser.client.post("/artifacts/upload/direct/", "size=1", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_JSON"


@pytest.mark.parametrize(
    ("number", "digest"),
    [(0, None), (3, None), ("1", None), (1, "not base64!"), (1, base64.b64encode(b"short").decode())],
)
def test_a_bad_part_request_is_refused(browser, direct, number, digest):
    data = os.urandom(PART + 1)
    plan = begin(browser, "p.bin", len(data))
    response = browser.post(plan["urls"]["part"], {"number": number, "sha256": digest or sha256_b64(data[:PART])})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] in ("number", "sha256")


def test_joining_with_a_part_missing_changes_nothing_and_can_be_retried(browser, direct):
    data = os.urandom(2 * PART + 5)
    plan = begin(browser, "gappy.bin", len(data))
    browser.send_parts(plan, data, numbers=[1, 3])
    refused = browser.complete(plan)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "UPLOAD_INCOMPLETE" and refused.json()["error"]["details"][
        "missing_parts"
    ] == [2]
    assert browser.status(plan)["state"] == "uploading" and len(direct.uploads()) == 1 and direct.object_keys() == set()

    browser.send_parts(plan, data, numbers=[2])
    assert browser.complete(plan).status_code == 202
    assert browser.status(plan)["artifact"]["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_part_of_the_wrong_length_is_refused_at_joining(browser, direct):
    data = os.urandom(PART + 10)
    plan = begin(browser, "short.bin", len(data))
    browser.send_parts(plan, data, numbers=[1])
    # moto takes a body shorter than the signed length (S3 would not); the join still refuses it.
    signed = browser.sign(plan, 2, data[PART:]).json()
    assert httpx.put(signed["url"], content=data[PART:-1], headers=signed["headers"]).status_code == 200
    refused = browser.complete(plan)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "PART_SIZE_MISMATCH"
    assert refused.json()["error"]["details"]["parts"] == [2]
    assert direct.object_keys() == set() and Artifact.objects.get().state == ArtifactState.PENDING


def joined(browser: Browser, direct, remote_path: str, data: bytes) -> Transfer:
    """An upload whose parts a worker joined in the bucket before it died, its check not run."""
    plan = begin(browser, remote_path, len(data))
    browser.send_parts(plan, data)
    transfer = Transfer.objects.get(id=plan["id"])
    key = transfer.artifact.storage_key
    s3_multipart_complete(key, transfer.upload_id, s3_multipart_parts(key, transfer.upload_id))
    Transfer.objects.filter(id=transfer.id).update(
        state=TransferState.QUEUED, completed_at=timezone.now(), bytes_done=len(data)
    )
    return Transfer.objects.select_related("artifact").get(id=transfer.id)


def test_the_worker_checks_the_parts_again_before_joining_them(browser, direct):
    """A URL signed before the upload was completed can still be used: a part it replaced with
    one of another length is caught by the worker, which leaves nothing behind."""
    data = os.urandom(PART + 10)
    plan = begin(browser, "swapped.bin", len(data))
    browser.send_parts(plan, data)
    early = browser.sign(plan, 2, data[PART:]).json()
    Transfer.objects.filter(id=plan["id"]).update(
        state=TransferState.QUEUED, completed_at=timezone.now(), bytes_done=len(data)
    )
    assert httpx.put(early["url"], content=data[PART:-1], headers=early["headers"]).status_code == 200
    assert transfers_direct.transfer_run_direct_finish(transfer_id=plan["id"]) == "failed"
    status = browser.status(plan)
    assert status["state"] == "failed" and status["error"]["code"] == "PART_SIZE_MISMATCH"
    assert direct.object_keys() == set() and direct.uploads() == []


def test_a_worker_that_joins_the_parts_publishes_them(browser, direct):
    data = os.urandom(2 * PART + 1)
    plan = begin(browser, "joined.bin", len(data))
    browser.send_parts(plan, data)
    Transfer.objects.filter(id=plan["id"]).update(
        state=TransferState.QUEUED, completed_at=timezone.now(), bytes_done=len(data)
    )
    assert direct.object_keys() == set()
    assert transfers_direct.transfer_run_direct_finish(transfer_id=plan["id"]) == "succeeded"
    artifact = Artifact.objects.get(id=browser.status(plan)["artifact"]["id"])
    assert artifact.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert direct.object_keys() == {artifact.storage_key} and direct.uploads() == []


def test_a_finish_whose_worker_died_is_taken_over_and_publishes_once(browser, direct):
    data = os.urandom(MiB + 10)
    transfer = joined(browser, direct, "once.bin", data)
    # The worker died mid-check: the transfer is left running, silent for longer than the lease.
    silent = timezone.now() - timedelta(seconds=transfers_direct.DIRECT_FINISH_LEASE_SECONDS + 1)
    Transfer.objects.filter(id=transfer.id).update(state=TransferState.RUNNING, heartbeat_at=silent)
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "succeeded"
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "skipped"
    artifact = Artifact.objects.get(id=transfer.artifact_id)
    assert artifact.state == ArtifactState.READY and artifact.version == 1
    assert AuditEvent.objects.filter(action="artifact.upload").count() == 1


def test_a_second_finish_leaves_one_that_is_running_alone(browser, direct):
    """Two deliveries of the finish at once (a duplicate message): the second touches nothing."""
    data = os.urandom(MiB + 10)
    plan = begin(browser, "busy.bin", len(data))
    browser.send_parts(plan, data)
    Transfer.objects.filter(id=plan["id"]).update(
        state=TransferState.RUNNING, completed_at=timezone.now(), heartbeat_at=timezone.now(), bytes_done=len(data)
    )
    assert transfers_direct.transfer_run_direct_finish(transfer_id=plan["id"]) == "skipped"
    assert len(direct.uploads()) == 1 and direct.object_keys() == set()
    assert Transfer.objects.get(id=plan["id"]).state == TransferState.RUNNING


def test_a_join_whose_answer_was_lost_goes_on_with_the_check(browser, direct, monkeypatch):
    data = os.urandom(MiB + 10)
    plan = begin(browser, "lost-join.bin", len(data))
    browser.send_parts(plan, data)
    real_join = transfers_direct.s3_multipart_complete

    def join_then_lose_the_answer(key, upload_id, parts):
        real_join(key, upload_id, parts)
        raise UploadGone("NoSuchUpload, as some stores answer a repeated completion")

    monkeypatch.setattr(transfers_direct, "s3_multipart_complete", join_then_lose_the_answer)
    assert browser.complete(plan).status_code == 202
    status = browser.status(plan)
    assert status["state"] == "succeeded"
    assert Artifact.objects.get(id=status["artifact"]["id"]).checksum == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_finish_that_finds_the_artifact_given_up_on_leaves_nothing(browser, direct):
    transfer = joined(browser, direct, "late.bin", os.urandom(MiB + 10))
    Artifact.objects.filter(id=transfer.artifact_id).update(state=ArtifactState.FAILED)  # the sweeper's verdict
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "failed"
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.FAILED
    assert Transfer.objects.get(id=transfer.id).error_code == "ABANDONED"
    assert direct.object_keys() == set()
    assert not AuditEvent.objects.filter(action="artifact.upload", outcome="success").exists()


def test_a_completion_retry_that_crossed_the_finish_reports_it(browser, direct):
    data = os.urandom(MiB + 10)
    plan = begin(browser, "crossed.bin", len(data))
    stale = Transfer.objects.select_related("artifact").get(id=plan["id"])  # read before the first completion
    browser.send_parts(plan, data)
    assert browser.complete(plan).status_code == 202  # completed and finished (tasks run in-process)
    assert services.direct_upload_complete(transfer=stale).state == TransferState.SUCCEEDED


def test_stalled_finishes_are_resumed_once_a_lease(browser, direct):
    data = os.urandom(MiB + 10)
    lost = joined(browser, direct, "lost-task.bin", data)
    long_ago = timezone.now() - timedelta(seconds=transfers_direct.DIRECT_FINISH_LEASE_SECONDS + 1)
    Transfer.objects.filter(id=lost.id).update(heartbeat_at=long_ago, state=TransferState.UNQUEUED)
    fresh = joined(browser, direct, "fresh.bin", os.urandom(MiB + 20))
    Transfer.objects.filter(id=fresh.id).update(state=TransferState.RUNNING, heartbeat_at=timezone.now())

    assert sweeps.direct_uploads_resume() == 1  # tasks run in-process: the lost one is finished now
    assert Transfer.objects.get(id=lost.id).state == TransferState.SUCCEEDED
    assert Artifact.objects.get(id=lost.artifact_id).checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert Transfer.objects.get(id=fresh.id).state == TransferState.RUNNING
    assert sweeps.direct_uploads_resume() == 0


def test_a_check_that_cannot_read_the_object_fails_the_upload(browser, direct):
    transfer = joined(browser, direct, "vanished.bin", os.urandom(MiB + 10))
    direct.client.delete_object(Bucket=direct.bucket, Key=transfer.artifact.storage_key)
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "failed"
    status = browser.status({"urls": {"status": f"/artifacts/upload/direct/{transfer.id}/"}})
    assert status["state"] == "failed" and status["error"]["code"] == "STORAGE_ERROR"
    assert (
        "could not be joined or read back" in status["error"]["message"]
        and "NoSuchKey" not in status["error"]["message"]
    )
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.FAILED


def test_an_unexpected_error_in_the_check_fails_the_upload_instead_of_leaving_it_checking(browser, direct, monkeypatch):
    transfer = joined(browser, direct, "boom.bin", os.urandom(MiB + 10))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
        yield b""

    monkeypatch.setattr(transfers_direct, "blob_iter_chunks", broken)
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "failed"
    failed = Transfer.objects.get(id=transfer.id)
    assert (failed.state, failed.error_code) == (TransferState.FAILED, "IO_ERROR")
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.FAILED


def test_completing_while_the_check_is_queued_does_not_queue_it_again(browser, direct):
    """Only a check the queue refused is queued again; otherwise a retry just reports progress."""
    data = os.urandom(MiB + 10)
    transfer = joined(browser, direct, "queued.bin", data)
    plan = {
        "urls": {
            "complete": f"/artifacts/upload/direct/{transfer.id}/complete/",
            "status": f"/artifacts/upload/direct/{transfer.id}/",
        }
    }
    # Tasks run in-process here: had the retry queued the check, it would have published the artifact.
    for _ in range(3):
        again = browser.complete(plan)
        assert again.status_code == 202 and again.json()["state"] == "verifying"
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.PENDING

    Transfer.objects.filter(id=transfer.id).update(state=TransferState.UNQUEUED)
    retried = browser.complete(plan)
    assert retried.status_code == 202 and retried.json()["state"] == "succeeded"
    assert Artifact.objects.get(id=transfer.artifact_id).checksum == "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_queue_being_down_at_completion_is_a_503_and_the_retry_finishes(browser, direct, monkeypatch):
    data = os.urandom(MiB + 10)
    plan = begin(browser, "outage.bin", len(data))
    browser.send_parts(plan, data)

    def down(*args, **kwargs):
        raise OperationalError("the broker is down")  # what kombu raises when Redis refuses

    monkeypatch.setattr(transfers_direct.finish_direct_upload, "apply_async", down)
    refused = browser.complete(plan)
    assert (
        refused.status_code == 503
        and refused["Retry-After"]
        and refused.json()["error"]["code"] == "BROKER_UNAVAILABLE"
    )
    assert browser.status(plan)["state"] == "verifying" and len(direct.uploads()) == 1  # closed, its parts kept
    monkeypatch.undo()
    retried = browser.complete(plan)
    assert retried.status_code == 202 and retried.json()["state"] == "succeeded"


def test_an_object_of_another_size_than_planned_is_not_published(browser, direct):
    """The size the plan promised is what gets published; a store that joined something else is caught."""
    data = os.urandom(MiB + 20)
    plan = begin(browser, "odd.bin", len(data))
    browser.send_parts(plan, data)
    transfer = Transfer.objects.get(id=plan["id"])
    key = transfer.artifact.storage_key
    s3_multipart_complete(key, transfer.upload_id, s3_multipart_parts(key, transfer.upload_id))
    Transfer.objects.filter(id=transfer.id).update(
        state=TransferState.QUEUED, completed_at=timezone.now(), bytes_total=len(data) + 1
    )
    assert transfers_direct.transfer_run_direct_finish(transfer_id=transfer.id) == "failed"
    status = browser.status(plan)
    assert status["state"] == "failed" and status["error"]["code"] == "SIZE_MISMATCH"
    assert Artifact.objects.get(id=transfer.artifact_id).state == ArtifactState.FAILED
    assert direct.object_keys() == set()


# --- cancelling, retrying, and whose upload it is --------------------------------------------


def test_abort_drops_the_parts_and_closes_the_upload(browser, direct):
    data = os.urandom(PART + 1)
    plan = begin(browser, "gone.bin", len(data))
    browser.send_parts(plan, data, numbers=[1])
    aborted = browser.post(plan["urls"]["abort"])
    assert (
        aborted.status_code == 200
        and aborted.json()["state"] == "failed"
        and aborted.json()["error"]["code"] == "CANCELLED"
    )
    assert direct.uploads() == [] and direct.object_keys() == set()
    assert Artifact.objects.get().state == ArtifactState.FAILED
    refused = browser.sign(plan, 2, data[PART:])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "UPLOAD_CLOSED"
    assert browser.complete(plan).json()["error"]["code"] == "UPLOAD_CLOSED"
    event = AuditEvent.objects.get(action="artifact.upload")
    assert event.outcome == "failure" and "CANCELLED" in event.error_message


def test_completing_twice_publishes_once(browser, direct):
    data = os.urandom(MiB + 3)
    plan = begin(browser, "twice.bin", len(data))
    browser.send_parts(plan, data)
    assert browser.complete(plan).status_code == 202
    again = browser.complete(plan)
    assert again.status_code == 202 and again.json()["state"] == "succeeded"
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 1
    assert AuditEvent.objects.filter(action="artifact.upload").count() == 1
    # Aborting a finished upload does nothing.
    assert browser.post(plan["urls"]["abort"]).json()["state"] == "succeeded"
    assert Artifact.objects.get().state == ArtifactState.READY


def test_an_abort_that_arrives_after_the_upload_finished_changes_nothing(browser, direct):
    data = os.urandom(MiB + 3)
    plan = begin(browser, "raced.bin", len(data))
    stale = Transfer.objects.select_related("artifact").get(id=plan["id"])  # read before completion
    browser.send_parts(plan, data)
    assert browser.complete(plan).status_code == 202
    services.direct_upload_abort(transfer=stale)
    assert Transfer.objects.get(id=stale.id).state == TransferState.SUCCEEDED
    assert Artifact.objects.get(id=stale.artifact_id).state == ArtifactState.READY
    assert not AuditEvent.objects.filter(outcome="failure").exists()
    assert len(direct.object_keys()) == 1


def test_only_the_uploader_can_touch_the_upload(dashboard, browser, direct):
    data = os.urandom(MiB + 1)
    plan = begin(browser, "mine.bin", len(data))
    for client in (dashboard.owner, dashboard.stranger):
        for url in (plan["urls"]["part"], plan["urls"]["complete"], plan["urls"]["abort"]):
            assert (
                client.post(url, {"number": 1, "sha256": sha256_b64(data)}, content_type="application/json").status_code
                == 404
            )
        assert client.get(plan["urls"]["status"]).status_code == 404
    # A viewer cannot upload at all; a visitor whose session ended is told so: JSON, for the page's script.
    viewer = dashboard.viewer.post(
        "/artifacts/upload/direct/", {"remote_path": "v.bin", "size": 2 * MiB}, content_type="application/json"
    )
    assert viewer.status_code == 404 and viewer.json()["error"]["code"] == "NOT_FOUND"
    signed_out = dashboard.anonymous.post(
        "/artifacts/upload/direct/", {"remote_path": "v.bin", "size": 2 * MiB}, content_type="application/json"
    )
    assert signed_out.status_code == 401 and signed_out.json()["error"]["code"] == "SIGNED_OUT"
    assert dashboard.anonymous.get(plan["urls"]["status"]).json()["error"]["code"] == "SIGNED_OUT"
    wrong_method = browser.client.get(plan["urls"]["complete"])
    assert (
        wrong_method.status_code == 405
        and wrong_method["Allow"] == "POST"
        and wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    )
    assert len(direct.uploads()) == 1


def test_the_direct_endpoints_keep_csrf_protection(dashboard, direct):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="member-user"))
    refused = client.post(
        "/artifacts/upload/direct/", {"remote_path": "x.bin", "size": 2 * MiB}, content_type="application/json"
    )
    assert refused.status_code == 403 and direct.uploads() == []


def test_the_sweeper_leaves_a_live_direct_upload_alone(browser, direct):
    """moto reports every upload as begun in 2010, so only the live transfer keeps it from the sweep."""
    data = os.urandom(PART + 1)
    plan = begin(browser, "live.bin", len(data))
    browser.send_parts(plan, data, numbers=[1])
    sweeps.storage_sweep()
    assert len(direct.uploads()) == 1 and browser.status(plan)["state"] == "uploading"
    browser.send_parts(plan, data, numbers=[2])
    assert browser.complete(plan).status_code == 202 and browser.status(plan)["state"] == "succeeded"


def test_the_sweeper_aborts_an_abandoned_direct_upload(browser, direct):
    data = os.urandom(PART + 1)
    plan = begin(browser, "abandoned.bin", len(data))
    browser.send_parts(plan, data, numbers=[1])
    sweeps.storage_sweep(now=timezone.now() + timedelta(hours=7))
    assert direct.uploads() == []
    assert browser.status(plan)["state"] == "failed"
    assert Artifact.objects.get().state == ArtifactState.FAILED


# --- the bucket's CORS rule -------------------------------------------------------------------


def test_s3_cors_adds_its_rule_and_keeps_the_others(direct, capsys):
    other = {"ID": "cdn", "AllowedOrigins": ["https://cdn.example.com"], "AllowedMethods": ["GET"]}
    direct.client.put_bucket_cors(Bucket=direct.bucket, CORSConfiguration={"CORSRules": [other]})
    call_command("s3_cors", "--origin", "https://stowage.example.com", "--origin", "http://127.0.0.1:8000/")
    call_command("s3_cors", "--origin", "https://stowage.example.com")  # again: replaced, not added
    rules = direct.client.get_bucket_cors(Bucket=direct.bucket)["CORSRules"]
    assert [rule.get("ID") for rule in rules] == ["stowage-direct-uploads", "cdn"]
    assert rules[0]["AllowedOrigins"] == ["https://stowage.example.com"] and rules[0]["AllowedMethods"] == ["PUT"]
    assert "x-amz-checksum-sha256" in rules[0]["AllowedHeaders"]
    # What a browser's preflight gets for the dashboard's origin, and for another.
    url = f"{direct.endpoint}/{direct.bucket}/blobs/x"
    allowed = httpx.options(
        url,
        headers={
            "Origin": "https://stowage.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-amz-checksum-sha256",
        },
    )
    assert allowed.headers.get("Access-Control-Allow-Origin") == "https://stowage.example.com"
    other_origin = httpx.options(
        url, headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "PUT"}
    )
    assert "Access-Control-Allow-Origin" not in other_origin.headers
    call_command("s3_cors", "--remove")
    assert [rule.get("ID") for rule in direct.client.get_bucket_cors(Bucket=direct.bucket)["CORSRules"]] == ["cdn"]


def test_s3_cors_needs_an_origin_and_s3(direct, settings):
    settings.PUBLIC_BASE_URL = ""
    with pytest.raises(CommandError, match="--origin"):
        call_command("s3_cors")
    with pytest.raises(CommandError, match="not an origin"):
        call_command("s3_cors", "--origin", "stowage.example.com/upload")
    settings.PUBLIC_BASE_URL = "https://files.example.com/stowage/"
    call_command("s3_cors")
    assert direct.client.get_bucket_cors(Bucket=direct.bucket)["CORSRules"][0]["AllowedOrigins"] == [
        "https://files.example.com"
    ]


def test_s3_cors_refuses_local_storage(db):
    with pytest.raises(CommandError, match="not stored on S3"):
        call_command("s3_cors", "--origin", "https://stowage.example.com")
