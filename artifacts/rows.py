"""Rows inserted many at a time from plain tuples: a folder's blobs and entries, where building a
model instance per row (and the ORM's per-field preparation of it) costs more than the insert.

The values are the columns' own (ids already made, foreign keys as their ids); only datetimes
are adapted, the way the database backend adapts them for the ORM. Call inside the transaction
that needs the rows: an IntegrityError (a unique constraint) leaves nothing inserted there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models

from artifacts.models import ArtifactEntry, Blob

BLOB_COLUMNS = ("id", "organization", "sha256", "size", "storage_key", "state", "created_at")
ENTRY_COLUMNS = ("artifact", "path", "parent", "type", "mode", "size", "sha256", "mtime", "link_target", "blob")
ROWS_PER_STATEMENT = 2000


def rows_insert(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple], *, adapted: frozenset = frozenset()
) -> None:
    """INSERT ``rows`` (tuples in the order of ``fields``) into the model's table; the datetimes
    of the ``adapted`` fields come adapted already."""
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table, names = quote(meta.db_table), ", ".join(quote(field.column) for field in columns)
    # A model's own table and column names; every value is a parameter.
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
    datetimes = [
        i for i, field in enumerate(columns) if isinstance(field, models.DateTimeField) and field.name not in adapted
    ]
    adapt = connection.ops.adapt_datetimefield_value
    batch: list[tuple] = []
    with connection.cursor() as cursor:
        for row in rows:
            if datetimes:
                row = list(row)
                for i in datetimes:
                    row[i] = adapt(row[i])
            batch.append(tuple(row))
            if len(batch) >= ROWS_PER_STATEMENT:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def blobs_insert(rows: Iterable[tuple]) -> None:
    """New blobs: (id, organization_id, sha256, size, storage_key, state, created_at), created_at
    adapted already (``connection.ops.adapt_datetimefield_value``)."""
    rows_insert(Blob, BLOB_COLUMNS, rows, adapted=frozenset({"created_at"}))


def entries_insert(rows: Iterable[tuple]) -> None:
    """Folder entries: (artifact_id, path, parent, type, mode, size, sha256, mtime, link_target, blob_id)."""
    rows_insert(ArtifactEntry, ENTRY_COLUMNS, rows)


def blobs_of(organization_id: str, digests: Sequence[str], *, lock: bool = False) -> dict[str, tuple[str, str]]:
    """The organization's blobs with these SHA-256s (hex) as {sha256: (id, state)}; with ``lock``
    their rows are locked until the transaction ends (SQLite's write transaction holds the
    whole database already)."""
    if not digests:
        return {}
    table = connection.ops.quote_name(Blob._meta.db_table)
    marks = ", ".join(["%s"] * len(digests))
    sql = f"SELECT sha256, id, state FROM {table} WHERE organization_id = %s AND sha256 IN ({marks})"  # noqa: S608
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [organization_id, *digests])
        return {sha: (blob_id, state) for sha, blob_id, state in cursor.fetchall()}
