"""The database under concurrent writers: none fails on SQLite, and on PostgreSQL a process never
holds more connections than its pool allows."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from django.db import connection, transaction

from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from audit.services import audit_record, audit_verify_chain
from config.settings_database import database_settings, pool_options
from core.actor import Actor
from tests.artifacts.test_concurrency import race
from transfers.put import artifact_put


def test_sqlite_queues_writers_in_wal_mode_with_a_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("STOWAGE_DB_BUSY_TIMEOUT", "7")
    database = database_settings(url="", var_dir=tmp_path)
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] == 7
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert "busy_timeout=7000" in database["OPTIONS"]["init_command"]


def test_postgresql_connections_come_from_a_pool_sized_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STOWAGE_DB_POOL_MIN", "2")
    monkeypatch.setenv("STOWAGE_DB_POOL_MAX", "9")
    database = database_settings(url="postgres://u@db.example:5432/stowage", var_dir=tmp_path)
    assert database["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 9, "timeout": 30, "max_idle": 300}
    assert database["CONN_MAX_AGE"] == 0 and database["CONN_HEALTH_CHECKS"]
    monkeypatch.setenv("STOWAGE_DB_POOL", "false")
    persistent = database_settings(url="postgres://u@db.example:5432/stowage", var_dir=tmp_path)
    assert "pool" not in persistent.get("OPTIONS", {}) and persistent["CONN_MAX_AGE"] == 60
    with pytest.raises(ValueError, match="make no pool"):
        pool_options(min_size=5, max_size=2, timeout=30)


def test_sixteen_threads_writing_at_once_all_succeed(owner, stranger, transactional_db):
    actors = [Actor(organization_id=org, label="writer") for org in (owner.org_id, stranger.org_id)]
    before = AuditEvent.objects.count()

    def write(index: int) -> str:
        actor = actors[index % 2]
        for n in range(3):
            audit_record(actor=actor, action="race.write", details={"thread": index, "n": n})
        return artifact_put(
            actor=actor, stream=io.BytesIO(f"thread {index}\n".encode()), remote_path=f"race/{index}.txt"
        ).id

    ids = race(16, write)
    assert Artifact.objects.filter(id__in=ids, state=ArtifactState.READY).count() == 16
    assert AuditEvent.objects.filter(action="race.write").count() == 16 * 3
    assert AuditEvent.objects.count() == before + 16 * 3 + 16
    assert audit_verify_chain().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no connections to pool")
def test_threads_never_hold_more_connections_than_the_pool_allows(owner, transactional_db):
    threads, rounds, limit = 16, 5, 4
    name = f"stowage-pool-test-{uuid.uuid4().hex[:8]}"
    database = connection.settings_dict
    saved = dict(database["OPTIONS"])
    connection.close()
    connection.close_pool()
    database["OPTIONS"] = {**saved, "application_name": name, "pool": {**saved["pool"], "max_size": limit}}
    seen: list[int] = []
    inside, most_inside = [0], [0]
    lock = threading.Lock()
    actor = Actor(organization_id=owner.org_id, label="pooled")

    def work(index: int) -> None:
        for n in range(rounds):
            with transaction.atomic():
                with lock:
                    inside[0] += 1
                    most_inside[0] = max(most_inside[0], inside[0])
                audit_record(actor=actor, action="pool.write", details={"thread": index, "n": n})
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = %s",
                        [name],
                    )
                    count = cursor.fetchone()[0]
                with lock:
                    seen.append(count)
                    inside[0] -= 1
            # A request or a task ends: its connection goes back to the pool.
            connection.close()

    try:
        race(threads, work)
    finally:
        connection.close()
        connection.close_pool()
        database["OPTIONS"] = saved
    assert len(seen) == threads * rounds
    assert max(seen) <= limit, seen
    assert most_inside[0] > 1  # the threads did run at once
    assert AuditEvent.objects.filter(action="pool.write").count() == threads * rounds
