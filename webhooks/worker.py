"""The worker side of webhooks: dispatching events into deliveries, sending them, and the sweep
that picks up whatever a dead worker or a broker outage left behind.

Every attempt first claims its delivery with one conditional UPDATE (due and pending, or sending
with an expired lease) that sets a lease, so a task delivered twice never sends twice at once; a
worker killed mid-attempt leaves a lease that runs out, and the sweep sends the same event, with
the same ``webhook-id``, again.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from core.actor import Actor
from webhooks.delivery import AttemptResult, send_attempt
from webhooks.events import TEST_EVENT
from webhooks.models import DeliveryState, Webhook, WebhookDelivery, WebhookEvent

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver"
SWEEP_BATCH = 500


def send_deliver(delivery_id: str, *, countdown: float | None = None) -> None:
    """Best effort: a delivery the broker never got is found by the sweep."""
    try:
        deliver.apply_async(kwargs={"delivery_id": delivery_id}, countdown=countdown, retry=False)
    except Exception as exc:
        logger.warning("webhook delivery %s not queued (the sweep will): %s", delivery_id, exc)


def event_dispatch(*, event_id: str, send: bool = True) -> list[str]:
    return [delivery.id for delivery in _dispatch(event_id=event_id, send=send)]


def _dispatch(*, event_id: str, send: bool, claim: int = 0) -> list[WebhookDelivery]:
    """One delivery per enabled webhook of the event's organization that subscribes to it (and
    existed when the event was written); the ids of those made now, queued on commit unless
    ``send`` is false. The first ``claim`` of them are made already claimed for an attempt by
    the caller (one write fewer). Idempotent: a second run finds the event dispatched."""
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.filter(id=event_id, dispatched_at=None).first()
        if event is None:
            return []
        webhooks = [
            webhook
            for webhook in Webhook.objects.filter(
                organization_id=event.organization_id, enabled=True, created_at__lte=event.created_at
            )
            if webhook.subscribes_to(event.type)
        ]
        deliveries = [
            WebhookDelivery(webhook=webhook, event=event, next_attempt_at=now, created_at=now) for webhook in webhooks
        ]
        for delivery in deliveries[:claim]:
            delivery.state, delivery.attempts, delivery.round_attempts = DeliveryState.SENDING, 1, 1
            delivery.last_attempt_at = now
            delivery.lease_until = now + timedelta(seconds=_lease_seconds(delivery.webhook))
        # The unique (event, webhook) pair keeps a concurrent dispatcher from making twins.
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        claimed = WebhookEvent.objects.filter(id=event_id, dispatched_at=None).update(dispatched_at=now)
        if not claimed:
            return []
        # Claimed: no other dispatcher got here first, so every row above is ours.
        if send:
            ids = [delivery.id for delivery in deliveries]
            transaction.on_commit(lambda: [send_deliver(delivery_id) for delivery_id in ids])
    return deliveries


def _lease_seconds(webhook: Webhook) -> float:
    return webhook.timeout_ms / 1000 + settings.STOWAGE_WEBHOOK_LEASE_GRACE_SECONDS


def delivery_claim(delivery_id: str, *, now: datetime, loaded: WebhookDelivery | None = None) -> WebhookDelivery | None:
    """The delivery, claimed for one attempt; None if it is not due or someone else has it.
    ``loaded`` is the row as its caller already holds it, with its webhook and event."""
    delivery = loaded or WebhookDelivery.objects.select_related("webhook", "event").filter(id=delivery_id).first()
    if delivery is None:
        return None
    lease_until = now + timedelta(seconds=_lease_seconds(delivery.webhook))
    due = Q(state=DeliveryState.PENDING, next_attempt_at__lte=now) | Q(state=DeliveryState.SENDING, lease_until__lt=now)
    claimed = (
        WebhookDelivery.objects.filter(due, id=delivery_id)
        .filter(attempts=delivery.attempts)
        .update(
            state=DeliveryState.SENDING,
            lease_until=lease_until,
            attempts=F("attempts") + 1,
            round_attempts=F("round_attempts") + 1,
            last_attempt_at=now,
        )
    )
    if not claimed:
        return None
    delivery.state, delivery.lease_until, delivery.last_attempt_at = DeliveryState.SENDING, lease_until, now
    delivery.attempts += 1
    delivery.round_attempts += 1
    return delivery


def backoff_seconds(webhook: Webhook, round_attempts: int, retry_after: float | None) -> float:
    """Exponential from the webhook's retry delay, with full jitter; a Retry-After wins; both capped."""
    cap = settings.STOWAGE_WEBHOOK_MAX_RETRY_DELAY_SECONDS
    if retry_after is not None:
        return min(retry_after, cap)
    ceiling = min(cap, webhook.retry_delay_ms / 1000 * (2 ** max(0, round_attempts - 1)))
    return random.uniform(ceiling / 2, ceiling)


def webhook_disable(*, webhook_id: str, reason: str, actor: Actor | None = None) -> bool:
    """Disable an enabled webhook and audit it; False if it was already disabled."""
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().filter(id=webhook_id, enabled=True).first()
        if webhook is None:
            return False
        Webhook.objects.filter(id=webhook_id).update(
            enabled=False, disabled_reason=reason[:300], disabled_at=timezone.now(), updated_at=timezone.now()
        )
        audit_record(
            actor=actor or Actor.system(webhook.organization_id),
            action="webhook.disable",
            resource=f"webhook:{webhook.id}",
            details={"url": webhook.url, "reason": reason[:300], "consecutive_failures": webhook.consecutive_failures},
            organization_id=webhook.organization_id,
        )
    return True


def deliveries_replay(*, webhook_id: str, since: datetime) -> list[str]:
    """Send again every failed delivery of the webhook made since ``since``: a new round each."""
    now = timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(
            webhook_id=webhook_id, state=DeliveryState.FAILED, created_at__gte=since
        ).values_list("id", flat=True)[:10000]
    )
    if ids:
        WebhookDelivery.objects.filter(id__in=ids, state=DeliveryState.FAILED).update(
            state=DeliveryState.PENDING, next_attempt_at=now, round_attempts=0, lease_until=None
        )
        transaction.on_commit(lambda: [send_deliver(delivery_id) for delivery_id in ids])
    return ids


def _record_success(delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> None:
    WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.SENDING).update(
        state=DeliveryState.SUCCEEDED,
        succeeded_at=now,
        lease_until=None,
        next_attempt_at=None,
        response_status=result.status,
        latency_ms=result.latency_ms,
        response_excerpt=result.excerpt,
        error="",
    )
    if not delivery.webhook.consecutive_failures:
        # As the attempt began: a failure recorded since is reset by the next success.
        return
    with transaction.atomic():
        # The receiver is back: everything it missed within the replay window goes again.
        recovered = Webhook.objects.filter(id=delivery.webhook_id, consecutive_failures__gt=0).update(
            consecutive_failures=0, failing_since=None
        )
        if recovered:
            since = now - timedelta(seconds=settings.STOWAGE_WEBHOOK_REPLAY_WINDOW_SECONDS)
            deliveries_replay(webhook_id=delivery.webhook_id, since=since)


def _record_failure(delivery: WebhookDelivery, result: AttemptResult, now: datetime) -> None:
    webhook = delivery.webhook
    fields = {
        "response_status": result.status,
        "latency_ms": result.latency_ms,
        "response_excerpt": result.excerpt,
        "error": result.error[:500],
        "lease_until": None,
    }
    gone = result.status == 410
    if delivery.event.type == TEST_EVENT:
        # A test is one attempt, reported to whoever asked; it says nothing about the events.
        WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.SENDING).update(
            state=DeliveryState.FAILED, next_attempt_at=None, **fields
        )
        return
    if not gone and delivery.round_attempts <= webhook.retry_count:
        delay = backoff_seconds(webhook, delivery.round_attempts, result.retry_after)
        updated = WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.SENDING).update(
            state=DeliveryState.PENDING, next_attempt_at=now + timedelta(seconds=delay), **fields
        )
        if updated:
            send_deliver(delivery.id, countdown=delay)
        return
    with transaction.atomic():
        WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.SENDING).update(
            state=DeliveryState.FAILED, next_attempt_at=None, **fields
        )
        Webhook.objects.filter(id=webhook.id).update(
            consecutive_failures=F("consecutive_failures") + 1, failing_since=webhook.failing_since or now
        )
        webhook.refresh_from_db(fields=["consecutive_failures", "failing_since", "enabled"])
    if gone:
        webhook_disable(webhook_id=webhook.id, reason="the receiver answered 410 Gone")
    elif (
        webhook.consecutive_failures >= settings.STOWAGE_WEBHOOK_DISABLE_AFTER
        and webhook.failing_since <= now - timedelta(seconds=settings.STOWAGE_WEBHOOK_DISABLE_AFTER_SECONDS)
    ):
        webhook_disable(webhook_id=webhook.id, reason=f"{webhook.consecutive_failures} deliveries in a row failed")


def delivery_attempt(*, delivery_id: str, test: bool = False, loaded: WebhookDelivery | None = None) -> str:
    """Claim, send and record one attempt; what happened, in a word. A test is sent to a
    disabled webhook too."""
    delivery = delivery_claim(delivery_id, now=timezone.now(), loaded=loaded)
    if delivery is None:
        return "not-due"
    return _attempt_claimed(delivery, test=test)


def _attempt_claimed(delivery: WebhookDelivery, *, test: bool = False) -> str:
    if not delivery.webhook.enabled and not test:
        WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.SENDING).update(
            state=DeliveryState.FAILED, lease_until=None, next_attempt_at=None, error="the webhook is disabled"
        )
        return "disabled"
    result = send_attempt(delivery.webhook, delivery.event)
    done = timezone.now()
    if result.succeeded:
        _record_success(delivery, result, done)
        return "succeeded"
    _record_failure(delivery, result, done)
    return "failed"


# The first attempts of so many deliveries run in the dispatching task itself, saving a trip
# through the queue; the rest are queued, so one slow receiver does not hold up the others.
INLINE_ATTEMPTS = 1


@shared_task(name="webhooks.dispatch", acks_late=True, ignore_result=True, soft_time_limit=180, time_limit=240)
def dispatch(event_id: str) -> int:
    deliveries = _dispatch(event_id=event_id, send=False, claim=INLINE_ATTEMPTS)
    for delivery in deliveries[INLINE_ATTEMPTS:]:
        send_deliver(delivery.id)
    # A worker that dies here leaves a lease that runs out, or pending deliveries: the sweep
    # sends them.
    for delivery in deliveries[:INLINE_ATTEMPTS]:
        _attempt_claimed(delivery)
    return len(deliveries)


@shared_task(name="webhooks.deliver", acks_late=True, ignore_result=True, soft_time_limit=180, time_limit=240)
def deliver(delivery_id: str) -> str:
    return delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliver_test", acks_late=True, soft_time_limit=180, time_limit=240)
def deliver_test(delivery_id: str) -> dict:
    outcome = delivery_attempt(delivery_id=delivery_id, test=True)
    delivery = WebhookDelivery.objects.filter(id=delivery_id).first()
    return {
        "outcome": outcome,
        "response_status": delivery.response_status if delivery else None,
        # Not "error": core.dispatch.wait_for reads that key as the task's own failure.
        "delivery_error": delivery.error if delivery else "",
    }


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Dispatch events the commit hook never sent; resend due deliveries and expired leases;
    probe webhooks that are failing."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.STOWAGE_WEBHOOK_SWEEP_GRACE_SECONDS)
    events = list(
        WebhookEvent.objects.filter(dispatched_at=None, created_at__lte=grace)
        .order_by("created_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    for event_id in events:
        event_dispatch(event_id=event_id)
    due = list(
        WebhookDelivery.objects.filter(
            Q(state=DeliveryState.PENDING, next_attempt_at__lte=grace)
            | Q(state=DeliveryState.SENDING, lease_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    for delivery_id in due:
        send_deliver(delivery_id)
    probes = 0
    probe_before = now - timedelta(seconds=settings.STOWAGE_WEBHOOK_PROBE_SECONDS)
    window = now - timedelta(seconds=settings.STOWAGE_WEBHOOK_REPLAY_WINDOW_SECONDS)
    failing = Webhook.objects.filter(enabled=True, consecutive_failures__gt=0).filter(
        Q(last_probe_at=None) | Q(last_probe_at__lte=probe_before)
    )
    for webhook in failing[:SWEEP_BATCH]:
        oldest = (
            WebhookDelivery.objects.filter(webhook=webhook, state=DeliveryState.FAILED, created_at__gte=window)
            .order_by("created_at")
            .first()
        )
        Webhook.objects.filter(id=webhook.id).update(last_probe_at=now)
        if oldest is None:
            continue
        # One more attempt, past the round's retries, so it is the only one.
        if WebhookDelivery.objects.filter(id=oldest.id, state=DeliveryState.FAILED).update(
            state=DeliveryState.PENDING, next_attempt_at=now, round_attempts=webhook.retry_count + 1
        ):
            send_deliver(oldest.id)
            probes += 1
    return {"events": len(events), "deliveries": len(due), "probes": probes}


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> dict[str, int]:
    return sweep()


def events_prune(*, now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=settings.STOWAGE_WEBHOOK_EVENT_RETENTION_DAYS)
    # Deliveries go with their event (cascade); an undispatched event is kept until dispatched.
    ids = list(
        WebhookEvent.objects.filter(created_at__lt=cutoff)
        .exclude(dispatched_at=None)
        .values_list("id", flat=True)[:10000]
    )
    WebhookEvent.objects.filter(id__in=ids).delete()
    return len(ids)


@shared_task(name="webhooks.prune_events", ignore_result=True)
def prune_events() -> int:
    return events_prune()
