"""The Redis outage scenario. Not collected with the suite (its name is not test_*.py):
``tests/ops/test_redis_outage.py`` runs it in a pytest of its own whose settings point
at a throwaway Redis server that the scenario stops and restarts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings as django_settings
from django.test import Client

from config import stack

INNER = "STOWAGE_OUTAGE_REDIS_DIR"
BASE_DIR = Path(__file__).resolve().parents[2]


def redis_binary() -> str:
    return "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else stack.redis_server_binary()


# --- the scenario, run only by the outer test ---------------------------------------------------


class ThrowawayRedis:
    """A redis-server on the port of REDIS_URL, append-only in its own directory."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.port = redis_lib.connection.parse_url(url)["port"]
        self.data_dir = data_dir
        self.log = data_dir / "redis.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
        ]
        self.process = stack.spawn(argv, log=self.log)
        client = redis_lib.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited:\n" + self.log.read_text()[-2000:])
            try:
                if client.ping():
                    return
            except redis_lib.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)


@pytest.fixture(scope="session")
def throwaway_redis():
    if not os.environ.get(INNER):
        pytest.fail("run this scenario through tests/ops/test_redis_outage.py")
    server = ThrowawayRedis(os.environ["REDIS_URL"], Path(os.environ[INNER]))
    server.start()
    yield server
    server.stop()


def start_worker(log: Path):
    from config.celery import app as celery_app
    from tests.conftest import worker_env

    process = stack.spawn(stack.worker_argv(django_settings.STOWAGE_HOST, concurrency=2), env=worker_env(), log=log)
    try:
        stack.wait_for_worker(celery_app, django_settings.STOWAGE_HOST, timeout=60, process=process)
    except RuntimeError:
        stack.stop([process])
        raise RuntimeError("the worker did not start:\n" + log.read_text()[-4000:]) from None
    return process


def queue_banner_shown(browser: Client) -> bool:
    from accounts import access

    # The check is cached for a few seconds per process; start this look afresh.
    access._queue_state["checked"] = float("-inf")
    page = browser.get("/")
    assert page.status_code == 200, page.status_code
    return b"task queue is unavailable" in page.content


def assert_broker_unavailable(response, started: float) -> None:
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    assert response["Retry-After"].isdigit(), response.headers
    assert response.json()["error"]["code"] == "BROKER_UNAVAILABLE", response.content
    assert elapsed < 5, f"the 503 took {elapsed:.1f} s"


@pytest.mark.worker
def test_outage_scenario(throwaway_redis, broker, transactional_db, owner, settings):
    from django.contrib.auth import get_user_model

    settings.TRANSFER_WAIT_SECONDS = 20  # a lost task fails the test instead of hanging it

    assert os.environ["REDIS_URL"] == django_settings.CELERY_BROKER_URL
    log = throwaway_redis.data_dir / "worker.log"
    worker = start_worker(log)
    browser = Client()
    browser.force_login(get_user_model().objects.get(username=owner.username))
    sid = None
    try:
        created = owner.post("/sandbox/create", {"timeout_seconds": 600})
        assert created.status_code == 201, created.content
        sid = created.json()["sandbox_id"]
        made = owner.post(
            f"/sandbox/{sid}/execute",
            {"command": "head -c 3M /dev/urandom > /workspace/out.bin && sha256sum /workspace/out.bin"},
        )
        assert made.status_code == 200 and made.json()["exit_code"] == 0, made.content
        expected = "sha256:" + made.json()["stdout"].split()[0]
        assert not queue_banner_shown(browser)

        # Work submitted right before the outage, while the host's worker is down: it waits in Redis.
        stack.stop([worker])
        started = owner.post(
            f"/sandbox/{sid}/artifacts/upload?wait=false", {"path": "out.bin", "remote_path": "outage/out.bin"}
        )
        assert started.status_code == 202, started.content
        transfer_id = started.json()["transfer_id"]
        assert owner.get(f"/transfers/{transfer_id}").json()["state"] in ("queued", "pending"), owner.get(
            f"/transfers/{transfer_id}"
        ).content

        throwaway_redis.stop()

        clock = time.monotonic()
        assert_broker_unavailable(owner.post(f"/sandbox/{sid}/execute", {"command": "true"}), clock)
        clock = time.monotonic()
        assert_broker_unavailable(owner.post("/sandbox/create", {"timeout_seconds": 600}), clock)
        retried = {"path": "out.bin", "remote_path": "outage/retried.bin"}
        clock = time.monotonic()
        assert_broker_unavailable(owner.post(f"/sandbox/{sid}/artifacts/upload", retried), clock)
        clock = time.monotonic()
        assert queue_banner_shown(browser)
        assert time.monotonic() - clock < 3

        # Redis comes back on the same port with the same data; so does the worker.
        throwaway_redis.start()
        worker = start_worker(log)
        deadline = time.monotonic() + 30
        while True:
            state = owner.get(f"/transfers/{transfer_id}").json()
            if state["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state["state"] == "succeeded", state
        artifact = owner.get(f"/artifacts/{state['artifact_id']}").json()
        assert artifact["checksum"] == expected, artifact

        # The SDK retries the upload that got a 503: it is done now, once.
        redone = owner.post(f"/sandbox/{sid}/artifacts/upload", retried)
        assert redone.status_code == 200, redone.content
        assert redone.json()["checksum"] == expected
        listed = sorted(a["remote_path"] for a in owner.get("/artifacts").json()["artifacts"])
        assert listed == ["outage/out.bin", "outage/retried.bin"], listed

        again = owner.post(f"/sandbox/{sid}/execute", {"command": "echo back"})
        assert again.status_code == 200 and again.json()["stdout"].strip() == "back", again.content
        fresh = owner.post("/sandbox/create", {"timeout_seconds": 600})
        assert fresh.status_code == 201, fresh.content
        # The create that got a 503 left no sandbox stuck in "creating".
        statuses = sorted(s["status"] for s in owner.get("/sandboxes").json()["sandboxes"])
        assert "creating" not in statuses, statuses
        assert not queue_banner_shown(browser)
    finally:
        stack.stop([worker])
        if sid is not None:
            shutil.rmtree(django_settings.SANDBOX_ROOT, ignore_errors=True)
