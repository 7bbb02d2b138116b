"""A worker's answer reaches the requests waiting on it through one pub/sub connection per event
loop, against the real (embedded or configured) Redis: hundreds of waiters hold a few
connections, an answer that came first is found, and a dropped connection loses nothing."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from config.redis import get_redis
from core.answer_listener import PUBSUB_CLIENT_NAME
from core.answers import (
    ASYNC_POOL_SIZE,
    CLIENT_NAME,
    answer_channel,
    answer_listener,
    async_redis,
    async_stream_redis,
    await_answer,
    publish_answer,
)


@pytest.fixture(autouse=True)
def _redis(broker):
    return broker


def new_task_id() -> str:
    return f"test-{uuid.uuid4()}"


def clients_named(*names: str) -> list[dict]:
    return [c for c in get_redis().client_list() if c.get("name") in names]


def subscribers(task_id: str) -> int:
    return dict(get_redis().pubsub_numsub(answer_channel(task_id)))[answer_channel(task_id).encode()]


async def until(condition, what: str, seconds: float = 30) -> None:
    """Wait for ``condition()`` (run in a thread: it asks Redis synchronously) to hold."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_hundreds_of_waiters_share_a_few_connections():
    task_ids = [new_task_id() for _ in range(300)]
    pattern = answer_channel("test-*")

    # Other processes and earlier tests' event loops may hold connections of the same names.
    before = len(clients_named(CLIENT_NAME, PUBSUB_CLIENT_NAME))

    async def main():
        waiting = [asyncio.create_task(await_answer(t, timeout=60)) for t in task_ids]
        await until(lambda: len(get_redis().pubsub_channels(pattern)) >= 300, "the waiters did not subscribe")
        opened = len(clients_named(CLIENT_NAME, PUBSUB_CLIENT_NAME))

        def publish_all():
            for task_id in random.sample(task_ids, len(task_ids)):
                publish_answer(task_id, {"task": task_id})

        await asyncio.to_thread(publish_all)
        answers = await asyncio.gather(*waiting)
        return opened, answers, len(clients_named(CLIENT_NAME, PUBSUB_CLIENT_NAME))

    opened, answers, after = asyncio.run(main())
    assert answers == [{"task": t} for t in task_ids]
    assert opened - before <= 40, (before, opened)
    assert after - before <= 40, (before, after)


def test_an_answer_published_before_the_wait_is_returned():
    task_id = new_task_id()
    publish_answer(task_id, {"exit_code": 0})
    assert asyncio.run(await_answer(task_id, timeout=10)) == {"exit_code": 0}
    # A second request joining later gets it too.
    assert asyncio.run(await_answer(task_id, timeout=10)) == {"exit_code": 0}


def test_two_waiters_on_one_task_both_get_it_and_leave_no_subscription():
    task_id = new_task_id()

    async def main():
        waiting = [asyncio.create_task(await_answer(task_id, timeout=30)) for _ in range(2)]
        await until(lambda: subscribers(task_id) == 1, "the waiters did not subscribe")
        await asyncio.to_thread(publish_answer, task_id, {"stdout": "hi"})
        answers = await asyncio.gather(*waiting)
        await until(lambda: subscribers(task_id) == 0, "the channel kept its subscriber")
        return answers, answer_listener().channels

    answers, channels = asyncio.run(main())
    assert answers == [{"stdout": "hi"}, {"stdout": "hi"}]
    assert channels == set()


def test_a_wait_that_times_out_returns_none_and_unsubscribes():
    task_id = new_task_id()

    async def main():
        answer = await await_answer(task_id, timeout=0.5)
        await until(lambda: subscribers(task_id) == 0, "the channel kept its subscriber")
        return answer, answer_listener().channels

    assert asyncio.run(main()) == (None, set())


def test_a_cancelled_wait_unsubscribes():
    task_id = new_task_id()

    async def main():
        waiting = asyncio.create_task(await_answer(task_id, timeout=30))
        await until(lambda: subscribers(task_id) == 1, "the waiter did not subscribe")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await until(lambda: subscribers(task_id) == 0, "the channel kept its subscriber")

    asyncio.run(main())


def kill_listener_connection() -> int:
    (listener,) = clients_named(PUBSUB_CLIENT_NAME)
    get_redis().client_kill_filter(_id=listener["id"])
    return int(listener["id"])


def resubscribed(task_id: str, killed: int) -> bool:
    fresh = [c for c in clients_named(PUBSUB_CLIENT_NAME) if int(c["id"]) != killed]
    return bool(fresh) and subscribers(task_id) == 1


def test_a_killed_pubsub_connection_is_replaced_and_the_answer_still_comes():
    task_id = new_task_id()

    async def main():
        waiting = asyncio.create_task(await_answer(task_id, timeout=30))
        await until(lambda: subscribers(task_id) == 1, "the waiter did not subscribe")
        killed = await asyncio.to_thread(kill_listener_connection)
        await until(lambda: resubscribed(task_id, killed), "the listener did not subscribe again")
        await asyncio.to_thread(publish_answer, task_id, {"after": "reconnect"})
        return await waiting

    assert asyncio.run(main()) == {"after": "reconnect"}


def test_an_answer_published_while_the_connection_is_down_is_not_lost():
    task_id = new_task_id()

    async def main():
        waiting = asyncio.create_task(await_answer(task_id, timeout=30))
        await until(lambda: subscribers(task_id) == 1, "the waiter did not subscribe")
        # Published right after the kill: most likely before the listener is back, when
        # nobody hears the message and only looking at the list again finds it.
        await asyncio.to_thread(kill_listener_connection)
        await asyncio.to_thread(publish_answer, task_id, {"during": "outage"})
        return await waiting

    assert asyncio.run(main()) == {"during": "outage"}


def test_many_blocked_stream_reads_leave_the_short_commands_their_connections():
    streams = [f"test-stream-{uuid.uuid4()}" for _ in range(ASYNC_POOL_SIZE + 8)]

    def blocked() -> int:
        return int(get_redis().info("clients")["blocked_clients"])

    async def main():
        before = await asyncio.to_thread(blocked)
        reads = [asyncio.create_task(async_stream_redis().xread({s: "0-0"}, block=30_000)) for s in streams]
        await until(lambda: blocked() >= before + len(streams), "the stream reads did not block")
        # More reads are blocked than the short-command pool has connections: it still answers.
        assert await asyncio.wait_for(async_redis().ping(), timeout=30)
        pipe = async_redis().pipeline(transaction=False)
        for stream in streams:
            pipe.xadd(stream, {"event": "{}"})
        await pipe.execute()
        results = await asyncio.gather(*reads)
        await async_redis().delete(*streams)
        return results

    results = asyncio.run(main())
    assert all(result and result[0][0].decode() in streams for result in results)
