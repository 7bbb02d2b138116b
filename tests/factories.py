"""Rows for tests, with deterministic defaults: straight into the tables when a test needs state
without the work behind it, through the API when it needs real stored bytes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from agents.models import AgentSession, SessionStatus
from artifacts.models import Artifact, ArtifactState
from artifacts.prefixes import folders_add
from artifacts.search_index import search_index_add_many, search_index_update
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
        path="/workspace/big.bin",
        **fields,
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
