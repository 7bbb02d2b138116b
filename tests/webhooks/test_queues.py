"""Webhook deliveries wait on receivers; they must never hold up anyone else's work."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from config import stack
from config.celery import SHARED_QUEUE, command_queue, sandbox_queue
from tests.factories import make_webhook, put_artifact
from tests.webhooks.receiver import Answer
from webhooks.outbox import emit

pytestmark = pytest.mark.worker

# More deliveries than either of the test host's pools has threads (tests/conftest.py).
DELIVERIES = 8


def test_a_share_link_and_a_file_call_go_through_while_every_delivery_hangs(live, owner, sandbox, receiver):
    artifact = put_artifact(owner, "reports/hanging-receivers.txt", b"report")
    hang = threading.Event()
    receiver.default = Answer(block=hang)
    try:
        make_webhook(owner.org_id, receiver.url, retry_count=0, timeout_ms=30_000)
        for index in range(DELIVERIES):
            emit(organization_id=owner.org_id, type="artifact.uploaded", data={"artifact_id": f"art_{index}"})
        # Every thread that takes deliveries is now waiting on the receiver.
        receiver.wait_for(4)

        share = owner.post(f"/artifacts/{artifact.id}/shares", {})
        assert share.status_code == 201, share.content
        assert share.json()["state"] == "active"
        written = owner.post(
            f"/sandbox/{sandbox['sandbox_id']}/files",
            {"files": [{"path": "note.txt", "content": base64.b64encode(b"still served").decode()}]},
        )
        assert written.status_code == 200, written.content
    finally:
        hang.set()
    # Nothing was lost meanwhile: each event, the share link's and the file's included, arrives.
    types = [json.loads(request.body)["type"] for request in receiver.wait_for(DELIVERIES + 2)]
    assert sorted(types) == ["artifact.uploaded"] * DELIVERIES + ["file.written", "share.created"]


def test_the_host_pools_split_waiting_work_from_file_calls(settings):
    files, commands = stack.host_worker_argvs("h1", commands=4, files=4)
    queues = {argv[argv.index("--queues") + 1] for argv in (files, commands)}
    assert queues == {f"{sandbox_queue('h1')},{SHARED_QUEUE}", f"{command_queue('h1')},stowage.webhooks"}
    # An operator who keeps webhook tasks on the shared queue gets them on the file pool, once.
    settings.STOWAGE_WEBHOOK_QUEUE = SHARED_QUEUE
    files, commands = stack.host_worker_argvs("h1", commands=4, files=4)
    assert commands[commands.index("--queues") + 1] == command_queue("h1")
