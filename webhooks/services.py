"""Every change a request makes to webhooks: create, update, enable and disable, rotate the
secret, delete, test, redeliver. Each validates first and changes nothing on bad input."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core.actor import Actor
from core.dispatch import enqueue, wait_for
from core.errors import Conflict, GatewayTimeout, InvalidInput, NotFound
from webhooks import worker
from webhooks.events import EVENT_TYPES, TEST_EVENT
from webhooks.models import ALL_EVENTS, DeliveryState, Webhook, WebhookDelivery, WebhookEvent
from webhooks.network import check_url
from webhooks.outbox import event_body
from webhooks.secrets import SECRET_PREFIX, encrypt_secret, generate_secret
from webhooks.signing import SIGNED_HEADERS
from webhooks.worker import deliver_test, deliveries_replay, webhook_disable

MAX_RETRY_COUNT = 10
RETRY_DELAY_MS = (100, 600_000)
TIMEOUT_MS = (1000, 60_000)
MAX_HEADERS = 20
MAX_HEADER_VALUE = 1000
MAX_ROTATION_OVERLAP_SECONDS = 7 * 86400
DEFAULT_ROTATION_OVERLAP_SECONDS = 86400
TEST_WAIT_MARGIN_SECONDS = 15
# Headers the delivery itself sets, or that would change how the request is framed.
RESERVED_HEADERS = SIGNED_HEADERS | {
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_PLAIN_SECRET = re.compile(r"^[\x21-\x7e]{16,256}$")


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}", details={"field": field})
    return value


def check_events(events: Any) -> list[str]:
    if events is None or events == ALL_EVENTS:
        return [ALL_EVENTS]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInput('events must be "*" or a non-empty list of event names', details={"field": "events"})
    if ALL_EVENTS in events:
        return [ALL_EVENTS]
    unknown = sorted({e for e in events if e not in EVENT_TYPES})
    if unknown:
        raise InvalidInput(
            f"unknown event names: {', '.join(u[:60] for u in unknown[:10])}; known: {', '.join(EVENT_TYPES)}",
            code="UNKNOWN_EVENT",
            details={"field": "events", "unknown": [u[:60] for u in unknown[:10]]},
        )
    return list(dict.fromkeys(events))


def check_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InvalidInput("headers must be an object of header names to values", details={"field": "headers"})
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"at most {MAX_HEADERS} headers", details={"field": "headers"})
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidInput(
                "a header name must be 1 to 100 token characters (letters, digits, -)", details={"field": "headers"}
            )
        if name.lower() in RESERVED_HEADERS:
            raise InvalidInput(
                f"the header {name} is set by the delivery and cannot be given",
                code="RESERVED_HEADER",
                details={"field": "headers", "header": name},
            )
        if (
            not isinstance(value, str)
            or len(value) > MAX_HEADER_VALUE
            or any(ch in value for ch in "\r\n\x00")
            or any((ord(ch) < 0x20 and ch != "\t") or ord(ch) > 0x7E for ch in value)
        ):
            raise InvalidInput(
                f"the value of {name} must be printable ASCII text of at most {MAX_HEADER_VALUE} characters, no CR or LF",
                details={"field": "headers", "header": name},
            )
        if name.lower() in {k.lower() for k in clean}:
            raise InvalidInput(f"the header {name} is given twice", details={"field": "headers", "header": name})
        clean[name] = value
    return clean


def check_secret(secret: Any) -> str:
    if secret is None:
        return generate_secret()
    if not isinstance(secret, str):
        raise InvalidInput("secret must be a string", details={"field": "secret"})
    if secret.startswith(SECRET_PREFIX):
        try:
            encoded = secret[len(SECRET_PREFIX) :].rstrip("=")
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not 24 <= len(key) <= 64:
            raise InvalidInput(
                "a whsec_ secret must be base64 of 24 to 64 random bytes; leave it out to have one made",
                details={"field": "secret"},
            )
        return secret
    if not _PLAIN_SECRET.match(secret):
        raise InvalidInput(
            "secret must be 16 to 256 printable ASCII characters without spaces (or a whsec_ secret)",
            details={"field": "secret"},
        )
    return secret


def _check_settings(*, retry_count: Any, retry_delay_ms: Any, timeout_ms: Any) -> tuple[int, int, int]:
    return (
        _whole(retry_count, "retry_count", 0, MAX_RETRY_COUNT),
        _whole(retry_delay_ms, "retry_delay_ms", *RETRY_DELAY_MS),
        _whole(timeout_ms, "timeout_ms", *TIMEOUT_MS),
    )


def _audit(actor: Actor, action: str, webhook: Webhook, **details: Any) -> None:
    audit_record(
        actor=actor,
        action=action,
        resource=f"webhook:{webhook.id}",
        details={"url": webhook.url, **details},
        organization_id=webhook.organization_id,
    )


def webhook_create(
    *,
    actor: Actor,
    organization_id: str,
    url: Any,
    events: Any = ALL_EVENTS,
    secret: Any = None,
    headers: Any = None,
    retry_count: Any = 3,
    retry_delay_ms: Any = 1000,
    timeout_ms: Any = 30000,
    enabled: Any = True,
) -> tuple[Webhook, str]:
    """A new webhook and its secret, which is returned here and never again."""
    check_url(url)
    clean_events = check_events(events)
    clean_headers = check_headers(headers)
    clean_secret = check_secret(secret)
    retries, delay, timeout = _check_settings(
        retry_count=retry_count, retry_delay_ms=retry_delay_ms, timeout_ms=timeout_ms
    )
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", details={"field": "enabled"})
    if Webhook.objects.filter(organization_id=organization_id).count() >= settings.STOWAGE_WEBHOOK_MAX_PER_ORGANIZATION:
        raise Conflict(
            f"an organization may have at most {settings.STOWAGE_WEBHOOK_MAX_PER_ORGANIZATION} webhooks",
            code="WEBHOOK_LIMIT",
        )
    webhook = Webhook(
        organization_id=organization_id,
        url=url,
        events=clean_events,
        secret_encrypted=encrypt_secret(clean_secret),
        headers=clean_headers,
        retry_count=retries,
        retry_delay_ms=delay,
        timeout_ms=timeout,
        enabled=enabled,
        created_by_api_key_id=actor.api_key_id,
        created_by_user_id=actor.user_id,
    )
    with transaction.atomic():
        webhook.save(force_insert=True)
        _audit(actor, "webhook.create", webhook, events=clean_events, header_names=sorted(clean_headers))
        transaction.on_commit(lambda: _stamp_created(webhook))
    return webhook, clean_secret


def _stamp_created(webhook: Webhook) -> None:
    """A webhook's events are those of changes made after this moment: once it is committed, so
    that every change made since sees it and has its event dispatched (webhooks.outbox)."""
    webhook.created_at = timezone.now()
    Webhook.objects.filter(id=webhook.id).update(created_at=webhook.created_at)


_UNSET: Any = object()


def webhook_update(
    *,
    actor: Actor,
    webhook: Webhook,
    url: Any = _UNSET,
    events: Any = _UNSET,
    headers: Any = _UNSET,
    retry_count: Any = _UNSET,
    retry_delay_ms: Any = _UNSET,
    timeout_ms: Any = _UNSET,
    enabled: Any = _UNSET,
) -> Webhook:
    changes: dict[str, Any] = {}
    if url is not _UNSET:
        check_url(url)
        changes["url"] = url
    if events is not _UNSET:
        changes["events"] = check_events(events)
    if headers is not _UNSET:
        changes["headers"] = check_headers(headers)
    numbers = {
        "retry_count": webhook.retry_count if retry_count is _UNSET else retry_count,
        "retry_delay_ms": webhook.retry_delay_ms if retry_delay_ms is _UNSET else retry_delay_ms,
        "timeout_ms": webhook.timeout_ms if timeout_ms is _UNSET else timeout_ms,
    }
    retries, delay, timeout = _check_settings(**numbers)
    before = {
        "retry_count": webhook.retry_count,
        "retry_delay_ms": webhook.retry_delay_ms,
        "timeout_ms": webhook.timeout_ms,
    }
    changes.update(retry_count=retries, retry_delay_ms=delay, timeout_ms=timeout)
    if enabled is not _UNSET and not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", details={"field": "enabled"})
    with transaction.atomic():
        Webhook.objects.filter(id=webhook.id).update(updated_at=timezone.now(), **changes)
        webhook.refresh_from_db()
        changed = sorted(k for k in changes if k not in numbers or (k, changes[k]) != (k, before[k]))
        _audit(actor, "webhook.update", webhook, fields=changed)
    if enabled is True:
        webhook_enable(actor=actor, webhook=webhook)
    elif enabled is False:
        webhook_disable(webhook_id=webhook.id, reason=f"disabled by {actor.label}"[:300], actor=actor)
    webhook.refresh_from_db()
    return webhook


def webhook_enable(*, actor: Actor, webhook: Webhook) -> Webhook:
    """Enable a disabled webhook; what failed while it was failing or disabled goes again."""
    now = timezone.now()
    with transaction.atomic():
        enabled = Webhook.objects.filter(id=webhook.id, enabled=False).update(
            enabled=True,
            disabled_reason="",
            disabled_at=None,
            consecutive_failures=0,
            failing_since=None,
            updated_at=now,
        )
        if enabled:
            _audit(actor, "webhook.update", webhook, fields=["enabled"], enabled=True)
            deliveries_replay(
                webhook_id=webhook.id, since=now - timedelta(seconds=settings.STOWAGE_WEBHOOK_REPLAY_WINDOW_SECONDS)
            )
    webhook.refresh_from_db()
    return webhook


def webhook_set_enabled(*, actor: Actor, webhook: Webhook, enabled: bool) -> Webhook:
    if enabled:
        return webhook_enable(actor=actor, webhook=webhook)
    webhook_disable(webhook_id=webhook.id, reason=f"disabled by {actor.label}"[:300], actor=actor)
    webhook.refresh_from_db()
    return webhook


def webhook_rotate_secret(
    *, actor: Actor, webhook: Webhook, secret: Any = None, overlap_seconds: Any = DEFAULT_ROTATION_OVERLAP_SECONDS
) -> tuple[Webhook, str]:
    """A new secret; the current one keeps signing beside it for ``overlap_seconds``."""
    clean_secret = check_secret(secret)
    overlap = _whole(overlap_seconds, "overlap_seconds", 0, MAX_ROTATION_OVERLAP_SECONDS)
    now = timezone.now()
    with transaction.atomic():
        Webhook.objects.filter(id=webhook.id).update(
            secret_encrypted=encrypt_secret(clean_secret),
            previous_secret_encrypted=webhook.secret_encrypted if overlap else "",
            previous_secret_expires_at=now + timedelta(seconds=overlap) if overlap else None,
            updated_at=now,
        )
        _audit(actor, "webhook.update", webhook, fields=["secret"], overlap_seconds=overlap)
    webhook.refresh_from_db()
    return webhook, clean_secret


def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    with transaction.atomic():
        deleted, _ = Webhook.objects.filter(id=webhook.id).delete()
        if deleted:
            _audit(actor, "webhook.delete", webhook)


def webhook_test(*, actor: Actor, webhook: Webhook, wait: bool = True) -> dict[str, Any]:
    """Send a ``webhook.test`` event to this webhook alone, enabled or not, and report the answer."""
    now = timezone.now()
    event = WebhookEvent(organization_id=webhook.organization_id, type=TEST_EVENT, created_at=now, dispatched_at=now)
    event.payload = event_body(
        event_id=event.id,
        type=TEST_EVENT,
        created_at=now,
        organization_id=webhook.organization_id,
        data={"webhook_id": webhook.id, "message": "a test event from Stowage"},
    )
    with transaction.atomic():
        event.save(force_insert=True)
        delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, next_attempt_at=now, created_at=now)
    result = enqueue(
        deliver_test,
        task_id=delivery.id,
        delivery_id=delivery.id,
        # Nobody would see a test sent later: it is over, and the sweep must not send it.
        on_unavailable=lambda: WebhookDelivery.objects.filter(id=delivery.id, state=DeliveryState.PENDING).update(
            state=DeliveryState.FAILED, next_attempt_at=None, error="the task queue was unavailable"
        ),
    )
    answer: dict[str, Any] = {}
    if wait:
        try:
            answer = wait_for(result, timeout=webhook.timeout_ms / 1000 + TEST_WAIT_MARGIN_SECONDS)
        except GatewayTimeout:
            # The workers are busy: the test is still queued and its outcome will be in the
            # delivery log; not a failure of this request.
            answer = {"delivery_error": "no worker has sent it yet; its outcome will be in the delivery log"}
    delivery.refresh_from_db()
    return {
        "success": delivery.state == DeliveryState.SUCCEEDED,
        "delivery_id": delivery.id,
        "event_id": event.id,
        "status": delivery.state,
        "response_status": delivery.response_status,
        "latency_ms": delivery.latency_ms,
        "error": delivery.error or answer.get("delivery_error") or None,
    }


def delivery_redeliver(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event again, with the same webhook-id, as a new round of retries."""
    if delivery.state == DeliveryState.SENDING:
        raise Conflict("this delivery is being sent right now", code="DELIVERY_IN_FLIGHT")
    now = timezone.now()
    with transaction.atomic():
        moved = WebhookDelivery.objects.filter(
            id=delivery.id, state__in=[DeliveryState.SUCCEEDED, DeliveryState.FAILED, DeliveryState.PENDING]
        ).update(state=DeliveryState.PENDING, next_attempt_at=now, round_attempts=0, lease_until=None)
        if not moved:
            raise NotFound("delivery not found", code="DELIVERY_NOT_FOUND")
        audit_record(
            actor=actor,
            action="webhook.redeliver",
            resource=f"webhook:{delivery.webhook_id}",
            details={"delivery_id": delivery.id, "event_id": delivery.event_id, "event": delivery.event.type},
            organization_id=delivery.webhook.organization_id,
        )
        transaction.on_commit(lambda: worker.send_deliver(delivery.id))
    delivery.refresh_from_db()
    return delivery
