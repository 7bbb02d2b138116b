"""Concurrent writers of one process on SQLite queue on the process's lock and all get in."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from core.sqlite.base import writer_queue

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the write queue is SQLite's")


@pytest.fixture
def counter_table(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS writer_queue_probe (n INTEGER NOT NULL)")
        cursor.execute("DELETE FROM writer_queue_probe")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE writer_queue_probe")


def _lock():
    return writer_queue(str(connection.settings_dict["NAME"])).lock


def test_many_threads_writing_at_once_all_commit(counter_table):
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("INSERT INTO writer_queue_probe (n) VALUES (1)")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM writer_queue_probe")
        assert cursor.fetchone()[0] == 16 * 25
    assert not _lock().locked()


def test_a_failed_transaction_gives_the_queue_back(counter_table):
    held = []

    def write_then_fail() -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO writer_queue_probe (n) VALUES (1)")
            held.append(_lock().locked())
            raise ValueError("the block fails after writing")

    with pytest.raises(ValueError, match="fails after writing"):
        write_then_fail()
    assert held == [True]
    assert not _lock().locked()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM writer_queue_probe")
        assert cursor.fetchone()[0] == 0


def test_a_connection_closed_inside_a_transaction_gives_the_queue_back(counter_table):
    transaction.set_autocommit(False)
    try:
        connection._start_transaction_under_autocommit()
        assert _lock().locked()
    finally:
        connection.close()
    assert not _lock().locked()


def test_a_writer_waiting_past_the_busy_timeout_gets_database_is_locked(counter_table, settings):
    from django.db.utils import OperationalError

    lock = _lock()
    lock.acquire()
    connection.settings_dict["OPTIONS"]["timeout"], saved = 0.2, connection.settings_dict["OPTIONS"]["timeout"]
    try:
        with pytest.raises(OperationalError, match="database is locked"), transaction.atomic():
            pass
    finally:
        connection.settings_dict["OPTIONS"]["timeout"] = saved
        lock.release()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO writer_queue_probe (n) VALUES (1)")
