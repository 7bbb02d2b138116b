from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.test import Client

from accounts.models import Membership, Role
from accounts.services import organization_bootstrap
from artifacts.storage import blob_storage, is_s3
from config import stack
from config.celery import app as celery_app
from sandboxes.runtime import LocalRuntime

pytest_plugins = ["tests.database_only"]


@dataclass
class ApiUser:
    """An organization with its owner and an API key, and a client that sends the key."""

    org_id: str
    key: str
    username: str
    password: str
    client: Client

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"ApiKey {self.key}", "X-Org-Id": self.org_id, **extra}

    def get(self, path: str, data: dict[str, Any] | None = None, **headers: str):
        return self.client.get("/api/v1" + path, data, headers=self.headers(**headers))

    def post(self, path: str, body: Any = None, **headers: str):
        return self.client.post(
            "/api/v1" + path,
            body if body is not None else {},
            content_type="application/json",
            headers=self.headers(**headers),
        )

    def delete(self, path: str, body: Any = None, **headers: str):
        return self.client.delete(
            "/api/v1" + path, body, content_type="application/json", headers=self.headers(**headers)
        )


def _make_user(org_name: str, email: str) -> ApiUser:
    org, user, password, _key, secret = organization_bootstrap(org_name=org_name, email=email)
    return ApiUser(org_id=org.id, key=secret, username=user.get_username(), password=password, client=Client())


@pytest.fixture
def owner(db) -> ApiUser:
    return _make_user("Acme", "owner@acme.test")


@pytest.fixture
def stranger(db) -> ApiUser:
    return _make_user("Globex", "eve@globex.test")


@pytest.fixture
def member(db, owner):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="member", password="member-pass-1234")
    Membership.objects.create(user=user, organization_id=owner.org_id, role=Role.MEMBER)
    return user


@pytest.fixture(scope="session", autouse=True)
def var_log_dir():
    """Where the servers and workers that tests start write their logs, whichever pass runs."""
    log_dir = settings.VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir


@pytest.fixture(scope="session", autouse=True)
def workspace_mounts_released(tmp_path_factory):
    """Workspace filesystems that a run's sandboxes left mounted (a worker killed by a test, a
    stack started in a temporary directory) are detached when the run ends."""
    yield
    import subprocess

    from sandboxes.runtime import disk

    roots = tuple(os.fspath(root) + os.sep for root in (settings.VAR_DIR, tmp_path_factory.getbasetemp()))
    for point in disk.mount_points():
        if point.startswith(roots):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture(scope="session")
def broker():
    """The broker of the settings in force: the embedded Redis unless REDIS_URL names a server."""
    if not settings.EMBEDDED_REDIS:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        yield settings.REDIS_URL
        return
    data_dir = settings.VAR_DIR / "redis"
    shutil.rmtree(data_dir, ignore_errors=True)
    log_dir = settings.VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    process = stack.start_embedded_redis(settings.EMBEDDED_REDIS_SOCKET, data_dir, log=log_dir / "redis.log")
    yield str(settings.EMBEDDED_REDIS_SOCKET)
    stack.stop([process])


def clear_refusal_counters() -> None:
    from django.core.cache import cache

    # Django's Redis cache has no keys(): they are found in its Redis, by the cache's own prefix.
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=cache.make_key("audit-refusals:*")))
    if keys:
        client.delete(*keys)


@pytest.fixture
def refusal_counters(broker):
    """For a test that expects its refusal in the log: refusals are recorded up to a limit a minute
    per kind and source, counted in the cache, and other tests' refusals from the same address in
    the same minute (the test client's is always 127.0.0.1) would count against that limit."""
    clear_refusal_counters()
    yield
    clear_refusal_counters()


# Small enough that a test can make a file over it quickly.
WORKER_ARTIFACT_MAX_BYTES = 20 << 20
WORKER_FOLDER_MAX_ENTRIES = 300
WORKER_FOLDER_MAX_BYTES = 30 << 20


def worker_env(**extra: str) -> dict[str, str]:
    from django.db import connection

    env = dict(os.environ)
    env.update(
        STOWAGE_VAR_DIR=str(settings.VAR_DIR),
        STOWAGE_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        STOWAGE_HOST=settings.STOWAGE_HOST,
        PYTHONUNBUFFERED="1",
        STOWAGE_ARTIFACT_MAX_BYTES=str(WORKER_ARTIFACT_MAX_BYTES),
        # Webhook tests send to receivers of their own on loopback.
        STOWAGE_WEBHOOK_ALLOWED_HOSTS=",".join(settings.STOWAGE_WEBHOOK_ALLOWED_HOSTS),
        STOWAGE_FOLDER_MAX_ENTRIES=str(WORKER_FOLDER_MAX_ENTRIES),
        STOWAGE_FOLDER_MAX_BYTES=str(WORKER_FOLDER_MAX_BYTES),
    )
    env.update(extra)
    return env


# Threads of the test host's command pool and of its pool for file calls and transfers.
COMMAND_SLOTS = 4
FILE_CALL_SLOTS = 4


@pytest.fixture(scope="session")
def worker(broker, django_db_setup, django_db_blocker):
    """A real Celery worker process serving this host's sandbox queue and the shared queue."""
    celery_app.control.purge()
    log_dir = settings.VAR_DIR / "log"
    log = log_dir / "worker.log"
    log.unlink(missing_ok=True)
    # The host's two pools, as runstack starts them: file calls and transfers, and commands.
    files_argv, commands_argv = stack.host_worker_argvs(
        settings.STOWAGE_HOST, commands=COMMAND_SLOTS, files=FILE_CALL_SLOTS
    )
    process = stack.spawn(files_argv, env=worker_env(), log=log)
    commands = stack.spawn(commands_argv, env=worker_env(), log=log)
    try:
        stack.wait_for_worker(celery_app, settings.STOWAGE_HOST, timeout=60, process=process)
        stack.wait_for_worker(celery_app, settings.STOWAGE_HOST, timeout=60, process=commands, name="commands")
    except RuntimeError:
        stack.stop([process, commands])
        raise RuntimeError("the test worker did not start:\n" + log.read_text()[-4000:]) from None
    yield process
    stack.stop([process, commands])
    # Unmount the workspaces of sandboxes the tests left running before their tree goes.
    runtime = LocalRuntime(settings.SANDBOX_ROOT, disk_enforce=settings.SANDBOX_DISK_ENFORCE)
    for sandbox_id in runtime.sandbox_ids():
        runtime.destroy(sandbox_id)
    shutil.rmtree(settings.SANDBOX_ROOT, ignore_errors=True)


# What every e2e and browser module on the shared stack can live with: webhooks may point at
# loopback, where the tests' receivers listen.
SHARED_STACK_ENV = {"STOWAGE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32"}


@dataclass(frozen=True)
class StackOrganization:
    """An organization of its own on a running stack, what an e2e or browser module sees as
    ``stack``: the modules that share one stack share its processes and none of their data.

    Its owner is staff, as the owner of a stack's first organization is, so the pages look as they
    do on a stack of one's own."""

    local: stack.LocalStack
    org_id: str
    api_key: str
    username: str
    password: str

    @classmethod
    def create(cls, local: stack.LocalStack, module: str) -> StackOrganization:
        """The organization of the test module named ``module`` (``tests.e2e.test_sdk``)."""
        slug = "-".join(part.removeprefix("test_") for part in module.split(".")[1:]).replace("_", "-")
        # Usernames are the email's local part and unique on the instance, as the slug is.
        made = local.bootstrap(slug.replace("-", " ").capitalize(), f"owner-{slug}@localstack.test")
        local.manage("staff", "promote", made["username"])
        return cls(local, made["org_id"], made["api_key"], made["username"], made["password"])

    @property
    def base_url(self) -> str:
        return self.local.base_url

    @property
    def var_dir(self) -> Path:
        return self.local.var_dir

    def manage(self, *args: str, timeout: float = 120):
        return self.local.manage(*args, timeout=timeout)

    def bootstrap(self, org: str, email: str) -> dict[str, str]:
        return self.local.bootstrap(org, email)

    def log_tail(self, chars: int = 4000) -> str:
        return self.local.log_tail(chars)


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.LocalStack]:
    """The whole stack, started once for every e2e and browser module that needs no settings of its
    own; each of them works in an organization of its own on it (``StackOrganization``)."""
    with stack.LocalStack(tmp_path_factory.mktemp("shared-stack") / "var", env=SHARED_STACK_ENV) as running:
        yield running


@pytest.fixture
def live(worker, transactional_db):
    """Tests whose requests reach the worker: committed data, a running worker."""
    yield worker
    # A command answers before it writes its events; let the worker finish writing them before
    # the tables are emptied for the next test (an insert meeting that TRUNCATE can deadlock).
    _wait_until_worker_idle()


def _wait_until_worker_idle(patience: float = 10) -> None:
    # Two worker processes on this host (files and commands): a reply from each is all there is.
    inspector = celery_app.control.inspect(timeout=1.0, limit=2)
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        replies = inspector.active() or {}
        if len(replies) == 2 and not any(replies.values()):
            return
        time.sleep(0.05)


@pytest.fixture
def sandbox(live, owner) -> dict[str, Any]:
    response = owner.post("/sandbox/create", {"timeout_seconds": 600})
    assert response.status_code == 201, response.content
    return response.json()


@dataclass
class DashboardUsers:
    """Signed-in browsers (Django test clients) for each role of the owner's organization,
    one for a stranger from another organization, and an anonymous one."""

    org_id: str
    owner: Client
    admin: Client
    member: Client
    viewer: Client
    stranger: Client
    anonymous: Client

    def by_role(self) -> dict[str, Client]:
        return {"owner": self.owner, "admin": self.admin, "member": self.member, "viewer": self.viewer}


@pytest.fixture
def dashboard(owner, stranger) -> DashboardUsers:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    clients = {}
    for role in ("admin", "member", "viewer"):
        user = User.objects.create_user(username=f"{role}-user", password="pw-unused")
        Membership.objects.create(user=user, organization_id=owner.org_id, role=role)
        clients[role] = Client()
        clients[role].force_login(user)
    owner_client = Client()
    owner_client.force_login(User.objects.get(username=owner.username))
    stranger_client = Client()
    stranger_client.force_login(User.objects.get(username=stranger.username))
    return DashboardUsers(
        org_id=owner.org_id, owner=owner_client, stranger=stranger_client, anonymous=Client(), **clients
    )


@pytest.fixture(scope="session")
def s3_server():
    """An S3 API on loopback (moto's server, from moto[server]) for the S3 storage tests; its
    endpoint URL. Every test makes a bucket of its own in it."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    moto_server = Path(sys.executable).with_name("moto_server")
    if not moto_server.exists():
        pytest.fail("moto_server is missing: install requirements-test.txt (moto[server])")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_dir = settings.VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_dir / "moto.log", "wb") as log:
        # Without its global CORS, moto answers browsers by each bucket's own CORS rules, as S3 does.
        env = {**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true"}
        process = subprocess.Popen(
            [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("moto_server exited:\n" + (log_dir / "moto.log").read_text()[-4000:])
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer within 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


ACCESS_KEY = "stowage-test"
SECRET_KEY = "stowage-test-secret"
REGION = "us-east-1"


class S3:
    """A bucket of the S3 server, seen with a client of its own (not the storage's)."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def object_keys(self) -> set[str]:
        return {entry["Key"] for entry in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", ())}

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def uploads(self) -> list[dict]:
        return self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])


def reset_storages() -> None:
    storages._storages.clear()


@pytest.fixture
def s3(s3_server, settings):
    """A fresh bucket, and the artifact storage pointed at it."""
    bucket = f"stowage-{uuid.uuid4().hex[:12]}"
    store = S3(s3_server, bucket)
    store.client.create_bucket(Bucket=bucket)
    reset_storages()
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_server,
                "region_name": REGION,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": True,
                "signature_version": "s3v4",
                "addressing_style": "path",
            },
        },
    }
    reset_storages()
    assert is_s3(blob_storage())
    yield store
    reset_storages()
