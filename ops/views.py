"""Liveness, readiness and Prometheus metrics. No session, no API key, never cached."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable

from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.threads import in_thread
from ops import metrics
from ops.probes import liveness_response

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
STORAGE_PROBE_KEY = "ops/readyz-probe"


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage never restarts it.
    Answered by ``ops.probes.LivenessMiddleware`` before it gets here; this is the route it counts as."""
    return liveness_response()


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    if not metrics.probe_redis().ping():
        raise ConnectionError("the broker did not answer PING")


def check_storage() -> None:
    from artifacts import storage as blob_storage_module

    storage = blob_storage_module.blob_storage()
    # On S3 this is a HEAD request: it proves the endpoint, the bucket and the credentials.
    storage.exists(STORAGE_PROBE_KEY)
    location = storage.location if isinstance(storage, FileSystemStorage) else None
    # A missing directory is made by the first write; one that exists must be usable.
    if (
        location
        and os.path.exists(location)
        and not (os.path.isdir(location) and os.access(location, os.W_OK | os.X_OK))
    ):
        raise PermissionError("the storage directory is not a writable directory")


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker, "storage": check_storage}


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database, the broker and blob storage answer. 503 names what failed."""
    return await in_thread(_readiness)()


def _readiness() -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:
            # Only the exception's type goes out; the detail goes to the (redacted) log.
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = f"error: {type(exc).__name__}"
        else:
            results[name] = "ok"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        response = JsonResponse({"status": "unavailable", "failed": failed, "checks": results}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return JsonResponse({"status": "ready", "checks": results})


def _metrics_token() -> str:
    return os.environ.get("STOWAGE_METRICS_TOKEN", "")


@never_cache
@require_GET
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition. With STOWAGE_METRICS_TOKEN set, requires ``Authorization: Bearer <token>``."""
    token = _metrics_token()
    if token:
        supplied = request.headers.get("Authorization", "")
        scheme, _, value = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            response = HttpResponse(
                "metrics require a bearer token\n", status=401, content_type="text/plain; charset=utf-8"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    text = await in_thread(metrics.exposition)()
    return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")
