#!/usr/bin/env python3
"""What the usage page and its daily snapshot cost when an organization has a million artifacts (SQLite).

Reuses bench/list.py's database (built once and cached under ``var/bench/``: ``--rows`` ready
artifacts of one organization over 1,000 sandboxes and ten content types, plus a few thousand of
a second), copied into a temporary var dir. Measures, interleaved:

  * ``GET /usage/`` handled in-process by Django (``django.test.Client``, signed in as a member):
    the page as users see it, reading today's snapshot;
  * the same page before the organization's first snapshot, grouping its artifacts live;
  * the two GROUP BYs of one organization (by sandbox, by content type) alone;
  * ``usage_snapshot_take()``, every organization's snapshot (fewer runs: it is the beat task);

against a baseline measured in the same run: ``GET /artifacts/``, the first page of the
dashboard's list for the same organization. Results are medians and their ratios to the baseline.

    .venv/bin/python bench/usage.py [--rows 1000000] [--runs 20] [--warmup 3] [--snapshot-runs 3] [--rebuild] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load(name: str, filename: str):
    # bench/ is not a package: load a sibling script under a name of its own.
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dashboardbench = _load("stowage_bench_dashboard", "dashboard.py")
listbench = dashboardbench.listbench


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def measure(runs: int, warmup: int, snapshot_runs: int) -> dict[str, object]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Membership, Organization, Role
    from usage.models import UsageSnapshot
    from usage.selectors import usage_breakdowns
    from usage.services import usage_snapshot_take

    large = Organization.objects.get(name=listbench.LARGE_ORG)
    user = get_user_model().objects.create_user(username="bench-usage-member", password="unused-bench-pass")
    Membership.objects.create(user=user, organization=large, role=Role.MEMBER)
    client = Client()
    client.force_login(user)

    def get(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    def without_snapshot() -> None:
        UsageSnapshot.objects.filter(organization=large).delete()

    def groups() -> None:
        usage_breakdowns("sandbox_id", organization_id=large.id)
        usage_breakdowns("content_type", organization_id=large.id)

    usage_snapshot_take()

    def nothing() -> None:
        pass

    # (untimed setup, timed request, untimed teardown)
    cases = {
        "baseline_artifact_list": (nothing, lambda: get("/artifacts/"), nothing),
        "usage_page": (nothing, lambda: get("/usage/"), nothing),
        "usage_page_before_first_snapshot": (without_snapshot, lambda: get("/usage/"), usage_snapshot_take),
        "one_org_group_bys": (nothing, groups, nothing),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_no in range(warmup + runs):
        for name, (setup, case, teardown) in cases.items():
            setup()
            elapsed = _timed(case)
            teardown()
            if round_no >= warmup:
                samples[name].append(elapsed)
    snapshot = [_timed(usage_snapshot_take) for _ in range(snapshot_runs)]
    medians = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    medians["snapshot_every_org"] = round(statistics.median(snapshot), 2)
    base = medians["baseline_artifact_list"]
    return {
        "median_ms": medians,
        "ratio_to_baseline": {name: round(value / base, 2) for name, value in medians.items()},
        "runs": runs,
        "snapshot_runs": snapshot_runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--second-rows", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--snapshot-runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stowage-bench-usage-") as tmp:
        var_dir = Path(tmp) / "var"
        var_dir.mkdir()
        dataset = dashboardbench.prepare_database(
            var_dir, args.rows, args.second_rows, rebuild=args.rebuild, quiet=args.json
        )
        results = {"dataset": dataset, "rows": args.rows, **measure(args.runs, args.warmup, args.snapshot_runs)}
        from django.db import connection

        connection.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.rows:,} artifacts in one organization (SQLite {dataset['sqlite_version']})")
    for name, value in results["median_ms"].items():
        print(f"  {name:36} {value:10.2f} ms  ×{results['ratio_to_baseline'][name]}")


if __name__ == "__main__":
    main()
