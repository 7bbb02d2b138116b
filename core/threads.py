"""Synchronous steps of an async request (the ORM, validation, audit), run in a thread.

``in_thread(fn)`` is ``sync_to_async(fn)`` (thread-sensitive, as Django requires for the ORM) that
also gives the thread's database connections back when the step ends: a request that then waits
seconds for a sandbox host must not hold a connection meanwhile, or a few hundred waiting
requests would take every connection the database allows. With a pool, giving back returns the
connection to it; without one, the next step opens a new one. At most
``STOWAGE_WEB_DB_STEPS`` steps of one process run at once, so however many requests wait, a web
process holds a bounded number of connections; a step waiting for its turn holds nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")


def release_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _turn() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Semaphore(settings.WEB_DB_STEPS)
    return turn


def in_thread(fn: Callable[P, T], *, own_request: bool = True) -> Callable[P, Awaitable[T]]:
    """``own_request`` False: for a step that serves many requests (a batch), run in a pool thread
    instead of the thread of the request that happened to start it."""

    @wraps(fn)
    def step(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    threaded = sync_to_async(step, thread_sensitive=own_request)

    @wraps(fn)
    async def in_turn(*args: P.args, **kwargs: P.kwargs) -> T:
        async with _turn():
            return await threaded(*args, **kwargs)

    return in_turn
