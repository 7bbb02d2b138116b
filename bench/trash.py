#!/usr/bin/env python3
"""Moving artifacts to the trash: one bulk call for a batch (artifacts.trash.artifacts_trash, as a
retention policy or the expiry sweep makes it) against one call per artifact (as deletions one by
one), in the same run, alternating, on PostgreSQL. Artifacts spread over folders, with an alias on
every tenth; the organization has no webhook (its events are written, no dispatch is sent).

Creates a database of its own on the server of ``--server`` (default the test server), migrates it,
and drops it at the end.

    .venv/bin/python bench/trash.py [--batch 500] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import psycopg

    name = f"stowage_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(f"{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{args.server}/{name}"
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
    bulk, single = statistics.median(results["bulk"]), statistics.median(results["one by one"])
    print(
        f"{args.batch} artifacts: one bulk call {bulk:.0f} artifacts/s, one call each {single:.0f} artifacts/s "
        f"(x{bulk / single:.1f}; median of {args.rounds} rounds)"
    )


def run(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Organization
    from artifacts.alias_services import alias_set
    from artifacts.trash import artifacts_trash
    from core.actor import Actor
    from tests.factories import make_artifacts

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="bench").id
    actor = Actor(organization_id=org, label="bench")

    def batch(round_: int, mode: str) -> list[str]:
        rows = make_artifacts(org, args.batch, remote_path=lambda i: f"{mode[:4]}{round_}/dir{i % 20}/file-{i}.txt")
        for row in rows[::10]:
            alias_set(actor=actor, artifact=row, name="stable")
        return [row.id for row in rows]

    rates: dict[str, list[float]] = {"bulk": [], "one by one": []}
    for round_ in range(args.rounds):
        ids = batch(round_, "bulk")
        began = time.perf_counter()
        assert artifacts_trash(actor=actor, organization_id=org, artifact_ids=ids, reason="policy") == len(ids)
        rates["bulk"].append(len(ids) / (time.perf_counter() - began))

        ids = batch(round_, "single")
        began = time.perf_counter()
        for artifact_id in ids:
            artifacts_trash(actor=actor, organization_id=org, artifact_ids=[artifact_id], reason="policy")
        rates["one by one"].append(len(ids) / (time.perf_counter() - began))
    return {**rates, "batch": args.batch}


if __name__ == "__main__":
    main()
