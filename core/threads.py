"""Synchronous steps of an async request (the ORM, validation, audit), run in a thread.

``in_thread(fn)`` is ``sync_to_async(fn)`` that also gives the thread's database connections back
when the step ends: a request that then waits seconds for a sandbox host must not hold a
connection meanwhile, or a few hundred waiting requests would take every connection the database
allows. With a pool, giving back returns the connection to it; without one, the next step opens a
new one. At most ``STOWAGE_WEB_DB_STEPS`` steps of one process run at once, so however many
requests wait, a web process holds a bounded number of connections; a step waiting for its turn
holds nothing.

Steps run on threads of the process's own that outlive requests (not a new thread per request,
as ``thread_sensitive`` would under ASGI), so an SQLite connection, which is a file and no
server's scarce slot, is kept by its thread for the next step: opening one costs milliseconds,
most of them reading the schema again. Under a synchronous caller (WSGI, Django's test client) a
step runs in the caller's thread instead, which may hold a transaction the step must see.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")


def release_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            continue
        if connection.vendor == "sqlite":
            # Kept for this thread's next step; one that failed or grew old is closed.
            connection.close_if_unusable_or_obsolete()
        else:
            connection.close()


_steps: tuple[int, ThreadPoolExecutor] | None = None
_steps_lock = threading.Lock()


def _step_threads() -> ThreadPoolExecutor:
    """The process's step threads, made on first use (a forked worker makes its own)."""
    global _steps
    with _steps_lock:
        if _steps is None or _steps[0] != os.getpid():
            # A turn per running step (batches of core.group_commit take turns too), and a few spare.
            threads = ThreadPoolExecutor(max_workers=settings.WEB_DB_STEPS + 4, thread_name_prefix="db-step")
            _steps = (os.getpid(), threads)
        return _steps[1]


def _under_a_sync_caller() -> bool:
    return getattr(AsyncToSync.executors, "current", None) is not None


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _turn() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Semaphore(settings.WEB_DB_STEPS)
    return turn


def in_thread(fn: Callable[P, T], *, own_request: bool = True) -> Callable[P, Awaitable[T]]:
    """``own_request`` False: for a step that serves many requests (a batch), which runs on a step
    thread even under a synchronous caller, whose transaction is not the batch's."""

    @wraps(fn)
    def step(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    in_callers_thread = sync_to_async(step, thread_sensitive=True)

    @wraps(fn)
    async def in_turn(*args: P.args, **kwargs: P.kwargs) -> T:
        if own_request and _under_a_sync_caller():
            async with _turn():
                return await in_callers_thread(*args, **kwargs)
        turn = _turn()
        await turn.acquire()
        running = asyncio.ensure_future(
            sync_to_async(step, thread_sensitive=False, executor=_step_threads())(*args, **kwargs)
        )
        # The turn is given back when the thread is done, not when a cancelled request stops
        # waiting for it: a step stuck in a thread keeps its turn, so stuck steps can never take
        # every step thread and leave the process's other requests queued behind them.
        running.add_done_callback(lambda done: (turn.release(), done.cancelled() or done.exception()))
        return await asyncio.shield(running)

    return in_turn
