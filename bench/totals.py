#!/usr/bin/env python3
"""What the total above the dashboard's artifact list costs, next to the page it sits over (SQLite).

Builds a database of ``--rows`` ready artifacts of one organization (in a temporary var dir; one
of 1,000 sandboxes and one of five content types each) and times, interleaved over ``--runs`` runs, for a filter by one sandbox (about
``rows / 1000`` matches) and by one content type (about a fifth of the rows):

  (a) the list's first page, ``artifacts.selectors.artifact_browse`` (the baseline);
  (b) the total, ``artifacts.totals.artifact_list_total`` (COUNT over at most TOTAL_BOUND + 1 rows);
  (c) the same total counted without a bound (what the bound saves);
  (d) the total with a bound of 10,000 instead.

Target: (b) <= 1.0x (a) for both filters; (c) / (b) shows the bound's worth on broad filters.

    .venv/bin/python bench/totals.py [--rows 200000] [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTENT_TYPES = ["application/json", "text/plain", "text/csv", "image/png", "application/gzip"]


def _django_setup(var_dir: Path) -> None:
    # Settings read STOWAGE_VAR_DIR at import: set it before anything imports them.
    for name in ("STOWAGE_DATABASE_NAME", "DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ["STOWAGE_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def _build(rows: int) -> str:
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.services import organization_bootstrap
    from artifacts.models import Artifact, ArtifactState

    call_command("migrate", "--noinput", verbosity=0)
    org = organization_bootstrap(org_name="bench-totals", email="totals@bench.test", username="bench-totals")[0]
    start = timezone.now() - timedelta(days=365)
    batch = []
    for i in range(rows):
        batch.append(
            Artifact(
                organization_id=org.id,
                state=ArtifactState.READY,
                remote_path=f"runs/{i % 997}/file-{i}.txt",
                version=1,
                size=1000 + i % 5000,
                checksum=f"sha256:{i:064x}",
                content_type=CONTENT_TYPES[i % len(CONTENT_TYPES)],
                sandbox_id=f"sbx_bench{i % 1000:04d}",
                created_at=start + timedelta(seconds=i * 30),
                storage_key=f"blobs/{org.id}/{i}",
            )
        )
        if len(batch) == 5000:
            Artifact.objects.bulk_create(batch)
            batch = []
    Artifact.objects.bulk_create(batch)
    return org.id


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stowage-bench-totals-", ignore_cleanup_errors=True) as tmp:
        var_dir = Path(tmp) / "var"
        var_dir.mkdir()
        _django_setup(var_dir)
        org_id = _build(args.rows)

        from artifacts import totals
        from artifacts.models import Artifact
        from artifacts.selectors import ArtifactFilters, _filtered, artifact_browse
        from artifacts.totals import artifact_list_total

        def total_at(bound: int, filters):
            totals.TOTAL_BOUND = bound
            return artifact_list_total(organization_id=org_id, filters=filters, search=None, grouped=False)

        default_bound = totals.TOTAL_BOUND
        sample = Artifact.objects.filter(organization_id=org_id).order_by("-created_at").first()
        cases = {
            "sandbox": ArtifactFilters(sandbox_id=sample.sandbox_id),
            "content_type": ArtifactFilters(content_type=sample.content_type),
        }
        steps = {
            "page": lambda f: artifact_browse(organization_id=org_id, filters=f, limit=50),
            "total": lambda f: total_at(default_bound, f),
            "total_bound_10000": lambda f: total_at(10_000, f),
            "unbounded_count": lambda f: _filtered(org_id, f).count(),
        }
        timings = {case: {step: [] for step in steps} for case in cases}
        for run in range(args.runs + 3):
            for case, filters in cases.items():
                for step, call in steps.items():
                    started = time.perf_counter()
                    call(filters)
                    if run >= 3:  # the first rounds warm the page cache
                        timings[case][step].append(time.perf_counter() - started)
        result = {"rows": args.rows, "runs": args.runs, "cases": {}}
        for case, filters in cases.items():
            medians = {step: _median_ms(samples) for step, samples in timings[case].items()}
            total = total_at(default_bound, filters)
            result["cases"][case] = {
                "median_ms": medians,
                "total": str(total),
                "total_over_page": round(medians["total"] / medians["page"], 2),
                "unbounded_over_total": round(medians["unbounded_count"] / medians["total"], 2),
                "bound_10000_over_page": round(medians["total_bound_10000"] / medians["page"], 2),
            }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for case, numbers in result["cases"].items():
            print(f"{case}: {numbers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
