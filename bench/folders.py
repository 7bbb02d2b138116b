#!/usr/bin/env python3
"""What moving a folder between sandboxes costs, against ``tar`` and ``sha256sum`` on the same tree.

Starts the whole stack (``manage.py runstack``) in a temporary directory with two sandboxes, and
for each shape of folder (``--small``: files of 4 KiB, default 10,000; ``--large``: files of
50 MiB, default 20) times, interleaved over ``--rounds`` rounds, each step after an ``os.sync()``:

  (a) upload:    ``POST /sandbox/{a}/artifacts/upload`` of the folder (sandbox -> storage);
  (b) download:  ``POST /sandbox/{b}/artifacts/download`` of it to a new path (storage -> sandbox);
  (c) re-upload: the same folder again under another remote_path: the organization has every
      file, so no file's bytes are stored (storage must not grow);
  (d) baseline for (a): ``tar -cf`` of the tree into a file beside it plus a ``sha256sum`` pass
      over the tree's files;
  (e) baseline for (b): ``tar -xf`` of that archive into a new directory plus a ``sha256sum`` pass
      over what it wrote.

Each round writes new random bytes into the tree first (outside the timings), so every upload in
(a) stores its files afresh. Targets: the medians of (a) and (b) each <= 1.5x their baseline's;
(c) grows storage by less than 1 % of the folder's size.

    .venv/bin/python bench/folders.py [--small 10000] [--large 20] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

TARGET_RATIO = 1.5


class Stack(LocalStack):
    """The stack, up once /readyz answers: on a loaded machine the schema LocalStack asks for can
    take longer to build than its probe waits."""

    def _wait_until_up(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runstack exited while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=30) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the stack did not answer within 300 s:\n{self.log_tail()}")


SHAPES = {"small": 4 << 10, "large": 50 << 20}


def du(path: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def timed(step) -> float:
    os.sync()
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def sha_pass(tree: Path) -> None:
    """``find . -type f -print0 | xargs -0 sha256sum`` over the tree."""
    found = subprocess.run(["find", ".", "-type", "f", "-print0"], cwd=tree, check=True, capture_output=True).stdout
    subprocess.run(["xargs", "-0", "-r", "sha256sum"], input=found, cwd=tree, check=True, stdout=subprocess.DEVNULL)


def make_tree(call, sandbox_id: str, files: int, size: int) -> None:
    """/workspace/tree/d of the sandbox made again with ``files`` files of ``size`` new random
    bytes: one stream of /dev/urandom cut into the files."""
    made = call(
        "POST",
        f"/sandbox/{sandbox_id}/execute",
        json={
            "command": [
                "sh",
                "-c",
                f"rm -rf /workspace/tree && mkdir -p /workspace/tree/d && cd /workspace/tree/d && "
                f"head -c {files * size} /dev/urandom | split -a 6 -b {size} - f",
            ],
            "timeout": 3_600_000,
        },
    )
    if made["exit_code"] != 0:
        raise RuntimeError(f"could not make the tree: {made}")


def one_round(call, source: str, target: str, tree: Path, scratch: Path, storage: Path, shape: str, round_no: int):
    """One round of the five steps; their times and the re-upload's growth of storage."""
    times: dict[str, float] = {}
    remote = f"bench/{shape}-{round_no}"
    artifact: dict = {}

    def upload() -> None:
        artifact.update(
            call(
                "POST",
                f"/sandbox/{source}/artifacts/upload",
                json={"path": "/workspace/tree", "remote_path": remote},
            )
        )

    def download() -> None:
        call(
            "POST",
            f"/sandbox/{target}/artifacts/download",
            json={"artifact_id": artifact["id"], "target_path": f"/workspace/in-{round_no}"},
        )

    def reupload() -> None:
        again = call(
            "POST",
            f"/sandbox/{source}/artifacts/upload",
            json={"path": "/workspace/tree", "remote_path": remote + "-again"},
        )
        if again["checksum"] != artifact["checksum"]:
            raise RuntimeError("the same folder got another checksum")

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    archive = scratch / "tree.tar"
    out = scratch / "out"

    def tar_create() -> None:
        subprocess.run(["tar", "-cf", str(archive), "-C", str(tree), "."], check=True)
        sha_pass(tree)

    def tar_extract() -> None:
        out.mkdir()
        subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
        sha_pass(out)

    times["tar_c"] = timed(tar_create)
    times["upload"] = timed(upload)
    times["tar_x"] = timed(tar_extract)
    times["download"] = timed(download)
    before = du(storage)
    times["reupload"] = timed(reupload)
    grown = du(storage) - before
    return times, grown, artifact


def measure(stack: LocalStack, shape: str, count: int, rounds: int) -> dict[str, object]:
    size = SHAPES[shape]
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    with httpx.Client(
        base_url=stack.base_url + "/api/v1", headers=headers, timeout=httpx.Timeout(3600, connect=30)
    ) as http:

        def call(method: str, url: str, **kwargs) -> dict:
            response = http.request(method, url, **kwargs)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:1000]}")
            return response.json()

        # Each workspace is a disk of its own: room for the tree (and, in the target, a copy per round).
        disk = f"{(count * size * (rounds + 1) >> 20) + 512}Mi"
        box = {"timeout_seconds": 3 * 3600, "disk": disk}
        source = call("POST", "/sandbox/create", json=box)["sandbox_id"]
        target = call("POST", "/sandbox/create", json=box)["sandbox_id"]
        workspace = stack.var_dir / "sandboxes"
        tree = workspace / source / "workspace" / "tree"
        scratch = stack.var_dir / "bench-folders"
        storage = stack.var_dir / "storage"
        samples: dict[str, list[float]] = {k: [] for k in ("upload", "download", "reupload", "tar_c", "tar_x")}
        growth: list[int] = []
        total = count * size
        for round_no in range(rounds):
            make_tree(call, source, count, size)
            times, grown, artifact = one_round(call, source, target, tree, scratch, storage, shape, round_no)
            for key, value in times.items():
                samples[key].append(value)
            growth.append(grown)
            if artifact["entry_count"] != count + 1:
                raise RuntimeError(f"the folder has {artifact['entry_count']} entries, expected {count + 1}")
            shutil.rmtree(workspace / target / "workspace" / f"in-{round_no}", ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
        medians = {key: statistics.median(values) for key, values in samples.items()}
        return {
            "shape": shape,
            "files": count,
            "file_bytes": size,
            "rounds": rounds,
            "samples_s": samples,
            "median_s": medians,
            "upload_ratio": medians["upload"] / medians["tar_c"],
            "download_ratio": medians["download"] / medians["tar_x"],
            "reupload_storage_growth_bytes": growth,
            "upload_ok": medians["upload"] <= TARGET_RATIO * medians["tar_c"],
            "download_ok": medians["download"] <= TARGET_RATIO * medians["tar_x"],
            "reupload_ok": max(growth) < total / 100,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="files of 4 KiB (0 to skip)")
    parser.add_argument("--large", type=int, default=20, help="files of 50 MiB (0 to skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="stowage-bench-folders-") as tmp:
        env = {"STOWAGE_FOLDER_MAX_ENTRIES": str(max(args.small, args.large) + 10)}
        with Stack(Path(tmp) / "var", env=env) as stack:
            for shape, count in (("small", args.small), ("large", args.large)):
                if count:
                    results.append(measure(stack, shape, count, args.rounds))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            m = r["median_s"]
            print(
                f"{r['files']} files of {r['file_bytes'] >> 10} KiB: "
                f"upload {m['upload']:.2f}s vs tar -c + sha256sum {m['tar_c']:.2f}s ({r['upload_ratio']:.2f}x, "
                f"{'ok' if r['upload_ok'] else 'OVER'}); download {m['download']:.2f}s vs tar -x + sha256sum "
                f"{m['tar_x']:.2f}s ({r['download_ratio']:.2f}x, {'ok' if r['download_ok'] else 'OVER'}); "
                f"re-upload {m['reupload']:.2f}s, storage grew {max(r['reupload_storage_growth_bytes'])} bytes "
                f"({'ok' if r['reupload_ok'] else 'OVER'})"
            )
    return 0 if all(r["upload_ok"] and r["download_ok"] and r["reupload_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
