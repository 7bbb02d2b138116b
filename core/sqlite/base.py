"""Django's SQLite backend with its writers queued instead of sleeping.

SQLite lets one writer in at a time; the others retry on its busy handler, sleeping a little
longer after each failed try (up to 100 ms a try). Under many concurrent writers that sleeping
costs more than the writes, and whoever retries at the right moment wins, so a busy process
can starve another. Here a transaction (``BEGIN IMMEDIATE``, see config/settings_database.py)
first takes its process's lock for the database file, then an ``flock`` on a lock file beside
it that the kernel hands to the next waiting process as soon as it is released; both are given
back when the transaction commits, rolls back or its connection closes. SQLite's own lock stays
the guarantee: these only decide who asks next. A writer that waits longer than the busy
timeout gets the same "database is locked" error as before.
"""

from __future__ import annotations

import fcntl
import os
import threading

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError


class WriterQueue:
    """The writers of one database file: a lock per process, and an flock between processes."""

    def __init__(self, path: str) -> None:
        self.path = path + ".writers"
        self.lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # A forked child must not share its parent's open file: flock holds per open file.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, timeout: float) -> bool:
        if not self.lock.acquire(timeout=timeout):
            return False
        try:
            if self._flock(timeout):
                return True
        except BaseException:
            self.lock.release()
            raise
        self.lock.release()
        return False

    def _flock(self, timeout: float) -> bool:
        fd = self._file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        # Another process writes: wait for the kernel to hand the lock over, in a thread so
        # that the wait can end at the timeout. A wait given up unlocks as soon as it is granted.
        state = {"granted": False, "abandoned": False}
        guard = threading.Lock()

        def wait() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with guard:
                if state["abandoned"]:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:
                    state["granted"] = True

        waiter = threading.Thread(target=wait, name="sqlite-writer-wait", daemon=True)
        waiter.start()
        waiter.join(timeout)
        with guard:
            if not state["granted"]:
                state["abandoned"] = True
            return state["granted"]

    def release(self) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self.lock.release()


_queues: dict[str, WriterQueue] = {}
_queues_guard = threading.Lock()


def writer_queue(name: str) -> WriterQueue:
    """The queue of this process's writers of database file ``name``."""
    with _queues_guard:
        queue = _queues.get(name)
        if queue is None:
            queue = _queues[name] = WriterQueue(name)
        return queue


class DatabaseWrapper(base.DatabaseWrapper):
    _writer_queue: WriterQueue | None = None

    def _start_transaction_under_autocommit(self) -> None:
        queue = writer_queue(str(self.settings_dict["NAME"]))
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if self.is_in_memory_db():
            return super()._start_transaction_under_autocommit()
        if not queue.acquire(timeout=timeout):
            raise OperationalError("database is locked")
        self._writer_queue = queue
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._leave_queue()
            raise

    def _leave_queue(self) -> None:
        queue, self._writer_queue = self._writer_queue, None
        if queue is not None:
            queue.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._leave_queue()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._leave_queue()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._leave_queue()
