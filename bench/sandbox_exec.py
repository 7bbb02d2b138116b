#!/usr/bin/env python3
"""What the API adds to running a command in a sandbox.

Starts the whole stack (``manage.py runstack``) in a temporary directory, creates a sandbox,
then times, interleaved so that noise hits both alike:

  (a) the API round trip of ``POST /api/v1/sandbox/{id}/execute {"command": ["true"]}``;
  (b) bare ``bwrap --ro-bind / / --unshare-all --die-with-parent true``.

Target: median overhead (a - b) <= 15 ms (the goal is 10).

    .venv/bin/python bench/sandbox_exec.py [--runs 200] [--warmup 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import httpx  # noqa: E402

from config.stack import LocalStack  # noqa: E402

TARGET_MS = 15.0
BWRAP = ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min_ms": round(ordered[0], 2),
    }


def measure(base_url: str, org_id: str, api_key: str, runs: int, warmup: int) -> dict[str, object]:
    headers = {"Authorization": f"ApiKey {api_key}", "X-Org-Id": org_id}
    limits = httpx.Limits(max_keepalive_connections=10, max_connections=20, keepalive_expiry=120)
    with httpx.Client(base_url=base_url + "/api/v1", headers=headers, limits=limits, timeout=60) as http:
        created = http.post("/sandbox/create", json={"timeout_seconds": 3600})
        created.raise_for_status()
        sandbox_id = created.json()["sandbox_id"]

        def api() -> float:
            started = time.perf_counter()
            response = http.post(f"/sandbox/{sandbox_id}/execute", json={"command": ["true"]})
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or response.json()["exit_code"] != 0:
                raise RuntimeError(f"execute failed: {response.status_code} {response.text[:500]}")
            return elapsed

        def bare() -> float:
            started = time.perf_counter()
            subprocess.run(BWRAP, check=True)
            return (time.perf_counter() - started) * 1000

        api_ms: list[float] = []
        bwrap_ms: list[float] = []
        for i in range(warmup + runs):
            # Alternate which goes first, so neither always runs on a warmer machine.
            first, second = (api, bare) if i % 2 == 0 else (bare, api)
            a, b = first(), second()
            if first is bare:
                a, b = b, a
            if i >= warmup:
                api_ms.append(a)
                bwrap_ms.append(b)
        http.post(f"/sandbox/{sandbox_id}/stop")

    overhead = statistics.median(api_ms) - statistics.median(bwrap_ms)
    return {
        "runs": runs,
        "warmup": warmup,
        "api_execute": summary(api_ms),
        "bare_bwrap": summary(bwrap_ms),
        "median_overhead_ms": round(overhead, 2),
        "median_paired_overhead_ms": round(statistics.median(a - b for a, b in zip(api_ms, bwrap_ms, strict=False)), 2),
        "target_ms": TARGET_MS,
        "meets_target": overhead <= TARGET_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")

    with (
        tempfile.TemporaryDirectory(prefix="stowage-bench-", ignore_cleanup_errors=True) as tmp,
        LocalStack(Path(tmp) / "var") as stack,
    ):
        result = measure(stack.base_url, stack.org_id, stack.api_key, args.runs, args.warmup)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['runs']} runs after {result['warmup']} warm-up, interleaved")
    print(f"{'':24}{'median':>10}{'p90':>10}{'min':>10}  (ms)")
    for label, key in (("API execute ['true']", "api_execute"), ("bare bwrap true", "bare_bwrap")):
        row = result[key]
        print(f"{label:24}{row['median_ms']:>10.2f}{row['p90_ms']:>10.2f}{row['min_ms']:>10.2f}")
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(f"median overhead: {result['median_overhead_ms']:.2f} ms  ({verdict} the target of <= {TARGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
