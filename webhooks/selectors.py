"""Reads of webhooks and their deliveries, scoped to the caller's organization: another
organization's webhook is the same 404 as a missing one."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from webhooks.models import Webhook, WebhookDelivery

MAX_DELIVERIES = 200


def webhook_list(*, organization_id: str) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization_id=organization_id).order_by("-created_at")


def webhook_get(*, organization_id: str, webhook_id: str) -> Webhook:
    webhook = Webhook.objects.filter(organization_id=organization_id, id=str(webhook_id)[:40]).first()
    if webhook is None:
        raise NotFound(f"Webhook '{str(webhook_id)[:40]}' not found", code="WEBHOOK_NOT_FOUND")
    return webhook


def delivery_list(*, webhook: Webhook, limit: int = 50) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(webhook=webhook)
        .select_related("event")
        .order_by("-created_at", "-id")[: max(1, min(limit, MAX_DELIVERIES))]
    )


def delivery_get(*, webhook: Webhook, delivery_id: str) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.select_related("event", "webhook")
        .filter(webhook=webhook, id=str(delivery_id)[:40])
        .first()
    )
    if delivery is None:
        raise NotFound(f"Delivery '{str(delivery_id)[:40]}' not found", code="DELIVERY_NOT_FOUND")
    return delivery
