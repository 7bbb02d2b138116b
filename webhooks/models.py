"""Webhooks, the events the outbox keeps, and one delivery of an event to a webhook.

An event row is written in the transaction of the change it describes (``webhooks.outbox``);
a dispatcher makes one delivery per subscribed webhook, and each attempt claims its delivery
with a compare-and-set and a lease, so no two workers send it at once.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from core.ids import new_id


def new_webhook_id() -> str:
    return new_id("wh")


def new_event_id() -> str:
    return new_id("evt")


def new_delivery_id() -> str:
    return new_id("whd")


ALL_EVENTS = "*"


class Webhook(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_webhook_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2048)
    # ["*"] for every event, else the event types subscribed to.
    events = models.JSONField(default=list)
    # Fernet tokens (webhooks.secrets): the database alone yields no secret.
    secret_encrypted = models.TextField()
    # During a rotation the previous secret still signs, beside the new one, until it expires.
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    retry_count = models.PositiveIntegerField(default=3)
    retry_delay_ms = models.PositiveIntegerField(default=1000)
    timeout_ms = models.PositiveIntegerField(default=30000)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_probe_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    created_by_api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="webhook_org_created")]

    def __str__(self) -> str:
        return f"webhook {self.id} → {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    @property
    def events_out(self) -> list[str] | str:
        return ALL_EVENTS if ALL_EVENTS in self.events else list(self.events)


class WebhookEvent(models.Model):
    """One committed change, as its receivers will see it; written with the change."""

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=60)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    # Set once the event's deliveries exist; the sweep finds the rows still without it.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"], name="webhook_event_undispatched", condition=models.Q(dispatched_at=None)
            ),
            models.Index(fields=["created_at"], name="webhook_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Attempts in the current round: a redelivery starts a new round of the webhook's retries.
    round_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # While an attempt is in flight; past it, the attempt's worker is presumed dead.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event", "webhook"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_log"),
            models.Index(
                fields=["state", "next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.state})"
