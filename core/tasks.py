"""Periodic housekeeping of the plumbing. The task name is what beat sends; keep it as it is."""

from __future__ import annotations

from celery import shared_task

from core.idempotency import idempotency_expire


@shared_task(name="core.tasks.expire_idempotency_keys")
def expire_idempotency_keys() -> int:
    return idempotency_expire()
