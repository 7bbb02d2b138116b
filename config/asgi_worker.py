"""gunicorn's worker for the ASGI application: uvicorn's, with gunicorn's access log kept.

uvicorn would write access lines of its own; instead each request's line goes through gunicorn's
logger (``StowageLogger`` in gunicorn.conf.py: redacted, JSON in production, with the request id
from the response), as under the threaded worker before.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from uvicorn_worker import UvicornWorker


class _Response:
    def __init__(self) -> None:
        self.status = "-"
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


def _environ(scope: dict[str, Any]) -> dict[str, Any]:
    client = scope.get("client") or ("-", 0)
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "")
    environ = {
        "REMOTE_ADDR": client[0],
        "REQUEST_METHOD": scope.get("method", "-"),
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": path + ("?" + query if query else ""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        environ["HTTP_" + key] = value.decode("latin-1")
    return environ


class AccessLog:
    """ASGI middleware: one access line per HTTP request, written when its response ends."""

    def __init__(self, app, log) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.log.access_log_enabled:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        response = _Response()

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                response.status = str(message["status"])
                response.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                response.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            environ = _environ(scope)
            request_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
            elapsed = timedelta(seconds=time.monotonic() - started)
            self.log.access(response, request_headers, environ, elapsed)


class StowageUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = AccessLog(self.wsgi, self.log)
