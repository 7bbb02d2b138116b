"""Artifact storage on S3 (django-storages' S3Storage), against moto's S3 server on loopback.

Everything here runs in-process on the web side: PUT, streamed content, presigned URLs, share
delivery, delete and the sweeper. What moto does NOT enforce, so these tests cannot prove it:
- signatures and expiry of presigned URLs: moto serves a presigned GET whatever its signature and
  X-Amz-Expires (the tests check the URL says the right thing, and that it works unauthenticated);
- bucket policies, ACLs and credentials in general (any key pair is accepted).
- checksums: moto 5.2 accepts a part (or a PUT) whose ChecksumSHA256 does not match its bytes,
  so the tests check what we send (each part's SHA-256, recorded on the boto3 client) and what the
  store kept (the composite checksum of the parts, equal to the one computed from the bytes);
  AWS S3 itself refuses a mismatched part with BadDigest;
- times of multipart uploads: list_multipart_uploads reports every upload as initiated on
  2010-11-10, so the sweeper's "only stale uploads" cut-off cannot be exercised (with moto every
  in-progress upload looks stale); AWS reports the real time;
- composite checksums: AWS appends "-<parts>" to a multipart object's ChecksumSHA256; moto does not.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone

from artifacts import blobs
from artifacts.models import Artifact, ArtifactState, Blob
from artifacts.storage import (
    S3_PART_SIZE,
    BlobError,
    blob_key,
    blob_storage,
    blob_write,
    s3_client,
)
from core.actor import Actor
from shares.models import ShareLink, ShareLinkState
from shares.services import hash_share_token
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY
from transfers import sweeps
from transfers.put import artifact_put


@pytest.fixture
def local_cache(settings):
    """Share downloads count guesses in the cache; a local one keeps these tests off Redis."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"s3-{uuid.uuid4().hex}"}
    }


def payload(size: int) -> bytes:
    return os.urandom(size)


def put(owner, remote_path: str, data: bytes, content_type: str = "application/octet-stream"):
    return owner.client.put(
        f"/api/v1/artifacts?remote_path={remote_path}", data, content_type=content_type, headers=owner.headers()
    )


def composite_sha256(data: bytes, part_size: int = S3_PART_SIZE) -> str:
    """S3's checksum of a multipart object: the SHA-256 of the parts' SHA-256s, and the part count."""
    digests = [hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)]
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + f"-{len(digests)}"


# --- writing ---------------------------------------------------------------------------------


def test_a_20_mib_put_goes_up_in_three_checksummed_parts(owner, s3):
    data = payload(20 << 20)
    sent = []  # what our code asked of S3, seen on the storage's own boto3 client
    client = s3_client(blob_storage())

    def record(params, model, **_):
        sent.append(
            (
                model.name,
                {k: v for k, v in params.items() if k.startswith("Checksum") or k in ("PartNumber", "MultipartUpload")},
                len(params.get("Body") or b""),
            )
        )

    client.meta.events.register("provide-client-params.s3.*", record, unique_id="test-s3-record")
    try:
        response = put(owner, "builds/big.bin", data)
    finally:
        client.meta.events.unregister("provide-client-params.s3.*", unique_id="test-s3-record")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["size"] == len(data)
    assert body["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    artifact = Artifact.objects.get(id=body["id"])
    assert s3.object_keys() == {artifact.storage_key}
    stored = s3.body(artifact.storage_key)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    # The store kept the per-part SHA-256s we sent: the object's checksum is their composite.
    head = s3.client.head_object(Bucket=s3.bucket, Key=artifact.storage_key, ChecksumMode="ENABLED")
    # (AWS appends "-<parts>" to a composite checksum; moto 5.2 leaves it off.)
    assert head["ChecksumSHA256"].split("-")[0] == composite_sha256(data).split("-")[0]
    assert head["ContentLength"] == len(data)
    attributes = s3.client.get_object_attributes(
        Bucket=s3.bucket, Key=artifact.storage_key, ObjectAttributes=["Checksum", "ObjectSize"]
    )
    assert attributes["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attributes["ObjectSize"] == len(data)
    assert s3.uploads() == []
    # One multipart upload declared SHA256; three parts of 8, 8 and 4 MiB, each with the
    # base64 SHA-256 of its own bytes; the completion lists those checksums.
    operations = [name for name, _params, _size in sent]
    assert operations == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"]
    assert sent[0][1]["ChecksumAlgorithm"] == "SHA256"
    # Parts go up concurrently, so they are compared in part-number order.
    parts = sorted(
        ((params, size) for name, params, size in sent if name == "UploadPart"), key=lambda item: item[0]["PartNumber"]
    )
    assert [size for _params, size in parts] == [8 << 20, 8 << 20, 4 << 20]
    for number, (params, _size) in enumerate(parts, start=1):
        chunk = data[(number - 1) * S3_PART_SIZE : number * S3_PART_SIZE]
        assert params["PartNumber"] == number
        assert params["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    completed = sent[-1][1]["MultipartUpload"]["Parts"]
    assert [part["ChecksumSHA256"] for part in completed] == [params["ChecksumSHA256"] for params, _size in parts]


def test_a_small_put_is_one_checksummed_object(owner, s3):
    data = b"hello, bucket\n"
    response = put(owner, "notes/hello.txt", data, content_type="text/plain")
    assert response.status_code == 201, response.content
    key = Artifact.objects.get(id=response.json()["id"]).storage_key
    assert s3.body(key) == data
    head = s3.client.head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_an_empty_put_stores_an_empty_object(owner, s3):
    response = put(owner, "empty.bin", b"")
    assert response.status_code == 201, response.content
    assert s3.body(Artifact.objects.get(id=response.json()["id"]).storage_key) == b""


class BreaksMidway:
    """A request body whose client hangs up after ``good`` bytes."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("connection reset by peer")
        n = min(n if n > 0 else self.left, self.left)
        self.left -= n
        return os.urandom(n)


def test_an_interrupted_body_leaves_no_object_and_no_upload(owner, s3):
    actor = Actor.system(owner.org_id)
    with pytest.raises(OSError):
        # Past the first part, so a multipart upload was under way when the body broke.
        artifact_put(actor=actor, stream=BreaksMidway(12 << 20), remote_path="broken.bin", content_length=20 << 20)
    assert s3.object_keys() == set()
    assert s3.uploads() == []
    artifact = Artifact.objects.get(organization_id=owner.org_id, remote_path="broken.bin")
    assert artifact.state != ArtifactState.READY


def test_a_blob_over_the_limit_is_aborted_and_leaves_nothing(s3):
    with pytest.raises(BlobError):
        blob_write("blobs/o/too-big", iter([b"x" * (1 << 20)] * 12), max_bytes=10 << 20)
    assert s3.object_keys() == set()
    assert s3.uploads() == []


# --- reading -----------------------------------------------------------------------------------


def test_content_streams_from_s3_with_ranges(owner, s3):
    data = payload(9 << 20)
    artifact_id = put(owner, "data/blob.bin", data).json()["id"]
    response = owner.client.get(f"/api/v1/artifacts/{artifact_id}/content", headers=owner.headers())
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    ranged = owner.client.get(f"/api/v1/artifacts/{artifact_id}/content", headers=owner.headers(Range="bytes=100-199"))
    assert ranged.status_code == 206
    assert b"".join(ranged.streaming_content) == data[100:200]


def test_the_url_api_returns_an_s3_presigned_url_that_downloads_without_auth(owner, s3):
    data = payload(3 << 20)
    artifact_id = put(owner, 'reports/q3 "final";.pdf', data, content_type="application/pdf").json()["id"]
    response = owner.get(f"/artifacts/{artifact_id}/url", {"expires_in": 120})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["expires_in"] == 120
    url = body["url"]
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    # The safe name: no quote, backslash, semicolon or slash can break out of the header.
    assert query["response-content-disposition"] == ['attachment; filename="q3 _final__.pdf"']
    assert query["response-content-type"] == ["application/pdf"]
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-disposition"] == 'attachment; filename="q3 _final__.pdf"'
    assert fetched.headers["content-type"] == "application/pdf"


def test_a_share_link_download_redirects_to_a_short_lived_s3_url(owner, s3, local_cache, settings):
    data = payload(1 << 20)
    artifact = Artifact.objects.get(id=put(owner, "shared/file.bin", data).json()["id"])
    token = "s3-share-token-" + uuid.uuid4().hex
    ShareLink.objects.create(
        organization_id=owner.org_id,
        artifact=artifact,
        token_hash=hash_share_token(token),
        state=ShareLinkState.ACTIVE,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    response = owner.client.get(reverse("share-download", args=[token]))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.bucket}/")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == [str(settings.SHARE_DOWNLOAD_URL_SECONDS)]
    assert response["Cache-Control"] == "private, no-store"
    assert httpx.get(location).content == data
    assert ShareLink.objects.get(artifact=artifact).download_count == 1


# --- deleting and sweeping ---------------------------------------------------------------------


def test_delete_removes_the_object(owner, s3, django_capture_on_commit_callbacks):
    artifact = Artifact.objects.get(id=put(owner, "gone.bin", b"soon gone").json()["id"])
    assert artifact.storage_key in s3.object_keys()
    assert owner.delete(f"/artifacts/{artifact.id}").status_code == 200
    assert artifact.storage_key in s3.object_keys()  # in the trash, the bytes stay
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert owner.delete(f"/trash/{artifact.id}").status_code == 200
    assert callbacks  # the worker's collection of the blob, run here in-process
    assert blobs.collect_blob(blob_id=artifact.blob_id)
    assert not Blob.objects.exists()
    assert s3.object_keys() == set()


def test_the_sweeper_removes_orphans_and_stale_uploads_but_keeps_ready_objects(owner, s3, settings):
    settings.ARTIFACT_STALE_PENDING_SECONDS = 3600
    ready = Artifact.objects.get(id=put(owner, "keep.bin", b"keep me").json()["id"])
    orphan = blob_key(owner.org_id, "art_orphan")
    s3.client.put_object(Bucket=s3.bucket, Key=orphan, Body=b"nobody owns me")
    upload = s3.client.create_multipart_upload(
        Bucket=s3.bucket, Key=blob_key(owner.org_id, "art_dead_writer"), ChecksumAlgorithm="SHA256"
    )["UploadId"]

    assert [u["UploadId"] for u in s3.uploads()] == [upload]

    # Now, the objects are young: they are not judged. (The upload is not checked here: moto
    # reports every upload as initiated in 2010, so to the sweeper it is always stale.)
    sweeps.storage_sweep()
    assert s3.object_keys() == {ready.storage_key, orphan}

    # Two hours on (moto's times cannot be set back, so the sweep's clock moves forward).
    result = sweeps.storage_sweep(now=timezone.now() + timedelta(hours=2))
    assert s3.object_keys() == {ready.storage_key}
    assert s3.uploads() == []
    assert s3.body(ready.storage_key) == b"keep me"
    assert result["removed_blobs"] >= 1


# --- through a real worker ---------------------------------------------------------------------

S3_WORKER_HOST = "s3worker"


@pytest.fixture
def s3_worker(s3, broker, transactional_db, settings):
    """A Celery worker of its own host (so it shares no queue with the suite's worker), started
    with the S3 environment a production worker would have; new sandboxes go to it."""
    from config import stack
    from config.celery import app as celery_app
    from config.celery import host_queues
    from tests.conftest import worker_env

    env = worker_env(
        STOWAGE_HOST=S3_WORKER_HOST,
        AWS_STORAGE_BUCKET_NAME=s3.bucket,
        AWS_S3_ENDPOINT_URL=s3.endpoint,
        AWS_S3_REGION_NAME=REGION,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    )
    # Its sandbox queues only (commands and the rest), not the shared one.
    argv = stack.worker_argv(S3_WORKER_HOST, concurrency=2, queues=host_queues(S3_WORKER_HOST))
    log = settings.VAR_DIR / "log" / "worker-s3.log"
    log.unlink(missing_ok=True)
    process = stack.spawn(argv, env=env, log=log)
    try:
        stack.wait_for_worker(celery_app, S3_WORKER_HOST, timeout=60, process=process)
    except RuntimeError:
        stack.stop([process])
        raise RuntimeError("the S3 worker did not start:\n" + log.read_text()[-4000:]) from None
    settings.STOWAGE_SANDBOX_HOSTS = [S3_WORKER_HOST]
    yield process
    stack.stop([process])


@pytest.mark.worker
def test_a_sandbox_upload_through_a_worker_lands_in_the_bucket_and_comes_back(owner, s3, s3_worker):
    created = [owner.post("/sandbox/create", {"timeout_seconds": 600}) for _ in range(2)]
    assert all(response.status_code == 201 for response in created), [r.content for r in created]
    source, target = (response.json()["sandbox_id"] for response in created)
    size = (9 << 20) + 123  # two parts
    # Made by a command, as the JSON files API caps a file at 10 MiB of base64.
    written = owner.post(
        f"/sandbox/{source}/execute",
        {"command": f"head -c {size} /dev/urandom > /workspace/out.bin && sha256sum /workspace/out.bin"},
    )
    assert written.status_code == 200, written.content
    digest = written.json()["stdout"].split()[0]
    uploaded = owner.post(
        f"/sandbox/{source}/artifacts/upload", {"path": "/workspace/out.bin", "remote_path": "worker/out.bin"}
    )
    assert uploaded.status_code == 200, uploaded.content
    artifact = Artifact.objects.get(id=uploaded.json()["id"])
    assert artifact.checksum == f"sha256:{digest}"
    assert artifact.size == size
    assert s3.object_keys() == {artifact.storage_key}
    assert hashlib.sha256(s3.body(artifact.storage_key)).hexdigest() == digest
    assert s3.uploads() == []
    downloaded = owner.post(
        f"/sandbox/{target}/artifacts/download", {"artifact_id": artifact.id, "target_path": "/workspace/in.bin"}
    )
    assert downloaded.status_code == 200, downloaded.content
    check = owner.post(f"/sandbox/{target}/execute", {"command": "sha256sum /workspace/in.bin"}).json()
    assert check["stdout"].split()[0] == digest
    for sid in (source, target):
        owner.delete(f"/sandbox/{sid}")
