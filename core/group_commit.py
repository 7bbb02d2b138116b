"""Many threads' small writes made in one transaction: group commit.

On SQLite every write transaction takes the one write lock of the database, and under load a
hundred threads of a worker each wanting it for one row spend far longer waiting than writing
(SQLite's busy handler sleeps and retries, newest first). ``GroupCommit.submit(item)`` queues the
item; the first thread to find no batch under way leads: it writes everything queued so far with
``write_batch`` in one transaction, wakes the threads whose items it wrote, and hands the lead to
the oldest thread still waiting. A lone writer leads at once and pays nothing extra; under load
one thread at a time of the process asks the database for its lock, and the others queue in
order.

``submit`` returns once the item is committed, or raises what writing it raised: when a batch
fails, each of its items is written again on its own, so that one bad item fails alone.

``submit(item, wait=False)`` only queues the item, for a caller that must not wait on the
database (a command about to start): a batch under way takes it along, or a writer thread of the
process leads one for it. What such a batch fails to write is logged.

``AsyncGroupCommit`` does the same for the coroutines of one event loop: the items its requests
ask for while a batch is written in a thread go together in the next one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from django.db import transaction

from core.threads import in_thread, release_connections

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _Entry(Generic[T]):
    __slots__ = ("done", "error", "item", "lead", "waited")

    def __init__(self, item: T, *, waited: bool = True) -> None:
        self.item = item
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.lead = False
        # False: nobody waits for this item, so nobody can be handed the lead through it.
        self.waited = waited


class _Group(Generic[T]):
    __slots__ = ("leading", "queue")

    def __init__(self) -> None:
        self.queue: list[_Entry[T]] = []
        self.leading = False


class GroupCommit(Generic[T]):
    """Items of one ``key`` are written together; items of different keys never wait on each
    other (the audit log's chains: one organization's head lock must not hold up another's)."""

    def __init__(self, write_batch: Callable[[list[T]], None], *, max_batch: int = 500) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._groups: dict[str, _Group[T]] = {}
        self._writer: ThreadPoolExecutor | None = None

    def submit(self, item: T, *, key: str = "", wait: bool = True) -> None:
        entry = _Entry(item, waited=wait)
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group()
            group.queue.append(entry)
            lead = not group.leading
            group.leading = True
        if not wait:
            if lead:
                self._lead_in_background(key, group)
            return
        if not lead:
            entry.done.wait()
            if not entry.lead:
                if entry.error is not None:
                    raise entry.error
                return
        self._lead(key, group)
        if entry.error is not None:
            raise entry.error

    def _lead(self, key: str, group: _Group[T]) -> None:
        with self._lock:
            batch, group.queue = group.queue[: self._max_batch], group.queue[self._max_batch :]
        try:
            self._write(batch)
        finally:
            background = False
            with self._lock:
                if not group.queue:
                    group.leading = False
                    del self._groups[key]
                elif group.queue[0].waited:
                    # The oldest waiter leads the next batch; this thread goes back to its caller.
                    group.queue[0].lead = True
                    group.queue[0].done.set()
                else:
                    background = True
            for entry in batch:
                entry.lead = False
                entry.done.set()
            if background:
                self._lead_in_background(key, group)

    def _write(self, batch: list[_Entry[T]]) -> None:
        errors = write_together(self._write_batch, [entry.item for entry in batch])
        for entry, error in zip(batch, errors, strict=True):
            entry.error = error
            if error is not None and not entry.waited:
                logger.error("an item queued to be written was not: %r", entry.item, exc_info=error)

    def _lead_in_background(self, key: str, group: _Group[T]) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._writer.submit(self._lead_and_let_go, key, group)

    def _lead_and_let_go(self, key: str, group: _Group[T]) -> None:
        try:
            self._lead(key, group)
        except BaseException:
            logger.exception("a batch queued to be written failed")
        finally:
            # A pooled connection goes back to its pool between batches.
            release_connections()


def write_together(write_batch: Callable[[list[T]], None], items: list[T]) -> list[BaseException | None]:
    """``write_batch(items)`` in one transaction; if that fails, each item in one of its own. The
    error of each item, None for those written."""
    try:
        with transaction.atomic():
            write_batch(items)
        return [None] * len(items)
    except BaseException as exc:
        if len(items) == 1:
            return [exc]
    errors: list[BaseException | None] = []
    for item in items:
        try:
            with transaction.atomic():
                write_batch([item])
            errors.append(None)
        except BaseException as exc:
            errors.append(exc)
    return errors


class AsyncGroupCommit(Generic[T]):
    def __init__(self, write_batch: Callable[[list[T]], None], *, max_batch: int = 500) -> None:
        self._write = in_thread(lambda items: write_together(write_batch, items), own_request=False)
        self._max_batch = max_batch
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _LoopQueue[T]]] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: T, *, key: str = "") -> None:
        loop = asyncio.get_running_loop()
        queues = self._queues.get(loop)
        if queues is None:
            queues = self._queues[loop] = {}
        queue = queues.get(key)
        if queue is None:
            queue = queues[key] = _LoopQueue()
        done = loop.create_future()
        queue.items.append((item, done))
        if queue.flusher is None:
            # In a context of its own: it serves every request that queues an item meanwhile.
            queue.flusher = loop.create_task(self._flush(queues, key), context=contextvars.Context())
        # Shielded: a request given up on still has its item written, and its caller told.
        await asyncio.shield(done)

    async def _flush(self, queues: dict[str, _LoopQueue[T]], key: str) -> None:
        queue = queues[key]
        try:
            while queue.items:
                batch, queue.items = queue.items[: self._max_batch], queue.items[self._max_batch :]
                try:
                    errors = await self._write([item for item, _ in batch])
                except BaseException as exc:
                    errors = [exc] * len(batch)
                for (_, done), error in zip(batch, errors, strict=True):
                    if done.done():
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            queue.flusher = None
            if not queue.items:
                del queues[key]


class _LoopQueue(Generic[T]):
    __slots__ = ("flusher", "items")

    def __init__(self) -> None:
        self.items: list[tuple[T, asyncio.Future[None]]] = []
        self.flusher: asyncio.Task[None] | None = None
