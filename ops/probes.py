"""The liveness probe answered at the front of the middleware chain.

Behind it Django's own middleware (sessions, CSRF, authentication, messages...) is synchronous
and under ASGI each of them hops to a thread and back; a probe has no use for any of it and must
answer in milliseconds however busy the process is, so it is answered here, in the event loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import resolve
from django.utils.cache import add_never_cache_headers

from config.middleware import CLIENT_REQUEST_ID, SERVER_REQUEST_ID_HEADER
from core.middleware import SyncAndAsyncMiddleware
from ops.metrics import observe_request

LIVENESS_PATH = "/healthz"
# The route the probe is counted under, as Django's resolver names it (ops/urls.py).
LIVENESS_ROUTE = "healthz"


def liveness_response() -> JsonResponse:
    response = JsonResponse({"status": "ok"})
    add_never_cache_headers(response)
    return response


class LivenessMiddleware(SyncAndAsyncMiddleware):
    def before(self, request: HttpRequest) -> HttpResponse | None:
        if request.path != LIVENESS_PATH or request.method != "GET":
            return None
        # Counted under its route like any request (ops.metrics reads the match).
        request.resolver_match = resolve(LIVENESS_PATH)
        return liveness_response()


def liveness_first(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The ASGI application ``app``, with ``GET /healthz`` answered before Django sees it.

    Django's ASGI handler runs the sync receivers of its request signals in a thread of the
    request's own, twice per request; under load those hops, not the answer, are what a probe
    waits for. This answers in the event loop with what ``LivenessMiddleware`` answers (which
    still serves WSGI and the test client), request ids and metrics included."""

    async def application(scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != LIVENESS_PATH or scope["method"] != "GET":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        supplied = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        supplied = supplied.decode("latin-1")
        server_id = f"req_{uuid.uuid4().hex}"
        response = liveness_response()
        response["X-Request-Id"] = supplied if CLIENT_REQUEST_ID.match(supplied) else server_id
        response[SERVER_REQUEST_ID_HEADER] = server_id
        response["Content-Length"] = str(len(response.content))
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.content})
        observe_request("GET", LIVENESS_ROUTE, response.status_code, time.perf_counter() - started)

    return application
