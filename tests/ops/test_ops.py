from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.test import Client

from config import stack
from ops import metrics
from ops.logging import (
    JsonFormatter,
    PlainFormatter,
    RedactFilter,
    RequestIdFilter,
    redact,
)

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def dead_broker(monkeypatch):
    """``config.redis.get_redis()`` answers with a client on a port nothing listens on."""
    port = stack.free_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    monkeypatch.setattr("config.redis.get_redis", lambda: client)
    return client


def capture(logger_name: str, formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    return handler, stream


# --- health ---------------------------------------------------------------------------------


def test_healthz_answers_without_touching_dependencies(dead_broker, monkeypatch):
    monkeypatch.setattr("artifacts.storage.blob_storage", lambda: pytest.fail("healthz touched storage"))
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert response["X-Request-Id"]


def test_readyz_is_ready_when_database_broker_and_storage_answer(db, broker):
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}
    assert "max-age=0" in response["Cache-Control"]


def test_readyz_is_503_naming_the_broker_when_redis_is_unreachable(db, dead_broker):
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert int(response["Retry-After"]) > 0
    assert "127.0.0.1" not in response.content.decode()


def test_readyz_is_503_naming_storage_when_it_fails(db, broker, monkeypatch):
    class BrokenStorage:
        def exists(self, name):
            raise OSError("endpoint unreachable")

    monkeypatch.setattr("artifacts.storage.blob_storage", lambda: BrokenStorage())
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["storage"]
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "error: OSError"}
    assert response["Retry-After"]


def test_health_endpoints_need_no_credentials_and_refuse_writes(db):
    assert Client().post("/healthz").status_code == 405


# --- metrics --------------------------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a text exposition, or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_metrics_count_requests_by_route_pattern_not_raw_path(db, broker):
    client = Client()
    before = (
        sample(
            Client().get("/metrics").content.decode(),
            "stowage_http_requests_total",
            method="GET",
            route="healthz",
            status="200",
        )
        or 0
    )
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/page/abc123")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "stowage_http_requests_total", method="GET", route="healthz", status="200") == before + 2
    assert sample(text, "stowage_http_request_duration_seconds_count", method="GET", route="healthz") >= 2
    assert sample(text, "stowage_http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    assert "abc123" not in text


def test_metrics_use_the_url_pattern_for_api_routes(owner, broker):
    owner.get("/artifacts/art_doesnotexist1")
    text = Client().get("/metrics").content.decode()
    routes = {s.labels.get("route") for s in _samples(text, "stowage_http_requests_total")}
    assert "art_doesnotexist1" not in text
    assert any(route and route.startswith("api/v1/artifacts/<") for route in routes), routes


def _samples(text, name):
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                yield s


def test_metrics_expose_queue_depth_per_queue(db, broker, settings):
    settings.STOWAGE_SANDBOX_HOSTS = ["opstest-a", "opstest-b"]
    client = metrics.probe_redis()
    client.delete("sandbox.opstest-a", "sandbox.opstest-b", "sandbox.opstest-a.exec")
    client.rpush("sandbox.opstest-a", "x", "y", "z")
    client.rpush("sandbox.opstest-a.exec", "x", "y")
    try:
        text = Client().get("/metrics").content.decode()
    finally:
        client.delete("sandbox.opstest-a", "sandbox.opstest-a.exec")
    assert sample(text, "stowage_queue_depth", queue="sandbox.opstest-a") == 3
    assert sample(text, "stowage_queue_depth", queue="sandbox.opstest-a.exec") == 2
    assert sample(text, "stowage_queue_depth", queue="sandbox.opstest-b") == 0
    assert sample(text, "stowage_queue_depth", queue="stowage") is not None
    assert sample(text, "stowage_queue_depth", queue="stowage.webhooks") is not None
    assert sample(text, "stowage_broker_up") == 1


def test_metrics_still_answer_when_redis_is_down(db, dead_broker):
    response = Client().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert sample(text, "stowage_broker_up") == 0
    assert sample(text, "stowage_queue_depth", queue="stowage") is None


def test_metrics_token_when_set(db, broker, monkeypatch):
    monkeypatch.setenv("STOWAGE_METRICS_TOKEN", "metrics-secret-1")
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer metrics-secret-1"}).status_code == 200


def test_transfers_are_counted_with_bytes_and_duration(owner, django_capture_on_commit_callbacks):
    text = Client().get("/metrics").content.decode()
    count = sample(text, "stowage_transfers_total", kind="put", outcome="success") or 0
    moved = sample(text, "stowage_transfer_bytes_total", kind="put") or 0
    data = b"ops-metrics" * 100
    with django_capture_on_commit_callbacks(execute=True):
        put = owner.client.put(
            "/api/v1/artifacts?remote_path=ops/metrics.bin",
            data,
            content_type="application/octet-stream",
            headers=owner.headers(),
        )
    assert put.status_code == 201, put.content
    text = Client().get("/metrics").content.decode()
    assert sample(text, "stowage_transfers_total", kind="put", outcome="success") == count + 1
    assert sample(text, "stowage_transfer_bytes_total", kind="put") == moved + len(data)
    assert sample(text, "stowage_transfer_duration_seconds_count", kind="put", outcome="success") >= 1


# --- logs -----------------------------------------------------------------------------------

SECRETS = {
    "authorization": "Authorization: Bearer stow_AbCdEf0123456789xyz",
    "apikey header": "{'HTTP_AUTHORIZATION': 'ApiKey k3y-value-0123456789'}",
    "api key": "created key stow_Q1w2E3r4T5y6U7i8O9p0",
    "presigned": "GET /dl/art_123?expires=1700000000&kv=1&sig=deadbeefcafebabe0123 200",
    "s3": "https://bucket.s3.amazonaws.com/blobs/x?X-Amz-Credential=AKIAXX%2F2026&X-Amz-Signature=abcdef0123456789",
    "share": "GET /s/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5/download 302",
    "invitation": "GET /join/org_2x7k9/SW52aXRlVG9rZW5TZWNyZXQ0MjQy 200",
    "sso callback": "GET /sso/callback/?state=U3RhdGVTZWNyZXQ0Mg&code=Q29kZVNlY3JldDQy&session_state=abc 302",
    "sso sign-out": "302 https://id.example.com/logout/?id_token_hint=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
}
LEAKS = [
    "stow_AbCdEf0123456789xyz",
    "AbCdEf0123456789xyz",
    "k3y-value-0123456789",
    "stow_Q1w2E3r4T5y6U7i8O9p0",
    "deadbeefcafebabe0123",
    "abcdef0123456789",
    "AKIAXX",
    "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
    "SW52aXRlVG9rZW5TZWNyZXQ0MjQy",
    "U3RhdGVTZWNyZXQ0Mg",
    "Q29kZVNlY3JldDQy",
    "eyJhbGciOiJSUzI1NiJ9",
]


@pytest.mark.parametrize("name", list(SECRETS))
def test_redact_removes_each_kind_of_secret(name):
    out = redact(SECRETS[name])
    assert "[REDACTED]" in out
    for leak in LEAKS:
        assert leak not in out
    assert redact(out) == out


def test_redact_keeps_ordinary_text():
    text = "GET /api/v1/artifacts/art_123/content 200 authorization failed for user bob"
    assert redact(text) == text


@pytest.mark.parametrize("formatter", [JsonFormatter(), PlainFormatter()], ids=["json", "plain"])
def test_log_lines_are_redacted_in_message_args_and_traceback(formatter):
    handler, stream = capture("tests.ops.redact", formatter)
    logger = logging.getLogger("tests.ops.redact")
    try:
        for line in SECRETS.values():
            logger.warning("seen: %s", line)
        try:
            raise ValueError("bad url ?sig=deadbeefcafebabe0123")
        except ValueError:
            logger.exception("request with Authorization: ApiKey stow_Q1w2E3r4T5y6U7i8O9p0 failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count("[REDACTED]") >= len(SECRETS) + 2
    for leak in LEAKS:
        assert leak not in out, (leak, out)


def test_json_lines_carry_time_level_logger_message_and_request_id():
    from ops.logging import request_id_var

    handler, stream = capture("tests.ops.json", JsonFormatter())
    logger = logging.getLogger("tests.ops.json")
    token = request_id_var.set("req_json_1")
    try:
        logger.warning("hello %s", "world")
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    logger.addHandler(handler)
    try:
        logger.warning("outside a request")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) >= {"time", "level", "logger", "message", "request_id"}
    assert first["level"] == "WARNING"
    assert first["logger"] == "tests.ops.json"
    assert first["message"] == "hello world"
    assert first["request_id"] == "req_json_1"
    assert first["time"].endswith("Z")
    assert second["request_id"] is None


def test_request_id_is_on_log_records_emitted_during_a_request(db, dead_broker):
    handler, stream = capture("ops.views", JsonFormatter())
    try:
        response = Client().get("/readyz", headers={"X-Request-Id": "req-ops-test-42"})
    finally:
        logging.getLogger("ops.views").removeHandler(handler)
    assert response["X-Request-Id"] == "req-ops-test-42"
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records, "the failed readiness check logged nothing"
    assert all(record["request_id"] == "req-ops-test-42" for record in records)
    from ops.logging import request_id_var

    assert request_id_var.get() == ""  # reset once the request is over


def _run_with_settings(tmp_path, **env):
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('stowage.check').warning('key %s with sig=abcdef0123456789 at /s/Zm9vYmFyYmF6cXV4', 'stow_Q1w2E3r4T5y6U7i8O9p0')"
    )
    full_env = {k: v for k, v in os.environ.items() if k not in {"STOWAGE_LOG_FORMAT", "STOWAGE_PRODUCTION"}}
    full_env.update(DJANGO_SETTINGS_MODULE="config.settings", STOWAGE_VAR_DIR=str(tmp_path), **env)
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if "stowage.check" in line]


def test_settings_switch_the_console_to_json_and_redact(tmp_path):
    (line,) = _run_with_settings(tmp_path, STOWAGE_LOG_FORMAT="json")
    record = json.loads(line)
    assert record["logger"] == "stowage.check"
    assert record["level"] == "WARNING"
    assert "stow_Q1w2" not in line and "abcdef0123456789" not in line and "Zm9vYmFy" not in line
    assert record["message"] == "key stow_[REDACTED] with sig=[REDACTED] at /s/[REDACTED]"


def test_settings_default_to_plain_in_development_and_json_in_production(tmp_path):
    (plain,) = _run_with_settings(tmp_path)
    assert not plain.startswith("{")
    assert "stow_[REDACTED]" in plain and "stow_Q1w2" not in plain
    (prod,) = _run_with_settings(tmp_path, STOWAGE_PRODUCTION="1", SECRET_KEY="x" * 64, ALLOWED_HOSTS="stowage.example")
    assert json.loads(prod)["message"].startswith("key stow_[REDACTED]")


def test_multiprocess_mode_adds_up_the_files_of_every_process(tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    code = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "[c.get('/healthz') for _ in range(3)]; print(c.get('/metrics').content.decode())"
    )
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings",
        STOWAGE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    env.pop("STOWAGE_METRICS_TOKEN", None)
    env.pop("DATABASE_URL", None)  # the process's own database under its var directory
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert sample(done.stdout, "stowage_http_requests_total", method="GET", route="healthz", status="200") == 3
    assert sample(done.stdout, "stowage_broker_up") is not None
    assert list(metrics_dir.glob("counter_*.db"))


def test_gunicorn_config_loads_and_redacts_access_lines(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "--config", "gunicorn.conf.py", "config.wsgi:application"],
        check=False,
        cwd=BASE_DIR,
        env=dict(os.environ, STOWAGE_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    import runpy

    conf = runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
    assert conf["worker_class"] == "config.asgi_worker.StowageUvicornWorker"
    assert "{x-request-id}o" in conf["access_log_format"]
    assert "%(r)s" not in conf["access_log_format"] and "%(q)s" not in conf["access_log_format"]
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    logger = conf["StowageLogger"](Config())
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/s/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5?sig=deadbeefcafebabe0123",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/s/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
        "QUERY_STRING": "sig=deadbeefcafebabe0123",
    }
    resp = SimpleNamespace(status="200 OK", headers=[("X-Request-Id", "req_1")], sent=10)
    req = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer stow_AbCdEf0123456789xyz")])
    atoms = logger.atoms(resp, req, environ, timedelta(milliseconds=5))
    rendered = json.dumps(atoms)
    for leak in LEAKS:
        assert leak not in rendered
    assert atoms["{x-request-id}o"] == "req_1"


def test_the_asgi_worker_writes_gunicorns_redacted_access_line_with_the_request_id():
    import asyncio
    import logging
    import runpy

    from gunicorn.config import Config

    from config.asgi_worker import AccessLog

    conf = runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", conf["access_log_format"])
    logger = conf["StowageLogger"](cfg)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.access_log = logging.getLogger("tests.asgi-access")
    logger.access_log.handlers = [handler]
    logger.access_log.setLevel(logging.INFO)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"req_7")]})
        await send({"type": "http.response.body", "body": b"0123456789"})

    async def sent(message):
        pass

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/s/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
        "query_string": b"sig=deadbeefcafebabe0123",
        "http_version": "1.1",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"authorization", b"Bearer stow_AbCdEf0123456789xyz"), (b"user-agent", b"tests")],
    }
    asyncio.run(AccessLog(app, logger)(scope, None, sent))
    assert len(lines) == 1
    assert '"GET /s/' in lines[0] and " 200 10 " in lines[0] and "request_id=req_7" in lines[0]
    for leak in LEAKS:
        assert leak not in lines[0]
