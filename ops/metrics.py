"""Prometheus metrics: HTTP requests, artifact transfers, Celery queue depth and each organization's usage.

Metrics live in the process that records them. Under gunicorn (several worker processes) and
Celery (prefork children) a scrape of ``/metrics`` therefore sees one process only, unless
``PROMETHEUS_MULTIPROC_DIR`` names a writable, empty-at-start directory shared by every process
on the host: prometheus_client then keeps the values in files there and ``/metrics`` adds them up
(see docs/operations.md). The queue depth is read from Redis at scrape time, so it is whole either way.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.middleware import SyncAndAsyncMiddleware

logger = logging.getLogger(__name__)

UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter(
    "stowage_http_requests",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "stowage_http_request_duration_seconds",
    "Time to produce the response (for streamed bodies: until the first byte is ready), by method and route pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TRANSFERS = Counter(
    "stowage_transfers",
    "Artifact transfers that ended, by kind (upload, download, put) and outcome (success, failure).",
    ["kind", "outcome"],
)
TRANSFER_BYTES = Counter(
    "stowage_transfer_bytes",
    "Bytes moved by successful artifact transfers, by kind.",
    ["kind"],
)
TRANSFER_DURATION = Histogram(
    "stowage_transfer_duration_seconds",
    "Duration of artifact transfers, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 10800),
)

_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def route_label(request: HttpRequest) -> str:
    """The URL pattern that matched (``api/v1/artifacts/<artifact_id>``), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_ROUTE
    return match.route or match.view_name or UNMATCHED_ROUTE


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _KNOWN_METHODS else "OTHER"
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


def record_transfer(kind: str, outcome: str, seconds: float, size: int | None = None) -> None:
    """Called by transfers.worker when a transfer ends; never lets a metrics error escape."""
    try:
        TRANSFERS.labels(kind=str(kind), outcome=str(outcome)).inc()
        TRANSFER_DURATION.labels(kind=str(kind), outcome=str(outcome)).observe(max(0.0, seconds))
        if size and outcome == "success":
            TRANSFER_BYTES.labels(kind=str(kind)).inc(size)
    except Exception:  # pragma: no cover - metrics must never fail a transfer
        logger.exception("could not record transfer metrics")


def record_transfer_on_commit(kind: str, outcome: str, seconds: float, size: int | None = None) -> None:
    """``record_transfer`` once the surrounding transaction commits (at once outside one), so a
    rolled-back attempt that is retried is not counted twice."""
    from django.db import transaction

    kind, outcome = str(kind), str(outcome)
    transaction.on_commit(lambda: record_transfer(kind, outcome, seconds, size))


class MetricsMiddleware(SyncAndAsyncMiddleware):
    """Counts and times every request by method, route pattern and status."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        request._metrics_started = time.perf_counter()
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            observe_request(
                request.method or "",
                route_label(request),
                response.status_code,
                time.perf_counter() - request._metrics_started,
            )
        except Exception:  # pragma: no cover
            logger.exception("could not record request metrics")
        return response


BROKER_PROBE_TIMEOUT_SECONDS = 2.0
_probe_lock = threading.Lock()
_probe: tuple[object, object] | None = None


def probe_redis():
    """A client on the same Redis as ``config.redis.get_redis()`` with short timeouts.

    ``get_redis()`` waits up to 30 s on a socket, right for tasks and streams, too long for a
    health check or a scrape. The probe client is rebuilt whenever ``get_redis()`` changes.
    """
    global _probe
    import redis

    from config import redis as stowage_redis

    source = stowage_redis.get_redis()
    current = _probe
    if current is not None and current[0] is source:
        return current[1]
    with _probe_lock:
        pool = source.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(
            socket_timeout=BROKER_PROBE_TIMEOUT_SECONDS,
            socket_connect_timeout=BROKER_PROBE_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
        kwargs.pop("retry", None)
        client = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **kwargs)
        )
        _probe = (source, client)
        return client


def queue_names() -> list[str]:
    from config.celery import SHARED_QUEUE, command_queue, sandbox_queue, webhook_queue

    names = [SHARED_QUEUE, webhook_queue()]
    for host in settings.STOWAGE_SANDBOX_HOSTS:
        names += [sandbox_queue(host), command_queue(host)]
    return list(dict.fromkeys(names))


class QueueDepthCollector(Collector):
    """``stowage_queue_depth{queue=...}`` from Redis ``LLEN``; ``stowage_broker_up`` 0 when Redis is down."""

    def collect(self):
        depth = GaugeMetricFamily(
            "stowage_queue_depth",
            "Tasks waiting in a Celery queue (Redis LLEN), read at scrape time.",
            labels=["queue"],
        )
        up = GaugeMetricFamily(
            "stowage_broker_up", "1 when the broker answered the scrape-time queue depth read, else 0."
        )
        try:
            client = probe_redis()
            pipe = client.pipeline(transaction=False)
            names = queue_names()
            for name in names:
                pipe.llen(name)
            lengths = pipe.execute()
        except Exception as exc:
            logger.warning("queue depth unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for name, length in zip(names, lengths, strict=True):
                depth.add_metric([name], length)
        yield depth
        yield up

    def describe(self):
        # Describing without collecting keeps registration from touching Redis.
        return []


QUEUE_DEPTH = QueueDepthCollector()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    REGISTRY.register(QUEUE_DEPTH)

# A scrape reads the organizations' usage counters at most this often; in between it answers the last reading.
ORGANIZATION_USAGE_TTL_SECONDS = 60.0


class OrganizationUsageCollector(Collector):
    """``stowage_organization_stored_bytes`` and ``stowage_organization_artifacts`` per organization,
    from the quota counters (one indexed read of one row per organization, not a scan of artifacts),
    read at most once a minute. Served by the web processes' ``/metrics`` only, so a deployment
    exposes each organization once rather than once per worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._rows: list[tuple[str, int, int]] = []

    def _rows_now(self) -> list[tuple[str, int, int]]:
        with self._lock:
            if time.monotonic() - self._read_at >= ORGANIZATION_USAGE_TTL_SECONDS:
                from quotas.models import OrganizationUsage

                # A failed read counts as a read: while the database is out, a scrape waits for
                # it (up to the pool's timeout) once a minute, not every time.
                self._read_at = time.monotonic()
                self._rows = list(
                    OrganizationUsage.objects.order_by("organization_id").values_list(
                        "organization_id", "stored_bytes", "artifact_count"
                    )
                )
            return self._rows

    def forget(self) -> None:
        with self._lock:
            self._read_at = 0.0

    def collect(self):
        stored = GaugeMetricFamily(
            "stowage_organization_stored_bytes",
            "Unique bytes an organization stores (its quota counter), read at most once a minute.",
            labels=["organization"],
        )
        artifacts = GaugeMetricFamily(
            "stowage_organization_artifacts",
            "Ready and trashed artifacts of an organization (its quota counter), read at most once a minute.",
            labels=["organization"],
        )
        try:
            rows = self._rows_now()
        except Exception as exc:
            logger.warning("organization usage unavailable: %s", type(exc).__name__)
            rows = []
        for organization_id, stored_bytes, artifact_count in rows:
            stored.add_metric([organization_id], stored_bytes)
            artifacts.add_metric([organization_id], artifact_count)
        yield stored
        yield artifacts

    def describe(self):
        return []


ORGANIZATION_USAGE = OrganizationUsageCollector()
_WEB_ONLY = CollectorRegistry(auto_describe=False)
_WEB_ONLY.register(ORGANIZATION_USAGE)


def exposition() -> bytes:
    """The text exposition of every metric: this process's, or the whole host's in multiprocess mode,
    with the organizations' usage."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(QUEUE_DEPTH)
        return generate_latest(registry) + generate_latest(_WEB_ONLY)
    return generate_latest(REGISTRY) + generate_latest(_WEB_ONLY)


def start_worker_metrics_server(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 scraped from other hosts
    """Serve this Celery worker's metrics (transfers run here) on ``port``; the thread pool keeps
    every task in this one process, so the numbers are whole."""
    from prometheus_client import start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
    logger.info("worker metrics on %s:%s/metrics", addr, port)
