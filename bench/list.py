#!/usr/bin/env python3
"""What listing artifacts costs when an organization has a million of them (SQLite).

Builds (once; cached under ``var/bench/``) a SQLite database with ``--rows`` ready artifacts of
one organization plus a few thousand of a second one, copies it into a temporary var dir, and
times ``GET /api/v1/artifacts`` handled in-process by Django (``django.test.Client`` with a real
API key: authentication, the query and JSON rendering), interleaved, for:

  * the first page (limit 100);
  * a page ``--depth`` pages deep (keyset cursor, 500,000 rows in by default);
  * first pages filtered by sandbox_id, content_type and remote_path prefix (broad and narrow);

against baselines measured in the same run:

  * the same first-page request for an organization with 100 artifacts (the cost of scale);
  * the ORM query with OFFSET at the same depth, next to the keyset ORM query (why keyset).

Target: first page and deep page each <= 20 ms median server time.

With ``--database-url postgres://USER@HOST:PORT/NAME`` the same dataset is built in PostgreSQL
instead: the script creates the database NAME (dropping any old one) and drops it at the end.
Rows go in with ``COPY``; the indexes are created after. The built database is kept as the
template ``NAME_tpl_<rows>_<second-org-rows>`` (the cache, as the SQLite file is), from which
later runs create NAME in seconds (``--rebuild`` builds afresh; drop the template to reclaim
the space).

    .venv/bin/python bench/list.py [--rows 1000000] [--runs 50] [--warmup 5] [--rebuild] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE_DIR = ROOT / "var" / "bench"

TARGET_MS = 20.0
LIMIT = 100
LARGE_ORG = "bench-large"
SECOND_ORG = "bench-second"
SMALL_ORG = "bench-small"
CONTENT_TYPES = [  # (type, weight): about ten distinct, skewed as real uploads are
    ("application/json", 22),
    ("text/plain", 18),
    ("text/csv", 12),
    ("image/png", 10),
    ("application/gzip", 9),
    ("application/octet-stream", 8),
    ("application/pdf", 6),
    ("text/html", 6),
    ("image/jpeg", 5),
    ("application/x-parquet", 4),
]
EXTENSIONS = {
    "application/json": "json",
    "text/plain": "log",
    "text/csv": "csv",
    "image/png": "png",
    "application/gzip": "tar.gz",
    "application/octet-stream": "bin",
    "application/pdf": "pdf",
    "text/html": "html",
    "image/jpeg": "jpg",
    "application/x-parquet": "parquet",
}
TOP_DIRS = [
    "reports",
    "runs",
    "models",
    "datasets",
    "logs",
    "exports",
    "plots",
    "checkpoints",
    "notebooks",
    "builds",
    "traces",
    "screenshots",
    "results",
    "tmp",
    "eval",
    "cache",
    "snapshots",
    "outputs",
    "inputs",
    "metrics",
]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
    }


# --- building the database ---------------------------------------------------------------------


def _django_setup(var_dir: Path, database_url: str | None = None) -> None:
    # Settings read STOWAGE_VAR_DIR (and DATABASE_URL) at import: set them before anything imports them.
    for name in ("STOWAGE_DATABASE_NAME", "DATABASE_URL", "REDIS_URL", "STOWAGE_SANDBOX_ROOT"):
        os.environ.pop(name, None)
    os.environ["STOWAGE_VAR_DIR"] = str(var_dir)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def _fill_rows(
    cur,
    columns: list[tuple[str, str, bool]],
    *,
    org_id: str,
    key_id: str,
    key_label: str,
    user_id: int | None,
    count: int,
    start: datetime,
    span: timedelta,
    sandboxes: int,
    rng: random.Random,
    batch: int = 50_000,
    copy=None,
) -> None:
    """``copy``: a psycopg ``COPY`` in progress (PostgreSQL) instead of ``executemany`` on ``cur`` (SQLite)."""
    """Insert ``count`` ready artifacts, oldest first, as they would have been created."""
    from core.ids import new_id

    sandbox_ids = [new_id("sbx") for _ in range(sandboxes)]
    # A few sandboxes per agent session; some sandboxes outside any session.
    session_ids = [new_id("ses") if i % 7 else "" for i in range(sandboxes // 3 + 1)]
    sandbox_session = [session_ids[i // 3] for i in range(sandboxes)]
    types, weights = zip(*CONTENT_TYPES, strict=False)
    type_table = rng.choices(types, weights=weights, k=4096)
    # Paths repeat (new versions of the same file), about three versions each on average.
    path_pool = max(1, count // 3)
    versions: dict[int, int] = {}
    step = span / count
    names = [c[0] for c in columns]
    sql = f"INSERT INTO artifacts_artifact ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"

    def value_for(name: str, notnull: bool, decl: str, ctx: dict):
        if name in ctx:
            return ctx[name]
        if not notnull:
            return None
        return 0 if any(t in decl.upper() for t in ("INT", "BOOL", "REAL", "NUM")) else ""

    rows = []
    for i in range(count):
        created = start + step * i + timedelta(microseconds=rng.randrange(1, int(step.total_seconds() * 1e6 // 2) + 2))
        sandbox = rng.randrange(sandboxes)
        ctype = type_table[rng.randrange(4096)]
        path_no = rng.randrange(path_pool)
        version = versions.get(path_no, 0) + 1
        versions[path_no] = version
        remote = f"{TOP_DIRS[path_no % len(TOP_DIRS)]}/p{path_no % 997:03d}/run-{path_no // 997}/file-{path_no}.{EXTENSIONS[ctype]}"
        artifact_id = new_id("art")
        created_s = (
            str(created.replace(tzinfo=None)) if copy is None else created
        )  # what Django's SQLite backend stores
        ctx = {
            "id": artifact_id,
            "organization_id": org_id,
            "sandbox_id": sandbox_ids[sandbox],
            "session_id": sandbox_session[sandbox],
            "source_path": "/workspace/" + remote,
            "remote_path": remote,
            "version": version,
            "size": int(rng.lognormvariate(10, 2.5)),
            "checksum": "sha256:" + rng.getrandbits(256).to_bytes(32, "big").hex(),
            "content_type": ctype,
            "metadata": '{"job": "nightly"}' if i % 5 == 0 else "{}",
            "skipped": "[]",
            "is_archive": (1 if ctype == "application/gzip" else 0) if copy is None else ctype == "application/gzip",
            "storage_key": f"blobs/{org_id}/{artifact_id}",
            "state": "ready",
            "error_message": "",
            "created_at": created_s,
            "ready_at": (created + timedelta(milliseconds=rng.randrange(5, 4000)))
            if copy is not None
            else str((created + timedelta(milliseconds=rng.randrange(5, 4000))).replace(tzinfo=None)),
            "expires_at": None,
            "deleted_at": None,
            "created_by_api_key_id": key_id,
            "created_by_user_id": None,
            "created_by_label": key_label,
        }
        row = tuple(value_for(name, notnull, decl, ctx) for name, decl, notnull in columns)
        if copy is not None:
            copy.write_row(row)
            continue
        rows.append(row)
        if len(rows) >= batch:
            cur.executemany(sql, rows)
            rows.clear()
    if rows:
        cur.executemany(sql, rows)


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_split(database_url: str) -> tuple[str, str]:
    """(the URL of the server's maintenance database ``postgres``, the bench database's name)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(
            f"--database-url must name a dedicated database (e.g. .../stowage_bench), not {name!r}: the script drops it"
        )
    return urlunsplit(parts._replace(path="/postgres")), name


def pg_admin(database_url: str, *statements: str) -> None:
    import psycopg

    admin_url, _ = pg_split(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def pg_exists(database_url: str, name: str) -> bool:
    import psycopg

    admin_url, _ = pg_split(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def pg_template_name(database_url: str, rows: int, second_rows: int) -> str:
    return f"{pg_split(database_url)[1]}_tpl_{rows}_{second_rows}"


def pg_prepare(
    database_url: str, rows: int, second_rows: int, var_dir: Path, *, rebuild: bool, quiet: bool
) -> dict[str, object]:
    """Create the bench database (from the cached template, or built afresh), migrate, set Django up."""
    _, name = pg_split(database_url)
    template = pg_template_name(database_url, rows, second_rows)
    pg_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    build_info = None
    copied = time.perf_counter()
    if rebuild or not pg_exists(database_url, template):
        pg_admin(database_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        _django_setup(var_dir, database_url)
        build_info = build_database_pg(rows, second_rows)
        from django.db import connection

        connection.close()
        pg_admin(database_url, f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
        if not quiet:
            print(
                f"built {rows:,} + {second_rows:,} rows in PostgreSQL in {build_info['total_s']} s (insert {build_info['insert_s']} s, "
                f"indexes {build_info['index_s']} s); kept as template {template}",
                file=sys.stderr,
            )
        copy_s = 0.0
    else:
        pg_admin(database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        copy_s = time.perf_counter() - copied
        _django_setup(var_dir, database_url)
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)  # a no-op unless new migrations arrived
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    return {
        "postgresql": database_url.rsplit("@", 1)[-1],
        "template": template,
        "built_now": build_info,
        "copy_s": round(copy_s, 1),
        "server_version": version,
    }


def pg_drop(database_url: str) -> None:
    from django.db import connections

    connections.close_all()
    pg_admin(database_url, f'DROP DATABASE IF EXISTS "{pg_split(database_url)[1]}" WITH (FORCE)')


def build_database_pg(rows: int, second_rows: int, *, seed: int = 20260101) -> dict[str, object]:
    """Migrate the (new, empty) PostgreSQL database Django points at and fill it with COPY."""
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import organization_bootstrap

    started = time.perf_counter()
    call_command("migrate", "--noinput", verbosity=0)
    large, _, _, large_key, _ = organization_bootstrap(
        org_name=LARGE_ORG, email="large@bench.test", username="bench-large"
    )
    second, _, _, second_key, _ = organization_bootstrap(
        org_name=SECOND_ORG, email="second@bench.test", username="bench-second"
    )
    migrated = time.perf_counter()
    connection.ensure_connection()
    conn = connection.connection  # psycopg 3
    with connection.cursor() as dj:
        dj.execute(
            "SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL FROM information_schema.columns "
            "WHERE table_name = 'artifacts_artifact' ORDER BY ordinal_position"
        )
        columns = [(r[0], r[1], bool(r[2])) for r in dj.fetchall()]
        # Plain indexes (not the ones behind constraints) are built after the rows go in.
        dj.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'artifacts_artifact' "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        indexes = dj.fetchall()
        for index_name, _ in indexes:
            dj.execute(f'DROP INDEX "{index_name}"')
    rng = random.Random(seed)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    span = timedelta(days=365)
    names = ", ".join(f'"{c[0]}"' for c in columns)
    with conn.cursor() as cur, cur.copy(f"COPY artifacts_artifact ({names}) FROM STDIN") as copy:
        _fill_rows(
            None,
            columns,
            org_id=large.id,
            key_id=large_key.id,
            key_label=f"api key {large_key.prefix}… (bootstrap)",
            user_id=None,
            count=rows,
            start=end - span,
            span=span,
            sandboxes=1000,
            rng=rng,
            copy=copy,
        )
        _fill_rows(
            None,
            columns,
            org_id=second.id,
            key_id=second_key.id,
            key_label=f"api key {second_key.prefix}… (bootstrap)",
            user_id=None,
            count=second_rows,
            start=end - span,
            span=span,
            sandboxes=20,
            rng=rng,
            copy=copy,
        )
    conn.commit() if not conn.autocommit else None
    inserted = time.perf_counter()
    with connection.cursor() as dj:
        dj.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            dj.execute(definition)
        # As autovacuum leaves a live table: statistics, and a visibility map without which every
        # index-only scan (the prefix check, say) would visit the heap row by row.
        dj.execute("VACUUM (ANALYZE)")
        dj.execute("SELECT pg_database_size(current_database())")
        size = dj.fetchone()[0]
    indexed = time.perf_counter()
    return {
        "rows": rows,
        "second_org_rows": second_rows,
        "migrate_s": round(migrated - started, 1),
        "insert_s": round(inserted - migrated, 1),
        "index_s": round(indexed - inserted, 1),
        "total_s": round(indexed - started, 1),
        "database_mib": round(size / 2**20, 1),
    }


def build_database(db_path: Path, rows: int, second_rows: int, *, seed: int = 20260101) -> dict[str, object]:
    """Migrate a fresh database at ``db_path`` (its var dir is already set) and fill it."""
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import organization_bootstrap

    started = time.perf_counter()
    call_command("migrate", "--noinput", verbosity=0)
    large, _, _, large_key, _ = organization_bootstrap(
        org_name=LARGE_ORG, email="large@bench.test", username="bench-large"
    )
    second, _, _, second_key, _ = organization_bootstrap(
        org_name=SECOND_ORG, email="second@bench.test", username="bench-second"
    )
    connection.close()
    migrated = time.perf_counter()

    db = sqlite3.connect(db_path, isolation_level=None)
    cur = db.cursor()
    cur.execute("PRAGMA journal_mode=DELETE")
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA cache_size=-400000")
    cur.execute("PRAGMA temp_store=MEMORY")
    columns = [(r[1], r[2], bool(r[3]) and r[4] is None) for r in cur.execute("PRAGMA table_info(artifacts_artifact)")]
    # Indexes are built after the rows go in: sorting once beats a million random B-tree inserts.
    index_sql = [
        r[0]
        for r in cur.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='artifacts_artifact' AND sql IS NOT NULL"
        )
    ]
    cur.execute("BEGIN")
    for (name,) in cur.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='artifacts_artifact' AND sql IS NOT NULL"
    ).fetchall():
        cur.execute(f'DROP INDEX "{name}"')
    rng = random.Random(seed)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    span = timedelta(days=365)
    _fill_rows(
        cur,
        columns,
        org_id=large.id,
        key_id=large_key.id,
        key_label=f"api key {large_key.prefix}… (bootstrap)",
        user_id=None,
        count=rows,
        start=end - span,
        span=span,
        sandboxes=1000,
        rng=rng,
    )
    _fill_rows(
        cur,
        columns,
        org_id=second.id,
        key_id=second_key.id,
        key_label=f"api key {second_key.prefix}… (bootstrap)",
        user_id=None,
        count=second_rows,
        start=end - span,
        span=span,
        sandboxes=20,
        rng=rng,
    )
    cur.execute("COMMIT")
    inserted = time.perf_counter()
    for sql in index_sql:
        cur.execute(sql)
    indexed = time.perf_counter()
    cur.execute("PRAGMA journal_mode=WAL")
    db.close()
    return {
        "rows": rows,
        "second_org_rows": second_rows,
        "migrate_s": round(migrated - started, 1),
        "insert_s": round(inserted - migrated, 1),
        "index_s": round(indexed - inserted, 1),
        "total_s": round(indexed - started, 1),
        "file_mib": round(db_path.stat().st_size / 2**20, 1),
    }


# --- measuring ----------------------------------------------------------------------------------


def explain(queryset) -> list[str]:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql, params)
        return [row[-1].strip() for row in cursor.fetchall()]


def measure(rows: int, runs: int, warmup: int, depth: int) -> dict[str, object]:
    from django.db import connection
    from django.db.models import Q
    from django.test import Client

    from accounts.models import Organization
    from accounts.services import api_key_create, organization_bootstrap
    from artifacts.models import Artifact, new_artifact_id
    from artifacts.selectors import artifact_list
    from core.actor import Actor
    from core.pagination import decode_time_cursor, encode_time_cursor, newest_first_page

    large = Organization.objects.get(name=LARGE_ORG)
    _, large_secret = api_key_create(organization=large, name="bench", actor=Actor.system(large.id))
    # The baseline: an organization with 100 artifacts, copied from the large one's newest.
    small, _, _, small_key, small_secret = organization_bootstrap(
        org_name=SMALL_ORG, email="small@bench.test", username="bench-small"
    )
    template = list(artifact_list(organization_id=large.id)[:LIMIT])
    for artifact in template:
        artifact.id = new_artifact_id()
        artifact.organization_id = small.id
        artifact.storage_key = f"blobs/{small.id}/{artifact.id}"
        artifact.created_by_api_key_id = small_key.id
    Artifact.objects.bulk_create(template)

    base = artifact_list(organization_id=large.id)
    total = base.count()
    offset = depth * LIMIT
    if offset >= total:
        raise SystemExit(f"--depth {depth} pages of {LIMIT} is past the {total} artifacts")
    boundary = base[offset - 1]  # the last row of page `depth`: its cursor opens page depth+1
    deep_cursor = encode_time_cursor(boundary.created_at, boundary.id)
    expected_first = base.values_list("id", flat=True)[offset]
    sample = base[offset + 7]
    narrow_prefix = sample.remote_path.rsplit("/", 1)[0] + "/"  # one run directory: a handful of rows
    broad_prefix = sample.remote_path.split("/", 1)[0] + "/"  # one top-level directory: ~5% of rows
    counts = {
        "sandbox_id": base.filter(sandbox_id=sample.sandbox_id).count(),
        "content_type": base.filter(content_type=sample.content_type).count(),
        "prefix_broad": base.filter(remote_path__startswith=broad_prefix).count(),
        "prefix_narrow": base.filter(remote_path__startswith=narrow_prefix).count(),
    }

    client = Client()
    large_headers = {"HTTP_AUTHORIZATION": f"ApiKey {large_secret}", "HTTP_X_ORG_ID": large.id}
    small_headers = {"HTTP_AUTHORIZATION": f"ApiKey {small_secret}", "HTTP_X_ORG_ID": small.id}

    def api(
        params: dict[str, object],
        headers: dict[str, str],
        *,
        expect_first: str | None = None,
        expect_rows: int | None = None,
    ):
        def run() -> float:
            started = time.perf_counter()
            response = client.get("/api/v1/artifacts", params, **headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"GET /api/v1/artifacts {params}: {response.status_code} {response.content[:500]!r}")
            if expect_first is not None or expect_rows is not None:
                body = response.json()
                if expect_first is not None and body["artifacts"][0]["id"] != expect_first:
                    raise RuntimeError(
                        f"the deep page starts at {body['artifacts'][0]['id']}, OFFSET says {expect_first}"
                    )
                if expect_rows is not None and len(body["artifacts"]) != expect_rows:
                    raise RuntimeError(f"{params}: {len(body['artifacts'])} rows, expected {expect_rows}")
            return elapsed

        return run

    def orm(queryset):
        def run() -> float:
            started = time.perf_counter()
            got = list(queryset.all())  # a fresh clone: a queryset caches its rows
            elapsed = (time.perf_counter() - started) * 1000
            if len(got) != LIMIT:
                raise RuntimeError(f"the ORM query returned {len(got)} rows")
            return elapsed

        return run

    # The API's own query (same filters, same order), paged with OFFSET instead of a cursor.
    offset_qs = artifact_list(organization_id=large.id)[offset : offset + LIMIT]

    def keyset_orm() -> float:
        started = time.perf_counter()
        page = newest_first_page(artifact_list(organization_id=large.id), limit=LIMIT, cursor=deep_cursor)
        elapsed = (time.perf_counter() - started) * 1000
        if page.rows[0].id != expected_first:
            raise RuntimeError("the keyset page and the OFFSET page disagree")
        return elapsed

    def keyset_orm_hinted() -> float:
        # The same page with a redundant `created_at <= cursor` that SQLite can use as a range bound.
        created, artifact_id = decode_time_cursor(deep_cursor)
        started = time.perf_counter()
        qs = (
            artifact_list(organization_id=large.id)
            .filter(created_at__lte=created)
            .filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=artifact_id))
        )
        got = list(qs[: LIMIT + 1])
        elapsed = (time.perf_counter() - started) * 1000
        if got[0].id != expected_first:
            raise RuntimeError("the hinted keyset page and the OFFSET page disagree")
        return elapsed

    def prefix_orm(prefix: str, *, ranged: bool):
        # `ranged` adds remote_path >= prefix AND < its successor: a range SQLite can take from
        # artifact_org_path, which LIKE (case-insensitive on SQLite) never gives it.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        qs = artifact_list(organization_id=large.id, prefix=prefix)
        if ranged:
            qs = qs.filter(remote_path__gte=prefix, remote_path__lt=upper)
        qs = qs[: LIMIT + 1]

        def run() -> float:
            started = time.perf_counter()
            list(qs.all())
            return (time.perf_counter() - started) * 1000

        return run, qs

    prefix_cases = {
        "orm_prefix_narrow": ("ORM ?prefix=<one run dir> as is", *prefix_orm(narrow_prefix, ranged=False)),
        "orm_prefix_narrow_ranged": (
            "ORM ?prefix=<one run dir> + range bound",
            *prefix_orm(narrow_prefix, ranged=True),
        ),
        "orm_prefix_broad": (f"ORM ?prefix={broad_prefix} as is", *prefix_orm(broad_prefix, ranged=False)),
        "orm_prefix_broad_ranged": (
            f"ORM ?prefix={broad_prefix} + range bound",
            *prefix_orm(broad_prefix, ranged=True),
        ),
    }

    cases: dict[str, tuple[str, object]] = {
        "first_page": ("GET first page (large org)", api({"limit": LIMIT}, large_headers, expect_rows=LIMIT)),
        "deep_page": (
            f"GET page {depth + 1:,} (cursor)",
            api({"limit": LIMIT, "cursor": deep_cursor}, large_headers, expect_first=expected_first, expect_rows=LIMIT),
        ),
        "filter_sandbox": ("GET ?sandbox_id=", api({"limit": LIMIT, "sandbox_id": sample.sandbox_id}, large_headers)),
        "filter_content_type": (
            "GET ?content_type=",
            api({"limit": LIMIT, "content_type": sample.content_type}, large_headers),
        ),
        "filter_prefix_broad": (
            f"GET ?prefix={broad_prefix}",
            api({"limit": LIMIT, "prefix": broad_prefix}, large_headers),
        ),
        "filter_prefix_narrow": (
            "GET ?prefix=<one run dir>",
            api({"limit": LIMIT, "prefix": narrow_prefix}, large_headers),
        ),
        "baseline_small_org": (
            "baseline: GET first page (100-artifact org)",
            api({"limit": LIMIT}, small_headers, expect_rows=LIMIT),
        ),
        "orm_keyset_deep": ("ORM keyset page at depth", keyset_orm),
        "orm_offset_deep": ("baseline: ORM OFFSET page at depth", orm(offset_qs)),
        "orm_keyset_deep_hinted": ("ORM keyset at depth + created_at<= bound", keyset_orm_hinted),
        **{key: (label, run) for key, (label, run, _qs) in prefix_cases.items()},
    }
    samples: dict[str, list[float]] = {key: [] for key in cases}
    order = list(cases)
    rng = random.Random(7)
    for i in range(warmup + runs):
        # A new order every round, so no case always runs right after the same neighbour.
        rng.shuffle(order)
        for key in order:
            elapsed = cases[key][1]()
            if i >= warmup:
                samples[key].append(elapsed)

    keyset_qs = artifact_list(organization_id=large.id)
    created, art_id = boundary.created_at, boundary.id
    plans = {
        "first_page": explain(keyset_qs[: LIMIT + 1]),
        "deep_page": explain(
            keyset_qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=art_id))[: LIMIT + 1]
        ),
        "deep_page_with_range_hint": explain(
            keyset_qs.filter(created_at__lte=created).filter(
                Q(created_at__lt=created) | Q(created_at=created, id__lt=art_id)
            )[: LIMIT + 1]
        ),
        "filter_sandbox": explain(artifact_list(organization_id=large.id, sandbox_id=sample.sandbox_id)[: LIMIT + 1]),
        "filter_content_type": explain(
            artifact_list(organization_id=large.id, content_type=sample.content_type)[: LIMIT + 1]
        ),
        "filter_prefix": explain(artifact_list(organization_id=large.id, prefix=narrow_prefix)[: LIMIT + 1]),
        "orm_offset_deep": explain(offset_qs),
        "filter_prefix_with_range_bound": explain(prefix_cases["orm_prefix_narrow_ranged"][2]),
    }
    deep_sql = str(
        keyset_qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=art_id))[: LIMIT + 1].query
    )
    connection.close()

    results = {key: summary(values) for key, values in samples.items()}

    def ratio(key: str, against: str, label: str) -> None:
        base_ms = results[against]["median_ms"]
        results[key]["ratio"] = round(results[key]["median_ms"] / base_ms, 2) if base_ms else None
        results[key]["ratio_vs"] = label

    for key in results:
        results[key]["label"] = cases[key][0]
    for key in (
        "first_page",
        "deep_page",
        "filter_sandbox",
        "filter_content_type",
        "filter_prefix_broad",
        "filter_prefix_narrow",
    ):
        ratio(key, "baseline_small_org", "100-artifact org")
    for key in ("orm_offset_deep", "orm_keyset_deep_hinted"):
        ratio(key, "orm_keyset_deep", "keyset as is")
    for key in ("orm_prefix_narrow_ranged", "orm_prefix_broad_ranged"):
        ratio(key, key.removesuffix("_ranged"), "as is")
    meets = {key: results[key]["median_ms"] <= TARGET_MS for key in ("first_page", "deep_page")}
    return {
        "rows": total,
        "runs": runs,
        "warmup": warmup,
        "limit": LIMIT,
        "depth_pages": depth,
        "depth_rows": offset,
        "filter_matches": counts,
        "prefixes": {"broad": broad_prefix, "narrow": narrow_prefix},
        "results": results,
        "deep_page_sql": deep_sql,
        "query_plans": plans,
        "target_ms": TARGET_MS,
        "meets_target": meets,
        "filters_within_target": {
            key: results[key]["median_ms"] <= TARGET_MS for key in results if key.startswith("filter_")
        },
    }


def store_cache(db_path: Path, cached: Path) -> None:
    """Copy a closed (checkpointed) database into the cache, atomically."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    shutil.copyfile(db_path, partial)
    # A WAL left beside an older file must never be replayed onto the new one.
    for suffix in ("-wal", "-shm"):
        Path(f"{cached}{suffix}").unlink(missing_ok=True)
    os.replace(partial, cached)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="artifacts of the large organization")
    parser.add_argument("--second-org-rows", type=int, default=5_000)
    parser.add_argument("--depth", type=int, default=5_000, help="how many pages of 100 deep the deep page is")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="build the database even if a cached one exists")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/stowage_bench (a dedicated database: "
        "created and dropped by the script); default: SQLite",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.rows < LIMIT or args.depth < 1:
        parser.error("--runs must be at least 1, --warmup at least 0, --rows at least 100 and --depth at least 1")
    if args.database_url:
        pg_split(args.database_url)  # refuses a shared database's name before anything is dropped
        with tempfile.TemporaryDirectory(prefix="stowage-bench-list-", ignore_cleanup_errors=True) as tmp:
            var_dir = Path(tmp) / "var"
            var_dir.mkdir()
            database = pg_prepare(
                args.database_url, args.rows, args.second_org_rows, var_dir, rebuild=args.rebuild, quiet=args.json
            )
            try:
                result = measure(args.rows, args.runs, args.warmup, args.depth)
            finally:
                pg_drop(args.database_url)
            result["database"] = database
        return report(result, args)

    cached = CACHE_DIR / f"list-{args.rows}-{args.second_org_rows}.sqlite3"
    build_info: dict[str, object] | None = None
    with tempfile.TemporaryDirectory(prefix="stowage-bench-list-", ignore_cleanup_errors=True) as tmp:
        var_dir = Path(tmp) / "var"
        var_dir.mkdir()
        db_path = var_dir / "stowage.sqlite3"
        if cached.exists() and not args.rebuild:
            copied = time.perf_counter()
            shutil.copyfile(cached, db_path)
            copy_s = time.perf_counter() - copied
            _django_setup(var_dir)
            from django.core.management import call_command
            from django.db import connection
            from django.db.migrations.recorder import MigrationRecorder

            applied = set(MigrationRecorder(connection).applied_migrations())
            call_command("migrate", "--noinput", verbosity=0)  # a no-op unless new migrations arrived
            if set(MigrationRecorder(connection).applied_migrations()) != applied:
                # Migrations added since the cache was built: keep the migrated copy for next time.
                connection.close()
                store_cache(db_path, cached)
                if not args.json:
                    print(f"applied new migrations; refreshed {cached}", file=sys.stderr)
        else:
            copy_s = 0.0
            _django_setup(var_dir)
            build_info = build_database(db_path, args.rows, args.second_org_rows)
            store_cache(db_path, cached)
            if not args.json:
                print(
                    f"built {args.rows:,} + {args.second_org_rows:,} rows in {build_info['total_s']} s "
                    f"(insert {build_info['insert_s']} s, indexes {build_info['index_s']} s), {build_info['file_mib']} MiB; cached as {cached}",
                    file=sys.stderr,
                )
        result = measure(args.rows, args.runs, args.warmup, args.depth)
        result["database"] = {
            "cached_file": str(cached),
            "built_now": build_info,
            "copy_s": round(copy_s, 1),
            "sqlite_version": sqlite3.sqlite_version,
        }
    return report(result, args)


def report(result: dict[str, object], args) -> int:
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['rows']:,} artifacts in one organization; limit {LIMIT}; deep page = {result['depth_pages']:,} pages "
        f"({result['depth_rows']:,} rows) in; {result['runs']} runs after {result['warmup']} warm-up, interleaved"
    )
    print(f"{'':46}{'median':>9}{'p90':>9}{'min':>9}    ratio  (ms, in-process server time)")
    for row in result["results"].values():
        ratio_s = f"{row['ratio']:>7.3g}x vs {row['ratio_vs']}" if row.get("ratio") is not None else ""
        print(f"{row['label'][:45]:46}{row['median_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['min_ms']:>9.2f}  {ratio_s}")
    print(f"filter matches: {result['filter_matches']}")
    if "server_version" in result["database"]:
        print(f"database: PostgreSQL {result['database']['server_version']} ({result['database']['postgresql']})")
    print("EXPLAIN QUERY PLAN:" if "sqlite_version" in result["database"] else "EXPLAIN (first line):")
    for key, plan in result["query_plans"].items():
        print(f"  {key}: " + " | ".join(plan if "sqlite_version" in result["database"] else plan[:4]))
    for key, ok in result["meets_target"].items():
        print(
            f"{key}: median {result['results'][key]['median_ms']:.2f} ms  ({'meets' if ok else 'MISSES'} the target of <= {TARGET_MS:.0f} ms)"
        )
    slow = [key for key, ok in result["filters_within_target"].items() if not ok]
    if slow:
        print(f"filtered first pages over {TARGET_MS:.0f} ms: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
