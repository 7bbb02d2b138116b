from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import aclosing, closing
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr

from audit.selectors import audit_sandbox_counts
from config.api_errors import async_endpoint
from config.auth import WAITING_AUTH, require_scope
from config.schemas import BODY, WORKER, errors, strict_int
from core.errors import InvalidInput
from core.threads import in_thread
from sandboxes import files, services
from sandboxes.calls import acall_on_host
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.selectors import sandbox_get, sandbox_list

router = Router(tags=["sandboxes"])

Seconds = strict_int(1, settings.SANDBOX_MAX_TIMEOUT_SECONDS)
Milliseconds = strict_int(1, settings.SANDBOX_EXEC_MAX_TIMEOUT_MS)


class SandboxOut(Schema):
    sandbox_id: str
    org_id: str
    session_id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    expires_at: datetime
    stopped_at: datetime | None
    cpus: str
    cpus_requested: str
    memory: str
    disk: str | None
    disk_enforced: bool
    host: str
    isolation: str
    error_message: str | None


def sandbox_out(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "sandbox_id": sandbox.id,
        "org_id": sandbox.organization_id,
        "session_id": sandbox.session_id,
        "status": sandbox.status,
        "created_at": sandbox.created_at,
        "started_at": sandbox.started_at,
        "expires_at": sandbox.expires_at,
        "stopped_at": sandbox.stopped_at,
        "cpus": sandbox.cpus,
        "cpus_requested": sandbox.cpus_requested or sandbox.cpus,
        "memory": sandbox.memory,
        "disk": sandbox.disk or None,
        "disk_enforced": sandbox.disk_enforced,
        "host": sandbox.host,
        "isolation": "bubblewrap" if sandbox.isolated else "none (unisolated)",
        "error_message": sandbox.error_message or None,
    }


class SandboxCreateIn(Schema):
    cpus: StrictStr | StrictInt | StrictFloat | None = None
    memory: StrictStr | StrictInt | None = None
    disk: StrictStr | StrictInt | None = None
    timeout_seconds: Seconds | None = None
    env: dict[str, str] | None = None
    org_id: str | None = None
    session_id: str | None = None


class SandboxListOut(Schema):
    sandboxes: list[SandboxOut]


class SandboxFilters(Schema):
    status: SandboxStatus | None = None
    session_id: str | None = Field(None, max_length=128)
    limit: int = Field(100, ge=1, le=1000)


class SuccessOut(Schema):
    success: bool


@router.post("/sandbox/create", response={201: SandboxOut, **errors(BODY, WORKER)})
def create_sandbox(request: HttpRequest, payload: SandboxCreateIn):
    return _create(request, payload)


@router.post(
    "/sandbox",
    response={201: SandboxOut, **errors(BODY, WORKER)},
    summary="Create Sandbox (the path AsyncSandbox.create posts to)",
)
def create_sandbox_at_collection(request: HttpRequest, payload: SandboxCreateIn):
    return _create(request, payload)


def _create(request: HttpRequest, payload: SandboxCreateIn):
    require_scope(request.auth, "sandboxes:write")
    if payload.org_id and payload.org_id != request.auth.organization_id:
        raise InvalidInput(
            "org_id does not match the organization of this API key", code="ORG_MISMATCH", details={"field": "org_id"}
        )
    sandbox = services.sandbox_create(
        actor=request.auth,
        cpus=None if payload.cpus is None else str(payload.cpus),
        memory=None if payload.memory is None else str(payload.memory),
        disk=None if payload.disk is None else str(payload.disk),
        timeout_seconds=payload.timeout_seconds,
        env=payload.env,
        session_id=payload.session_id,
    )
    return Status(201, sandbox_out(sandbox))


@router.get("/sandboxes", response={200: SandboxListOut, **errors()})
def list_sandboxes(request: HttpRequest, filters: Query[SandboxFilters]):
    require_scope(request.auth, "sandboxes:read")
    sandboxes = sandbox_list(
        organization_id=request.auth.organization_id, status=filters.status, session_id=filters.session_id
    )[: filters.limit]
    return {"sandboxes": [sandbox_out(s) for s in sandboxes]}


@router.get("/sandbox/{sandbox_id}", response={200: SandboxOut, **errors(404)})
def get_sandbox(request: HttpRequest, sandbox_id: str):
    require_scope(request.auth, "sandboxes:read")
    return sandbox_out(sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id))


class SandboxStatusOut(Schema):
    sandbox_id: str
    status: str
    expires_at: str
    max_expires_at: str | None
    max_lifetime_seconds: int | None
    remaining_extend_seconds: int | None
    lifetime_used_seconds: int | None
    lifetime_used_percent: float | None


@router.get("/sandbox/{sandbox_id}/status", response={200: SandboxStatusOut, **errors(404)})
def get_status(request: HttpRequest, sandbox_id: str):
    """Where the sandbox stands in its life: extensions may reach ``max_expires_at`` (now plus the
    longest lifetime), which ``remaining_extend_seconds`` counts down to."""
    require_scope(request.auth, "sandboxes:read")
    sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
    return services.sandbox_lifetime(sandbox=sandbox)


class ExecuteIn(Schema):
    command: str | list[str]
    stream: StrictBool = False
    timeout: Milliseconds | None = Field(None, description="milliseconds")
    env: dict[str, str] | None = None
    working_dir: str | None = None
    cwd: str | None = None


class ExecuteOut(Schema):
    exit_code: int
    stdout: str
    stderr: str
    output_truncated: bool
    timed_out: bool
    duration_ms: int


# With "stream": true the answer is Server-Sent Events, one JSON object in each event's data:
# {"type": "stdout"|"stderr", "data"}, then {"type": "exit", "code", "timed_out", ...} or
# {"type": "error", "error"}, and last {"type": "done"}.
_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {"data": {"type": "string", "contentMediaType": "application/json"}},
            "required": ["data"],
        }
    }
}


@router.post(
    "/sandbox/{sandbox_id}/execute",
    response={200: ExecuteOut, **errors(404, 409, BODY, WORKER)},
    openapi_extra={"responses": {200: {"content": _EVENT_STREAM}}},
    auth=WAITING_AUTH,
)
@async_endpoint
async def execute(request: HttpRequest, sandbox_id: str, payload: ExecuteIn):
    arguments = dict(
        actor=request.auth,
        command=payload.command,
        timeout_ms=payload.timeout,
        env=payload.env,
        working_dir=payload.working_dir or payload.cwd,
    )
    if not payload.stream:
        # Found and sent in one thread step.
        find = partial(_scoped_sandbox, request.auth, sandbox_id, "sandboxes:write")
        return await services.sandbox_execute_async(sandbox=find, **arguments)
    arguments["sandbox"] = await _sandbox(request, sandbox_id, "sandboxes:write")
    if isinstance(request, ASGIRequest):
        content = _server_sent(await services.sandbox_execute_stream_async(**arguments))
    else:
        # Served over WSGI (config.wsgi, Django's test client): the response is read in a thread.
        content = _server_sent_sync(await sync_to_async(services.sandbox_execute_stream)(**arguments))
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _server_sent_sync(events: Generator[dict[str, Any] | None, None, None]) -> Iterator[str]:
    with closing(events):
        for event in events:
            yield ": keepalive\n\n" if event is None else "data: " + json.dumps(event) + "\n\n"


async def _server_sent(events: AsyncGenerator[dict[str, Any] | None, None]) -> AsyncIterator[str]:
    async with aclosing(events):
        async for event in events:
            yield ": keepalive\n\n" if event is None else "data: " + json.dumps(event) + "\n\n"


def _scoped_sandbox(actor, sandbox_id: str, scope: str) -> Sandbox:
    require_scope(actor, scope)
    return sandbox_get(organization_id=actor.organization_id, sandbox_id=sandbox_id)


async def _sandbox(request: HttpRequest, sandbox_id: str, scope: str) -> Sandbox:
    return await in_thread(_scoped_sandbox)(request.auth, sandbox_id, scope)


async def _on_host(request: HttpRequest, sandbox_id: str, scope: str, make_call, **arguments: Any) -> Any:
    """Check and build the call in a thread (database, validation), then await the host's answer."""

    def prepared():
        return make_call(sandbox=_scoped_sandbox(request.auth, sandbox_id, scope), **arguments)

    return await acall_on_host(await in_thread(prepared)(), actor=request.auth)


class FileIn(Schema):
    path: str
    content: str = Field(..., description="base64")


class FilesWriteIn(Schema):
    files: list[FileIn]


class WrittenFile(Schema):
    path: str
    size: int


class FilesWriteOut(Schema):
    success: bool
    files: list[WrittenFile]


@router.post(
    "/sandbox/{sandbox_id}/files", response={200: FilesWriteOut, **errors(404, 409, BODY, WORKER)}, auth=WAITING_AUTH
)
@async_endpoint
async def write_files(request: HttpRequest, sandbox_id: str, payload: FilesWriteIn):
    files_in = [f.dict() for f in payload.files]
    written = await _on_host(request, sandbox_id, "sandboxes:write", files.write_files_call, files=files_in)
    return {"success": True, "files": written}


class FileReadOut(Schema):
    path: str
    content: str
    size: int


@router.get(
    "/sandbox/{sandbox_id}/files", response={200: FileReadOut, **errors(404, 409, 413, WORKER)}, auth=WAITING_AUTH
)
@async_endpoint
async def read_file(request: HttpRequest, sandbox_id: str, path: str):
    return await _on_host(request, sandbox_id, "sandboxes:read", files.read_file_call, path=path)


class FileDeleteIn(Schema):
    path: str
    recursive: StrictBool = False


@router.delete(
    "/sandbox/{sandbox_id}/files", response={200: SuccessOut, **errors(404, 409, BODY, WORKER)}, auth=WAITING_AUTH
)
@async_endpoint
async def delete_file(request: HttpRequest, sandbox_id: str, payload: FileDeleteIn):
    await _on_host(
        request, sandbox_id, "sandboxes:write", files.delete_file_call, path=payload.path, recursive=payload.recursive
    )
    return {"success": True}


class FileEntryOut(Schema):
    name: str
    path: str
    type: str
    size: int
    modified_at: datetime


class FileListOut(Schema):
    files: list[FileEntryOut]


@router.get(
    "/sandbox/{sandbox_id}/files/list", response={200: FileListOut, **errors(404, 409, WORKER)}, auth=WAITING_AUTH
)
@async_endpoint
async def list_files(request: HttpRequest, sandbox_id: str, path: str = "/workspace", recursive: bool = False):
    entries = await _on_host(
        request, sandbox_id, "sandboxes:read", files.list_files_call, path=path, recursive=recursive
    )
    return {"files": entries}


@router.post("/sandbox/{sandbox_id}/stop", response={200: SuccessOut, **errors(404, WORKER)})
def stop_sandbox(request: HttpRequest, sandbox_id: str):
    require_scope(request.auth, "sandboxes:write")
    sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
    services.sandbox_stop(actor=request.auth, sandbox=sandbox)
    return {"success": True}


@router.delete("/sandbox/{sandbox_id}", response={200: SuccessOut, **errors(404, WORKER)})
def delete_sandbox(request: HttpRequest, sandbox_id: str):
    require_scope(request.auth, "sandboxes:write")
    sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
    services.sandbox_stop(actor=request.auth, sandbox=sandbox, action="sandbox.delete")
    return {"success": True}


class ExtendIn(Schema):
    additional_seconds: Seconds


@router.post("/sandbox/{sandbox_id}/extend", response={200: SandboxOut, **errors(404, 409, BODY)})
def extend_sandbox(request: HttpRequest, sandbox_id: str, payload: ExtendIn):
    require_scope(request.auth, "sandboxes:write")
    sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
    return sandbox_out(
        services.sandbox_extend(actor=request.auth, sandbox=sandbox, additional_seconds=payload.additional_seconds)
    )


class AuditSummaryOut(Schema):
    sandbox_id: str
    total_events: int
    commands_executed: int
    files_written: int
    files_read: int
    secrets_accessed: int
    errors: int
    duration: int = Field(..., description="seconds the sandbox has been alive")


@router.get("/sandbox/{sandbox_id}/audit/summary", response={200: AuditSummaryOut, **errors(404)})
def audit_summary(request: HttpRequest, sandbox_id: str):
    require_scope(request.auth, "audit:read")
    sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
    counts = audit_sandbox_counts(organization_id=sandbox.organization_id, sandbox_id=sandbox.id)
    end = sandbox.stopped_at or timezone.now()
    return {"sandbox_id": sandbox.id, **counts, "duration": max(0, int((end - sandbox.created_at).total_seconds()))}


class FileEntriesOut(Schema):
    files: list[FileEntryOut]


class GlobIn(Schema):
    pattern: str = Field(..., description="e.g. '**/*.py', relative to /workspace or under /workspace/")


@router.post(
    "/sandbox/{sandbox_id}/files/glob",
    response={200: FileEntriesOut, **errors(404, 409, BODY, WORKER)},
    auth=WAITING_AUTH,
)
@async_endpoint
async def glob_files(request: HttpRequest, sandbox_id: str, payload: GlobIn):
    return {"files": await _on_host(request, sandbox_id, "sandboxes:read", files.glob_call, pattern=payload.pattern)}


class MkdirIn(Schema):
    path: str
    recursive: StrictBool = True


class EntryChangedOut(Schema):
    success: bool
    path: str
    entry: FileEntryOut


@router.post(
    "/sandbox/{sandbox_id}/files/mkdir",
    response={200: EntryChangedOut, **errors(404, 409, BODY, WORKER)},
    auth=WAITING_AUTH,
)
@async_endpoint
async def make_directory(request: HttpRequest, sandbox_id: str, payload: MkdirIn):
    entry = await _on_host(
        request,
        sandbox_id,
        "sandboxes:write",
        files.make_directory_call,
        path=payload.path,
        recursive=payload.recursive,
    )
    return {"success": True, "path": entry["path"], "entry": entry}


class MoveIn(Schema):
    source: str
    destination: str


@router.post(
    "/sandbox/{sandbox_id}/files/move",
    response={200: EntryChangedOut, **errors(404, 409, BODY, WORKER)},
    auth=WAITING_AUTH,
)
@async_endpoint
async def move_file(request: HttpRequest, sandbox_id: str, payload: MoveIn):
    entry = await _move_or_copy(request, sandbox_id, payload, copy=False)
    return {"success": True, "path": entry["path"], "entry": entry}


@router.post(
    "/sandbox/{sandbox_id}/files/copy",
    response={200: EntryChangedOut, **errors(404, 409, BODY, WORKER)},
    auth=WAITING_AUTH,
)
@async_endpoint
async def copy_file(request: HttpRequest, sandbox_id: str, payload: MoveIn):
    entry = await _move_or_copy(request, sandbox_id, payload, copy=True)
    return {"success": True, "path": entry["path"], "entry": entry}


async def _move_or_copy(request: HttpRequest, sandbox_id: str, payload: MoveIn, *, copy: bool) -> dict[str, Any]:
    return await _on_host(
        request,
        sandbox_id,
        "sandboxes:write",
        files.move_or_copy_call,
        source=payload.source,
        destination=payload.destination,
        copy=copy,
    )
