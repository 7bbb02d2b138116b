"""Steps of async requests: on the process's step threads, a bounded number at once.

The tests take ``db``: a step ends by looking at its thread's database connections, which a step
thread may keep from an earlier test."""

from __future__ import annotations

import asyncio
import threading

from core.threads import in_thread


def test_a_step_given_up_on_keeps_its_turn_until_its_thread_is_done(db, settings):
    settings.WEB_DB_STEPS = 1
    release = threading.Event()
    ran: list[str] = []

    def stuck() -> None:
        release.wait(30)
        ran.append("stuck")

    def next_one() -> None:
        ran.append("next")

    async def main() -> list[str]:
        waiting = asyncio.ensure_future(in_thread(stuck)())
        await asyncio.sleep(0.2)
        waiting.cancel()  # the client went away; its step still runs in its thread
        following = asyncio.ensure_future(in_thread(next_one)())
        await asyncio.sleep(0.5)
        seen = list(ran)  # the one turn is still the stuck step's
        release.set()
        await following
        return seen

    assert asyncio.run(main()) == []
    assert ran == ["stuck", "next"]


def test_steps_run_on_threads_that_outlive_requests(db):
    names: set[str] = set()

    def where() -> None:
        names.add(threading.current_thread().name)

    async def requests() -> None:
        for _ in range(20):
            await in_thread(where)()

    asyncio.run(requests())
    assert all(name.startswith("db-step") for name in names)
    assert len(names) <= 2  # one after the other, so the same thread or two, never one a request
