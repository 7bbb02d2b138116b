"""Django's ASGI handler, with each request's thread taken from a pool instead of started anew.

Under ASGI Django runs a request's synchronous parts (the hooks of ``MiddlewareMixin``
middleware, the request signals, a synchronous view) on one thread of that request's own, which
asgiref starts at the request's first such call and joins at its end, both on the event loop:
about a millisecond of the loop's time per request on a busy host. Here that thread comes from a
pool of started ones (``ThreadSensitiveContext(executor=...)``), and still serves one request
at a time, as before.

A thread goes back to the pool only once idle: a request given up on while its thread still runs
a call of its (a client gone during a synchronous view) lets that thread finish and end instead.
At most ``IDLE_THREADS`` idle threads are kept, each with what Django keeps per thread (an SQLite
connection of ``CONN_MAX_AGE``: reused by the next request, instead of reading the schema again).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

IDLE_THREADS = 32


class _RequestThread(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._last: Future[Any] | None = None

    def submit(self, fn, /, *args, **kwargs) -> Future[Any]:
        self._last = future = super().submit(fn, *args, **kwargs)
        return future

    def idle(self) -> bool:
        # One worker thread, calls in order: idle once the last call made is done.
        return self._last is None or self._last.done()


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: list[_RequestThread] = []

    def take(self) -> _RequestThread:
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's threads are not in this process.
                self._pid, self._idle = os.getpid(), []
            if self._idle:
                return self._idle.pop()
        return _RequestThread()

    def give_back(self, thread: _RequestThread) -> None:
        if thread.idle():
            with self._lock:
                if len(self._idle) < IDLE_THREADS:
                    self._idle.append(thread)
                    return
        thread.shutdown(wait=False)


_pool = _Pool()


class PooledThreadASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = _pool.take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            _pool.give_back(thread)
