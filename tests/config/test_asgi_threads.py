"""Under ASGI each request's synchronous parts run on a thread of its own for the request's
length, taken from a pool rather than started for it: requests at once never share one, and
requests one after the other start no new thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.core.signals import request_started

from config.asgi import django_application
from config.asgi_handler import _Pool
from tests.asgi_calls import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)


async def _get(path: str) -> int:
    status, _, _ = await asgi_request(django_application, "GET", path)
    return status


@pytest.fixture
def request_threads():
    """The thread each request's ``request_started`` ran on, and a hook to run there."""
    seen: list[threading.Thread] = []
    hooks: list = []

    def started(**_) -> None:
        seen.append(threading.current_thread())
        for hook in hooks:
            hook()

    request_started.connect(started, weak=False)
    yield seen, hooks
    request_started.disconnect(started)


def test_requests_one_after_another_start_no_thread_each(request_threads) -> None:
    seen, _ = request_threads
    assert asyncio.run(_get("/healthz")) == 200
    threads_after_first = threading.active_count()

    for _ in range(20):
        assert asyncio.run(_get("/healthz")) == 200

    assert threading.active_count() == threads_after_first
    assert threading.current_thread() not in seen
    assert len(set(seen)) == 1


def test_requests_at_once_each_have_a_thread_of_their_own(request_threads) -> None:
    seen, hooks = request_threads
    # Each request's thread waits here for the other's: one thread serving both would never
    # get past it.
    both = threading.Barrier(2, timeout=30)
    hooks.append(both.wait)

    async def two() -> list[int]:
        return await asyncio.gather(_get("/healthz"), _get("/healthz"))

    assert asyncio.run(two()) == [200, 200]
    assert len(set(seen)) == 2


def test_a_thread_still_busy_after_its_request_serves_no_other_until_done() -> None:
    # A request given up on can leave a call running on its thread: the next request must not
    # wait behind it, and the thread is kept once it is done.
    pool = _Pool(idle_threads=2)
    first = pool.take()
    release = threading.Event()
    running = first.submit(release.wait, 30)
    pool.give_back(first)

    second = pool.take()
    assert second is not first
    assert second.submit(lambda: "done").result(timeout=5) == "done"

    release.set()
    running.result(timeout=5)
    deadline = time.monotonic() + 5
    while pool.take() is not first:
        assert time.monotonic() < deadline, "the thread never came back to the pool"
        time.sleep(0.01)


def test_at_most_its_idle_threads_are_kept() -> None:
    pool = _Pool(idle_threads=2)
    threads = [pool.take() for _ in range(3)]
    for thread in threads:
        thread.submit(lambda: None).result(timeout=5)
        pool.give_back(thread)
    deadline = time.monotonic() + 5
    while len(pool._idle) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(pool._idle) == 2
    assert {pool.take(), pool.take()} < set(threads)
