"""Fill a fresh database the way the previous main does, through its own services, and write down
every row it then holds (expected.json), for the upgrade test to find again after migrating.

Run by the previous main's code, from a checkout of it (make_fixtures.sh does all of this):

    cd <checkout> && PYTHONPATH=. STOWAGE_VAR_DIR=<dir> [DATABASE_URL=postgres://...] \\
        python <this file> --expected <dir>/expected.json --commit <sha>

The settings choose the database: SQLite at <dir>/stowage.sqlite3, or DATABASE_URL. Blobs go to
<dir>/storage, sandboxes to <dir>/sandboxes (the local runtime). There is no broker and no
worker: publishing a task goes to QueueStandIn, which runs the task's body at once (a worker took
it), keeps it unrun (it waits in the queue) or refuses it (the broker is down). A direct upload's
calls to S3 go to ObjectStoreStandIn, which joins the parts into the local storage.

tests/upgrade/readback.py reads the upgraded rows with model_rows from here, so that rows are
written down the same way before and after the upgrade.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

# The project's apps, plus Django's users: every row of these is what an upgrade must keep.
SEEDED_APPS = ("accounts", "sandboxes", "artifacts", "audit")
SEEDED_EXTRA_MODELS = (("auth", "User"),)


def value_text(field, value: Any) -> str | None:
    """A field's value as text that reads the same from SQLite and PostgreSQL, in old code and new."""
    if value is None:
        return None
    if field.get_internal_type() == "JSONField":
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def model_rows(model) -> dict[str, dict[str, str | None]]:
    """Every row of the model by primary key, each column (by attname) as text."""
    fields = model._meta.concrete_fields
    return {
        str(row.pk): {field.attname: value_text(field, getattr(row, field.attname)) for field in fields}
        for row in model._base_manager.order_by("pk")
    }


def seeded_models() -> list:
    from django.apps import apps

    models = [model for model in apps.get_models() if model._meta.app_label in SEEDED_APPS]
    return models + [apps.get_model(*label) for label in SEEDED_EXTRA_MODELS]


# --- stand-ins for the broker and the object store ---------------------------------------------


class StillWaiting(Exception):
    """The request is still waiting for a worker: the seed leaves it there, as a snapshot."""


class QueueStandIn:
    """In place of publishing to Celery and waiting for the answer."""

    def __init__(self) -> None:
        self.mode = "run"
        self.answers: dict[str, Any] = {}
        self.waiting: set[str] = set()

    @contextmanager
    def in_mode(self, mode: str):
        previous, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = previous

    def enqueue(self, task, *, host=None, task_id=None, on_unavailable=None, **kwargs):
        from config.errors import Unavailable

        if host is not None:
            kwargs["host"] = host
        task_id = task_id or str(uuid.uuid4())
        if self.mode == "refuse":
            if on_unavailable is not None:
                on_unavailable()
            raise Unavailable("the task queue is unavailable; try again shortly", code="BROKER_UNAVAILABLE")
        if self.mode == "hold":
            self.waiting.add(task_id)
        else:
            self.answers[task_id] = task.run(**kwargs)
        return SimpleNamespace(id=task_id)

    def wait_for(self, async_result, *, timeout: float):
        from sandboxes.dispatch import runtime_error

        if async_result.id in self.waiting:
            raise StillWaiting(async_result.id)
        answer = self.answers.get(async_result.id)
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            raise runtime_error(error["code"], error["message"])
        return answer


class ObjectStoreStandIn:
    """S3's side of direct uploads: the parts a browser sent, and their join into one object."""

    def __init__(self) -> None:
        self.uploads: dict[str, dict[int, bytes | int]] = {}

    def begin(self, key: str) -> str:
        upload_id = base64.urlsafe_b64encode(hashlib.sha256(f"{key}:{uuid.uuid4()}".encode()).digest()).decode()
        self.uploads[upload_id] = {}
        return upload_id

    def send_part(self, upload_id: str, number: int, data: bytes | int) -> None:
        """A part's bytes, or only its length for a part that is never joined."""
        self.uploads[upload_id][number] = data

    def parts(self, key: str, upload_id: str) -> list[dict]:
        from artifacts.storage import UploadGone

        if upload_id not in self.uploads:
            raise UploadGone("no such upload")
        parts = []
        for number, data in sorted(self.uploads[upload_id].items()):
            body = data if isinstance(data, bytes) else str(data).encode()
            size = len(data) if isinstance(data, bytes) else data
            digest = hashlib.sha256(body).digest()
            parts.append(
                {"PartNumber": number, "Size": size, "ETag": f'"{digest[:16].hex()}"', "ChecksumSHA256": b64(digest)}
            )
        return parts

    def complete(self, key: str, upload_id: str, parts: list[dict]) -> None:
        from artifacts.storage import UploadGone, blob_write

        stored = self.uploads.pop(upload_id, None)
        if stored is None:
            raise UploadGone("no such upload")
        blob_write(key, [stored[part["PartNumber"]] for part in parts], max_bytes=1 << 30)

    def abort(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)


@contextmanager
def stand_ins(queue: QueueStandIn, store: ObjectStoreStandIn):
    """Point every module that imported the broker calls, and the direct uploads' S3 calls, at the stand-ins."""
    import artifacts.services
    import artifacts.shares
    import sandboxes.dispatch
    import sandboxes.services

    replaced = {"enqueue": queue.enqueue, "wait_for": queue.wait_for}
    originals = {name: getattr(sandboxes.dispatch, name) for name in replaced}
    patches, patched = [], set()
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith(SEEDED_APPS):
            continue
        for name, original in originals.items():
            if getattr(module, name, None) is original:
                patches.append(mock.patch.object(module, name, replaced[name]))
                patched.add(module.__name__)
    assert {"sandboxes.dispatch", "sandboxes.services", "artifacts.services", "artifacts.shares"} <= patched, patched
    patches += [
        mock.patch.object(artifacts.services, "direct_uploads_available", return_value=True),
        mock.patch.object(artifacts.services, "s3_multipart_begin", store.begin),
        mock.patch.object(artifacts.services, "s3_multipart_parts", store.parts),
        mock.patch.object(artifacts.services, "s3_multipart_complete", store.complete),
        mock.patch.object(artifacts.services, "s3_multipart_abort", store.abort),
    ]
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


# --- the data -----------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Seed:
    def __init__(self) -> None:
        self.queue = QueueStandIn()
        self.store = ObjectStoreStandIn()
        # What each row stands for, by model and primary key, for whoever reads expected.json.
        self.labels: dict[str, dict[str, str]] = {}

    def label(self, row, text: str) -> None:
        self.labels.setdefault(f"{row._meta.app_label}.{row._meta.object_name}", {})[str(row.pk)] = text

    def run(self) -> None:
        with stand_ins(self.queue, self.store):
            acme, globex = self.organizations()
            self.sandboxes_and_transfers(acme)
            self.direct_uploads()
            self.shares(acme)
            self.other_organization(globex)

    # --- organizations, people, keys

    def organizations(self):
        from django.contrib.auth import get_user_model

        from accounts.models import Membership, Role
        from accounts.services import api_key_authenticate, api_key_create, api_key_revoke, organization_bootstrap
        from audit.services import Actor

        User = get_user_model()
        acme, owner, _password, _key, _secret = organization_bootstrap(
            org_name="Acme Ltd", email="ada@acme.example", username="ada"
        )
        globex, _owner, _password, g_key, g_secret = organization_bootstrap(
            org_name="Globex — Zürich", email="grace@globex.example", username="grace"
        )
        owner_actor = Actor(organization_id=acme.id, user_id=owner.pk, label=owner.get_username())
        for username, role, org in [
            ("admin-ali", Role.ADMIN, acme),
            ("member-mo", Role.MEMBER, acme),
            ("viewer-vi", Role.VIEWER, acme),
            ("member-mo", Role.VIEWER, globex),
        ]:
            user = User.objects.filter(username=username).first() or User.objects.create_user(
                username=username, email=f"{username}@example.com", password=f"{username}-password-1234"
            )
            Membership.objects.create(user=user, organization=org, role=role)
        ci_key, ci_secret = api_key_create(
            organization=acme,
            name="CI runner",
            actor=owner_actor,
            scopes=["artifacts:read", "artifacts:write", "sandboxes:read", "sandboxes:write"],
            expires_in_days=90,
            created_by_id=owner.pk,
        )
        old_key, _old_secret = api_key_create(
            organization=acme, name="old laptop", actor=owner_actor, created_by_id=owner.pk
        )
        api_key_revoke(organization=acme, key_id=old_key.id, actor=owner_actor)
        api_key_authenticate(ci_secret)
        api_key_authenticate(g_secret)
        self.label(ci_key, "scoped, expires in 90 days, used")
        self.label(old_key, "revoked")
        self.api_actor = Actor(
            organization_id=acme.id,
            api_key_id=ci_key.id,
            label=f"api key {ci_key.prefix}… ({ci_key.name})",
            ip="203.0.113.7",
            user_agent="stowage-sdk/2.1.0 python/3.11",
            request_id=f"req_{uuid.uuid4().hex}",
            scopes=frozenset(ci_key.scopes),
        )
        self.dashboard_actor = Actor(
            organization_id=acme.id,
            user_id=owner.pk,
            label=owner.get_username(),
            ip="2001:db8::7",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            request_id=f"req_{uuid.uuid4().hex}",
        )
        self.globex_actor = Actor(
            organization_id=globex.id, api_key_id=g_key.id, label=f"api key {g_key.prefix}… ({g_key.name})"
        )
        return acme, globex

    # --- sandboxes, and transfers between them and storage

    def sandbox(self, *, mode: str = "run", **options):
        from config.errors import StowageError
        from sandboxes.models import Sandbox
        from sandboxes.services import sandbox_create

        before = set(Sandbox.objects.values_list("id", flat=True))
        try:
            with self.queue.in_mode(mode):
                return sandbox_create(actor=self.api_actor, **options)
        except (StillWaiting, StowageError):
            return Sandbox.objects.exclude(id__in=before).get()

    def sandboxes_and_transfers(self, acme) -> None:
        from artifacts.models import Transfer
        from artifacts.services import _claim, artifact_download_to_sandbox, artifact_put, artifact_upload_from_sandbox
        from config.errors import StowageError
        from sandboxes.services import (
            sandbox_execute,
            sandbox_extend,
            sandbox_read_file,
            sandbox_stop,
            sandbox_write_files,
        )

        actor = self.api_actor
        box = self.sandbox(cpus="2", memory="1Gi", timeout_seconds=3600, session_id="nightly-build-42")
        self.label(box, "running")
        self.label(self.sandbox(mode="hold", timeout_seconds=600), "creating: its worker has not answered yet")
        self.label(self.sandbox(mode="refuse"), "error: the queue refused its provisioning")
        stopping = self.sandbox(timeout_seconds=600)
        with self.queue.in_mode("hold"):
            sandbox_stop(actor=actor, sandbox=stopping, wait=False)
        self.label(stopping, "terminating")
        stopped = self.sandbox(env={"GREETING": "grüezi"})
        sandbox_stop(actor=actor, sandbox=stopped, action="sandbox.delete")
        self.label(stopped, "terminated")
        sandbox_execute(actor=actor, sandbox=box, command=["/bin/echo", "hello"])
        sandbox_extend(actor=actor, sandbox=box, additional_seconds=1800)

        def write(path: str, data: bytes) -> None:
            sandbox_write_files(actor=actor, sandbox=box, files=[{"path": path, "content": b64(data)}])

        def upload(path: str, remote_path: str | None = None, **options) -> Transfer:
            transfer = artifact_upload_from_sandbox(
                actor=actor, sandbox=box, path=path, remote_path=remote_path, wait=False, **options
            )
            transfer.refresh_from_db()
            return transfer

        def put(remote_path: str, data: bytes, *, as_actor=actor, **options) -> Transfer:
            artifact = artifact_put(
                actor=as_actor, stream=io.BytesIO(data), remote_path=remote_path, content_length=len(data), **options
            )
            return Transfer.objects.get(artifact=artifact)

        def download(artifact, target_path: str) -> Transfer:
            transfer = artifact_download_to_sandbox(
                actor=actor, sandbox=box, artifact=artifact, target_path=target_path, wait=False
            )
            transfer.refresh_from_db()
            return transfer

        metadata = {"title": "Résumé der Läufe — 東京 ✓", "owner": "Zoë", "build": "42"}
        write("out/summary.txt", b"first summary\n")
        sandbox_read_file(actor=actor, sandbox=box, path="out/summary.txt")
        first = upload("out/summary.txt", "reports/summary.txt", metadata=metadata, expires_in=10 * 365 * 86400)
        self.label(first, "upload succeeded: version 1")
        write("out/summary.txt", "second summary ✓\n".encode())
        second = upload("out/summary.txt", "reports/summary.txt", metadata={**metadata, "build": "43"})
        self.label(second, "upload succeeded: version 2")
        twin = upload("out/summary.txt", "reports/summary.txt")
        self.label(twin, "upload succeeded as a retry: points at version 2; its own artifact failed")
        third = put(
            "reports/summary.txt",
            b"third summary, from the dashboard\n",
            as_actor=self.dashboard_actor,
            metadata={"note": "ünïcödé"},
        )
        self.label(third, "put succeeded: version 3")
        write("out/logs/build.log", b"compiling...\nok\n")
        write("out/logs/test.log", b"42 passed\n")
        self.label(upload("out/logs", "logs"), "upload succeeded: a directory as tar.gz")
        rows = put("data/rows.json", b'{"rows": 3}\n', content_type="application/json", session_id="nightly-build-42")
        self.label(rows, "put succeeded")
        with self.queue.in_mode("hold"):
            self.label(upload("out/summary.txt", "reports/queued.txt"), "upload queued")
            running = upload("out/logs", "reports/running.tar.gz")
        _claim(running.id)
        running.refresh_from_db()
        self.label(running, "upload running")
        self.label(upload("out/missing.txt"), "upload failed: no such file")
        with self.queue.in_mode("refuse"):
            try:
                upload("out/summary.txt", "reports/refused.txt")
            except StowageError:
                pass
        self.label(Transfer.objects.get(artifact__remote_path="reports/refused.txt"), "upload failed: queue refused it")
        try:
            artifact_put(actor=actor, stream=io.BytesIO(b"part of it"), remote_path="data/short.bin", content_length=99)
        except StowageError:
            pass
        self.label(Transfer.objects.get(artifact__remote_path="data/short.bin"), "put failed: the body ended early")

        self.label(download(first.artifact, "in/summary.txt"), "download succeeded")
        self.doomed = put("tmp/doomed.txt", b"to be deleted\n").artifact
        with self.queue.in_mode("hold"):
            self.label(download(second.artifact, "in/queued.txt"), "download queued")
            running = download(second.artifact, "in/running.txt")
            self.late = download(self.doomed, "in/doomed.txt")
        _claim(running.id)
        running.refresh_from_db()
        self.label(running, "download running")
        self.expiring = put("tmp/expiring.txt", b"short-lived\n", expires_in=1).artifact

    def direct_uploads(self) -> None:
        from django.conf import settings

        from artifacts.models import Transfer
        from artifacts.services import (
            _claim_direct_finish,
            direct_part_bounds,
            direct_upload_abort,
            direct_upload_begin,
            direct_upload_complete,
        )
        from artifacts.tasks import finish_direct_upload
        from config.errors import StowageError

        # Small enough for a blob of a few hundred bytes to go straight to the store too.
        settings.DIRECT_UPLOAD_MIN_BYTES = 1
        big = 20 << 20

        def begin(remote_path: str, size: int = big, **options) -> Transfer:
            return direct_upload_begin(actor=self.dashboard_actor, remote_path=remote_path, size=size, **options)

        def send(transfer: Transfer, *numbers: int, data: bytes | None = None) -> None:
            """What the browser PUTs; without data, parts of the right length whose bytes never matter."""
            for number in numbers or range(1, transfer.part_count + 1):
                start, size = direct_part_bounds(transfer, number)
                self.store.send_part(transfer.upload_id, number, data[start : start + size] if data else size)

        def complete(transfer: Transfer, mode: str = "run") -> Transfer:
            with self.queue.in_mode(mode):
                try:
                    direct_upload_complete(transfer=transfer)
                except StowageError:
                    pass
            transfer.refresh_from_db()
            return transfer

        taking = begin("uploads/video.mp4", content_type="video/mp4", metadata={"camera": "Ålesund"})
        send(taking, 1)
        taking.refresh_from_db()
        self.label(taking, "direct upload taking parts: running, not completed")

        queued = begin("uploads/dataset.parquet")
        send(queued)
        self.label(complete(queued, "hold"), "direct upload completed and queued for its finish")

        refused = begin("uploads/refused.bin")
        send(refused)
        self.label(
            complete(refused, "refuse"), "direct upload completed, its finish refused by the queue: BROKER_UNAVAILABLE"
        )

        finishing = begin("uploads/finishing.tar")
        send(finishing)
        complete(finishing, "hold")
        _claim_direct_finish(finishing.id)
        finishing.refresh_from_db()
        self.label(finishing, "direct upload being finished by a worker: running, completed")

        data = "eine kleine Datei, direkt hochgeladen 📷\n".encode() * 20
        done = begin("uploads/greeting.txt", len(data))
        send(done, data=data)
        self.label(complete(done), "direct upload succeeded")

        cancelled = begin("uploads/cancelled.iso")
        send(cancelled, 1, 2)
        direct_upload_abort(transfer=cancelled)
        cancelled.refresh_from_db()
        self.label(cancelled, "direct upload failed: cancelled while taking parts")

        changed = begin("uploads/changed.bin")
        send(changed)
        complete(changed, "hold")
        self.store.send_part(changed.upload_id, 3, b"shorter")
        finish_direct_upload.run(transfer_id=changed.id)
        changed.refresh_from_db()
        self.label(changed, "direct upload failed: a part changed after completion")

    # --- share links, deletion, expiry

    def shares(self, acme) -> None:
        from artifacts.models import Artifact, ShareLink
        from artifacts.services import artifact_delete, artifact_expire, artifact_record_read
        from artifacts.shares import (
            Recipient,
            share_link_create,
            share_link_download,
            share_link_resolve,
            share_link_revoke,
        )
        from artifacts.tasks import transfer_download
        from config.errors import StowageError

        actor = self.dashboard_actor
        latest = (
            Artifact.objects.visible().filter(remote_path="reports/summary.txt", organization=acme).latest("version")
        )
        artifact_record_read(actor=self.api_actor, artifact=latest, action="artifact.url", details={"expires_in": 3600})
        with self.queue.in_mode("hold"):
            pending, _token = share_link_create(actor=actor, artifact=latest, wait=False)
        self.label(pending, "pending: its activation is still queued")
        guarded, token = share_link_create(
            actor=actor, artifact=latest, expires_in=30 * 86400, max_downloads=3, password="correct horse", wait=False
        )
        share_link_download(
            link=share_link_resolve(token=token),
            password="correct horse",
            recipient=Recipient(ip="198.51.100.23", user_agent="curl/8.5.0", request_id=f"req_{uuid.uuid4().hex}"),
        )
        self.label(guarded, "active, with a password and a download limit, downloaded once")
        plain, _token = share_link_create(actor=self.api_actor, artifact=latest, wait=False)
        self.label(plain, "active, no password, no limit")
        revoked, _token = share_link_create(actor=actor, artifact=latest, wait=False)
        share_link_revoke(actor=actor, link=revoked)
        self.label(revoked, "revoked")
        with self.queue.in_mode("refuse"):
            try:
                share_link_create(actor=actor, artifact=latest, wait=False)
            except StowageError:
                pass
        self.label(ShareLink.objects.order_by("-created_at")[0], "revoked: the queue refused its activation")

        on_doomed, _token = share_link_create(actor=actor, artifact=self.doomed, wait=False)
        artifact_delete(actor=actor, artifact=self.doomed)
        self.label(on_doomed, "revoked: its artifact was deleted")
        self.label(Artifact.objects.get(id=self.doomed.id), "deleted")
        transfer_download.run(transfer_id=self.late.id, host=self.late.host)
        self.late.refresh_from_db()
        self.label(self.late, "download failed: its artifact was deleted before it ran")
        time.sleep(1.5)
        artifact_expire()
        self.label(Artifact.objects.get(id=self.expiring.id), "deleted: expired")

    def other_organization(self, globex) -> None:
        from artifacts.services import artifact_put

        artifact_put(actor=self.globex_actor, stream=io.BytesIO(b"globex notes\n"), remote_path="reports/summary.txt")


# --- writing it down ------------------------------------------------------------------------------


def expected(commit: str) -> dict[str, Any]:
    from django.db import connection

    from audit.models import AuditChainHead, AuditEvent

    head = AuditChainHead.objects.get(id=1)
    return {
        "previous_main": commit,
        "database": connection.vendor,
        "audit_chain_head": {
            "last_hash": head.last_hash,
            "last_seq": head.last_seq,
            "events": AuditEvent.objects.count(),
        },
        "models": {
            f"{model._meta.app_label}.{model._meta.object_name}": model_rows(model) for model in seeded_models()
        },
    }


def compact_sqlite() -> None:
    """One self-contained file: the write-ahead log folded in, small pages (most tables are empty
    or nearly so, and each table and index takes at least one page), no free ones."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA journal_mode=DELETE")
        cursor.execute("PRAGMA page_size=1024")
        cursor.execute("VACUUM")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expected", required=True, type=Path, help="where to write expected.json")
    parser.add_argument("--commit", default="", help="the commit whose code is running, for the record")
    args = parser.parse_args()
    if not os.environ.get("STOWAGE_VAR_DIR"):
        parser.error("STOWAGE_VAR_DIR must name the directory for the database, blobs and sandboxes")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("STOWAGE_HOST", "worker-1")
    # Sandboxes run isolated where bubblewrap works; elsewhere the seed still runs.
    os.environ.setdefault("STOWAGE_ALLOW_UNISOLATED", "1")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    seed = Seed()
    seed.run()
    result = expected(args.commit)
    result["labels"] = seed.labels
    compact_sqlite()
    args.expected.write_text(json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    counts = ", ".join(f"{label} {len(rows)}" for label, rows in result["models"].items())
    print(f"seeded {result['database']}: {counts}; audit events {result['audit_chain_head']['events']}")


if __name__ == "__main__":
    main()
