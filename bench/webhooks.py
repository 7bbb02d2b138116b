#!/usr/bin/env python3
"""Every event of a burst delivered, and how long from commit to receipt.

Starts the whole stack (``manage.py runstack``, as ``make run``) in a temporary directory and a
receiver on loopback (``http.server`` in a thread) that verifies every signature with the
``standardwebhooks`` package and notes when each request arrived. Then, in the same run:

  (a) baseline: ``--uploads`` artifact uploads (``PUT /api/v1/artifacts``, ``--concurrency``
      clients at once) with no webhook: the burst's wall time and request latencies;
  (b) the same burst with a webhook subscribed to ``artifact.uploaded``: every event must arrive
      (counted by ``webhook-id``, duplicates dropped), each with a valid signature; commit-to-
      receipt latency is the receipt time minus the event's ``created_at`` (written in the
      transaction that publishes the artifact).

Targets: every event delivered; commit-to-receipt median <= 1 s and p99 <= 5 s.

    .venv/bin/python bench/webhooks.py [--uploads 1000] [--concurrency 8] [--json]
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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import httpx  # noqa: E402

from config.stack import LocalStack  # noqa: E402
from tests.webhooks.receiver import Receiver  # noqa: E402

TARGET_MEDIAN_S = 1.0
TARGET_P99_S = 5.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def burst(stack: LocalStack, uploads: int, concurrency: int, tag: str) -> dict:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    local = threading.local()

    def one(n: int) -> float:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=stack.base_url, headers=headers, timeout=120)
        started = time.perf_counter()
        response = client.put(
            "/api/v1/artifacts", params={"remote_path": f"bench/{tag}/{n}.txt"}, content=f"{tag} {n}\n".encode()
        )
        if response.status_code != 201:
            raise RuntimeError(f"upload {n}: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(uploads)))
    return {
        "wall_s": time.perf_counter() - started,
        "request_median_ms": statistics.median(latencies) * 1000,
        "request_p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for the last events")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    receiver = Receiver()
    env = {"STOWAGE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32"}
    with (
        tempfile.TemporaryDirectory(prefix="stowage-bench-webhooks-") as tmp,
        LocalStack(Path(tmp) / "var", env=env) as stack,
    ):
        baseline = burst(stack, args.uploads, args.concurrency, "baseline")
        headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
        created = httpx.post(
            f"{stack.base_url}/api/v1/webhooks",
            json={"url": receiver.url, "events": ["artifact.uploaded"], "timeout_ms": 10000},
            headers=headers,
            timeout=30,
        )
        created.raise_for_status()
        receiver.secrets.append(created.json()["secret"])
        with_webhook = burst(stack, args.uploads, args.concurrency, "webhook")
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline and len({r.webhook_id for r in receiver.received}) < args.uploads:
            time.sleep(0.2)
        first_receipt: dict[str, tuple[float, dict]] = {}
        for request in receiver.received:
            if request.webhook_id not in first_receipt:
                first_receipt[request.webhook_id] = (request.at, json.loads(request.body))
        unverified = sum(1 for r in receiver.received if not r.verified_with)
        delays = [
            at - datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")).timestamp()
            for at, body in first_receipt.values()
        ]
    receiver.close()
    result = {
        "uploads": args.uploads,
        "concurrency": args.concurrency,
        "baseline": baseline,
        "with_webhook": with_webhook,
        "events_received": len(first_receipt),
        "requests_received": len(receiver.received),
        "unverified": unverified,
        "commit_to_receipt_median_s": statistics.median(delays) if delays else None,
        "commit_to_receipt_p99_s": percentile(delays, 0.99) if delays else None,
        "commit_to_receipt_max_s": max(delays) if delays else None,
    }
    meets = (
        result["events_received"] == args.uploads
        and unverified == 0
        and delays
        and result["commit_to_receipt_median_s"] <= TARGET_MEDIAN_S
        and result["commit_to_receipt_p99_s"] <= TARGET_P99_S
    )
    result["verdict"] = "meets" if meets else "misses"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"baseline burst (no webhook): {baseline['wall_s']:.1f} s, request median {baseline['request_median_ms']:.1f} ms, p99 {baseline['request_p99_ms']:.1f} ms"
        )
        print(
            f"burst with webhook:         {with_webhook['wall_s']:.1f} s, request median {with_webhook['request_median_ms']:.1f} ms, p99 {with_webhook['request_p99_ms']:.1f} ms"
        )
        print(
            f"events received: {result['events_received']} / {args.uploads} ({result['requests_received']} requests, {unverified} unverified)"
        )
        if delays:
            print(
                f"commit to receipt: median {result['commit_to_receipt_median_s'] * 1000:.0f} ms, p99 {result['commit_to_receipt_p99_s'] * 1000:.0f} ms, max {result['commit_to_receipt_max_s'] * 1000:.0f} ms"
            )
        print(f"verdict: {result['verdict']} (median <= {TARGET_MEDIAN_S} s, p99 <= {TARGET_P99_S} s, every event)")
    return 0 if meets else 1


if __name__ == "__main__":
    sys.exit(main())
