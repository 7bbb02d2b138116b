#!/usr/bin/env python3
"""What a retention run costs over an organization of a million artifacts (SQLite, or PostgreSQL).

Builds (once; cached) a database with ``--rows`` ready artifacts of one organization, each in the
search index and the folder summaries (bench/search.py's builder: about three versions per path,
spread over a year), a quarter of them with a download in the last months, one in a thousand
legally held, and a few hundred aliased. Then, with three enabled policies of the organization

  * keep_last 2 under ``reports/``,
  * max_age 330 days,
  * not_downloaded 300 days under ``runs/``,

it times:

  * ``GET /api/v1/artifacts`` (first page, limit 50, in-process through ``django.test.Client``
    with a real API key) while nothing else runs: the idle median;
  * ``retention.worker.policies_run`` (what the periodic task ``retention.run_policies`` does),
    each batch's transaction timed (the longest is the longest any lock was held), while a
    second thread keeps timing the same ``GET /api/v1/artifacts``: the median during the run.

Targets: the run under 60 s; no batch's transaction over 1 s; the listing's median during the run
within 2x of its idle median. Held and aliased versions are checked to be still there after.

SQLite: the built file is cached as ``var/bench/retention-v1-<rows>.sqlite3`` and copied into a
temporary var dir for each run. PostgreSQL (``--database-url postgres://USER@HOST:PORT/NAME``): the
database NAME is created (dropping an old one) from the template ``NAME_tpl_retention_v1_<rows>``
(built when missing or with ``--rebuild``) and dropped at the end.

    .venv/bin/python bench/retention.py [--rows 1000000] [--idle-runs 60] [--rebuild] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE_DIR = ROOT / "var" / "bench"
_spec = importlib.util.spec_from_file_location("bench_search", Path(__file__).with_name("search.py"))
bench_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_search)
bench_list = bench_search.bench_list

RUN_TARGET_S = 60.0
LOCK_TARGET_S = 1.0
LISTING_RATIO_TARGET = 2.0
LIMIT = 50
HELD_EVERY = 1000
ALIASES = 300
POLICIES = [
    ("reports: keep 2", "reports/", "keep_last", 2),
    ("older than 330 days", "", "max_age", 330),
    ("runs: idle 300 days", "runs/", "not_downloaded", 300),
]

_search_rows = bench_search._rows


def _rows(org_id, key_id, count, rng, *, needles):
    """search.py's rows, with what a retention policy reads: downloads and legal holds."""
    for i, (values, tokens, key) in enumerate(_search_rows(org_id, key_id, count, rng, needles=needles)):
        values["skipped"] = "[]"
        values["legal_hold"] = i % HELD_EVERY == 7
        values["legal_hold_reason"] = "litigation" if values["legal_hold"] else ""
        if i % 4 == 0:
            values["download_count"] = 1 + rng.randrange(20)
            values["last_downloaded_at"] = values["created_at"] + timedelta(days=rng.randrange(1, 200))
        else:
            values["download_count"] = 0
        yield values, tokens, key


bench_search._rows = _rows


_sqlite_value_search = bench_search.bench_list_value


def _sqlite_value(values: dict, name: str, notnull: bool, decl: str):
    value = _sqlite_value_search(values, name, notnull, decl)
    return str(value.replace(tzinfo=None)) if hasattr(value, "tzinfo") and name == "last_downloaded_at" else value


bench_search.bench_list_value = _sqlite_value


def _pg_value(values: dict, name: str, decl: str, notnull: bool):
    if name == "skipped":
        return "[]"
    return _pg_value_search(values, name, decl, notnull)


_pg_value_search = bench_search.bench_list_value_pg
bench_search.bench_list_value_pg = _pg_value


def add_aliases() -> list[str]:
    """Aliases on old versions that every policy would otherwise remove; their artifact ids."""
    from artifacts.models import Artifact, ArtifactAlias

    org_id = _large_org_id()
    oldest = list(
        Artifact.objects.filter(organization_id=org_id, remote_path__startswith="reports/", legal_hold=False)
        .order_by("created_at")
        .values_list("id", "remote_path")[:ALIASES]
    )
    ArtifactAlias.objects.bulk_create(
        ArtifactAlias(organization_id=org_id, remote_path=path, name=f"keep-{n}", artifact_id=artifact_id)
        for n, (artifact_id, path) in enumerate(oldest)
    )
    return [artifact_id for artifact_id, _ in oldest]


def _large_org_id() -> str:
    from accounts.models import Organization

    return Organization.objects.get(name=bench_search.LARGE_ORG).id


def prepare(args, var_dir: Path) -> dict[str, object]:
    info: dict[str, object] = {}
    if args.database_url:
        _, name = bench_list.pg_split(args.database_url)
        template = f"{name}_tpl_retention_v1_{args.rows}"
        bench_list.pg_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if args.rebuild or not bench_list.pg_exists(args.database_url, template):
            bench_list.pg_admin(
                args.database_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
            )
            bench_list._django_setup(var_dir, args.database_url)
            info["built"] = bench_search.build_pg(args.rows)
            add_aliases()
            from django.db import connection

            connection.close()
            bench_list.pg_admin(args.database_url, f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
        else:
            bench_list.pg_admin(args.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            bench_list._django_setup(var_dir, args.database_url)
        info["database"] = "postgresql"
    else:
        cached = CACHE_DIR / f"retention-v1-{args.rows}.sqlite3"
        if args.rebuild or not cached.exists():
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            build_dir = Path(tempfile.mkdtemp(prefix="stowage-bench-retention-build-"))
            bench_list._django_setup(build_dir)
            info["built"] = bench_search.build_sqlite(build_dir / "stowage.sqlite3", args.rows)
            add_aliases()
            from django.db import connection

            connection.close()
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
    return info


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--idle-runs", type=int, default=60)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="stowage-bench-retention-"))
    try:
        info = {"rows": args.rows, **prepare(args, var_dir)}
        if args.build_only:
            print(json.dumps(info))
            return 0
        info["results"] = measure(args.idle_runs)
    finally:
        if args.database_url:
            from django.db import connections

            connections.close_all()
            bench_list.pg_admin(
                args.database_url, f'DROP DATABASE IF EXISTS "{bench_list.pg_split(args.database_url)[1]}" WITH (FORCE)'
            )
        shutil.rmtree(var_dir, ignore_errors=True)
    return report(info, as_json=args.json)


def measure(idle_runs: int) -> dict[str, object]:
    raise NotImplementedError


def report(info: dict, *, as_json: bool) -> int:
    raise NotImplementedError


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


if __name__ == "__main__":
    sys.exit(main())
