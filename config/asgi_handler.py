"""Django's ASGI handler, with each request's thread taken from a pool instead of started anew.

Under ASGI Django runs a request's synchronous parts (the hooks of ``MiddlewareMixin``
middleware, the request signals, a synchronous view) on one thread of that request's own, which
asgiref starts at the request's first such call and joins at its end, both on the event loop:
about a millisecond of the loop's time per request on a busy host. Here that thread comes from a
pool of started ones (``ThreadSensitiveContext(executor=...)``), and still serves one request
at a time, as before.

A thread goes back to the pool only once it has done every call its request gave it (a request
given up on may leave one running) and then given back its database connections, as the step
threads of ``core.threads`` do: a PostgreSQL connection goes back to its pool, an SQLite one is
kept for the thread's next request instead of reading the schema again. At most
``IDLE_THREADS`` idle threads are kept.

For API requests, Django's header and CSRF middleware run their hooks in the event loop
(``config.inline_middleware``), not on that thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from config.inline_middleware import replaced
from core.threads import release_connections

IDLE_THREADS = 32


class _Pool:
    def __init__(self, idle_threads: int = IDLE_THREADS) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: list[ThreadPoolExecutor] = []
        self._idle_threads = idle_threads

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's threads are not in this process.
                self._pid, self._idle = os.getpid(), []
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, thread: ThreadPoolExecutor) -> Future[None]:
        """Once the thread has done everything the request gave it (one worker: in order) and
        given back its database connections, as a step thread does; not before. The thread is
        in the pool again by the time the future returned is done."""
        last = thread.submit(release_connections)
        last.add_done_callback(lambda done: self._keep(thread, done))
        return last

    def _keep(self, thread: ThreadPoolExecutor, done: Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            with self._lock:
                if self._pid == os.getpid() and len(self._idle) < self._idle_threads:
                    self._idle.append(thread)
                    return
        thread.shutdown(wait=False)


_pool = _Pool()


class PooledThreadASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django's header and CSRF middleware as config.inline_middleware's subclasses: for API
        # requests their hooks run in the loop. The settings keep Django's names for its checks.
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = replaced(configured)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = _pool.take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            # Waited for (after the response is sent), so that the next request of a kept-alive
            # connection finds the thread in the pool.
            await asyncio.wrap_future(_pool.give_back(thread))
