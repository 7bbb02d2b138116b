from __future__ import annotations

import os

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"

    def ready(self) -> None:
        # STOWAGE_WORKER_METRICS_PORT: a Celery worker serves its own /metrics (transfer counters
        # are recorded where transfers run). Web processes ignore it; they serve /metrics themselves.
        if os.environ.get("STOWAGE_WORKER_METRICS_PORT"):
            from celery.signals import worker_ready

            worker_ready.connect(_serve_worker_metrics, weak=False, dispatch_uid="ops.worker_metrics")


def _serve_worker_metrics(sender=None, **kwargs) -> None:
    from ops.metrics import start_worker_metrics_server

    start_worker_metrics_server(
        int(os.environ["STOWAGE_WORKER_METRICS_PORT"]),
        os.environ.get("STOWAGE_WORKER_METRICS_ADDR", "0.0.0.0"),  # noqa: S104 scraped from other hosts
    )
