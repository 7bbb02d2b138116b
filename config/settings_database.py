"""The database: SQLite under ``var/`` by default, PostgreSQL when ``DATABASE_URL`` names one.

Both are set up so that concurrent writers queue rather than fail, and a process never holds more
connections than it was sized for:

- SQLite runs in WAL mode (readers never wait for the writer), opens every transaction with
  ``BEGIN IMMEDIATE`` (a writer takes the write lock first, instead of failing to upgrade a read
  lock halfway through with "database is locked"), and waits up to ``STOWAGE_DB_BUSY_TIMEOUT``
  seconds (default 20) for the lock.
- PostgreSQL connections come from a pool per process (Django's native psycopg pool), at least
  ``STOWAGE_DB_POOL_MIN`` (default 1) and at most ``STOWAGE_DB_POOL_MAX`` (default 20) open; a
  thread that finds them all in use waits up to ``STOWAGE_DB_POOL_TIMEOUT`` seconds (default 30)
  for one. ``STOWAGE_DB_POOL=false`` turns the pool off for persistent connections instead
  (``CONN_MAX_AGE`` 60 s, health-checked), one per thread, as with an external pooler such as
  PgBouncer in front. docs/operations.md says how to size them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

from config.env import env_bool, env_int, env_str


def sqlite_options(*, busy_timeout: int) -> dict[str, Any]:
    return {
        "transaction_mode": "IMMEDIATE",
        "timeout": busy_timeout,
        "init_command": (
            f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout={busy_timeout * 1000};"
        ),
    }


def pool_options(*, min_size: int, max_size: int, timeout: int) -> dict[str, Any]:
    if not 0 <= min_size <= max_size or max_size < 1:
        raise ValueError(f"STOWAGE_DB_POOL_MIN ({min_size}) and STOWAGE_DB_POOL_MAX ({max_size}) make no pool")
    # max_idle: connections above min_size that stayed unused this long are closed again.
    return {"min_size": min_size, "max_size": max_size, "timeout": timeout, "max_idle": 300}


def database_settings(*, url: str, var_dir: Path, name: str = "") -> dict[str, Any]:
    """The ``default`` database of DATABASES from the environment's values."""
    if url:
        database = dj_database_url.parse(url)
        database["CONN_HEALTH_CHECKS"] = True
        if database["ENGINE"] == "django.db.backends.postgresql" and env_bool("STOWAGE_DB_POOL", default=True):
            database["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
            database.setdefault("OPTIONS", {})["pool"] = pool_options(
                min_size=env_int("STOWAGE_DB_POOL_MIN", 1),
                max_size=env_int("STOWAGE_DB_POOL_MAX", 20),
                timeout=env_int("STOWAGE_DB_POOL_TIMEOUT", 30),
            )
        else:
            database["CONN_MAX_AGE"] = 60
    else:
        var_dir.mkdir(parents=True, exist_ok=True)
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": var_dir / "stowage.sqlite3",
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    # Worker processes started by the test suite are pointed at its test database with this.
    if name:
        database["NAME"] = name
    if database["ENGINE"] == "django.db.backends.sqlite3":
        busy = env_int("STOWAGE_DB_BUSY_TIMEOUT", 20)
        database.setdefault("OPTIONS", {}).update(sqlite_options(busy_timeout=busy))
        # Tests share one on-disk database with the worker processes they start.
        database["TEST"] = {"NAME": str(var_dir / "test-stowage.sqlite3")}
    return database


def default_database(var_dir: Path) -> dict[str, Any]:
    return database_settings(url=env_str("DATABASE_URL"), var_dir=var_dir, name=env_str("STOWAGE_DATABASE_NAME"))
