#!/usr/bin/env python3
"""What searching costs when an organization has a million artifacts (SQLite, or PostgreSQL).

Builds (once; cached) a database with ``--rows`` ready artifacts of one organization, each in the
search index, plus a few thousand of a second organization. Rows and index entries go in with
bulk inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL), indexes are created after; the
tokens are the ones ``artifacts.search_index.document_tokens`` gives, as publishing would write.

Every artifact has ``stage`` = ``nightly`` (half of them) or ``release``, and ``model`` one of four
values, two starting ``claude``; ten of the oldest tenth have the word ``needle`` in their path.
Interleaved, it times ``GET /api/v1/artifacts`` handled in-process by Django (``django.test.Client``
with a real API key: authentication, the search, the artifacts' query and JSON) for:

  * the first page of the plain listing (the baseline, limit 50);
  * ``q=needle``: a word found in 10 old artifacts only;
  * ``q=nightly``: a word found in half of them; ``q=night``: the same as the start of a word;
  * ``q=model:claude``: a metadata prefix (half of them); ``q=model:claude-o`` (a quarter);
  * ``q=nightly model:claude-o``: two terms AND-ed;
  * a second page of ``q=nightly`` (its cursor);

and, signed in to the dashboard, the folder view (``/artifacts/folders/``) at the root, one level
down (``reports/``: about a thousand subfolders) by name and by size, and two levels down, with
the dashboard's plain artifact list as their baseline.

Target: each search's first page, and each folder page, <= 30 ms median server time.

SQLite: the built file is cached as ``var/bench/search-v2-<rows>.sqlite3`` and copied into a
temporary var dir for each run. PostgreSQL (``--database-url postgres://USER@HOST:PORT/NAME``):
the database NAME is created (dropping an old one) from the template ``NAME_tpl_search_v2_<rows>``
(built when missing or with ``--rebuild``) and dropped at the end.

    .venv/bin/python bench/search.py [--rows 1000000] [--runs 40] [--warmup 5] [--rebuild] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE_DIR = ROOT / "var" / "bench"
_spec = importlib.util.spec_from_file_location("bench_list", Path(__file__).with_name("list.py"))
bench_list = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_list)

TARGET_MS = 30.0
LIMIT = 50
LARGE_ORG = "bench-search"
SECOND_ORG = "bench-search-second"
SECOND_ROWS = 5_000
MODELS = ["claude-sonnet-4", "claude-opus-4", "gpt-4o", "gemini-2.5-pro"]
NEEDLES = 10
CASES = {
    "listing (baseline)": {},
    "needle (10 old)": {"q": "needle"},
    "nightly (half)": {"q": "nightly"},
    "night* (half, prefix)": {"q": "night"},
    "model:claude (half)": {"q": "model:claude"},
    "model:claude-o (quarter)": {"q": "model:claude-o"},
    "nightly model:claude-o": {"q": "nightly model:claude-o"},
    "nightly, page 2": {"q": "nightly", "cursor": None},
}


def _rows(org_id: str, key_id: str, count: int, rng: random.Random, *, needles: bool):
    """(artifact values, index tokens, sort key), oldest first."""
    from artifacts.search_index import document_tokens, sort_base
    from core.ids import new_id

    sandbox_ids = [new_id("sbx") for _ in range(1000)]
    session_ids = [new_id("ses") if i % 7 else "" for i in range(334)]
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    span = timedelta(days=365)
    start, step = end - span, span / count
    needle_rows = set(rng.sample(range(count // 10), NEEDLES)) if needles else set()
    path_pool = max(1, count // 3)
    for i in range(count):
        created = start + step * i + timedelta(microseconds=rng.randrange(1, int(step.total_seconds() * 1e6 // 2) + 2))
        sandbox = rng.randrange(1000)
        path_no = rng.randrange(path_pool)
        top = ["reports", "runs", "models", "datasets", "logs", "exports"][path_no % 6]
        remote = f"{top}/p{path_no % 997:03d}/run-{path_no // 997}/file-{path_no}.json"
        if i in needle_rows:
            remote = f"legacy/needle-{i}/summary.pdf"
        metadata = {"stage": "nightly" if i % 2 == 0 else "release", "model": MODELS[rng.randrange(4)]}
        artifact_id = new_id("art")
        values = {
            "id": artifact_id,
            "organization_id": org_id,
            "sandbox_id": sandbox_ids[sandbox],
            "session_id": session_ids[sandbox // 3],
            "source_path": "/workspace/" + remote,
            "remote_path": remote,
            "version": i + 1,  # unique per path whatever the pool
            "size": int(rng.lognormvariate(10, 2.5)),
            "checksum": "sha256:" + rng.getrandbits(256).to_bytes(32, "big").hex(),
            "content_type": "application/json",
            "metadata": json.dumps(metadata),
            "is_archive": False,
            "storage_key": f"blobs/{org_id}/{artifact_id}",
            "state": "ready",
            "error_message": "",
            "created_at": created,
            "ready_at": created + timedelta(milliseconds=50),
            "created_by_api_key_id": key_id,
            "created_by_label": "bench",
            # Columns newer than this builder's first version, at what publishing gives them.
            "is_folder": False,
            "entry_count": 0,
            "skipped": "[]",
            "legal_hold": False,
            "legal_hold_reason": "",
            "download_count": 0,
            "trashed_reason": "",
        }
        tokens = document_tokens(
            organization_id=org_id,
            remote_path=remote,
            metadata=metadata,
            sandbox_id=values["sandbox_id"],
            session_id=values["session_id"],
        )
        yield values, tokens, sort_base(created)


class Summaries:
    """The folder and path summaries of the rows made, as publishing would have kept them."""

    def __init__(self) -> None:
        self.folders: dict[tuple[str, str], list] = {}
        self.heads: dict[tuple[str, str], list] = {}

    def add(self, values: dict) -> None:
        from artifacts.prefixes import folder_chain, folder_of

        org, remote = values["organization_id"], values["remote_path"]
        for path, parent in folder_chain(folder_of(remote)):
            entry = self.folders.setdefault((org, path), [parent, 0, 0])
            entry[1] += 1
            entry[2] += values["size"]
        head = self.heads.get((org, remote))
        versions = head[3] + 1 if head else 1
        self.heads[(org, remote)] = [values["id"], values["created_at"], values["size"], versions]

    def folder_rows(self):
        for (org, path), (parent, count, size) in self.folders.items():
            yield (org, path, parent, count, size)

    def head_rows(self, created=lambda value: value):
        from artifacts.prefixes import folder_of

        for (org, remote), (latest, created_at, size, versions) in self.heads.items():
            yield (org, folder_of(remote), remote, latest, created(created_at), size, versions)


FOLDER_COLUMNS = "organization_id, path, parent, artifact_count, total_size"
HEAD_COLUMNS = "organization_id, folder, remote_path, latest_id, latest_created_at, latest_size, versions"
TABLES = (
    "artifacts_artifact",
    "artifacts_artifactsearchentry",
    "artifacts_artifactfolder",
    "artifacts_artifactpathhead",
)


def _orgs():
    from accounts.services import organization_bootstrap

    large, _, _, large_key, _ = organization_bootstrap(org_name=LARGE_ORG, email="s@bench.test", username="bench-s")
    second, _, _, second_key, _ = organization_bootstrap(org_name=SECOND_ORG, email="t@bench.test", username="bench-t")
    return [(large.id, large_key.id, None), (second.id, second_key.id, SECOND_ROWS)]


def build_sqlite(db_path: Path, rows: int) -> dict[str, float]:
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    call_command("migrate", "--noinput", verbosity=0)
    orgs = _orgs()
    connection.close()
    db = sqlite3.connect(db_path, isolation_level=None)
    cur = db.cursor()
    for pragma in ("journal_mode=DELETE", "synchronous=OFF", "cache_size=-400000", "temp_store=MEMORY"):
        cur.execute(f"PRAGMA {pragma}")
    columns = [(r[1], r[2], bool(r[3]) and r[4] is None) for r in cur.execute("PRAGMA table_info(artifacts_artifact)")]
    indexes = cur.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN (?, ?, ?, ?)",
        TABLES,
    ).fetchall()
    summaries = Summaries()
    cur.execute("BEGIN")
    for name, _ in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    names = [c[0] for c in columns]
    insert_artifact = f"INSERT INTO artifacts_artifact ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    rng = random.Random(20261201)
    batch: list[tuple] = []

    def flush() -> None:
        cur.executemany(insert_artifact, [b[0] for b in batch])
        cur.executemany(
            "INSERT INTO artifacts_artifactsearchentry (artifact_id, organization_id, sort_key) VALUES (?, ?, ?)",
            [b[1] for b in batch],
        )
        cur.executemany(
            "INSERT INTO artifacts_search_fts (rowid, artifact_id, body) VALUES (?, ?, ?)", [b[2] for b in batch]
        )
        batch.clear()

    for org_id, key_id, count in orgs:
        for values, tokens, key in _rows(org_id, key_id, count or rows, rng, needles=count is None):
            summaries.add(values)
            values = {**values, "created_at": str(values["created_at"].replace(tzinfo=None))}
            values["ready_at"] = str(values["ready_at"].replace(tzinfo=None))
            row = tuple(bench_list_value(values, name, notnull, decl) for name, decl, notnull in columns)
            batch.append((row, (values["id"], org_id, key), (key, values["id"], " ".join(tokens))))
            if len(batch) >= 20_000:
                flush()
    if batch:
        flush()
    cur.executemany(
        f"INSERT INTO artifacts_artifactfolder ({FOLDER_COLUMNS}) VALUES (?, ?, ?, ?, ?)", summaries.folder_rows()
    )
    cur.executemany(
        f"INSERT INTO artifacts_artifactpathhead ({HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        summaries.head_rows(lambda created: str(created.replace(tzinfo=None))),
    )
    cur.execute("COMMIT")
    inserted = time.perf_counter()
    for _, sql in indexes:
        cur.execute(sql)
    cur.execute("PRAGMA journal_mode=WAL")
    db.close()
    done = time.perf_counter()
    return {"insert_s": round(inserted - started, 1), "index_s": round(done - inserted, 1)}


def bench_list_value(values: dict, name: str, notnull: bool, decl: str):
    if name in values:
        value = values[name]
        return (1 if value else 0) if isinstance(value, bool) else value
    if not notnull:
        return None
    return 0 if any(t in decl.upper() for t in ("INT", "BOOL", "REAL", "NUM")) else ""


def build_pg(rows: int) -> dict[str, float]:
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    call_command("migrate", "--noinput", verbosity=0)
    orgs = _orgs()
    connection.ensure_connection()
    conn = connection.connection
    with connection.cursor() as dj:
        dj.execute(
            "SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL FROM information_schema.columns "
            "WHERE table_name = 'artifacts_artifact' ORDER BY ordinal_position"
        )
        columns = [(r[0], r[1], bool(r[2])) for r in dj.fetchall()]
        dj.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN (%s, %s, %s, %s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            TABLES,
        )
        indexes = dj.fetchall()
        for name, _ in indexes:
            dj.execute(f'DROP INDEX "{name}"')
    names = ", ".join(f'"{c[0]}"' for c in columns)
    rng = random.Random(20261201)
    entries: list[tuple] = []
    summaries = Summaries()
    with conn.cursor() as cur:
        with cur.copy(f"COPY artifacts_artifact ({names}) FROM STDIN") as copy:
            for org_id, key_id, count in orgs:
                for values, tokens, key in _rows(org_id, key_id, count or rows, rng, needles=count is None):
                    summaries.add(values)
                    copy.write_row(tuple(bench_list_value_pg(values, *c) for c in columns))
                    entries.append((values["id"], org_id, key, " ".join(f"'{t}'" for t in tokens)))
        with cur.copy(
            "COPY artifacts_artifactsearchentry (artifact_id, organization_id, sort_key, document) FROM STDIN"
        ) as copy:
            for entry in entries:
                copy.write_row(entry)
        with cur.copy(f"COPY artifacts_artifactfolder ({FOLDER_COLUMNS}) FROM STDIN") as copy:
            for row in summaries.folder_rows():
                copy.write_row(row)
        with cur.copy(f"COPY artifacts_artifactpathhead ({HEAD_COLUMNS}) FROM STDIN") as copy:
            for row in summaries.head_rows():
                copy.write_row(row)
    if not conn.autocommit:
        conn.commit()
    inserted = time.perf_counter()
    with connection.cursor() as dj:
        dj.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            dj.execute(definition)
        dj.execute("VACUUM (ANALYZE)")
    done = time.perf_counter()
    return {"insert_s": round(inserted - started, 1), "index_s": round(done - inserted, 1)}


def bench_list_value_pg(values: dict, name: str, decl: str, notnull: bool):
    if name in values:
        return values[name]
    if not notnull:
        return None
    return 0 if any(t in decl.lower() for t in ("int", "numeric", "double", "real")) else ""


def measure(runs: int, warmup: int) -> dict[str, object]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Organization
    from accounts.services import api_key_create
    from core.actor import Actor

    large = Organization.objects.get(name=LARGE_ORG)
    _, secret = api_key_create(organization=large, name="bench", actor=Actor.system(large.id))
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"ApiKey {secret}", "HTTP_X_ORG_ID": large.id}

    def get(params: dict) -> dict:
        response = client.get("/api/v1/artifacts", {"limit": LIMIT, **params}, **headers)
        assert response.status_code == 200, response.content[:300]
        return response.json()

    cases = dict(CASES)
    cases["nightly, page 2"] = {"q": "nightly", "cursor": get({"q": "nightly"})["next_cursor"]}
    checks = {name: len(get(params)["artifacts"]) for name, params in cases.items()}
    assert checks["needle (10 old)"] == NEEDLES, checks
    assert all(n == LIMIT for name, n in checks.items() if "needle" not in name), checks
    browser = Client()
    browser.force_login(get_user_model().objects.get(username="bench-s"))

    def page(url: str, params: dict) -> None:
        response = browser.get(url, params)
        assert response.status_code == 200, response.content[:300]

    pages = {
        "dashboard list (baseline)": ("/artifacts/", {}),
        "folders: root": ("/artifacts/folders/", {}),
        "folders: reports/": ("/artifacts/folders/", {"path": "reports/"}),
        "folders: reports/ by size": ("/artifacts/folders/", {"path": "reports/", "sort": "size"}),
        "folders: reports/p042/": ("/artifacts/folders/", {"path": "reports/p042/"}),
    }
    root = browser.get("/artifacts/folders/").content.decode()
    assert "reports/" in root, "the root lists the top folders"
    from artifacts.prefix_selectors import artifact_folder_page

    def folder_queries(path: str) -> None:
        found = artifact_folder_page(organization_id=large.id, path=path, limit=50)
        assert found.folders or found.heads

    timed = [(name, lambda p=params: get(p)) for name, params in cases.items()]
    timed += [(name, lambda u=url, p=params: page(u, p)) for name, (url, params) in pages.items()]
    # The folder view's reads alone, without the page around them.
    timed += [(f"folder selector: {path or 'root'}", lambda p=path: folder_queries(p)) for path in ("", "reports/")]
    samples: dict[str, list[float]] = {name: [] for name, _ in timed}
    for run in range(warmup + runs):
        for name, call in timed:
            started = time.perf_counter()
            call()
            if run >= warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    return {name: bench_list.summary(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="stowage-bench-search-"))
    info: dict[str, object] = {"rows": args.rows}
    try:
        if args.database_url:
            _, name = bench_list.pg_split(args.database_url)
            template = f"{name}_tpl_search_v2_{args.rows}"
            bench_list.pg_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if args.rebuild or not bench_list.pg_exists(args.database_url, template):
                bench_list.pg_admin(
                    args.database_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
                )
                bench_list._django_setup(var_dir, args.database_url)
                info["built"] = build_pg(args.rows)
                from django.db import connection

                connection.close()
                bench_list.pg_admin(args.database_url, f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
            else:
                bench_list.pg_admin(args.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                bench_list._django_setup(var_dir, args.database_url)
            info["database"] = "postgresql"
        else:
            cached = CACHE_DIR / f"search-v2-{args.rows}.sqlite3"
            if args.rebuild or not cached.exists():
                CACHE_DIR.mkdir(parents=True, exist_ok=True)
                build_dir = Path(tempfile.mkdtemp(prefix="stowage-bench-search-build-"))
                bench_list._django_setup(build_dir)
                info["built"] = build_sqlite(build_dir / "stowage.sqlite3", args.rows)
                shutil.move(build_dir / "stowage.sqlite3", cached)
                shutil.rmtree(build_dir, ignore_errors=True)
                print(f"built {cached} in {info['built']}", file=sys.stderr)
                # Measured in a fresh process, whose settings point at a copy of the cache.
                shutil.rmtree(var_dir, ignore_errors=True)
                argv = [a for a in sys.argv if a != "--rebuild"]
                os.execv(sys.executable, [sys.executable, *argv])  # noqa: S606
            shutil.copyfile(cached, var_dir / "stowage.sqlite3")
            bench_list._django_setup(var_dir)
            info["database"] = f"sqlite {sqlite3.sqlite_version}"
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)  # a no-op unless new migrations arrived
        info["results"] = measure(args.runs, args.warmup)
    finally:
        if args.database_url:
            from django.db import connections

            connections.close_all()
            bench_list.pg_admin(
                args.database_url, f'DROP DATABASE IF EXISTS "{bench_list.pg_split(args.database_url)[1]}" WITH (FORCE)'
            )
        shutil.rmtree(var_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['database']}, {args.rows:,} artifacts; built: {info.get('built', 'cached')}")
    worst = 0.0
    for name, result in info["results"].items():
        print(f"  {name:28s} median {result['median_ms']:7.2f} ms  p90 {result['p90_ms']:7.2f} ms")
        if "baseline" not in name:
            worst = max(worst, result["median_ms"])
    verdict = "meets" if worst <= TARGET_MS else "misses"
    print(f"worst search median {worst:.2f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    sys.exit(main())
