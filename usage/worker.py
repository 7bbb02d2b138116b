"""The usage snapshot's beat task, on the shared queue."""

from __future__ import annotations

from celery import shared_task

from usage.services import usage_snapshot_take


@shared_task(name="usage.snapshot_daily", ignore_result=True)
def snapshot_daily() -> int:
    return usage_snapshot_take()
