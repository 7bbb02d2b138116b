"""Writing an event with the change it describes: the transactional outbox.

``emit`` inserts the event row in the caller's transaction, so the event exists exactly when
the change was committed, and, when the organization has an enabled webhook, asks for it to be
dispatched once the transaction commits. If the
broker is down then, nothing is lost: ``webhooks.sweep_deliveries`` finds the row undispatched.

This module imports nothing from the apps that call it, so any service may emit.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from core.group_commit import GroupCommit
from webhooks.events import EVENT_TYPES
from webhooks.models import Webhook, WebhookEvent

logger = logging.getLogger(__name__)

DISPATCH_TASK = "webhooks.dispatch"


def emit(*, organization_id: str, type: str, data: dict[str, Any], wait: bool = True) -> WebhookEvent:
    """Record an event of ``type`` about ``data`` (the public fields of what changed). ``wait``
    False outside a transaction: queued to be written within moments, for a caller that must not
    wait on the database (core.group_commit)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    now = timezone.now()
    event = WebhookEvent(organization_id=organization_id, type=type, created_at=now)
    event.payload = event_body(event_id=event.id, type=type, created_at=now, organization_id=organization_id, data=data)
    if transaction.get_connection().in_atomic_block:
        _insert_unless_unheard([event])
    else:
        # Not part of a change of the caller's: written with whatever other threads emit now.
        _grouped.submit(event, wait=wait)
    return event


def _insert_unless_unheard(events: list[WebhookEvent]) -> None:
    """Insert ``events``, those of an organization without an enabled webhook kept as dispatched
    (no task is sent for them).

    Looked for after each event's time is taken: a webhook gets the events of changes made after
    its creation committed (webhooks.services stamps it then), so one not seen here was not yet
    there for these changes. One look per batch, by the thread that writes it, so that a caller
    that only queues its event (a command about to start) asks the database nothing."""
    organizations = {event.organization_id for event in events}
    listened = set(
        Webhook.objects.filter(organization_id__in=organizations, enabled=True).values_list(
            "organization_id", flat=True
        )
    )
    for event in events:
        if event.organization_id not in listened:
            event.dispatched_at = event.created_at
    _insert(events)


def _insert(events: list[WebhookEvent]) -> None:
    # No savepoint of its own inside the caller's transaction: a failure fails the whole of it.
    with transaction.atomic(savepoint=False):
        WebhookEvent.objects.bulk_create(events)
        listened = [event.id for event in events if event.dispatched_at is None]
        if listened:
            transaction.on_commit(lambda: _send_all(listened))


def _send_all(event_ids: list[str]) -> None:
    for event_id in event_ids:
        send_dispatch(event_id)


_grouped: GroupCommit[WebhookEvent] = GroupCommit(_insert_unless_unheard)


def emit_many(*, organization_id: str, events: list[tuple[str, dict[str, Any]]]) -> list[WebhookEvent]:
    """``emit`` for many (type, data) events of one organization at once: one look for its
    webhooks, one insert, and the dispatches sent once the transaction commits."""
    for type, _ in events:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {type!r}")
    if not events:
        return []
    now = timezone.now()
    rows = []
    for type, data in events:
        event = WebhookEvent(organization_id=organization_id, type=type, created_at=now)
        event.payload = event_body(
            event_id=event.id, type=type, created_at=now, organization_id=organization_id, data=data
        )
        rows.append(event)
    _insert_unless_unheard(rows)
    return rows


def event_body(
    *, event_id: str, type: str, created_at: datetime, organization_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": type,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "organization_id": organization_id,
        "data": data,
    }


def send_dispatch(event_id: str) -> None:
    """Best effort: the change is committed whatever happens here, and the sweep catches up."""
    try:
        celery_app.send_task(DISPATCH_TASK, kwargs={"event_id": event_id}, retry=False)
    except Exception as exc:
        logger.warning("webhook event %s not sent to the dispatcher (the sweep will): %s", event_id, exc)
