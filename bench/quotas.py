#!/usr/bin/env python3
"""What quota checks cost concurrent uploads of one organization, on PostgreSQL.

Creates a database of its own on the server of ``--server`` (default the test server) and a
temporary storage directory, migrates, and runs ``--threads`` threads each storing ``--puts``
small artifacts of new bytes through the streamed PUT's service (``transfers.put.artifact_put``),
in two modes, alternately for ``--rounds`` rounds:

  (a) baseline: no quota set (the usage counters still move in each publish's transaction);
  (b) every quota set, high enough never to refuse: the check before the bytes move and the check
      at publish under the organization's usage row lock both run.

Target: (b)'s median rate >= 0.8x (a)'s.

    .venv/bin/python bench/quotas.py [--threads 4] [--puts 100] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--puts", type=int, default=100, help="per thread and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import psycopg

    name = f"stowage_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{args.server}/{name}"
    os.environ["STOWAGE_DB_POOL_MAX"] = str(args.threads + 2)
    os.environ["STOWAGE_VAR_DIR"] = tempfile.mkdtemp(prefix="stowage-bench-quotas-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        results = run(args)
    finally:
        from django.db import connection

        connection.close()
        connection.close_pool()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    off, on = (statistics.median(results["rates"][mode]) for mode in ("no quota", "every quota"))
    print(
        f"no quota {off:.0f} puts/s, every quota {on:.0f} puts/s (x{on / off:.2f}, target >= {TARGET_RATIO}; "
        f"median of {args.rounds} rounds, {args.threads} threads, one organization)"
    )


def run(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Organization
    from core.actor import Actor
    from quotas.models import OrganizationQuota
    from transfers.put import artifact_put

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="bench").id
    actor = Actor(organization_id=org, label="bench")
    counter = iter(range(10**9))
    lock = threading.Lock()

    def put_all(start: threading.Barrier) -> None:
        start.wait()
        for _ in range(args.puts):
            with lock:
                n = next(counter)
            artifact_put(actor=actor, stream=io.BytesIO(f"bench {n}\n".encode() * 8), remote_path=f"bench/{n}.txt")
        connection.close()

    def one_round() -> float:
        start = threading.Barrier(args.threads + 1)
        threads = [threading.Thread(target=put_all, args=(start,)) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        return args.threads * args.puts / (time.perf_counter() - began)

    high = {"bytes": 1 << 50, "artifacts": 10**9, "largest": 1 << 40, "sandboxes": 1000}
    rates: dict[str, list[float]] = {"no quota": [], "every quota": []}
    one_round()  # warm-up: connections, caches, the first rows
    for _ in range(args.rounds):
        OrganizationQuota.objects.filter(organization_id=org).delete()
        rates["no quota"].append(one_round())
        OrganizationQuota.objects.create(organization_id=org, **high)
        rates["every quota"].append(one_round())
    return {"rates": rates, "threads": args.threads, "puts": args.puts, "target_ratio": TARGET_RATIO}


if __name__ == "__main__":
    main()
