#!/usr/bin/env python3
"""What content-addressed blobs cost a large upload, and how storage grows with repeated bytes.

Starts the whole stack (``manage.py runstack``) in a temporary directory with local storage,
creates a sandbox and writes ``--size`` random bytes to ``/workspace/big.bin``, then, over
``--rounds`` rounds (the order of (a) and (b) rotating, each after an ``os.sync()``):

  (a) upload of new bytes: the file's first 32 bytes are changed (outside the timing) so that its
      SHA-256 is new, then ``POST /api/v1/sandbox/{a}/artifacts/upload``, request wall time:
      streamed, hashed, fsynced and published as a new blob;
  (b) baseline: the chunked copy-and-hash loop of bench/transfer.py (1 MiB chunks, SHA-256 on the
      way, an fsync at the end) over the same file;
  (c) the same bytes again with other metadata (after (a)): a new version sharing the blob; the
      bytes are read and hashed, and the object written for them is dropped.

Each round ends by deleting its artifacts and waiting until their blob's object is gone.

Target: (a)'s median <= 1.2x (b)'s median.

Then storage growth, with ``--growth-size`` (100 MiB) of random bytes: the bytes stored under the
storage root (temporary files excluded) before and after uploading the file, uploading it again
with other metadata, and a checksum-first ``PUT /api/v1/artifacts`` with only its SHA-256
(``X-Stowage-Sha256``) and an empty body. Target: storage grows by the file's size once.

    .venv/bin/python bench/blobs.py [--size 1GiB] [--rounds 3] [--growth-size 100MiB] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import httpx  # noqa: E402
from transfer import baseline_copy, mib, parse_size, summary  # noqa: E402

from config.stack import LocalStack  # noqa: E402

TARGET_RATIO = 1.2
SOURCE = "/workspace/big.bin"
GROWTH_SOURCE = "/workspace/growth.bin"


def stored_bytes(storage: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(storage):
        if Path(directory).relative_to(storage).parts[:1] == ("tmp",):
            continue
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                pass
    return total


def measure(stack: LocalStack, size: int, rounds: int, growth_size: int) -> dict[str, object]:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    storage = stack.var_dir / "storage"
    with httpx.Client(
        base_url=stack.base_url + "/api/v1", headers=headers, timeout=httpx.Timeout(3600, connect=30)
    ) as http:

        def call(method: str, url: str, **kwargs) -> dict:
            response = http.request(method, url, **kwargs)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:1000]}")
            return response.json()

        def execute(box: str, script: str) -> None:
            done = call("POST", f"/sandbox/{box}/execute", json={"command": ["sh", "-c", script], "timeout": 3_600_000})
            if done["exit_code"] != 0:
                raise RuntimeError(f"{script}: {done}")

        def upload(box: str, path: str, remote_path: str, metadata: dict[str, str]) -> tuple[float, dict]:
            started = time.perf_counter()
            artifact = call(
                "POST",
                f"/sandbox/{box}/artifacts/upload",
                json={"path": path, "remote_path": remote_path, "metadata": metadata},
            )
            return time.perf_counter() - started, artifact

        def settle(until_at_most: int) -> None:
            """Until the blob collector has removed what the deletes released."""
            deadline = time.monotonic() + 120
            while stored_bytes(storage) > until_at_most:
                if time.monotonic() > deadline:
                    raise RuntimeError("the deleted artifacts' blob was not removed within 120 s")
                time.sleep(0.1)

        box = call("POST", "/sandbox/create", json={"timeout_seconds": 3 * 3600})["sandbox_id"]
        execute(box, f"head -c {size} /dev/urandom > {SOURCE}")
        host_source = stack.var_dir / "sandboxes" / box / "workspace" / "big.bin"
        copy_path = stack.var_dir / "bench-copy"
        samples: dict[str, list[float]] = {"upload_new": [], "baseline": [], "upload_same_bytes": []}

        for round_no in range(rounds):
            with open(host_source, "r+b") as handle:  # new bytes, so a new blob, every round
                handle.write(hashlib.sha256(f"round {round_no}".encode()).digest())
            expected = ""
            artifact_ids = []
            steps = ["upload", "baseline"] if round_no % 2 == 0 else ["baseline", "upload"]
            for step in steps:
                os.sync()
                if step == "baseline":
                    elapsed, expected_copy = baseline_copy(host_source, copy_path)
                    copy_path.unlink()
                    samples["baseline"].append(elapsed)
                    expected = expected or expected_copy
                else:
                    elapsed, artifact = upload(box, SOURCE, f"bench/big-{round_no}.bin", {"round": str(round_no)})
                    samples["upload_new"].append(elapsed)
                    artifact_ids.append(artifact["id"])
                    checksum = artifact["checksum"]
            if checksum != f"sha256:{expected}":
                raise RuntimeError("the stored checksum is not the file's")
            os.sync()
            elapsed, again = upload(box, SOURCE, f"bench/big-{round_no}.bin", {"round": str(round_no), "again": "1"})
            if again["version"] != 2 or again["checksum"] != checksum:
                raise RuntimeError(f"the same bytes with other metadata were not a second version: {again}")
            samples["upload_same_bytes"].append(elapsed)
            artifact_ids.append(again["id"])
            if stored_bytes(storage) != size:
                raise RuntimeError(f"two versions of one file hold {stored_bytes(storage)} bytes, not {size}")
            for artifact_id in artifact_ids:
                call("DELETE", f"/artifacts/{artifact_id}")
            settle(0)

        # Storage growth with repeated bytes.
        execute(box, f"head -c {growth_size} /dev/urandom > {GROWTH_SOURCE}")
        host_growth = stack.var_dir / "sandboxes" / box / "workspace" / "growth.bin"
        with open(host_growth, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        growth = [{"step": "before", "stored_bytes": stored_bytes(storage)}]
        for metadata in ({"run": "1"}, {"run": "2"}):
            _elapsed, artifact = upload(box, GROWTH_SOURCE, "bench/growth.bin", metadata)
            growth.append(
                {
                    "step": f"upload, metadata {metadata}",
                    "version": artifact["version"],
                    "stored_bytes": stored_bytes(storage),
                }
            )
        started = time.perf_counter()
        response = http.put(
            "/artifacts",
            params={"remote_path": "bench/growth-by-digest.bin"},
            content=b"",
            headers={"X-Stowage-Sha256": digest, "Content-Type": "application/octet-stream"},
        )
        put_s = time.perf_counter() - started
        if response.status_code != 201 or not response.json()["deduplicated"]:
            raise RuntimeError(f"the checksum-first PUT was not deduplicated: {response.status_code} {response.text}")
        growth.append(
            {
                "step": "checksum-first PUT, empty body",
                "seconds": round(put_s, 3),
                "stored_bytes": stored_bytes(storage),
            }
        )

    upload_median = statistics.median(samples["upload_new"])
    baseline_median = statistics.median(samples["baseline"])
    grown = growth[-1]["stored_bytes"] - growth[0]["stored_bytes"]
    return {
        "size_mib": mib(size),
        "rounds": rounds,
        "results": {
            key: {**summary(values), "MiB_per_s": round(mib(size) / statistics.median(values), 1)}
            for key, values in samples.items()
        },
        "samples_s": {key: [round(v, 3) for v in values] for key, values in samples.items()},
        "ratio_to_baseline": {
            "upload_new": round(upload_median / baseline_median, 2),
            "upload_same_bytes": round(statistics.median(samples["upload_same_bytes"]) / baseline_median, 2),
        },
        "growth_size_bytes": growth_size,
        "growth": growth,
        "storage_grew_by_bytes": grown,
        "target_ratio": TARGET_RATIO,
        "meets_target": {"upload_new": upload_median <= TARGET_RATIO * baseline_median, "growth": grown == growth_size},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--growth-size", type=parse_size, default=parse_size("100MiB"))
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="stowage-bench-blobs-", ignore_cleanup_errors=True) as tmp,
        LocalStack(Path(tmp) / "var") as stack,
    ):
        result = measure(stack, args.size, args.rounds, args.growth_size)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['size_mib']:.0f} MiB file, {result['rounds']} rounds")
    print(f"{'':40}{'median':>9}{'min':>9}{'max':>9}{'MiB/s':>9}{'ratio':>8}  (s)")
    labels = {
        "upload_new": "(a) upload, new bytes (API)",
        "baseline": "(b) baseline: chunked copy + sha256",
        "upload_same_bytes": "(c) upload, same bytes, new metadata",
    }
    for key, label in labels.items():
        row = result["results"][key]
        ratio = f"{result['ratio_to_baseline'][key]:>7.2f}x" if key in result["ratio_to_baseline"] else ""
        print(
            f"{label:40}{row['median_s']:>9.2f}{row['min_s']:>9.2f}{row['max_s']:>9.2f}{row['MiB_per_s']:>9.1f}{ratio}"
        )
    met = result["meets_target"]
    print(
        f"(a) / (b): {result['ratio_to_baseline']['upload_new']:.2f}x  "
        f"({'meets' if met['upload_new'] else 'MISSES'} the target of <= {TARGET_RATIO}x)"
    )
    for step in result["growth"]:
        print(f"  {step['step']:40} stored: {step['stored_bytes']:>12} bytes")
    print(
        f"storage grew by {result['storage_grew_by_bytes']} bytes for {result['growth_size_bytes']} unique bytes "
        f"uploaded three times ({'meets' if met['growth'] else 'MISSES'} the target: the unique bytes only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
