#!/usr/bin/env python3
"""Audit appends per second from several threads across two organizations: one chain for every
event (as before per-organization chains: every append takes the one head row) against one chain
per organization, in the same run, interleaved, on PostgreSQL.

Creates a database of its own on the server of ``--server`` (default the test server), migrates it,
and runs each mode ``--rounds`` times alternately. Two caller transactions are measured: the append
alone (as publish_upload makes it, the last statement of its transaction), and the append followed
by ``--held-ms`` more work in the same transaction (a caller that keeps the head locked).

    .venv/bin/python bench/audit_append.py [--threads 8] [--appends 200] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--appends", type=int, default=200, help="per thread and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--held-ms", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import psycopg

    name = f"stowage_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{args.server}/{name}"
    os.environ["STOWAGE_DB_POOL_MAX"] = str(args.threads + 2)
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
    for caller, modes in results["rates"].items():
        one, own = statistics.median(modes["one chain"]), statistics.median(modes["per organization"])
        print(
            f"{caller}: one chain {one:.0f} appends/s, a chain per organization {own:.0f} appends/s "
            f"(x{own / one:.2f}; median of {args.rounds} rounds, {args.threads} threads, 2 organizations)"
        )


def run(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    import audit.services as services
    from accounts.models import Organization
    from audit.services import audit_record
    from core.actor import Actor

    call_command("migrate", verbosity=0)
    orgs = [Organization.objects.create(name=f"bench {n}").id for n in range(2)]
    actors = [Actor(organization_id=org, label="bench") for org in orgs]
    per_org_key = services.chain_key

    def append_all(index: int, held: float, start: threading.Barrier) -> None:
        actor = actors[index % 2]
        start.wait()
        for n in range(args.appends):
            with transaction.atomic():
                audit_record(actor=actor, action="bench.append", details={"thread": index, "n": n})
                if held:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_sleep(%s)", [held])
        connection.close()

    def one_round(held: float) -> float:
        start = threading.Barrier(args.threads + 1)
        threads = [threading.Thread(target=append_all, args=(i, held, start)) for i in range(args.threads)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        return args.threads * args.appends / (time.perf_counter() - began)

    rates: dict[str, dict[str, list[float]]] = {}
    for caller, held in (
        ("append last in its transaction", 0.0),
        (f"append, then {args.held_ms:g} ms more", args.held_ms / 1000),
    ):
        modes = rates.setdefault(caller, {"one chain": [], "per organization": []})
        for _ in range(args.rounds):
            # One chain: every event's append takes the same head row, as the shared chain did.
            services.chain_key = lambda organization_id: "bench-one-chain"
            modes["one chain"].append(one_round(held))
            services.chain_key = per_org_key
            modes["per organization"].append(one_round(held))
    services.chain_key = per_org_key
    return {
        "rates": rates,
        "threads": args.threads,
        "appends": args.appends,
    }


if __name__ == "__main__":
    main()
