"""Synchronous steps of an async request (the ORM, validation, audit), run in a thread.

``in_thread(fn)`` is ``sync_to_async(fn)`` (thread-sensitive, as Django requires for the ORM) that
also gives the thread's database connections back when the step ends: a request that then waits
seconds for a sandbox host must not hold a connection meanwhile, or a few hundred waiting
requests would take every connection the database allows. With a pool, giving back returns the
connection to it; without one, the next step opens a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")


def release_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def in_thread(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    @wraps(fn)
    def step(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    return sync_to_async(step)
