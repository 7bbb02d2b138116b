"""A worker's answer to a task that a request waits on, handed over through Redis.

The worker pushes the answer to a list of the task's own; the web side takes it with one
blocking pop (``await_answer``, asyncio: the wait holds no thread) and puts it back, so that every
request waiting on the same task (a retried upload joins its transfer) gets it too. Celery's
result store still gets the answer, for synchronous callers and for web processes of the
previous release.
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

from config.redis import get_redis

logger = logging.getLogger(__name__)

ANSWER_PREFIX = "stowage:answer:"
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def answer_key(task_id: str) -> str:
    return ANSWER_PREFIX + task_id


def publish_answer(task_id: str, answer: Any) -> None:
    """Worker side: the task's answer, for whoever waits on it."""
    key = answer_key(task_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(key)
    pipe.rpush(key, json.dumps(answer, default=str))
    pipe.expire(key, settings.TASK_ANSWER_TTL_SECONDS)
    pipe.execute()


@lru_cache(maxsize=1)
def _pool_url() -> str:
    return settings.REDIS_CLIENT_URL


def async_redis() -> aioredis.Redis:
    """A client of the running event loop (a connection pool is bound to the loop it was made in)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # No socket timeout: a blocking pop waits as long as its own timeout says.
        client = aioredis.Redis.from_url(_pool_url(), socket_timeout=None, socket_connect_timeout=5)
        _clients[loop] = client
    return client


async def await_answer(task_id: str, *, timeout: float) -> Any | None:
    """The answer, or None when none came within ``timeout`` seconds."""
    client = async_redis()
    key = answer_key(task_id)
    popped = await client.blpop([key], timeout=max(timeout, 0.01))
    if popped is None:
        return None
    raw = popped[1]
    pipe = client.pipeline(transaction=True)
    pipe.lpush(key, raw)
    pipe.expire(key, settings.TASK_ANSWER_TTL_SECONDS)
    await pipe.execute()
    return json.loads(raw)
