"""One attempt at a time against a real receiver: signatures, retries, Retry-After, 410,
redirects, timeouts, disabling, rotation, redelivery and DNS rebinding."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from core.actor import Actor
from tests.factories import make_webhook
from tests.webhooks.receiver import Answer
from webhooks import services
from webhooks.models import DeliveryState, Webhook, WebhookDelivery
from webhooks.outbox import emit
from webhooks.worker import backoff_seconds, delivery_attempt, event_dispatch, sweep

pytestmark = pytest.mark.django_db


def _delivery(owner, receiver, **fields) -> WebhookDelivery:
    webhook = make_webhook(owner.org_id, receiver.url, **fields)
    receiver.secrets.append(webhook.secret)
    event = emit(organization_id=owner.org_id, type="artifact.uploaded", data={"artifact_id": "art_1"})
    event_dispatch(event_id=event.id)
    return WebhookDelivery.objects.get(event=event, webhook=webhook)


def _due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.PENDING).update(next_attempt_at=timezone.now())


def test_a_delivery_is_signed_per_standard_webhooks(owner, receiver, queued):
    delivery = _delivery(owner, receiver, headers={"X-Team": "builds"})
    assert delivery_attempt(delivery_id=delivery.id) == "succeeded"
    [request] = receiver.received
    assert request.verified_with == [receiver.secrets[0]]
    assert request.webhook_id == delivery.event_id
    assert request.headers["x-team"] == "builds"
    body = json.loads(request.body)
    assert body["type"] == "artifact.uploaded" and body["id"] == delivery.event_id
    assert body["organization_id"] == owner.org_id and body["data"] == {"artifact_id": "art_1"}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_status) == (DeliveryState.SUCCEEDED, 1, 200)
    assert delivery.response_excerpt == "ok"


def test_a_non_2xx_answer_is_retried_with_the_same_id_until_it_succeeds(owner, receiver, queued):
    receiver.answers = [Answer(status=500, body=b"x" * 5000), Answer(status=503)]
    # Retries seconds apart, so that "not due yet" holds however slowly this test runs.
    delivery = _delivery(owner, receiver, retry_count=3, retry_delay_ms=10_000)
    assert delivery_attempt(delivery_id=delivery.id) == "failed"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.response_status == 500
    assert len(delivery.response_excerpt) == 1024
    assert queued[-1][0] == delivery.id and queued[-1][1] > 0
    # Not due yet: a second task for it sends nothing.
    assert delivery_attempt(delivery_id=delivery.id) == "not-due"
    _due(delivery)
    assert delivery_attempt(delivery_id=delivery.id) == "failed"
    _due(delivery)
    assert delivery_attempt(delivery_id=delivery.id) == "succeeded"
    assert len({r.webhook_id for r in receiver.received}) == 1 and len(receiver.received) == 3
    assert all(r.verified_with for r in receiver.received)


def test_retries_stop_at_the_webhooks_retry_count(owner, receiver, queued):
    receiver.default = Answer(status=500)
    delivery = _delivery(owner, receiver, retry_count=1)
    delivery_attempt(delivery_id=delivery.id)
    _due(delivery)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == 2
    assert Webhook.objects.get(id=delivery.webhook_id).consecutive_failures == 1


def test_retry_after_sets_the_next_attempt(owner, receiver, queued):
    receiver.answers = [Answer(status=429, headers={"Retry-After": "120"})]
    delivery = _delivery(owner, receiver)
    before = timezone.now()
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert before + timedelta(seconds=119) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=121)
    assert queued[-1][1] == 120


@override_settings(STOWAGE_WEBHOOK_MAX_RETRY_DELAY_SECONDS=30)
def test_retry_after_as_an_http_date_is_capped(owner, receiver, queued):
    receiver.answers = [Answer(status=503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})]
    delivery = _delivery(owner, receiver)
    delivery_attempt(delivery_id=delivery.id)
    assert queued[-1][1] == 30


def test_backoff_grows_exponentially_with_jitter(owner):
    webhook = make_webhook(owner.org_id, "http://127.0.0.1/", retry_delay_ms=1000)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8)]:
        delays = [backoff_seconds(webhook, attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_410_disables_the_webhook_at_once(owner, receiver, queued):
    receiver.answers = [Answer(status=410)]
    delivery = _delivery(owner, receiver, retry_count=5)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    webhook = Webhook.objects.get(id=delivery.webhook_id)
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == 1
    assert not webhook.enabled and "410" in webhook.disabled_reason
    assert AuditEvent.objects.filter(action="webhook.disable", resource=f"webhook:{webhook.id}").exists()


def test_a_redirect_is_a_failure_and_is_not_followed(owner, receiver, queued):
    receiver.answers = [Answer(status=302, headers={"Location": receiver.url + "/elsewhere"})]
    delivery = _delivery(owner, receiver)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.response_status == 302
    assert "not followed" in delivery.error
    assert [r.path for r in receiver.received] == ["/hook"]


def test_a_slow_receiver_times_out(owner, receiver, queued):
    release = threading.Event()
    receiver.answers = [Answer(block=release)]
    delivery = _delivery(owner, receiver, timeout_ms=1000)
    try:
        delivery_attempt(delivery_id=delivery.id)
    finally:
        release.set()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and "timed out" in delivery.error
    assert delivery.response_status is None


@override_settings(STOWAGE_WEBHOOK_DISABLE_AFTER=3, STOWAGE_WEBHOOK_DISABLE_AFTER_SECONDS=0)
def test_consecutive_failed_deliveries_disable_the_webhook(owner, receiver, queued):
    receiver.default = Answer(status=500)
    webhook = make_webhook(owner.org_id, receiver.url, retry_count=0)
    for _ in range(3):
        event = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
        event_dispatch(event_id=event.id)
        delivery_attempt(delivery_id=WebhookDelivery.objects.get(event=event).id)
    webhook.refresh_from_db()
    assert not webhook.enabled and webhook.consecutive_failures == 3
    assert "3 deliveries in a row failed" in webhook.disabled_reason
    assert AuditEvent.objects.filter(action="webhook.disable").count() == 1
    # Disabled: the next event makes no delivery.
    event = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
    assert event_dispatch(event_id=event.id) == []


def test_a_success_resets_the_failures_and_sends_what_failed_again(owner, receiver, queued):
    receiver.default = Answer(status=500)
    first = _delivery(owner, receiver, retry_count=0)
    delivery_attempt(delivery_id=first.id)
    assert WebhookDelivery.objects.get(id=first.id).state == DeliveryState.FAILED
    receiver.default = Answer(status=200)
    event = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
    event_dispatch(event_id=event.id)
    second = WebhookDelivery.objects.get(event=event)
    assert delivery_attempt(delivery_id=second.id) == "succeeded"
    assert Webhook.objects.get(id=first.webhook_id).consecutive_failures == 0
    assert WebhookDelivery.objects.get(id=first.id).state == DeliveryState.PENDING
    assert delivery_attempt(delivery_id=first.id) == "succeeded"
    ids = [r.webhook_id for r in receiver.received]
    assert ids == [first.event_id, second.event_id, first.event_id]


@override_settings(STOWAGE_WEBHOOK_PROBE_SECONDS=0)
def test_the_sweep_probes_a_failing_webhook_with_its_oldest_failed_delivery(owner, receiver, queued):
    receiver.default = Answer(status=500)
    delivery = _delivery(owner, receiver, retry_count=0)
    delivery_attempt(delivery_id=delivery.id)
    receiver.default = Answer(status=200)
    assert sweep()["probes"] == 1
    assert delivery_attempt(delivery_id=delivery.id) == "succeeded"


def test_during_a_rotation_both_signatures_are_sent_and_verify(owner, receiver, queued):
    delivery = _delivery(owner, receiver)
    webhook = delivery.webhook
    old_secret = receiver.secrets[0]
    webhook, new_secret = services.webhook_rotate_secret(actor=Actor.system(owner.org_id), webhook=webhook)
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    receiver.secrets.append(new_secret)
    delivery_attempt(delivery_id=delivery.id)
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert sorted(request.verified_with) == sorted([old_secret, new_secret])


def test_after_the_overlap_only_the_new_secret_signs(owner, receiver, queued):
    delivery = _delivery(owner, receiver)
    old_secret = receiver.secrets[0]
    _, new_secret = services.webhook_rotate_secret(
        actor=Actor.system(owner.org_id), webhook=delivery.webhook, overlap_seconds=0
    )
    receiver.secrets.append(new_secret)
    delivery_attempt(delivery_id=delivery.id)
    assert receiver.received[0].verified_with == [new_secret]
    assert old_secret not in receiver.received[0].verified_with


def test_a_plain_secret_signs_with_its_own_bytes(owner, receiver, queued):
    delivery = _delivery(owner, receiver, secret="a-plain-secret-of-my-own")
    delivery_attempt(delivery_id=delivery.id)
    assert receiver.received[0].verified_with == ["a-plain-secret-of-my-own"]


def test_redeliver_sends_the_same_event_again_and_is_audited(owner, receiver, queued):
    delivery = _delivery(owner, receiver)
    delivery_attempt(delivery_id=delivery.id)
    services.delivery_redeliver(actor=Actor.system(owner.org_id), delivery=WebhookDelivery.objects.get(id=delivery.id))
    assert delivery_attempt(delivery_id=delivery.id) == "succeeded"
    assert [r.webhook_id for r in receiver.received] == [delivery.event_id, delivery.event_id]
    assert all(r.verified_with for r in receiver.received)
    assert AuditEvent.objects.filter(action="webhook.redeliver", details__delivery_id=delivery.id).exists()
    assert WebhookDelivery.objects.get(id=delivery.id).attempts == 2


def test_a_delivery_in_flight_is_claimed_once(owner, receiver, queued):
    delivery = _delivery(owner, receiver)
    from webhooks.worker import delivery_claim

    now = timezone.now()
    assert delivery_claim(delivery.id, now=now) is not None
    # A duplicate task while the lease holds finds nothing to do.
    assert delivery_claim(delivery.id, now=now) is None
    assert delivery_attempt(delivery_id=delivery.id) == "not-due"
    assert receiver.received == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1"])
def test_a_host_that_rebinds_to_a_forbidden_address_is_refused_at_delivery(
    owner, receiver, queued, monkeypatch, address
):
    answers = {"hooks.example.com": ["93.184.216.34"]}
    monkeypatch.setattr("webhooks.network.resolve", lambda host, port: answers[host])
    with override_settings(STOWAGE_WEBHOOK_ALLOWED_HOSTS=[]):
        webhook, _ = services.webhook_create(
            actor=Actor.system(owner.org_id), organization_id=owner.org_id, url="http://hooks.example.com/hook"
        )
        event = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
        event_dispatch(event_id=event.id)
        answers["hooks.example.com"] = [address]
        delivery = WebhookDelivery.objects.get(event=event, webhook=webhook)
        delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.error.startswith("refused:")
    assert delivery.response_status is None
    assert receiver.received == []


def test_the_connection_goes_to_the_checked_address(owner, receiver, queued, monkeypatch):
    """The name resolves once, to the receiver: the attempt connects there with the name as Host."""
    calls = []

    def resolve(host, port):
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr("webhooks.network.resolve", resolve)
    delivery = _delivery(owner, receiver)
    Webhook.objects.filter(id=delivery.webhook_id).update(url=f"http://hooks.internal.test:{receiver.port}/hook")
    assert delivery_attempt(delivery_id=delivery.id) == "succeeded"
    assert calls == ["hooks.internal.test"]
    assert receiver.received[0].headers["host"] == f"hooks.internal.test:{receiver.port}"
