"""/api/v1/webhooks: the stateset-sandbox SDK's webhook calls (create_webhook, list_webhooks,
delete_webhook, test_webhook, get_webhook_deliveries) in its shapes, and Stowage's own: read and
change one webhook, enable, disable, rotate its secret, redeliver one delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import StrictBool, StrictInt, StrictStr

from config.auth import require_scope
from config.schemas import BODY, errors
from webhooks import services
from webhooks.models import Webhook, WebhookDelivery
from webhooks.selectors import delivery_get, delivery_list, webhook_get, webhook_list

router = Router(tags=["webhooks"])

SCOPE = "webhooks:manage"


class WebhookIn(Schema):
    url: StrictStr
    events: list[StrictStr] | StrictStr = "*"
    secret: StrictStr | None = None
    headers: dict[str, StrictStr] | None = None
    retry_count: StrictInt = 3
    retry_delay_ms: StrictInt = 1000
    timeout_ms: StrictInt = 30000
    enabled: StrictBool = True


class WebhookPatch(Schema):
    url: StrictStr | None = None
    events: list[StrictStr] | StrictStr | None = None
    headers: dict[str, StrictStr] | None = None
    retry_count: StrictInt | None = None
    retry_delay_ms: StrictInt | None = None
    timeout_ms: StrictInt | None = None
    enabled: StrictBool | None = None


class RotateIn(Schema):
    secret: StrictStr | None = None
    overlap_seconds: StrictInt = services.DEFAULT_ROTATION_OVERLAP_SECONDS


class WebhookOut(Schema):
    id: str
    url: str
    events: list[str] | str
    secret: str | None = None
    enabled: bool
    headers: dict[str, str]
    retry_count: int
    retry_delay_ms: int
    timeout_ms: int
    created_at: datetime
    updated_at: datetime
    disabled_reason: str | None
    consecutive_failures: int
    secret_rotation_ends_at: datetime | None


class WebhookListOut(Schema):
    webhooks: list[WebhookOut]


class DeliveryOut(Schema):
    id: str
    webhook_id: str
    event: str
    event_id: str
    status: str
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    response_status: int | None
    latency_ms: int | None
    response_excerpt: str
    error: str | None
    created_at: datetime


class DeliveryListOut(Schema):
    deliveries: list[DeliveryOut]


class TestOut(Schema):
    success: bool
    delivery_id: str
    event_id: str
    status: str
    response_status: int | None
    latency_ms: int | None
    error: str | None


class DeletedOut(Schema):
    success: bool


def webhook_out(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events_out,
        "secret": secret,
        "enabled": webhook.enabled,
        "headers": webhook.headers,
        "retry_count": webhook.retry_count,
        "retry_delay_ms": webhook.retry_delay_ms,
        "timeout_ms": webhook.timeout_ms,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
        "disabled_reason": webhook.disabled_reason or None,
        "consecutive_failures": webhook.consecutive_failures,
        "secret_rotation_ends_at": webhook.previous_secret_expires_at if webhook.previous_secret_encrypted else None,
    }


def delivery_out(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event": delivery.event.type,
        "event_id": delivery.event_id,
        "status": delivery.state,
        "attempts": delivery.attempts,
        "last_attempt_at": delivery.last_attempt_at,
        "next_attempt_at": delivery.next_attempt_at,
        "response_status": delivery.response_status,
        "latency_ms": delivery.latency_ms,
        "response_excerpt": delivery.response_excerpt,
        "error": delivery.error or None,
        "created_at": delivery.created_at,
    }


def _webhook(request: HttpRequest, webhook_id: str) -> Webhook:
    require_scope(request.auth, SCOPE)
    return webhook_get(organization_id=request.auth.organization_id, webhook_id=webhook_id)


@router.get("/webhooks", response={200: WebhookListOut, **errors()})
def list_webhooks(request: HttpRequest):
    require_scope(request.auth, SCOPE)
    return {"webhooks": [webhook_out(w) for w in webhook_list(organization_id=request.auth.organization_id)]}


@router.post("/webhooks", response={201: WebhookOut, **errors(BODY, 409)})
def create_webhook(request: HttpRequest, payload: WebhookIn):
    """A new webhook; `secret` (made when not given, `whsec_…`) is shown only in this answer."""
    require_scope(request.auth, SCOPE)
    webhook, secret = services.webhook_create(
        actor=request.auth, organization_id=request.auth.organization_id, **payload.model_dump()
    )
    return Status(201, webhook_out(webhook, secret))


@router.get("/webhooks/{webhook_id}", response={200: WebhookOut, **errors(404)})
def get_webhook(request: HttpRequest, webhook_id: str):
    return webhook_out(_webhook(request, webhook_id))


@router.patch("/webhooks/{webhook_id}", response={200: WebhookOut, **errors(404, BODY)})
def update_webhook(request: HttpRequest, webhook_id: str, payload: WebhookPatch):
    webhook = _webhook(request, webhook_id)
    changes = {name: value for name, value in payload.model_dump(exclude_unset=True).items()}
    for name in ("url", "retry_count", "retry_delay_ms", "timeout_ms", "enabled", "events"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    return webhook_out(services.webhook_update(actor=request.auth, webhook=webhook, **changes))


@router.delete("/webhooks/{webhook_id}", response={200: DeletedOut, **errors(404)})
def delete_webhook(request: HttpRequest, webhook_id: str):
    services.webhook_delete(actor=request.auth, webhook=_webhook(request, webhook_id))
    return {"success": True}


@router.post("/webhooks/{webhook_id}/enable", response={200: WebhookOut, **errors(404)})
def enable_webhook(request: HttpRequest, webhook_id: str):
    webhook = _webhook(request, webhook_id)
    return webhook_out(services.webhook_set_enabled(actor=request.auth, webhook=webhook, enabled=True))


@router.post("/webhooks/{webhook_id}/disable", response={200: WebhookOut, **errors(404)})
def disable_webhook(request: HttpRequest, webhook_id: str):
    webhook = _webhook(request, webhook_id)
    return webhook_out(services.webhook_set_enabled(actor=request.auth, webhook=webhook, enabled=False))


@router.post("/webhooks/{webhook_id}/rotate-secret", response={200: WebhookOut, **errors(404, BODY)})
def rotate_secret(request: HttpRequest, webhook_id: str, payload: RotateIn):
    """A new secret, shown only in this answer; the old one still signs, beside it, for
    `overlap_seconds` (a day unless given; 0 ends it now)."""
    webhook = _webhook(request, webhook_id)
    webhook, secret = services.webhook_rotate_secret(
        actor=request.auth, webhook=webhook, secret=payload.secret, overlap_seconds=payload.overlap_seconds
    )
    return webhook_out(webhook, secret)


@router.post("/webhooks/{webhook_id}/test", response={200: TestOut, **errors(404, 503, 504)})
def test_webhook(request: HttpRequest, webhook_id: str):
    """Send a `webhook.test` event to this webhook now and report its answer."""
    return services.webhook_test(actor=request.auth, webhook=_webhook(request, webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", response={200: DeliveryListOut, **errors(404)})
def list_deliveries(request: HttpRequest, webhook_id: str, limit: int = 50):
    webhook = _webhook(request, webhook_id)
    return {"deliveries": [delivery_out(d) for d in delivery_list(webhook=webhook, limit=limit)]}


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", response={202: DeliveryOut, **errors(404, 409)}
)
def redeliver(request: HttpRequest, webhook_id: str, delivery_id: str):
    """Send this delivery's event again, with the same `webhook-id`."""
    delivery = delivery_get(webhook=_webhook(request, webhook_id), delivery_id=delivery_id)
    return Status(202, delivery_out(services.delivery_redeliver(actor=request.auth, delivery=delivery)))
