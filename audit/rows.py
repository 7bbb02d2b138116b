"""The three statements of an append, in plain SQL: read and lock a chain's head, insert its new
events, move the head. Every request that changes something appends, so the ORM's building and
compiling of each query (most of an append's time) is left out; the values are still prepared by
each field, as the ORM would prepare them.

Call inside the append's transaction.
"""

from __future__ import annotations

from django.db import connection

from audit.models import AuditChain, AuditEvent

_event_fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def head_hash(key: str) -> str | None:
    """The hash of the newest event of chain ``key``, its row locked until the transaction ends
    (SQLite's write transaction holds the whole database already); None if it has no row yet."""
    sql = f"SELECT {_quoted('last_hash')} FROM {_quoted(AuditChain._meta.db_table)} WHERE {_quoted('key')} = %s"  # noqa: S608 a model's own names
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    return row[0] if row else None


def events_insert(events: list[AuditEvent]) -> None:
    """INSERT ``events`` and set each one's ``seq`` to the one the database gave it (PostgreSQL
    and SQLite 3.35+ return them in the order of the rows)."""
    per_statement = max(1, connection.ops.bulk_batch_size(_event_fields, events))
    for start in range(0, len(events), per_statement):
        _insert(events[start : start + per_statement])


def _insert(events: list[AuditEvent]) -> None:
    columns = ", ".join(_quoted(field.column) for field in _event_fields)
    row = f"({', '.join(['%s'] * len(_event_fields))})"
    sql = (
        f"INSERT INTO {_quoted(AuditEvent._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(events))}"  # noqa: S608 a model's own names
        f" RETURNING {_quoted(AuditEvent._meta.pk.column)}"
    )
    values = [
        field.get_db_prep_save(field.pre_save(event, True), connection) for event in events for field in _event_fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        seqs = [seq for (seq,) in cursor.fetchall()]
    for event, seq in zip(events, seqs, strict=True):
        event.seq = seq
        event._state.adding = False


def head_advance(key: str, *, last_hash: str, last_seq: int, count: int) -> None:
    table = _quoted(AuditChain._meta.db_table)
    events = _quoted("events")
    sql = (
        f"UPDATE {table} SET {_quoted('last_hash')} = %s, {_quoted('last_seq')} = %s, {events} = {events} + %s"  # noqa: S608 a model's own names
        f" WHERE {_quoted('key')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [last_hash, last_seq, count, key])
