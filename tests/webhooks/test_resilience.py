"""Nothing is lost: a worker SIGKILLed mid-delivery, a receiver down and back up, a broker
outage at commit. Real Celery workers (started here, on a queue of this test's own, so they can
be killed) and a real receiver that verifies every signature."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from celery import Celery
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import stack
from config.celery import app as celery_app
from core.actor import Actor
from tests.conftest import worker_env
from tests.factories import make_artifact, make_webhook
from tests.webhooks.receiver import Answer, Receiver
from webhooks.models import DeliveryState, Webhook, WebhookDelivery, WebhookEvent
from webhooks.outbox import emit
from webhooks.worker import sweep

pytestmark = pytest.mark.worker


@pytest.fixture
def webhook_queue(settings):
    settings.STOWAGE_WEBHOOK_QUEUE = f"webhooks-test-{uuid.uuid4().hex[:8]}"
    return settings.STOWAGE_WEBHOOK_QUEUE


@pytest.fixture
def start_worker(broker, transactional_db, webhook_queue):
    """Workers of this test alone: they consume only its webhook queue."""
    started = []

    def start(name: str, **env: str):
        log = settings.VAR_DIR / "log" / f"webhook-worker-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        argv = stack.worker_argv(f"wh-{name}", concurrency=2)
        argv[argv.index("--queues") + 1] = webhook_queue
        process = stack.spawn(
            argv,
            env=worker_env(STOWAGE_WEBHOOK_QUEUE=webhook_queue, STOWAGE_WEBHOOK_LEASE_GRACE_SECONDS="1", **env),
            log=log,
        )
        started.append(process)
        try:
            stack.wait_for_worker(celery_app, f"wh-{name}", timeout=60, process=process)
        except RuntimeError:
            raise RuntimeError("the webhook worker did not start:\n" + log.read_text()[-4000:]) from None
        return process

    yield start
    stack.stop(started)


def _wait(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_delivery_loses_nothing(owner, receiver, start_worker):
    release = threading.Event()
    receiver.answers = [Answer(block=release)]
    webhook = make_webhook(owner.org_id, receiver.url, timeout_ms=2000, retry_count=3)
    receiver.secrets.append(webhook.secret)
    first = start_worker("doomed")
    event = emit(organization_id=owner.org_id, type="artifact.uploaded", data={"artifact_id": "art_x"})
    receiver.wait_for(1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    release.set()
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.state == DeliveryState.SENDING
    start_worker("survivor")
    # The dead worker's lease runs out; the sweep sends the same event again.
    _wait(lambda: timezone.now() > WebhookDelivery.objects.get(id=delivery.id).lease_until, what="the lease")
    assert sweep()["deliveries"] == 1
    receiver.wait_for(2)
    _wait(lambda: WebhookDelivery.objects.get(id=delivery.id).state == DeliveryState.SUCCEEDED, what="success")
    assert [r.webhook_id for r in receiver.received] == [event.id, event.id]
    assert all(r.verified_with == [webhook.secret] for r in receiver.received)


def test_a_receiver_down_and_back_up_gets_every_event(owner, start_worker, settings):
    settings.STOWAGE_WEBHOOK_PROBE_SECONDS = 0
    port = stack.free_port()
    webhook = make_webhook(owner.org_id, f"http://127.0.0.1:{port}/hook", retry_count=1, retry_delay_ms=100)
    start_worker("steady")
    events = [emit(organization_id=owner.org_id, type="artifact.deleted", data={"n": n}) for n in range(5)]
    # Nothing listens: every delivery spends its retries and fails.
    _wait(
        lambda: WebhookDelivery.objects.filter(state=DeliveryState.FAILED).count() == 5,
        what="every delivery to fail",
    )
    assert Webhook.objects.get(id=webhook.id).consecutive_failures == 5
    receiver = Receiver(port=port)
    receiver.secrets.append(webhook.secret)
    try:
        # The sweep probes the webhook; its first success sends everything it missed again.
        assert sweep()["probes"] == 1
        _wait(
            lambda: WebhookDelivery.objects.filter(state=DeliveryState.SUCCEEDED).count() == 5,
            what="every delivery to succeed",
        )
        received = {r.webhook_id for r in receiver.received}
        assert received == {e.id for e in events}
        assert all(r.verified_with for r in receiver.received)
        assert Webhook.objects.get(id=webhook.id).consecutive_failures == 0
    finally:
        receiver.close()


def test_a_broker_outage_at_commit_loses_no_event(owner, receiver, start_worker, monkeypatch, settings):
    settings.STOWAGE_WEBHOOK_SWEEP_GRACE_SECONDS = 0
    webhook = make_webhook(owner.org_id, receiver.url)
    receiver.secrets.append(webhook.secret)
    # The broker is unreachable when the change commits: a real connection refused.
    dead = Celery("dead", broker=f"redis://127.0.0.1:{stack.free_port()}/0", set_as_current=False)
    dead.conf.broker_connection_retry = False
    dead.conf.broker_connection_max_retries = 0
    monkeypatch.setattr("webhooks.outbox.celery_app", dead)
    artifact = make_artifact(owner.org_id, None, "out/report.pdf")
    from artifacts.services import artifact_delete

    with transaction.atomic():
        artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    event = WebhookEvent.objects.get(type="artifact.deleted")
    assert event.dispatched_at is None
    start_worker("after-outage")
    assert sweep()["events"] == 1
    [request] = receiver.wait_for(1)
    assert request.webhook_id == event.id and request.verified_with == [webhook.secret]
