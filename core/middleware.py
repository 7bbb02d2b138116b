"""A base for middleware that serves WSGI and ASGI alike without a thread of its own.

Its ``before`` and ``after`` are quick and touch no database; under ASGI they run in the event
loop and the view is awaited, so a request that waits (an execute, a transfer) holds no thread
on its way through. A middleware that needs the database does its own ``acall``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse


class SyncAndAsyncMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        """An answer of its own, or None to go on to the view."""
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        answer = self.before(request)
        if answer is not None:
            return self.after(request, answer)
        return self.after(request, self.get_response(request))

    async def acall(self, request: HttpRequest) -> HttpResponse:
        answer = self.before(request)
        if answer is not None:
            return self.after(request, answer)
        return self.after(request, await self.get_response(request))


_DONE = object()


async def _chunks_from(iterator):
    # One chunk at a time, in the request's own thread (a generator may hold its database cursor).
    step = sync_to_async(next, thread_sensitive=True)
    while (chunk := await step(iterator, _DONE)) is not _DONE:
        yield chunk


class StreamedBodyMiddleware(SyncAndAsyncMiddleware):
    """Under ASGI Django reads a synchronous streamed body (a download, an export) whole into a
    list before sending it; this hands it over chunk by chunk instead, so bytes are streamed."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if self.is_async and getattr(response, "streaming", False) and not response.is_async:
            response.streaming_content = _chunks_from(iter(response.streaming_content))
        return response
