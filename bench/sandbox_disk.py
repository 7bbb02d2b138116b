#!/usr/bin/env python3
"""What a workspace filesystem of its own costs a sandbox: create, destroy, and writing into it.

Drives ``LocalRuntime`` directly (the part of ``POST /sandbox/create`` and of terminate that the
disk limit changes; the API, queue and database around it are the same either way) in a
temporary root, interleaved so that noise hits both alike:

  (a) baseline: ``disk_enforce="off"``, the workspace a plain directory;
  (b) ``disk_enforce="loop"``: a sparse ext4 image of ``--disk`` made, loop-mounted, and on
      destroy unmounted and deleted.

It also writes ``--write-mib`` MiB with ``head -c … > file && sync`` through ``execute`` in each.

Target: median create overhead (b - a) <= 100 ms for the default 1Gi disk (create is what a
caller waits for); destroy is reported beside it.

Needs root and loop devices (as the worker does to enforce disks).

    .venv/bin/python bench/sandbox_disk.py [--runs 30] [--disk 1Gi] [--write-mib 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from sandboxes.limits import parse_disk  # noqa: E402
from sandboxes.runtime import LocalRuntime, disk  # noqa: E402

TARGET_MS = 100.0


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--disk", default="1Gi")
    parser.add_argument("--write-mib", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = disk.unavailable_reason()
    if reason is not None:
        print(f"cannot measure: {reason}", file=sys.stderr)
        return 2
    _text, disk_bytes = parse_disk(args.disk)
    with tempfile.TemporaryDirectory(prefix="stowage-bench-disk-") as temp:
        runtimes = {
            "off": LocalRuntime(Path(temp) / "off", disk_enforce="off"),
            "loop": LocalRuntime(Path(temp) / "loop", disk_enforce="loop"),
        }
        samples: dict[str, dict[str, list[float]]] = {
            name: {"create": [], "destroy": [], "write": []} for name in runtimes
        }
        for run in range(args.runs + 1):
            for name, runtime in runtimes.items():
                sandbox_id = f"b_{name}_{run}"
                started = time.perf_counter()
                runtime.create(sandbox_id, env={}, memory_bytes=None, cpus=None, disk_bytes=disk_bytes)
                created = time.perf_counter()
                if name == "loop" and not runtime.disk_enforced(sandbox_id):
                    raise SystemExit("the loop runtime did not enforce the disk")
                write = None
                if run < 5:
                    began = time.perf_counter()
                    result = runtime.execute(
                        sandbox_id, f"head -c {args.write_mib << 20} /dev/zero > /workspace/f && sync", timeout_s=300
                    )
                    write = time.perf_counter() - began
                    if result.exit_code != 0:
                        raise SystemExit(f"the write failed in {name}: {result.stderr}")
                before_destroy = time.perf_counter()
                runtime.destroy(sandbox_id)
                ended = time.perf_counter()
                if run == 0:
                    continue  # warm-up
                samples[name]["create"].append((created - started) * 1000)
                samples[name]["destroy"].append((ended - before_destroy) * 1000)
                if write is not None:
                    samples[name]["write"].append(args.write_mib / write)
    report = {
        name: {
            "create_median_ms": median(values["create"]),
            "destroy_median_ms": median(values["destroy"]),
            "write_median_mib_s": median(values["write"]),
        }
        for name, values in samples.items()
    }
    overhead = report["loop"]["create_median_ms"] - report["off"]["create_median_ms"]
    report["destroy_overhead_ms"] = round(report["loop"]["destroy_median_ms"] - report["off"]["destroy_median_ms"], 2)
    report["disk"] = args.disk
    report["overhead_ms"] = round(overhead, 2)
    report["meets_target"] = overhead <= TARGET_MS
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("off", "loop"):
            row = report[name]
            print(
                f"{name:>4}: create {row['create_median_ms']} ms, destroy {row['destroy_median_ms']} ms, "
                f"write {row['write_median_mib_s']} MiB/s"
            )
        verdict = "meets" if report["meets_target"] else "misses"
        print(
            f"disk {args.disk}: create overhead {report['overhead_ms']} ms ({verdict} <= {TARGET_MS} ms), "
            f"destroy overhead {report['destroy_overhead_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
