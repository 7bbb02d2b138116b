"""Rows for tests, with deterministic defaults: straight into the tables when a test needs state
without the work behind it, through the API when it needs real stored bytes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.models import AgentSession, SessionStatus
from artifacts.models import Artifact, ArtifactState
from artifacts.prefixes import folders_add
from artifacts.search_index import search_index_add_many, search_index_update
from audit.chain import event_hash
from audit.models import AuditChain, AuditChainHead, AuditEvent
from core.ids import new_id
from sandboxes.models import Sandbox, SandboxStatus
from transfers.models import Transfer, TransferKind

ZERO_CHECKSUM = "sha256:" + "0" * 64


def make_sandbox(
    org_id: str,
    *,
    status: str = SandboxStatus.RUNNING,
    isolated: bool = True,
    session_id: str | None = None,
    minutes_ago: int = 0,
    **fields: Any,
) -> Sandbox:
    """A sandbox row on this host; no workspace behind it."""
    created = timezone.now() - timedelta(minutes=minutes_ago)
    extra = {"session_id": session_id} if session_id else {}
    return Sandbox.objects.create(
        organization_id=org_id,
        host=settings.STOWAGE_HOST,
        cpus="1",
        memory="1Gi",
        memory_bytes=1 << 30,
        status=status,
        isolated=isolated,
        created_at=created,
        expires_at=created + timedelta(hours=1),
        **extra,
        **fields,
    )


def make_artifact(
    org_id: str,
    sandbox: Sandbox | None,
    remote_path: str,
    *,
    version: int = 1,
    size: int = 1234,
    state: str = ArtifactState.READY,
    **fields: Any,
) -> Artifact:
    """An artifact row with no bytes stored behind it."""
    artifact = Artifact(
        organization_id=org_id,
        sandbox_id=sandbox.id if sandbox else "",
        remote_path=remote_path,
        version=version if state == ArtifactState.READY else None,
        size=size,
        state=state,
        checksum=ZERO_CHECKSUM,
        **fields,
    )
    artifact.storage_key = f"test/{artifact.id}"
    artifact.save(force_insert=True)
    if state == ArtifactState.READY:
        search_index_update(artifact)
        folders_add(artifact=artifact, size=artifact.size, created_at=artifact.created_at)
    return artifact


def make_artifacts(org_id: str, count: int, *, start: datetime | None = None, **fields: Any) -> list[Artifact]:
    """Ready rows in bulk (no bytes behind them), one a minute, newest last. A callable
    ``remote_path`` gets each row's index."""
    start = start or timezone.now() - timedelta(days=30)
    rows = []
    for i in range(count):
        values = {
            "remote_path": f"out/file-{i:04d}.txt",
            "version": 1,
            "size": 1000 + i,
            "checksum": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
            "content_type": "text/plain",
            "created_at": start + timedelta(minutes=i),
            **fields,
        }
        if callable(values["remote_path"]):
            values["remote_path"] = values["remote_path"](i)
        artifact = Artifact(organization_id=org_id, state=ArtifactState.READY, **values)
        artifact.storage_key = f"blobs/{org_id}/{artifact.id}"
        rows.append(artifact)
    created = Artifact.objects.bulk_create(rows)
    search_index_add_many(sorted(created, key=lambda a: a.created_at))
    for artifact in sorted(created, key=lambda a: (a.remote_path, a.version or 0)):
        folders_add(artifact=artifact, size=artifact.size, created_at=artifact.created_at)
    return created


def make_transfer(org_id: str, sandbox: Sandbox, artifact: Artifact, **fields: Any) -> Transfer:
    """An upload from the sandbox, queued unless ``fields`` say otherwise."""
    return Transfer.objects.create(
        organization_id=org_id,
        kind=TransferKind.UPLOAD,
        artifact=artifact,
        sandbox_id=sandbox.id,
        host=sandbox.host,
        **{"path": "/workspace/big.bin", **fields},
    )


def put_artifact(
    user, remote_path: str, body: bytes, content_type: str = "application/octet-stream", metadata: str | None = None
) -> Artifact:
    """A real artifact with stored bytes, through the API's streamed PUT."""
    headers = user.headers(**({"X-Artifact-Metadata": metadata} if metadata else {}))
    response = user.client.put(
        f"/api/v1/artifacts?remote_path={remote_path}", body, content_type=content_type, headers=headers
    )
    assert response.status_code == 201, response.content
    return Artifact.objects.get(id=response.json()["id"])


def make_session(org_id: str, *, status: str = SessionStatus.RUNNING, **fields: Any) -> AgentSession:
    """An agent session row; its sandbox, if any, is only an id unless the test makes one."""
    return AgentSession.objects.create(organization_id=org_id, status=status, **fields)


def make_shared_chain_events(
    org_ids: list[str | None], *, action: str = "file.read", fresh: bool = True
) -> list[AuditEvent]:
    """Events appended as an earlier release appended them, every organization's to the one shared
    chain. ``fresh``: a log as an earlier release left it, these events and no others (events are
    only ever inserted, so the log is emptied with SQL first); otherwise appended to the log as it
    is, as a process of the earlier release still running during an upgrade would."""
    if fresh:
        with connection.cursor() as cursor:
            for table in (AuditEvent, AuditChain, AuditChainHead):
                cursor.execute(f"DELETE FROM {table._meta.db_table}")  # noqa: S608 (a model's own table name)
    head = AuditChainHead.objects.filter(id=1).first() or AuditChainHead(id=1)
    events = []
    for index, org_id in enumerate(org_ids):
        event = AuditEvent(
            id=new_id("evt"),
            organization_id=org_id,
            actor="earlier release",
            action=action,
            resource=f"shared-{index}",
            prev_hash=head.last_hash,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        head.last_hash, head.last_seq = event.hash, event.seq
        events.append(event)
    head.save()
    return events


def make_webhook(org_id: str, url: str, **fields: Any):
    """A webhook straight into the table, with its secret (``whsec_…``); no URL check."""
    from webhooks.models import Webhook
    from webhooks.secrets import encrypt_secret, generate_secret

    secret = fields.pop("secret", None) or generate_secret()
    fields.setdefault("events", ["*"])
    fields.setdefault("retry_count", 2)
    fields.setdefault("retry_delay_ms", 100)
    fields.setdefault("timeout_ms", 5000)
    webhook = Webhook.objects.create(organization_id=org_id, url=url, secret_encrypted=encrypt_secret(secret), **fields)
    webhook.secret = secret
    return webhook


def make_folder(
    org_id: str, remote_path: str, tree: dict[str, Any], *, modes: dict[str, int] | None = None
) -> Artifact:
    """A ready folder artifact with its files stored as blobs. ``tree`` maps a path to its bytes (a
    file), a string (a link to it) or None (a directory); missing directories are added."""
    from django.db import transaction

    from artifacts.blobs import blob_adopt, blob_upload_key
    from artifacts.manifests import ManifestEntry, manifest_check, manifest_checksum, manifest_size
    from artifacts.models import ArtifactEntry
    from artifacts.storage import blob_write

    modes = modes or {}
    entries = []
    stored = {}
    for path, value in tree.items():
        if isinstance(value, bytes):
            key = blob_upload_key(org_id)
            stored[path] = (key, blob_write(key, [value], max_bytes=1 << 30))
            sha, kind, size, target = stored[path][1].sha256, "file", len(value), ""
        elif isinstance(value, str):
            sha, kind, size, target = "", "symlink", 0, value
        else:
            sha, kind, size, target = "", "directory", 0, ""
        default = {"file": 0o644, "directory": 0o755, "symlink": 0o777}[kind]
        entries.append(
            ManifestEntry(
                path=path,
                type=kind,
                mode=modes.get(path, default),
                size=size,
                sha256=sha,
                link_target=target,
                mtime=timezone.now(),
            )
        )
    entries = manifest_check(entries, add_parents=True)
    artifact = make_artifact(
        org_id,
        None,
        remote_path,
        size=manifest_size(entries),
        is_folder=True,
        entry_count=len(entries),
        content_type="inode/directory",
    )
    with transaction.atomic():
        rows = []
        for entry in entries:
            blob_id = None
            if entry.path in stored:
                key, blob = stored[entry.path]
                blob_id = blob_adopt(organization_id=org_id, stored=blob, key=key).id
            rows.append(
                ArtifactEntry(
                    artifact=artifact,
                    path=entry.path,
                    parent=entry.parent,
                    type=entry.type,
                    mode=entry.mode,
                    size=entry.size,
                    sha256=entry.sha256,
                    mtime=entry.mtime,
                    link_target=entry.link_target,
                    blob_id=blob_id,
                )
            )
        ArtifactEntry.objects.bulk_create(rows)
        Artifact.objects.filter(id=artifact.id).update(checksum=manifest_checksum(entries))
    artifact.refresh_from_db()
    return artifact
