"""/healthz under ASGI is answered before Django: the same answer as through Django, counted the
same, and nothing but a GET of exactly that path is taken from Django."""

from __future__ import annotations

import asyncio

from django.test import Client

from config.asgi import application
from ops import metrics
from tests.asgi_calls import asgi_request
from tests.ops.test_ops import sample


def _call(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict, bytes]:
    return asyncio.run(asgi_request(application, method, path, headers))


def _healthz_count() -> float:
    return (
        sample(
            metrics.exposition().decode(), "stowage_http_requests_total", method="GET", route="healthz", status="200"
        )
        or 0
    )


def test_the_probe_answers_as_through_django_and_is_counted(db) -> None:
    through_django = Client().get("/healthz", HTTP_X_REQUEST_ID="probe-7")
    before = _healthz_count()

    status, headers, body = _call("GET", "/healthz", [(b"x-request-id", b"probe-7")])

    assert status == 200 and body == through_django.content
    assert set(headers) == {name.lower() for name in through_django.headers} | {"content-length"}
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == through_django["Cache-Control"]
    assert headers["x-request-id"] == "probe-7"
    assert headers["x-server-request-id"].startswith("req_") and headers["content-length"] == str(len(body))
    assert _healthz_count() == before + 1


def test_a_request_id_the_server_would_not_keep_is_replaced_by_its_own(db) -> None:
    _, headers, _ = _call("GET", "/healthz", [(b"x-request-id", b"bad id with spaces")])

    assert headers["x-request-id"] == headers["x-server-request-id"]


def test_anything_else_goes_to_django(db) -> None:
    status, _, _ = _call("HEAD", "/healthz")
    assert status == 405
    status, _, _ = _call("GET", "/healthz/")
    assert status == 404
