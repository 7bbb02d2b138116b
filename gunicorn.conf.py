"""gunicorn settings for Stowage's web processes: ``gunicorn config.asgi:application``.

gunicorn reads this file from the directory it starts in, so ``make run`` (``manage.py
runstack``) picks it up too; the options runstack passes on its command line win over these.
Every value can be changed through the environment named beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gunicorn.glogging import Logger

from ops.logging import redact


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


_production = os.environ.get("STOWAGE_PRODUCTION", "").strip().lower() in {"1", "true", "yes", "on"}
LOG_FORMAT = (os.environ.get("STOWAGE_LOG_FORMAT") or ("json" if _production else "plain")).strip().lower()

wsgi_app = "config.asgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")

# uvicorn workers (an event loop each) serving Django under ASGI: a request that waits on a sandbox
# host (execute, its stream, file calls, transfers) awaits the answer and holds no thread, so one
# process holds thousands of them. Synchronous views and the ORM run in threads of their own.
# Size workers for CPU (about one per core), not for the number of concurrent requests.
worker_class = "config.asgi_worker.StowageUvicornWorker"
workers = _env_int("WEB_CONCURRENCY", 2)

# The event loop reports to the arbiter while requests wait, so a long download or SSE stream
# does not trip this; it only kills a worker that hangs as a whole.
timeout = _env_int("GUNICORN_TIMEOUT", 120)
# On SIGTERM (deploy, scale-in) running requests get this long to finish: uploads and streams
# past it are cut and the SDK retries them (every POST is safe to retry).
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 60)
# Keep it above the load balancer's idle timeout (ALB: 60 s), or the balancer may reuse a
# connection gunicorn has just closed and answer 502.
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
# A fresh process now and then bounds slow leaks; jitter keeps them from restarting together.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 500)
# The heartbeat files live in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# Forwarded headers (X-Forwarded-For, X-Forwarded-Proto) are trusted only from these addresses.
# Set FORWARDED_ALLOW_IPS to your load balancer's addresses (or "*" when only the balancer can
# reach gunicorn, e.g. inside a private network); Django itself trusts X-Forwarded-Proto through
# SECURE_PROXY_SSL_HEADER in production and X-Forwarded-For only with
# STOWAGE_TRUST_X_FORWARDED_FOR=1, so the proxy in front must overwrite both headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Each machine may run several stacks (tests, benchmarks): no shared $HOME control socket.
control_socket_disable = True

accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Path without the query string (presigned signatures live there), request id from the response.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'

_ACCESS_FIELDS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "user_agent": "a",
    "request_id": "{x-request-id}o",
}


class StowageLogger(Logger):
    """gunicorn's logger with share tokens, signatures and keys redacted from access lines, which
    are JSON objects (like the application's) when STOWAGE_LOG_FORMAT is json."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}

    def access(self, resp, req, environ, request_time):
        if LOG_FORMAT != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": "request",
        }
        entry.update({name: atoms.get(atom) for name, atom in _ACCESS_FIELDS.items()})
        self.access_log.info(json.dumps(entry, default=str))
        return None


logger_class = StowageLogger


# --- Prometheus multiprocess mode ---------------------------------------------------------------
# With PROMETHEUS_MULTIPROC_DIR set (in the environment gunicorn starts with), every worker writes
# its metrics to files there and /metrics adds them up; without it each scrape sees one worker.


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.environ.get("STOWAGE_METRICS_WIPE_ON_START", "1") == "1":
        # Files of a previous run would otherwise be counted again.
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for child in path.iterdir():
            if child.is_file() and child.suffix == ".db":
                child.unlink()
            elif child.is_dir():
                shutil.rmtree(child, ignore_errors=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
