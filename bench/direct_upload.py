#!/usr/bin/env python3
"""What a large dashboard upload costs when S3 is the store: straight from the browser to the
bucket, against through Stowage's web process.

Starts ``moto_server`` (an in-memory S3 stand-in, not real S3 performance) on a free loopback
port and the whole stack (``manage.py runstack``) on it, signs in to the dashboard as its owner,
writes ``--size`` random bytes to a file, then times, interleaved over ``--rounds`` rounds so
that noise hits all alike:

  (a) direct:   what static/js/upload.js does for a large file: the check, the plan, each part
      hashed (SHA-256), signed two at a time and PUT to its presigned URL (the first alone,
      then three batches in flight), the completion, and polling until the worker has joined
      the parts, read the object back and published it; wall time from the check to the
      published artifact;
  (b) streamed: the page's other path, one ``PUT /artifacts/upload/stream/`` of the whole file,
      which the web process streams into the bucket; wall time;
  (c) baseline: boto3's own ``upload_file`` of the same file to the same server and bucket.

One 16 MiB upload each way warms the stack up first. During (a) and (b) the CPU time (user + system) and the RSS of the web processes (gunicorn and
its workers) are read before and after, sampled every 50 ms for the RSS.

Targets: the direct upload's median <= 1.3x the boto3 median (it includes reading the object
back for its SHA-256), and the web processes' CPU time during a direct upload <= 10% of theirs
during the streamed one.

    .venv/bin/python bench/direct_upload.py [--size 1GiB] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import S3_BUCKET, MotoServer, RssSampler, mib, parse_size, summary

from config.stack import LocalStack

TARGET_RATIO = 1.3
TARGET_WEB_CPU_SHARE = 0.10
PARTS_IN_FLIGHT = 3
SIGN_BATCH = 2


def web_processes(stack: LocalStack) -> psutil.Process:
    """gunicorn's master under the stack's runstack process."""
    assert stack.process is not None
    for proc in psutil.Process(stack.process.pid).children(recursive=True):
        try:
            if any("gunicorn" in part for part in proc.cmdline()):
                parent = proc.parent()
                if parent is None or not any("gunicorn" in part for part in parent.cmdline()):
                    return proc
        except psutil.Error:
            continue
    raise RuntimeError("no gunicorn process under the stack's runstack process")


def cpu_seconds(master: psutil.Process) -> float:
    total = 0.0
    for proc in [master, *master.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class Dashboard:
    """A signed-in dashboard session, calling the upload page's endpoints as its script does."""

    def __init__(self, stack: LocalStack) -> None:
        self.http = httpx.Client(base_url=stack.base_url, timeout=httpx.Timeout(3600, connect=30))
        form = self.http.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        signed_in = self.http.post(
            "/login/",
            data={"username": stack.username, "password": stack.password, "csrfmiddlewaretoken": token},
            headers={"Referer": stack.base_url + "/login/"},
        )
        if signed_in.status_code != 302:
            raise RuntimeError(f"could not sign in: {signed_in.status_code}")
        self.headers = {"X-CSRFToken": self.http.cookies["csrftoken"], "X-Requested-With": "XMLHttpRequest"}
        self.phases: list[dict[str, float]] = []
        self.s3 = httpx.Client(
            timeout=httpx.Timeout(3600, connect=30), limits=httpx.Limits(max_connections=PARTS_IN_FLIGHT)
        )

    def post(self, url: str, payload: dict, expect: int) -> dict:
        response = self.http.post(url, json=payload, headers=self.headers)
        if response.status_code != expect:
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:500]}")
        return response.json()

    def direct(self, path: Path, remote_path: str) -> dict:
        size = path.stat().st_size
        check = self.post("/artifacts/upload/check/", {"remote_path": remote_path, "size": size, "metadata": {}}, 200)
        if not check["direct"]:
            raise RuntimeError("the server did not offer a direct upload; is S3 the store?")
        plan = self.post(
            "/artifacts/upload/direct/",
            {"remote_path": remote_path, "size": size, "content_type": "", "metadata": {}},
            201,
        )

        def send(numbers: list[int]) -> None:
            """As the page does: hash a few parts, sign them in one call, send them one by one."""
            parts = {}
            with open(path, "rb") as source:
                for number in numbers:
                    source.seek((number - 1) * plan["part_size"])
                    parts[number] = source.read(plan["part_size"])
            hashes = [
                {"number": n, "sha256": base64.b64encode(hashlib.sha256(part).digest()).decode()}
                for n, part in parts.items()
            ]
            for signed in self.post(plan["urls"]["part"], {"parts": hashes}, 200)["parts"]:
                response = self.s3.request(
                    signed["method"], signed["url"], content=parts[signed["number"]], headers=signed["headers"]
                )
                if response.status_code != 200:
                    raise RuntimeError(f"part {signed['number']}: {response.status_code} {response.text[:300]}")

        started = time.perf_counter()
        send([1])
        rest = list(range(2, plan["part_count"] + 1))
        with ThreadPoolExecutor(PARTS_IN_FLIGHT) as pool:
            list(pool.map(send, [rest[i : i + SIGN_BATCH] for i in range(0, len(rest), SIGN_BATCH)]))
        sent = time.perf_counter()
        self.post(plan["urls"]["complete"], {}, 202)
        joined = time.perf_counter()
        delay = 0.25  # as the page polls: 250 ms, doubling up to 2 s
        while True:
            status = self.http.get(plan["urls"]["status"]).json()
            if status["state"] == "succeeded":
                self.phases.append(
                    {
                        "parts_s": round(sent - started, 2),
                        "join_s": round(joined - sent, 2),
                        "check_s": round(time.perf_counter() - joined, 2),
                    }
                )
                return status["artifact"]
            if status["state"] == "failed":
                raise RuntimeError(f"the direct upload failed: {status['error']}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def streamed(self, path: Path, remote_path: str) -> dict:
        with open(path, "rb") as source:
            response = self.http.put(
                "/artifacts/upload/stream/",
                params={"remote_path": remote_path},
                content=source,
                headers={
                    **self.headers,
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(path.stat().st_size),
                },
            )
        if response.status_code != 201:
            raise RuntimeError(f"streamed upload: {response.status_code} {response.text[:500]}")
        return response.json()


def measure(stack: LocalStack, moto: MotoServer, source: Path, rounds: int) -> dict[str, object]:
    size = source.stat().st_size
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    expected = "sha256:" + digest.hexdigest()
    s3 = moto.client()
    dashboard = Dashboard(stack)
    web = web_processes(stack)
    # One small upload each way first, so that neither timed path pays for the web process's
    # first request, imports or S3 client.
    warm = source.with_name("warm.bin")
    with open(source, "rb") as handle, open(warm, "wb") as out:
        out.write(handle.read(16 << 20))
    dashboard.direct(warm, "bench/warm-direct.bin")
    dashboard.streamed(warm, "bench/warm-streamed.bin")
    times: dict[str, list[float]] = {"direct": [], "streamed": [], "baseline": []}
    web_cpu: dict[str, list[float]] = {"direct": [], "streamed": []}
    web_growth: dict[str, list[float]] = {"direct": [], "streamed": []}
    order = list(times)
    for round_number in range(rounds):
        for kind in order[round_number % 3 :] + order[: round_number % 3]:
            name = f"bench/{kind}-{round_number}.bin"
            if kind == "baseline":
                started = time.perf_counter()
                s3.upload_file(str(source), S3_BUCKET, name)
                times[kind].append(time.perf_counter() - started)
                continue
            cpu_before = cpu_seconds(web)
            with RssSampler(web.pid) as rss:
                started = time.perf_counter()
                artifact = dashboard.direct(source, name) if kind == "direct" else dashboard.streamed(source, name)
                times[kind].append(time.perf_counter() - started)
            web_cpu[kind].append(cpu_seconds(web) - cpu_before)
            web_growth[kind].append(mib(rss.growth))
            if artifact["checksum"] != expected or artifact["size"] != size:
                raise RuntimeError(
                    f"{kind}: stored {artifact['checksum']} / {artifact['size']}, expected {expected} / {size}"
                )
        # moto keeps objects in memory: empty the bucket between rounds.
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET):
            for entry in page.get("Contents", ()):
                s3.delete_object(Bucket=S3_BUCKET, Key=entry["Key"])
    results = {
        kind: {**summary(samples), "MiB_per_s": round(size / 2**20 / statistics.median(samples), 1)}
        for kind, samples in times.items()
    }
    base = statistics.median(times["baseline"])
    ratios = {kind: round(statistics.median(times[kind]) / base, 2) for kind in ("direct", "streamed")}
    cpu = {kind: round(statistics.median(samples), 2) for kind, samples in web_cpu.items()}
    share = round(cpu["direct"] / cpu["streamed"], 3) if cpu["streamed"] else 0.0
    return {
        "size_mib": mib(size),
        "rounds": rounds,
        "results": results,
        "ratio_to_baseline": ratios,
        "web_cpu_seconds_median": cpu,
        "web_cpu_direct_share_of_streamed": share,
        "web_rss_growth_mib": web_growth,
        "direct_phases": dashboard.phases[1:],  # the warm-up's left out
        "target_ratio": TARGET_RATIO,
        "meets_target": {"direct_time": ratios["direct"] <= TARGET_RATIO, "web_cpu": share <= TARGET_WEB_CPU_SHARE},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=parse_size("1GiB"), help="file size, e.g. 1GiB (default) or 256MiB"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.size < 16 << 20:
        parser.error("--size must be at least 16MiB, the smallest file the page sends straight to S3")
    with tempfile.TemporaryDirectory(prefix="stowage-bench-direct-", ignore_cleanup_errors=True) as tmp:
        if shutil.disk_usage(tmp).free < 3 * args.size:
            parser.error(f"{tmp} needs about {mib(3 * args.size)} MiB free")
        source = Path(tmp) / "big.bin"
        with open(source, "wb") as out, open("/dev/urandom", "rb") as random:
            remaining = args.size
            while remaining:
                chunk = random.read(min(remaining, 1 << 20))
                out.write(chunk)
                remaining -= len(chunk)
        with MotoServer(Path(tmp) / "moto.log") as moto, LocalStack(Path(tmp) / "var", env=moto.stack_env()) as stack:
            result = measure(stack, moto, source, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['size_mib']:.0f} MiB file, {result['rounds']} rounds, interleaved; S3 is moto_server (not real S3 performance)"
    )
    print(f"{'':40}{'median':>9}{'min':>9}{'max':>9}{'MiB/s':>9}{'ratio':>8}  (s)")
    labels = {
        "direct": "direct: browser -> bucket, checked",
        "streamed": "streamed: through the web process",
        "baseline": "baseline: boto3 upload_file",
    }
    for kind, label in labels.items():
        row = result["results"][kind]
        ratio = f"{result['ratio_to_baseline'][kind]:>7.2f}x" if kind in result["ratio_to_baseline"] else ""
        print(
            f"{label:40}{row['median_s']:>9.2f}{row['min_s']:>9.2f}{row['max_s']:>9.2f}{row['MiB_per_s']:>9.1f}{ratio}"
        )
    cpu = result["web_cpu_seconds_median"]
    print(
        f"web processes' CPU time (median): direct {cpu['direct']:.2f} s, streamed {cpu['streamed']:.2f} s; direct/streamed = {result['web_cpu_direct_share_of_streamed']:.1%}"
    )
    print(
        f"web processes' RSS growth (MiB): direct {result['web_rss_growth_mib']['direct']}, streamed {result['web_rss_growth_mib']['streamed']}"
    )
    print(
        "direct upload phases (s): "
        + "; ".join(f"parts {p['parts_s']}, join {p['join_s']}, check {p['check_s']}" for p in result["direct_phases"])
    )
    met = result["meets_target"]
    print(
        f"direct: {result['ratio_to_baseline']['direct']:.2f}x boto3  ({'meets' if met['direct_time'] else 'MISSES'} the target of <= {TARGET_RATIO}x)"
    )
    print(
        f"web CPU during a direct upload: {result['web_cpu_direct_share_of_streamed']:.1%} of a streamed one  ({'meets' if met['web_cpu'] else 'MISSES'} the target of <= {TARGET_WEB_CPU_SHARE:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
