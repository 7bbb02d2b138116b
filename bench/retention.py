#!/usr/bin/env python3
"""What a retention run costs over an organization of a million artifacts (SQLite, or PostgreSQL).

Builds (once; cached) a database with ``--rows`` ready artifacts of one organization, each in the
search index and the folder summaries (bench/search.py's builder: about three versions per path,
spread over a year), a quarter of them with a download in the last months, one in a thousand
legally held, and a few hundred aliased. Then, with three enabled policies of the organization

  * keep_last 2 under ``reports/p000/`` (one of the thousand folders under reports/),
  * max_age 364 days (the oldest day of the year),
  * not_downloaded 362 days under ``runs/``,

which select a few thousand versions (what a run every 15 minutes finds after a quiet day, and
more; a first run over a backlog takes as long as its count over the removal rate reported),

it times:

  * ``GET /api/v1/artifacts`` (first page, limit 50, in-process through ``django.test.Client``
    with a real API key) while nothing else runs: the idle median;
  * ``retention.worker.policies_run`` (what the periodic task ``retention.run_policies`` does),
    each batch's transaction timed (the longest is the longest any lock was held), while the
    same ``GET /api/v1/artifacts`` goes on being timed: the median during the run.

The listing runs in a process of its own (forked, its own database connection), as web processes
and workers are apart in a deployment: a thread would measure the interpreter's lock, not the
database's.

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
import time
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
    ("reports/p000: keep 2", "reports/p000/", "keep_last", 2),
    ("older than 364 days", "", "max_age", 364),
    ("runs: idle 362 days", "runs/", "not_downloaded", 362),
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
    if decl == "boolean" and name not in values:
        return False  # columns newer than search.py's builder (is_folder)
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


def _close_connections() -> None:
    """Every connection of this process closed, its pool's too: a database with sessions cannot be
    a template."""
    from django.db import connections

    for connection in connections.all():
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()


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
            _close_connections()
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
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    call_command("migrate", "--noinput", verbosity=0)  # a no-op unless new migrations arrived
    if pending and not args.database_url:
        # Migrations added since the cache was built (a table rebuild at this size takes minutes):
        # keep the migrated copy for next time.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        shutil.copyfile(var_dir / "stowage.sqlite3", CACHE_DIR / f"retention-v1-{args.rows}.sqlite3")
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
            _close_connections()
            bench_list.pg_admin(
                args.database_url, f'DROP DATABASE IF EXISTS "{bench_list.pg_split(args.database_url)[1]}" WITH (FORCE)'
            )
        shutil.rmtree(var_dir, ignore_errors=True)
    return report(info, as_json=args.json)


def _listen(secret: str, org_id: str, phase, samples) -> None:
    """In a process of its own, as a web process is: ``GET /api/v1/artifacts`` again and again,
    each time recorded with the phase it ran in, until the phase is STOP."""
    from django.db import connections
    from django.test import Client

    connections.close_all()  # the parent's, inherited by the fork: never shared
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"ApiKey {secret}", "HTTP_X_ORG_ID": org_id}
    while (current := phase.value) != STOP:
        started = time.perf_counter()
        response = client.get("/api/v1/artifacts", {"limit": LIMIT}, **headers)
        elapsed = (time.perf_counter() - started) * 1000
        if phase.value == current:
            # A failed request is counted apart (its phase negated), never dropped.
            samples.put((current if response.status_code == 200 else -1 - current, elapsed))
    samples.put((STOP, 0.0))


IDLE, RUN, STOP = 0, 1, 2


def measure(idle_runs: int) -> dict[str, object]:
    import multiprocessing

    from accounts.models import Organization
    from accounts.services import api_key_create
    from artifacts.models import Artifact, ArtifactState
    from core.actor import Actor
    from retention.services import policy_create
    from retention.worker import policies_run

    large = Organization.objects.get(name=bench_search.LARGE_ORG)
    _, secret = api_key_create(organization=large, name="bench", actor=Actor.system(large.id))
    for name, prefix, kind, value in POLICIES:
        policy_create(
            actor=Actor.system(large.id), organization_id=large.id, name=name, prefix=prefix, kind=kind, value=value
        )
    kept = set(Artifact.objects.filter(organization_id=large.id, legal_hold=True).values_list("id", flat=True)) | set(
        Artifact.objects.filter(organization_id=large.id, aliases__isnull=False).values_list("id", flat=True)
    )
    ready_before = Artifact.objects.filter(organization_id=large.id, state=ArtifactState.READY).count()
    _close_connections()  # the fork must inherit no open connection, nor a pool of them

    context = multiprocessing.get_context("fork")
    phase = context.Value("i", IDLE)
    samples = context.Queue()
    listener = context.Process(target=_listen, args=(secret, large.id, phase, samples), daemon=True)
    listener.start()
    by_phase: dict[int, list[float]] = {IDLE: [], RUN: [], -1 - IDLE: [], -1 - RUN: []}
    while len(by_phase[IDLE]) < idle_runs:
        got, elapsed = samples.get(timeout=120)
        by_phase[got].append(elapsed)
    phase.value = RUN
    started = time.perf_counter()
    result = policies_run()
    run_s = time.perf_counter() - started
    phase.value = STOP
    while True:
        got, elapsed = samples.get(timeout=120)
        if got == STOP:
            break
        by_phase[got].append(elapsed)
    listener.join(timeout=30)

    left = Artifact.objects.filter(id__in=kept, state=ArtifactState.READY).count()
    ready_after = Artifact.objects.filter(organization_id=large.id, state=ArtifactState.READY).count()
    idle, during = median(by_phase[IDLE]), median(by_phase[RUN]) if by_phase[RUN] else None
    return {
        "ready_before": ready_before,
        "removed": result.removed,
        "ready_after": ready_after,
        "batches": result.batches,
        "run_s": round(run_s, 1),
        "removed_per_s": round(result.removed / run_s) if run_s else None,
        "longest_batch_s": round(result.longest_batch_s, 3),
        "held_or_aliased": len(kept),
        "held_or_aliased_kept": left,
        "listing_idle_median_ms": idle,
        "listing_during_run_median_ms": during,
        "listing_during_run_requests": len(by_phase[RUN]),
        "listing_during_run_p90_ms": round(sorted(by_phase[RUN])[int(len(by_phase[RUN]) * 0.9)], 2)
        if by_phase[RUN]
        else None,
        "listing_ratio": round(during / idle, 2) if during else None,
        "listing_failed_idle": len(by_phase[-1 - IDLE]),
        "listing_failed_during_run": len(by_phase[-1 - RUN]),
    }


def report(info: dict, *, as_json: bool) -> int:
    results = info["results"]
    meets = (
        results["run_s"] <= RUN_TARGET_S
        and results["longest_batch_s"] <= LOCK_TARGET_S
        and (results["listing_ratio"] or 0) <= LISTING_RATIO_TARGET
        and results["held_or_aliased_kept"] == results["held_or_aliased"]
        and not results["listing_failed_during_run"]
    )
    if as_json:
        print(json.dumps({**info, "meets_targets": meets}, indent=2, default=str))
        return 0 if meets else 1
    print(f"{info['database']}, {info['rows']:,} artifacts; built: {info.get('built', 'cached')}")
    print(
        f"  removed {results['removed']:,} of {results['ready_before']:,} ready in {results['run_s']} s "
        f"({results['removed_per_s']}/s), {results['batches']} batches, longest batch transaction "
        f"{results['longest_batch_s']} s"
    )
    print(f"  held or aliased kept: {results['held_or_aliased_kept']} of {results['held_or_aliased']}")
    print(
        f"  GET /api/v1/artifacts median: idle {results['listing_idle_median_ms']} ms, during the run "
        f"{results['listing_during_run_median_ms']} ms over {results['listing_during_run_requests']} requests "
        f"(p90 {results['listing_during_run_p90_ms']} ms): ratio {results['listing_ratio']}"
    )
    print(
        f"  listing requests that failed: {results['listing_failed_idle']} idle, "
        f"{results['listing_failed_during_run']} during the run"
    )
    targets = f"run <= {RUN_TARGET_S:.0f} s, batch <= {LOCK_TARGET_S} s, ratio <= {LISTING_RATIO_TARGET}"
    print(("meets " if meets else "misses ") + targets)
    return 0 if meets else 1


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


if __name__ == "__main__":
    sys.exit(main())
