#!/usr/bin/env python3
"""Many agents at once: does the stack keep up, and do health checks still answer?

Starts the whole stack as ``make run`` does (``manage.py runstack``, in a temporary var dir, on a
free port), bootstraps an organization, makes a few sandboxes each holding a 4 MiB file, then
runs ``--clients`` concurrent clients (httpx, asyncio) for ``--seconds``: half of them upload the
file as an artifact again and again, half run ``sh -c "sleep 1"``; meanwhile ``/healthz`` is
probed every 100 ms from a process of its own. It reports p50/p99 per kind, /healthz p99 and
max, failures, throughput, and counts the artifacts the uploads made (none lost, none
duplicated).

    .venv/bin/python bench/load.py [--clients 200] [--seconds 60] [--repo PATH] [--json] [--log FILE]
    REDIS_URL=redis://127.0.0.1:6379/14 DATABASE_URL=postgres://postgres@127.0.0.1:5432/stowage_load \\
        .venv/bin/python bench/load.py

``--repo`` runs the same load against another checkout of Stowage (a worktree of an earlier
commit, for a baseline measured in the same session). Targets: ``sleep 1`` p50 <= 1.3 s and
p99 <= 2.5 s, /healthz p99 <= 50 ms, no failure, no artifact lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
FILE_BYTES = 4 << 20
CLIENTS_PER_SANDBOX = 10
REMOTE_PREFIX = "load/"


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(samples: list[float]) -> dict[str, float]:
    return {
        "count": len(samples),
        "p50_ms": round(percentile(samples, 0.50) * 1000, 1),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1) if samples else float("nan"),
        "mean_ms": round(statistics.fmean(samples) * 1000, 1) if samples else float("nan"),
    }


async def _checked(response, what: str):
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json()


async def prepare(client, sandboxes: int) -> list[str]:
    async def one() -> str:
        made = await _checked(await client.post("/sandbox/create", json={"timeout_seconds": 3600}), "create")
        sid = made["sandbox_id"]
        command = f"head -c {FILE_BYTES} /dev/urandom > /workspace/upload.bin"
        await _checked(await client.post(f"/sandbox/{sid}/execute", json={"command": command}), "make file")
        return sid

    return list(await asyncio.gather(*(one() for _ in range(sandboxes))))


async def run_load(
    base_url: str, api_key: str, org_id: str, *, clients: int, seconds: float, uploaders: int | None = None
) -> dict:
    import httpx

    headers = {"Authorization": f"ApiKey {api_key}", "X-Org-Id": org_id}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    own = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(300.0)
    async with httpx.AsyncClient(base_url=base_url + "/api/v1", headers=headers, limits=limits, timeout=timeout) as api:
        sandboxes = await prepare(api, max(1, clients // CLIENTS_PER_SANDBOX))
        uploaders = clients // 2 if uploaders is None else uploaders
        latencies: dict[str, list[float]] = {"exec": [], "upload": []}
        # Of each execute, the time the runtime reports for the command itself (s).
        in_runtime: list[float] = []
        failures: dict[str, list[str]] = {"exec": [], "upload": [], "healthz": []}
        uploaded: list[str] = []
        started = time.monotonic()
        deadline = started + seconds

        async def worker(index: int) -> None:
            # A client of its own, as each agent has: one shared pool of hundreds of connections
            # costs httpx more CPU per request (it scans them all) than the server spends.
            async with httpx.AsyncClient(
                base_url=base_url + "/api/v1", headers=headers, limits=own, timeout=timeout
            ) as api:
                await work(index, api)

        async def work(index: int, api) -> None:
            kind = "upload" if index < uploaders else "exec"
            sid = sandboxes[index % len(sandboxes)]
            n = 0
            while time.monotonic() < deadline:
                n += 1
                begun = time.monotonic()
                try:
                    if kind == "exec":
                        response = await api.post(f"/sandbox/{sid}/execute", json={"command": ["sh", "-c", "sleep 1"]})
                        ok = response.status_code == 200 and response.json().get("exit_code") == 0
                        if ok:
                            in_runtime.append(response.json()["duration_ms"] / 1000)
                    else:
                        remote = f"{REMOTE_PREFIX}{index}/{n}.bin"
                        response = await api.post(
                            f"/sandbox/{sid}/artifacts/upload",
                            json={"path": "/workspace/upload.bin", "remote_path": remote},
                        )
                        ok = response.status_code == 200 and response.json().get("size") == FILE_BYTES
                        if ok:
                            uploaded.append(remote)
                except httpx.HTTPError as exc:
                    failures[kind].append(f"{type(exc).__name__}: {exc}")
                    continue
                if ok:
                    latencies[kind].append(time.monotonic() - begun)
                else:
                    failures[kind].append(f"{response.status_code} {response.text[:200]}")

        # From a process of its own, as an orchestrator probes: in this one it would wait behind
        # the clients' own work in the event loop.
        prober = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--probe-url",
            base_url + "/healthz",
            "--seconds",
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.gather(*(worker(i) for i in range(clients)))
        probed = json.loads((await prober.communicate())[0])
        health = probed["latencies"]
        failures["healthz"] = probed["failures"]
        elapsed = time.monotonic() - started

        stored: list[str] = []
        cursor = None
        while True:
            params = {"prefix": REMOTE_PREFIX, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = await _checked(await api.get("/artifacts", params=params), "list")
            stored.extend(a["remote_path"] for a in page["artifacts"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    requests = len(latencies["exec"]) + len(latencies["upload"])
    counted = set(stored)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "exec": describe(latencies["exec"]),
        "exec_in_runtime": describe(in_runtime),
        "upload": describe(latencies["upload"]),
        "healthz": describe(health),
        "failures": {kind: len(items) for kind, items in failures.items()},
        "failure_examples": {kind: items[:3] for kind, items in failures.items() if items},
        "throughput_rps": round(requests / elapsed, 1),
        "artifacts": {
            "uploads_answered": len(uploaded),
            "stored": len(stored),
            "lost": len(set(uploaded) - counted),
            "duplicated": len(stored) - len(counted),
        },
    }


def probe(url: str, seconds: float) -> dict:
    """GET ``url`` every 100 ms for ``seconds`` on one kept-alive connection: the latencies of
    its 200 answers (s) and what went wrong otherwise."""
    parts = urlsplit(url)
    latencies: list[float] = []
    failures: list[str] = []
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        begun = time.monotonic()
        try:
            connection.request("GET", parts.path)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append(time.monotonic() - begun)
            else:
                failures.append(str(response.status))
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
            connection.close()
        time.sleep(max(0.0, 0.1 - (time.monotonic() - begun)))
    return {"latencies": latencies, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the Stowage checkout whose stack to start")
    parser.add_argument("--uploaders", type=int, default=None, help="clients that upload (default: half)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log", type=Path, default=None, help="copy the stack's log here afterwards")
    parser.add_argument("--probe-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_url:
        print(json.dumps(probe(args.probe_url, args.seconds)))
        return 0

    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.stack import LocalStack

    # LocalStack leaves the caller's broker and database out unless they are passed on purpose.
    env = {name: os.environ[name] for name in ("REDIS_URL", "DATABASE_URL") if os.environ.get(name)}
    with (
        tempfile.TemporaryDirectory(prefix="stowage-load-") as tmp,
        LocalStack(Path(tmp) / "var", env=env, startup_timeout=180) as stack,
    ):
        result = asyncio.run(
            run_load(
                stack.base_url,
                stack.api_key,
                stack.org_id,
                clients=args.clients,
                seconds=args.seconds,
                uploaders=args.uploaders,
            )
        )
        # The first lines of each different server error, to tell what the failures were.
        errors = [line for line in stack.log_tail(2_000_000).splitlines() if "Error:" in line]
        result["server_errors"] = sorted(set(errors))[:10]
        if args.log:
            shutil.copyfile(stack.log, args.log)
    result["repo"] = str(repo)
    result["backend"] = {"redis": env.get("REDIS_URL", "embedded"), "database": env.get("DATABASE_URL", "sqlite")}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for kind in ("exec", "exec_in_runtime", "upload", "healthz"):
            row = result[kind]
            print(
                f"{kind:15} n={row['count']:5} p50={row['p50_ms']:8.1f} ms p99={row['p99_ms']:8.1f} ms max={row['max_ms']:8.1f} ms"
            )
        print(
            f"throughput {result['throughput_rps']} req/s; failures {result['failures']}; artifacts {result['artifacts']}"
        )
        for kind, examples in result["failure_examples"].items():
            print(f"  {kind}: {examples}")
        for line in result["server_errors"]:
            print(f"  server: {line[:300]}")
    ok = (
        not any(result["failures"].values())
        and result["artifacts"]["lost"] == 0
        and result["artifacts"]["duplicated"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
