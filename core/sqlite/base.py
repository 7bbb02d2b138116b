"""Django's SQLite backend with the writers of one process queued in Python.

SQLite lets one writer in at a time; the others retry on its busy handler, sleeping a little
longer after each failed try (up to 100 ms a try). Under many concurrent writers that sleeping
is slower than the writes themselves, and whoever happens to retry at the right moment wins.
Here a transaction (``BEGIN IMMEDIATE``, see config/settings_database.py) first takes a lock
of its process for the database file, released when it commits, rolls back or is closed, so the
threads of a process hand the write lock over without sleeping. SQLite's own lock still decides
between processes and stays the only guarantee: this lock only orders who asks next. A thread
that waits longer than the busy timeout gets the same "database is locked" error as before.
"""

from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def write_lock(name: str) -> threading.Lock:
    """The lock this process's writers of database file ``name`` queue on."""
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock: threading.Lock | None = None

    def _start_transaction_under_autocommit(self) -> None:
        lock = write_lock(str(self.settings_dict["NAME"]))
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked")
        self._write_lock = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        lock, self._write_lock = self._write_lock, None
        if lock is not None:
            lock.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()
