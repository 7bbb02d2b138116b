"""The liveness probe answered at the front of the middleware chain.

Behind it Django's own middleware (sessions, CSRF, authentication, messages...) is synchronous
and under ASGI each of them hops to a thread and back; a probe has no use for any of it and must
answer in milliseconds however busy the process is, so it is answered here, in the event loop.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import resolve
from django.utils.cache import add_never_cache_headers

from core.middleware import SyncAndAsyncMiddleware

LIVENESS_PATH = "/healthz"


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
