#!/usr/bin/env python3
"""What moving a large file between a sandbox and artifact storage costs.

Starts the whole stack (``manage.py runstack``) in a temporary directory, creates two
sandboxes, writes ``--size`` random bytes to ``/workspace/big.bin`` in the first, then times,
interleaved over ``--rounds`` rounds so that noise hits all alike:

  (a) upload:   ``POST /api/v1/sandbox/{a}/artifacts/upload`` (sandbox -> storage), request wall time;
  (b) download: ``POST /api/v1/sandbox/{b}/artifacts/download`` (storage -> sandbox), request wall time;
  (c) baseline: a plain Python loop copying the same file on the host in 1 MiB chunks while
      computing its SHA-256, with an fsync at the end (storage fsyncs too).

Each step starts after an ``os.sync()``, so no step pays for the previous one's writeback.
While (a) and (b) run, the RSS of the stack's Celery worker (the process and its children)
is sampled every 50 ms.

Targets: upload and download medians each <= 1.5x the baseline median; worker peak memory
growth <= 64 MiB.

With ``--storage s3`` the artifacts live in S3 instead: the script starts ``moto_server`` (an
in-memory S3 stand-in, not real S3 performance) on a free loopback port, creates a bucket and
starts the stack with ``AWS_STORAGE_BUCKET_NAME`` / ``AWS_S3_ENDPOINT_URL`` pointing at it. It then
times, interleaved:

  (a) upload:   ``POST /api/v1/sandbox/{a}/artifacts/upload`` (sandbox -> S3), request wall time;
  (c) baseline: boto3's own ``upload_file`` (default ``TransferConfig``) of the same host file
      (the sandbox's workspace file) to the same moto server and bucket;
  (d) reference (not the target's baseline): the same host file uploaded the way the app's
      storage does it, without the app around it -- one 8 MiB part at a time, sequentially,
      SHA-256 of the whole file and of each part, ``ChecksumSHA256`` on every part.

Target there: upload median <= 1.3x the boto3 median; worker peak memory growth <= 64 MiB.
Objects are deleted after every round (moto keeps them in memory).

    .venv/bin/python bench/transfer.py [--size 1GiB] [--rounds 3] [--storage local|s3] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import httpx  # noqa: E402
import psutil  # noqa: E402

from config.stack import LocalStack  # noqa: E402

TARGET_RATIO = 1.5
TARGET_RATIO_S3 = 1.3
S3_BUCKET = "stowage-bench"
TARGET_GROWTH_MIB = 64.0
CHUNK = 1 << 20
SAMPLE_SECONDS = 0.05
SOURCE = "/workspace/big.bin"
TARGET = "/workspace/copy.bin"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1GiB, 256MiB)")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size < CHUNK:
        raise argparse.ArgumentTypeError("the size must be at least 1 MiB")
    return size


def mib(n: float) -> float:
    return round(n / 2**20, 1)


class RssSampler:
    """Samples the summed RSS of a process and its descendants every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.before = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a child that just exited
                pass
        return total

    def __enter__(self) -> RssSampler:
        self.before = self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        return self.peak - self.before


def find_worker(stack: LocalStack, timeout: float = 30) -> psutil.Process:
    """The Celery worker that ``runstack`` started (its argv has 'celery' and 'worker')."""
    assert stack.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.Process(stack.process.pid).children(recursive=True):
            try:
                argv = proc.cmdline()
            except psutil.Error:
                continue
            if any("celery" in part for part in argv) and "worker" in argv:
                return proc
        time.sleep(0.2)
    raise RuntimeError("no Celery worker process under the stack's runstack process")


def baseline_copy(source: Path, target: Path) -> tuple[float, str]:
    """A plain chunked copy with SHA-256 on the way and an fsync at the end."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return time.perf_counter() - started, digest.hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """``moto_server`` on a free loopback port, with one bucket; stopped (by its pid) on exit."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def stack_env(self) -> dict[str, str]:
        """The environment that points a stack's artifact storage at this server's bucket."""
        return {
            "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
            "AWS_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_S3_REGION_NAME": "us-east-1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )

    def __enter__(self) -> MotoServer:
        binary = Path(sys.executable).parent / "moto_server"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with code {self.process.returncode}; see {self.log}")
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer within 30 s") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=S3_BUCKET)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_mib(self) -> float:
        assert self.process is not None
        return mib(psutil.Process(self.process.pid).memory_info().rss)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


def measure(stack: LocalStack, size: int, rounds: int, moto: MotoServer | None = None) -> dict[str, object]:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    var_dir = stack.var_dir
    worker = find_worker(stack)
    with httpx.Client(
        base_url=stack.base_url + "/api/v1", headers=headers, timeout=httpx.Timeout(3600, connect=30)
    ) as http:

        def call(method: str, url: str, **kwargs) -> dict:
            response = http.request(method, url, **kwargs)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:1000]}")
            return response.json()

        source_box = call("POST", "/sandbox/create", json={"timeout_seconds": 3 * 3600})["sandbox_id"]
        target_box = call("POST", "/sandbox/create", json={"timeout_seconds": 3 * 3600})["sandbox_id"]
        made = time.perf_counter()
        done = call(
            "POST",
            f"/sandbox/{source_box}/execute",
            json={"command": ["sh", "-c", f"head -c {size} /dev/urandom > {SOURCE}"], "timeout": 3_600_000},
        )
        if done["exit_code"] != 0:
            raise RuntimeError(f"could not create the file in the sandbox: {done}")
        create_s = time.perf_counter() - made
        host_source = var_dir / "sandboxes" / source_box / "workspace" / "big.bin"
        host_target = var_dir / "sandboxes" / target_box / "workspace" / "copy.bin"
        if host_source.stat().st_size != size:
            raise RuntimeError(f"{host_source} is {host_source.stat().st_size} bytes, expected {size}")
        copy_path = var_dir / "bench-copy"

        samples: dict[str, list[float]] = {"upload": [], "download": [], "baseline": []}
        writeback: list[float] = []
        memory: dict[str, list[dict[str, float]]] = {"upload": [], "download": []}
        expected_sha = ""
        artifact_id = ""

        def upload(round_no: int) -> None:
            nonlocal artifact_id
            with RssSampler(worker.pid) as rss:
                started = time.perf_counter()
                artifact = call(
                    "POST",
                    f"/sandbox/{source_box}/artifacts/upload",
                    json={"path": SOURCE, "remote_path": f"bench/big-{round_no}.bin"},
                )
                elapsed = time.perf_counter() - started
            if artifact["size"] != size or (expected_sha and artifact["checksum"] != f"sha256:{expected_sha}"):
                raise RuntimeError(f"the stored artifact does not match the file: {artifact}")
            artifact_id = artifact["id"]
            samples["upload"].append(elapsed)
            memory["upload"].append(
                {"before_mib": mib(rss.before), "peak_mib": mib(rss.peak), "growth_mib": mib(rss.growth)}
            )

        def download(round_no: int) -> None:
            with RssSampler(worker.pid) as rss:
                started = time.perf_counter()
                done = call(
                    "POST",
                    f"/sandbox/{target_box}/artifacts/download",
                    json={"artifact_id": artifact_id, "target_path": TARGET},
                )
                elapsed = time.perf_counter() - started
            if not done["success"] or host_target.stat().st_size != size:
                raise RuntimeError(f"the download did not produce the file: {done}")
            samples["download"].append(elapsed)
            # The download publishes without an fsync, so its bytes may still be on their way to
            # disk: time that separately (it is not part of the request) and keep it off the next step.
            flushed = time.perf_counter()
            os.sync()
            writeback.append(time.perf_counter() - flushed)
            memory["download"].append(
                {"before_mib": mib(rss.before), "peak_mib": mib(rss.peak), "growth_mib": mib(rss.growth)}
            )
            call("DELETE", f"/sandbox/{target_box}/files", json={"path": TARGET})

        def baseline(round_no: int) -> None:
            nonlocal expected_sha
            elapsed, sha = baseline_copy(host_source, copy_path)
            copy_path.unlink()
            if expected_sha and sha != expected_sha:
                raise RuntimeError("the baseline copy's checksum changed between rounds")
            expected_sha = sha
            samples["baseline"].append(elapsed)

        s3 = moto.client() if moto is not None else None
        moto_rss: list[float] = []

        def baseline_s3(round_no: int) -> None:
            # boto3's own managed upload (default TransferConfig: 8 MiB parts, 10 threads).
            assert s3 is not None
            started = time.perf_counter()
            s3.upload_file(str(host_source), S3_BUCKET, f"baseline/big-{round_no}.bin")
            samples["baseline"].append(time.perf_counter() - started)

        def sequential_s3(round_no: int) -> None:
            assert s3 is not None
            key = f"reference/big-{round_no}.bin"
            part_size = 8 << 20
            started = time.perf_counter()
            whole = hashlib.sha256()
            upload_id = s3.create_multipart_upload(Bucket=S3_BUCKET, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
            parts = []
            with open(host_source, "rb") as src:
                while part := src.read(part_size):
                    whole.update(part)
                    checksum = base64.b64encode(hashlib.sha256(part).digest()).decode()
                    answer = s3.upload_part(
                        Bucket=S3_BUCKET,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=part,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                    )
                    parts.append(
                        {
                            "PartNumber": len(parts) + 1,
                            "ETag": answer["ETag"],
                            "ChecksumSHA256": answer.get("ChecksumSHA256") or checksum,
                        }
                    )
            s3.complete_multipart_upload(
                Bucket=S3_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            samples["sequential"].append(time.perf_counter() - started)
            if whole.hexdigest() != expected_sha:
                raise RuntimeError("the reference upload read different bytes")
            s3.delete_object(Bucket=S3_BUCKET, Key=key)

        if s3 is not None:
            samples["sequential"] = []
            _, expected_sha = baseline_copy(host_source, copy_path)  # the checksum the upload must store; untimed
            copy_path.unlink()
            samples.pop("download")
            memory.pop("download")
            for round_no in range(rounds):
                for step in (
                    [baseline_s3, upload, sequential_s3]
                    if round_no % 3 == 0
                    else [upload, sequential_s3, baseline_s3]
                    if round_no % 3 == 1
                    else [sequential_s3, baseline_s3, upload]
                ):
                    os.sync()
                    step(round_no)
                moto_rss.append(moto.rss_mib())
                call("DELETE", f"/artifacts/{artifact_id}")  # deletes the S3 object too
                s3.delete_object(Bucket=S3_BUCKET, Key=f"baseline/big-{round_no}.bin")
                # The API deletes the blob in a Celery task after the response: wait for it, so
                # the next round starts with an empty bucket (and moto with its memory freed).
                deadline = time.monotonic() + 60
                while left := s3.list_objects_v2(Bucket=S3_BUCKET).get("KeyCount", 0):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{left} objects left in the bucket 60 s after round {round_no}")
                    time.sleep(0.2)

        # Round 0 runs the baseline first so the upload can be checked against its checksum;
        # later rounds rotate which of the three goes first. A download needs its round's upload.
        for round_no in range(rounds if s3 is None else 0):
            order = (
                [baseline, upload, download]
                if round_no % 3 == 0
                else [upload, download, baseline]
                if round_no % 3 == 1
                else [upload, baseline, download]
            )
            for step in order:
                os.sync()  # every step starts with no other step's dirty pages still being written
                step(round_no)
            call("DELETE", f"/artifacts/{artifact_id}")  # keeps disk use to a few copies of the file

        for box in (source_box, target_box):
            call("POST", f"/sandbox/{box}/stop")

    kinds = ("upload", "download") if moto is None else ("upload",)
    target_ratio = TARGET_RATIO if moto is None else TARGET_RATIO_S3
    medians = {key: statistics.median(values) for key, values in samples.items()}
    ratios = {key: round(medians[key] / medians["baseline"], 2) for key in kinds}
    # Best against best: less sensitive than medians to other work on a shared machine.
    min_ratios = {key: round(min(samples[key]) / min(samples["baseline"]), 2) for key in kinds}
    peak_growth = max(entry["growth_mib"] for entries in memory.values() for entry in entries)
    return {
        "size_bytes": size,
        "size_mib": mib(size),
        "rounds": rounds,
        "create_file_s": round(create_s, 2),
        "sha256": expected_sha,
        "results": {
            key: {**summary(values), "MiB_per_s": round(size / 2**20 / medians[key], 1)}
            for key, values in samples.items()
        },
        "samples_s": {key: [round(v, 3) for v in values] for key, values in samples.items()},
        "ratio_to_baseline": ratios,
        **(
            {"ratio_to_sequential_reference": round(medians["upload"] / medians["sequential"], 2)}
            if "sequential" in medians
            else {}
        ),
        "min_ratio_to_baseline": min_ratios,
        "download_writeback_after_s": [round(v, 3) for v in writeback],
        "worker_pid": worker.pid,
        "worker_memory": memory,
        "worker_peak_growth_mib": peak_growth,
        "storage": "local" if moto is None else "s3 (moto_server)",
        "moto_rss_after_round_mib": moto_rss,
        "target_ratio": target_ratio,
        "target_growth_mib": TARGET_GROWTH_MIB,
        "meets_target": {
            **{key: ratios[key] <= target_ratio for key in kinds},
            "worker_memory": peak_growth <= TARGET_GROWTH_MIB,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=parse_size("1GiB"), help="file size, e.g. 1GiB (default) or 256MiB"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--storage",
        choices=("local", "s3"),
        default="local",
        help="artifact storage: the local filesystem (default) or S3 on a moto_server started here",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    with tempfile.TemporaryDirectory(prefix="stowage-bench-transfer-", ignore_cleanup_errors=True) as tmp:
        # The source, the stored blob, the downloaded copy and the baseline copy, plus slack.
        free = shutil.disk_usage(tmp).free
        if free < 5 * args.size:
            parser.error(f"{tmp} has {mib(free)} MiB free; this run needs about {mib(5 * args.size)} MiB")
        if args.storage == "s3":
            with (
                MotoServer(Path(tmp) / "moto.log") as moto,
                LocalStack(Path(tmp) / "var", env=moto.stack_env()) as stack,
            ):
                result = measure(stack, args.size, args.rounds, moto)
        else:
            with LocalStack(Path(tmp) / "var") as stack:
                result = measure(stack, args.size, args.rounds)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['size_mib']:.0f} MiB file, {result['rounds']} rounds, interleaved")
    if args.storage == "s3":
        print("storage: S3 on moto_server (in-memory stand-in; not real S3 performance)")
    print(f"{'':34}{'median':>9}{'min':>9}{'max':>9}{'MiB/s':>9}{'ratio':>8}{'min/min':>9}  (s)")
    labels = {
        "upload": "upload sandbox -> storage (API)",
        "download": "download storage -> sandbox (API)",
        "baseline": "baseline: chunked copy + sha256",
    }
    if args.storage == "s3":
        labels = {
            "upload": "upload sandbox -> S3 (API)",
            "baseline": "baseline: boto3 upload_file",
            "sequential": "ref: sequential parts + SHA-256",
        }
    for key, label in labels.items():
        row = result["results"][key]
        ratio = (
            f"{result['ratio_to_baseline'][key]:>7.2f}x{result['min_ratio_to_baseline'][key]:>8.2f}x"
            if key in result["ratio_to_baseline"]
            else ""
        )
        print(
            f"{label:34}{row['median_s']:>9.2f}{row['min_s']:>9.2f}{row['max_s']:>9.2f}{row['MiB_per_s']:>9.1f}{ratio}"
        )
    if result["download_writeback_after_s"]:
        print(
            f"sync right after each download (dirty pages it left, not in its time): {', '.join(f'{v:.2f}' for v in result['download_writeback_after_s'])} s"
        )
    for kind, entries in result["worker_memory"].items():
        shown = ", ".join(f"{e['before_mib']:.0f}->{e['peak_mib']:.0f} (+{e['growth_mib']:.1f})" for e in entries)
        print(f"worker RSS during {kind} (MiB, before->peak): {shown}")
    met = result["meets_target"]
    if "ratio_to_sequential_reference" in result:
        print(
            f"upload / sequential SHA-256 multipart reference (medians): {result['ratio_to_sequential_reference']:.2f}x"
        )
    if result["moto_rss_after_round_mib"]:
        print(
            f"moto_server RSS after each round (MiB, objects still stored): {', '.join(f'{v:.0f}' for v in result['moto_rss_after_round_mib'])}"
        )
    for key in result["ratio_to_baseline"]:
        print(
            f"{key}: {result['ratio_to_baseline'][key]:.2f}x the baseline  ({'meets' if met[key] else 'MISSES'} the target of <= {result['target_ratio']}x)"
        )
    print(
        f"worker peak memory growth: {result['worker_peak_growth_mib']:.1f} MiB  ({'meets' if met['worker_memory'] else 'MISSES'} the target of <= {TARGET_GROWTH_MIB:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
