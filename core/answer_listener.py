"""One pub/sub connection per event loop that hears the answers of every task its requests wait on.

A waiter registers a future for its task's channel; the first waiter of a channel subscribes
to it, the last one to leave unsubscribes. Once Redis has confirmed the subscription, the
waiter looks at the task's answer list once (the answer may have come before it subscribed)
and then awaits its future, which the reader task fills when the answer is published.

When the connection drops, the reader makes a fresh one, subscribes again to every channel that
still has waiters and, once each subscription is confirmed, looks at that channel's list once
more, so that an answer published while nobody listened still reaches its waiters. While
Redis cannot be reached, a new waiter's subscription fails with the redis ``ConnectionError``;
waiters that were already subscribed keep waiting until the reader is back or their own
timeout ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

logger = logging.getLogger(__name__)

# The name of the listener's connection in Redis's CLIENT LIST.
PUBSUB_CLIENT_NAME = "stowage:answers"
# How long the reader waits between attempts to reconnect, at most.
RECONNECT_MAX_SECONDS = 2.0
_CONNECTION_ERRORS = (RedisError, OSError)

# Looks at a task's answer list: the raw answer, or None while there is none.
Lookup = Callable[[str], Awaitable[bytes | None]]


class AnswerListener:
    """The listener of one event loop; ``lookup`` reads a list with the loop's normal client."""

    def __init__(self, url: str, lookup: Lookup) -> None:
        self._lookup = lookup
        # Errors reach the reader at once (no retries inside redis-py): it makes a fresh
        # connection itself and knows which lists to look at again.
        self._pool = aioredis.ConnectionPool.from_url(
            url,
            client_name=PUBSUB_CLIENT_NAME,
            socket_timeout=None,
            socket_connect_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self._keys: dict[str, str] = {}
        # Channels sent SUBSCRIBE on the current connection, the subscribe replies still due
        # per channel, and the futures that say a channel's subscription is confirmed.
        self._subscribed: set[str] = set()
        self._due: dict[str, int] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        # Channels whose list is looked at again once their subscription is confirmed.
        self._recheck: set[str] = set()
        self._background: set[asyncio.Task] = set()

    # --- waiting ------------------------------------------------------------------------------

    async def wait(self, *, channel: str, key: str, timeout: float) -> bytes | None:
        """The raw answer published on ``channel`` (or already in the list ``key``), or None
        when none came within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._waiters.setdefault(channel, set()).add(future)
        self._keys[channel] = key
        try:
            async with asyncio.timeout(max(timeout, 0)) as scope:
                await self._subscribe(channel)
                await asyncio.shield(self._confirmed[channel])
                if future.done():
                    return future.result()
                raw = await self._lookup(key)
                if raw is not None:
                    return raw
                return await future
        except TimeoutError:
            if scope.expired():
                return None
            raise
        finally:
            leaving = self._leave(channel, future)
            if leaving is not None:
                await asyncio.shield(leaving)

    async def _subscribe(self, channel: str) -> None:
        async with self._lock:
            pubsub = self._pubsub or await self._connect()
            if channel in self._subscribed or channel not in self._waiters:
                return
            self._confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
            self._due[channel] = self._due.get(channel, 0) + 1
            self._subscribed.add(channel)
            await pubsub.subscribe(channel)

    def _leave(self, channel: str, future: asyncio.Future) -> asyncio.Task | None:
        waiters = self._waiters.get(channel)
        if waiters is None:
            return None
        waiters.discard(future)
        if waiters:
            return None
        del self._waiters[channel]
        self._keys.pop(channel, None)
        self._recheck.discard(channel)
        confirmed = self._confirmed.pop(channel, None)
        if confirmed is not None and not confirmed.done():
            confirmed.cancel()
        if channel not in self._subscribed:
            return None
        self._subscribed.discard(channel)
        return self._spawn(self._unsubscribe(channel))

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            # A waiter that came meanwhile has subscribed again: the channel stays.
            if channel in self._waiters or self._pubsub is None:
                return
            try:
                await self._pubsub.unsubscribe(channel)
            except _CONNECTION_ERRORS as exc:
                logger.debug("unsubscribe from %s failed: %s", channel, exc)

    # --- the connection -----------------------------------------------------------------------

    async def _connect(self) -> PubSub:
        """A fresh connection subscribed to every channel with waiters (called with the lock held)."""
        pubsub = PubSub(self._pool)
        try:
            await pubsub.connect()
            channels = list(self._waiters)
            if channels:
                await pubsub.subscribe(*channels)
        except BaseException:
            await self._close(pubsub)
            raise
        loop = asyncio.get_running_loop()
        self._pubsub = pubsub
        self._subscribed = set(channels)
        self._due = dict.fromkeys(channels, 1)
        for channel in channels:
            if channel not in self._confirmed or self._confirmed[channel].done():
                self._confirmed[channel] = loop.create_future()
        # Their waiters may have looked at the list already: an answer published while
        # nobody listened is found by looking once more.
        self._recheck = set(channels)
        if self._reader is None or self._reader.done():
            # In a context of its own, like every task here: it outlives the request that made it.
            self._reader = loop.create_task(self._read(), name="answer-listener", context=contextvars.Context())
        return pubsub

    async def _close(self, pubsub: PubSub) -> None:
        try:
            await pubsub.aclose()
        except _CONNECTION_ERRORS:
            pass

    async def _read(self) -> None:
        try:
            while True:
                pubsub = self._pubsub
                if pubsub is None:
                    if not await self._reconnect():
                        return
                    continue
                try:
                    response = await pubsub.parse_response(block=True)
                except _CONNECTION_ERRORS as exc:
                    logger.warning("the answer listener lost its connection to Redis: %s", exc)
                    await self._drop(pubsub)
                    continue
                self._handle(await pubsub.handle_message(response))
        finally:
            pubsub, self._pubsub = self._pubsub, None
            if pubsub is not None:
                await self._close(pubsub)

    async def _drop(self, pubsub: PubSub) -> None:
        async with self._lock:
            if self._pubsub is pubsub:
                self._pubsub = None
                self._subscribed = set()
                self._due = {}
        await self._close(pubsub)

    async def _reconnect(self) -> bool:
        """Connects again while any request waits; False once none does (the reader ends)."""
        pause = 0.05
        while True:
            async with self._lock:
                if self._pubsub is not None:
                    return True
                if not self._waiters:
                    self._reader = None
                    return False
                try:
                    await self._connect()
                    return True
                except _CONNECTION_ERRORS as exc:
                    logger.debug("the answer listener could not reconnect: %s", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_SECONDS)

    def _handle(self, message: dict | None) -> None:
        if not message or message.get("channel") is None:
            return
        kind = message["type"]
        channel = message["channel"].decode()
        if kind == "message":
            for future in self._waiters.get(channel, ()):
                if not future.done():
                    future.set_result(message["data"])
        elif kind == "subscribe":
            due = self._due.get(channel, 0) - 1
            if due > 0:
                self._due[channel] = due
                return
            self._due.pop(channel, None)
            confirmed = self._confirmed.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            if channel in self._recheck:
                self._recheck.discard(channel)
                self._spawn(self._look_again(channel))

    async def _look_again(self, channel: str) -> None:
        key = self._keys.get(channel)
        if key is None:
            return
        try:
            raw = await self._lookup(key)
        except _CONNECTION_ERRORS as exc:
            logger.debug("looking again at %s failed: %s", key, exc)
            return
        if raw is not None:
            for future in self._waiters.get(channel, ()):
                if not future.done():
                    future.set_result(raw)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- for tests and shutdown ---------------------------------------------------------------

    @property
    def channels(self) -> set[str]:
        """The channels that have waiters."""
        return set(self._waiters)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, *_CONNECTION_ERRORS):
                pass
        await self._pool.aclose()
