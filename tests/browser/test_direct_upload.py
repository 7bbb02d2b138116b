"""Large uploads from the dashboard straight to S3, in Chromium, against the whole stack on S3.

The stack (web, worker, beat, as `make run` starts them) stores artifacts in a bucket of moto's
S3 server on loopback; moto runs without its global CORS, so the browser reaches the bucket only
through the bucket's own CORS rule, which `manage.py s3_cors` writes as an operator would.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.stack import LocalStack
from tests.browser.conftest import require_chromium, shoot
from tests.conftest import ACCESS_KEY, REGION, S3, SECRET_KEY

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

MiB = 1 << 20
PART = 8 * MiB


@pytest.fixture(scope="module")
def bucket(s3_server: str) -> S3:
    store = S3(s3_server, f"stowage-browser-{uuid.uuid4().hex[:8]}")
    store.client.create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, bucket: S3) -> Iterator[LocalStack]:
    """The stack of tests/browser/conftest.py, on S3, sending files from 1 MiB straight to the bucket."""
    require_chromium()
    env = {
        "AWS_STORAGE_BUCKET_NAME": bucket.bucket,
        "AWS_S3_ENDPOINT_URL": bucket.endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "STOWAGE_DIRECT_UPLOAD_MIN_BYTES": str(MiB),
    }
    with LocalStack(tmp_path_factory.mktemp("direct-stack") / "var", env=env) as running:
        running.manage("s3_cors", "--origin", running.base_url)
        yield running


def _api(stack: LocalStack, path: str) -> dict:
    response = httpx.get(
        stack.base_url + "/api/v1" + path,
        headers={"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _watch_requests(page) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    page.on("request", lambda request: seen.append((request.method, request.url)))
    return seen


def _upload(page, stack: LocalStack, picked: Path) -> None:
    page.goto(stack.base_url + "/artifacts/upload/")
    page.get_by_label("Choose files…").set_input_files(str(picked))
    page.locator("#common-prefix").fill("direct")
    page.evaluate(
        """() => {
          window.__progress = [];
          new MutationObserver(() => {
            const bar = document.querySelector('#upload-queue progress');
            window.__progress.push(bar.getAttribute('value'));
          }).observe(document.getElementById('upload-queue'), {subtree: true, attributes: true, attributeFilter: ['value']});
        }"""
    )
    page.locator("#uploader").get_by_role("button", name="Upload", exact=True).click()
    page.locator("#upload-summary").filter(has_text="1 uploaded.").wait_for(timeout=60_000)


def test_a_large_file_goes_from_the_browser_straight_to_the_bucket(stack, context, bucket, tmp_path: Path):
    data = os.urandom(2 * PART + 3 * MiB + 17)  # three parts, the last one short
    picked = tmp_path / "model.bin"
    picked.write_bytes(data)
    page = context.new_page()
    requests = _watch_requests(page)
    _upload(page, stack, picked)

    status = page.locator("#upload-queue").get_by_role("status").inner_text()
    assert "Uploaded as direct/model.bin, version 1." in status, status
    assert "through Stowage" not in status
    values = [int(value) for value in page.evaluate("window.__progress") if value is not None]
    assert values[-1] == 100 and len(set(values)) > 2, values
    shoot(page, "upload-direct")

    # The bytes went to the bucket, part by part; none of them to Stowage's own upload endpoint.
    part_puts = sorted(
        int(re.search(r"[?&]partNumber=(\d+)", url).group(1))
        for method, url in requests
        if method == "PUT" and url.startswith(bucket.endpoint)
    )
    assert part_puts == [1, 2, 3]
    assert not [url for method, url in requests if url.startswith(stack.base_url) and method == "PUT"]

    # Published by the worker with the SHA-256 of the whole file, and stored whole in the bucket.
    artifact_id = page.get_by_role("link", name="Open it").get_attribute("href").strip("/").split("/")[-1]
    artifact = _api(stack, f"/artifacts/{artifact_id}")
    assert artifact["size"] == len(data)
    assert artifact["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    keys = bucket.object_keys()
    assert len(keys) == 1 and hashlib.sha256(bucket.body(keys.pop())).digest() == hashlib.sha256(data).digest()
    assert bucket.uploads() == []

    # Downloading from the artifact's page is a redirect to the bucket, and gives the same bytes.
    page.goto(stack.base_url + f"/artifacts/{artifact_id}/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").first.click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert download.value.suggested_filename == "model.bin"


def test_without_a_cors_rule_the_file_goes_through_stowage_instead(stack, context, console, bucket, tmp_path: Path):
    stack.manage("s3_cors", "--remove")
    try:
        # Chromium reports the refused preflight on the console; that is the case under test.
        console.expected += ["CORS policy", "net::ERR_FAILED"]
        data = os.urandom(MiB + 5)
        picked = tmp_path / "fallback.bin"
        picked.write_bytes(data)
        page = context.new_page()
        requests = _watch_requests(page)
        _upload(page, stack, picked)
        status = page.locator("#upload-queue").get_by_role("status").inner_text()
        assert "went through Stowage" in status and "Uploaded as direct/fallback.bin, version 1." in status, status
        assert any(method == "PUT" and "/artifacts/upload/stream/" in url for method, url in requests)
        artifact_id = page.get_by_role("link", name="Open it").get_attribute("href").strip("/").split("/")[-1]
        assert _api(stack, f"/artifacts/{artifact_id}")["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert bucket.uploads() == []  # the direct attempt was aborted
    finally:
        stack.manage("s3_cors", "--origin", stack.base_url)


def test_a_refused_part_and_a_lost_answer_are_retried_without_a_duplicate(
    stack, context, console, bucket, tmp_path: Path
):
    """The bucket refuses one part (as for a URL that expired on the way) and the answer to the
    join is lost after the server did it: the page tries again and ends with one artifact."""
    console.expected += ["status of 403", "net::ERR_FAILED"]
    data = os.urandom(PART + MiB + 9)
    picked = tmp_path / "flaky.bin"
    picked.write_bytes(data)
    page = context.new_page()
    refused, joined = [], []

    def bucket_put(route):
        if route.request.method == "PUT" and not refused:
            refused.append(route.request.url)
            headers = {"Access-Control-Allow-Origin": stack.base_url, "Content-Type": "application/xml"}
            route.fulfill(
                status=403,
                headers=headers,
                body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            )
            return
        route.continue_()

    def complete(route):
        if not joined:
            joined.append(route.fetch().status)  # the server joins the parts; its answer never arrives
            route.abort()
            return
        route.continue_()

    page.route(f"{bucket.endpoint}/**", bucket_put)
    page.route("**/artifacts/upload/direct/*/complete/", complete)
    _upload(page, stack, picked)

    status = page.locator("#upload-queue").get_by_role("status").inner_text()
    assert "Uploaded as direct/flaky.bin, version 1." in status, status
    assert refused and joined == [202]
    listed = _api(stack, "/artifacts?limit=100")
    flaky = [artifact for artifact in listed["artifacts"] if artifact["remote_path"] == "direct/flaky.bin"]
    assert len(flaky) == 1 and flaky[0]["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
