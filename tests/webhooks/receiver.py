"""A real HTTP receiver on 127.0.0.1 for webhook tests: it verifies every request's signature
with the ``standardwebhooks`` package and answers as the test tells it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    at: float
    # The secrets (of those the test gave) whose signature this request carries.
    verified_with: list[str] = field(default_factory=list)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    # Seconds to wait before answering; an Event to wait on instead.
    delay: float = 0
    block: threading.Event | None = None


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.secrets: list[str] = []
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.default = Answer()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = Received(headers=headers, body=body, path=self.path, at=time.time())
                for secret in receiver.secrets:
                    key = secret if secret.startswith("whsec_") else secret.encode()
                    try:
                        StandardWebhook(key).verify(body, headers)
                    except WebhookVerificationError:
                        continue
                    record.verified_with.append(secret)
                with receiver.lock:
                    receiver.received.append(record)
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer.block is not None:
                    answer.block.wait(60)
                elif answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.received) >= count:
                return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")
