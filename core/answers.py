"""A worker's answer to a task that a request waits on, handed over through Redis.

The worker puts the answer in a list of the task's own and publishes it on the task's channel,
both in one transaction (``publish_answer``). The web side (``await_answer``, asyncio: the wait
holds no thread) hears it through the one pub/sub connection of its event loop
(``core.answer_listener``), which serves every request of that loop waiting on any task; the
list is for a request that starts waiting after the answer came (a retried upload joins its
transfer). A waiting request therefore holds no Redis connection of its own: the loop's
normal client (``async_redis``) only does short commands, with a pool of at most
``ASYNC_POOL_SIZE`` connections, and streamed executes read their output with a client of their
own (``async_stream_redis``). Celery's result store still gets the answers of tasks sent by
synchronous callers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.client import Pipeline

from config.redis import get_redis
from core.answer_listener import AnswerListener

logger = logging.getLogger(__name__)

ANSWER_PREFIX = "stowage:answer:"
CHANNEL_PREFIX = "stowage:answered:"
# Connections of an event loop's normal client, at most. No request holds one for its whole
# wait: answers come through the loop's one pub/sub connection, and the client's commands are
# short. A command that finds them all taken waits for one up to ``ASYNC_POOL_WAIT_SECONDS``,
# then fails as Redis being unavailable.
ASYNC_POOL_SIZE = 32
ASYNC_POOL_WAIT_SECONDS = 10
# A streamed execute reads its output with blocking reads of up to a second, one after the
# other: its own client, so that many streams at once never queue the short commands behind them.
STREAM_POOL_SIZE = 1024
# The names of the clients' connections in Redis's CLIENT LIST.
CLIENT_NAME = "stowage:web"
STREAM_CLIENT_NAME = "stowage:web-streams"
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_stream_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AnswerListener] = weakref.WeakKeyDictionary()


def answer_key(task_id: str) -> str:
    return ANSWER_PREFIX + task_id


def answer_channel(task_id: str) -> str:
    return CHANNEL_PREFIX + task_id


def publish_answer(task_id: str, answer: Any) -> None:
    """Worker side: the task's answer, for whoever waits on it."""
    pipe = get_redis().pipeline(transaction=True)
    publish_answer_queued(pipe, task_id, answer)
    pipe.execute()


def publish_answer_queued(pipe: Pipeline, task_id: str, answer: Any) -> None:
    """``publish_answer`` queued on ``pipe`` (a transaction), to go with the caller's other commands."""
    key = answer_key(task_id)
    raw = json.dumps(answer, default=str)
    pipe.delete(key)
    pipe.rpush(key, raw)
    pipe.expire(key, settings.TASK_ANSWER_TTL_SECONDS)
    pipe.publish(answer_channel(task_id), raw)


@lru_cache(maxsize=1)
def _pool_url() -> str:
    return settings.REDIS_CLIENT_URL


def async_redis() -> aioredis.Redis:
    """A client of the running event loop (a connection pool is bound to the loop it was made in)."""
    return _loop_client(_clients, ASYNC_POOL_SIZE, CLIENT_NAME)


def async_stream_redis() -> aioredis.Redis:
    """The running event loop's client for the blocking reads of streamed executes."""
    return _loop_client(_stream_clients, STREAM_POOL_SIZE, STREAM_CLIENT_NAME)


def _loop_client(clients: weakref.WeakKeyDictionary, size: int, name: str) -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = clients.get(loop)
    if client is None:
        # No socket timeout: a stream's blocking read waits as long as its own timeout says.
        pool = aioredis.BlockingConnectionPool.from_url(
            _pool_url(),
            max_connections=size,
            timeout=ASYNC_POOL_WAIT_SECONDS,
            client_name=name,
            socket_timeout=None,
            socket_connect_timeout=5,
        )
        client = clients[loop] = aioredis.Redis(connection_pool=pool)
    return client


async def _stored(key: str) -> bytes | None:
    return await async_redis().lindex(key, 0)


def answer_listener() -> AnswerListener:
    """The pub/sub listener of the running event loop."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = AnswerListener(_pool_url(), _stored)
        _listeners[loop] = listener
    return listener


async def await_answer(task_id: str, *, timeout: float) -> Any | None:
    """The answer, or None when none came within ``timeout`` seconds. Redis being unreachable
    when the wait starts is the redis ``ConnectionError``."""
    raw = await answer_listener().wait(channel=answer_channel(task_id), key=answer_key(task_id), timeout=timeout)
    return None if raw is None else json.loads(raw)
