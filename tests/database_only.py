"""``--database-tests-only``: the tests that reach the database, and no others.

The suite's PostgreSQL pass runs with it: a test that reaches no database (a sandbox runtime's
limits, a settings check, a process it starts on a database of its own) does the same on every
backend, and the SQLite pass has already run it. A test reaches the database when it uses
pytest-django's database access (the ``db`` or ``transactional_db`` fixture, directly or through
another fixture, or the ``django_db`` mark), or when it is marked ``database`` because it reaches
the suite's database server some other way (a process it starts with ``DATABASE_URL``).
"""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that reach the database (the PostgreSQL pass)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "database: reaches the suite's database server without pytest-django's fixtures")


def reaches_database(item: pytest.Item) -> bool:
    return bool(
        DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        or item.get_closest_marker("django_db")
        or item.get_closest_marker("database")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    kept = [item for item in items if reaches_database(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not reaches_database(item)])
        items[:] = kept
