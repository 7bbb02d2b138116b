"""The agent-session API under /api/v1/agent/sessions, as the stateset-sandbox SDK (2.1.0) calls
it. The SDK sends camelCase (``clientId``, ``timeoutMs``, ``preRotateBufferSeconds``) and reads
either spelling back; requests here take both, answers are snake_case like the rest of the API."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import AliasChoices, StrictInt

from agents import services, workspace
from agents.models import AgentSession, SessionStatus
from agents.schemas import (
    BudgetConsumedOut,
    CamelIn,
    ContextOut,
    EventOut,
    SessionCreateIn,
    SessionOut,
    ToolOut,
    context_out,
    event_out,
    session_out,
    tool_out,
)
from agents.selectors import session_events, session_find, session_get, session_list, session_tools
from artifacts.api import TRANSFER_ERRORS, ArtifactOut, UploadIn, artifact_out
from config.auth import require_scope
from config.schemas import BODY, WORKER, errors
from sandboxes.api import ExecuteOut, FileEntryOut, FileReadOut, FilesWriteIn, FilesWriteOut
from sandboxes.selectors import sandbox_newest_running_in_session
from transfers.api import TransferOut, transfer_out
from transfers.services import artifact_upload_from_sandbox

router = Router(tags=["agent sessions"])


class SessionListOut(Schema):
    sessions: list[SessionOut]
    total: int
    limit: int
    offset: int


class SessionFilters(Schema):
    status: SessionStatus | None = None
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


class SuccessOut(Schema):
    success: bool


def _session(request: HttpRequest, session_id: str) -> AgentSession:
    return session_get(organization_id=request.auth.organization_id, session_id=session_id)


class ReattachIn(CamelIn):
    client_id: str


class ReattachOut(Schema):
    session: SessionOut | None
    reattached: bool


# Declared before /agent/sessions/{session_id}, or the POST would find that path and its 405.
@router.post("/agent/sessions/reattach", response={200: ReattachOut, **errors(404, BODY)})
def reattach_session(request: HttpRequest, payload: ReattachIn):
    require_scope(request.auth, "sandboxes:write")
    session = services.session_reattach(actor=request.auth, client_id=payload.client_id)
    return {"session": session_out(session), "reattached": True}


@router.post("/agent/sessions", response={201: SessionOut, **errors(409, BODY)})
def create_session(request: HttpRequest, payload: SessionCreateIn):
    require_scope(request.auth, "sandboxes:write")
    session = services.session_create(
        actor=request.auth,
        name=payload.name,
        description=payload.description,
        budget=payload.budget.dict() if payload.budget else None,
        rotation=payload.rotation.dict() if payload.rotation else None,
        sandbox=payload.sandbox.dict() if payload.sandbox else None,
        client_id=payload.client_id,
    )
    return Status(201, session_out(session, []))


@router.get("/agent/sessions", response={200: SessionListOut, **errors()})
def list_sessions(request: HttpRequest, filters: Query[SessionFilters]):
    require_scope(request.auth, "sandboxes:read")
    sessions = session_list(organization_id=request.auth.organization_id, status=filters.status)
    page = sessions[filters.offset : filters.offset + filters.limit]
    return {
        "sessions": [session_out(s) for s in page],
        "total": sessions.count(),
        "limit": filters.limit,
        "offset": filters.offset,
    }


@router.get("/agent/sessions/{session_id}", response={200: SessionOut, **errors(404)})
def get_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:read")
    return session_out(_session(request, session_id))


@router.delete("/agent/sessions/{session_id}", response={200: SuccessOut, **errors(404, 409, WORKER)})
def delete_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    services.session_delete(actor=request.auth, session=_session(request, session_id))
    return {"success": True}


@router.post("/agent/sessions/{session_id}/start", response={200: SessionOut, **errors(404, 409, WORKER)})
def start_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    return session_out(services.session_start(actor=request.auth, session=_session(request, session_id)))


@router.post("/agent/sessions/{session_id}/pause", response={200: SessionOut, **errors(404, 409)})
def pause_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    return session_out(services.session_pause(actor=request.auth, session=_session(request, session_id)))


@router.post("/agent/sessions/{session_id}/resume", response={200: SessionOut, **errors(404, 409)})
def resume_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    return session_out(services.session_resume(actor=request.auth, session=_session(request, session_id)))


class StopIn(Schema):
    reason: str | None = None


@router.post("/agent/sessions/{session_id}/stop", response={200: SuccessOut, **errors(404, 409, BODY, WORKER)})
def stop_session(request: HttpRequest, session_id: str, payload: StopIn | None = None):
    require_scope(request.auth, "sandboxes:write")
    services.session_end(
        actor=request.auth,
        session=_session(request, session_id),
        status=SessionStatus.COMPLETED,
        reason=(payload.reason if payload else None) or "",
    )
    return {"success": True}


@router.post("/agent/sessions/{session_id}/cancel", response={200: SuccessOut, **errors(404, 409, WORKER)})
def cancel_session(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    services.session_end(
        actor=request.auth, session=_session(request, session_id), status=SessionStatus.CANCELLED, reason="cancelled"
    )
    return {"success": True}


class RotateOut(Schema):
    rotation_id: str
    session: SessionOut


@router.post("/agent/sessions/{session_id}/rotate", response={202: RotateOut, **errors(404, 409, WORKER)})
def rotate_session(request: HttpRequest, session_id: str):
    """Move the session to a new sandbox now, its workspace with it (not in the SDK: Stowage's own).
    Rotations also start by themselves `pre_rotate_buffer_seconds` before the sandbox expires."""
    require_scope(request.auth, "sandboxes:write")
    session = _session(request, session_id)
    rotation = services.session_rotate(actor=request.auth, session=session)
    session.refresh_from_db()
    return Status(202, {"rotation_id": rotation.id, "session": session_out(session)})


class ExecIn(CamelIn):
    command: str | list[str]
    working_dir: str | None = Field(None, validation_alias=AliasChoices("workingDir", "working_dir", "cwd"))
    env: dict[str, str] | None = None
    timeout_ms: StrictInt | None = Field(None, validation_alias=AliasChoices("timeoutMs", "timeout_ms", "timeout"))


class ExecOut(Schema):
    result: ExecuteOut
    session_id: str
    sandbox_id: str
    budget_consumed: BudgetConsumedOut


@router.post("/agent/sessions/{session_id}/exec", response={200: ExecOut, **errors(404, 409, BODY, WORKER)})
def exec_in_session(request: HttpRequest, session_id: str, payload: ExecIn):
    require_scope(request.auth, "sandboxes:write")
    session = _session(request, session_id)
    answer = workspace.session_exec(
        actor=request.auth,
        session=session,
        command=payload.command,
        working_dir=payload.working_dir,
        env=payload.env,
        timeout_ms=payload.timeout_ms,
    )
    session.refresh_from_db()
    consumed = session_out(session, [])["budget_consumed"]
    return {
        "result": answer,
        "session_id": session.id,
        "sandbox_id": session.current_sandbox_id,
        "budget_consumed": consumed,
    }


class EventFilters(Schema):
    # The SDK sends each in both spellings; either alone is taken too.
    after_sequence: int | None = Field(None, ge=0)
    afterSequence: int | None = Field(None, ge=0)
    event_type: str | None = Field(None, min_length=1, max_length=40)
    eventType: str | None = Field(None, min_length=1, max_length=40)
    limit: int | None = Field(None, ge=1, le=1000)


class EventsOut(Schema):
    events: list[EventOut]
    latest_sequence: int | None = Field(..., description="the highest sequence number in this answer")
    has_more: bool


@router.get("/agent/sessions/{session_id}/events", response={200: EventsOut, **errors(404)})
def list_events(request: HttpRequest, session_id: str, filters: Query[EventFilters]):
    require_scope(request.auth, "sandboxes:read")
    session = _session(request, session_id)
    events = session_events(
        session=session,
        after_sequence=filters.after_sequence if filters.after_sequence is not None else filters.afterSequence,
        event_type=filters.event_type or filters.eventType,
        limit=filters.limit,
    )
    latest = events[-1].sequence_number if events else None
    more = bool(latest is not None and latest < session.last_sequence)
    return {"events": [event_out(e) for e in events], "latest_sequence": latest, "has_more": more}


class ContextIn(CamelIn):
    working_dir: str | None = Field(None, validation_alias=AliasChoices("workingDir", "working_dir"))
    env_vars: dict[str, str] | None = Field(None, validation_alias=AliasChoices("envVars", "env_vars"))
    custom_state: dict[str, Any] | None = Field(None, validation_alias=AliasChoices("customState", "custom_state"))


class ContextAnswer(Schema):
    context: ContextOut


@router.post("/agent/sessions/{session_id}/context", response={200: ContextAnswer, **errors(404, 409, BODY)})
def update_context(request: HttpRequest, session_id: str, payload: ContextIn):
    require_scope(request.auth, "sandboxes:write")
    session = _session(request, session_id)
    services.session_context_update(
        actor=request.auth, session=session, update=payload.dict(exclude_none=True, by_alias=False)
    )
    session.refresh_from_db()
    return {"context": context_out(session)}


@router.post("/agent/sessions/{session_id}/heartbeat", response={200: SuccessOut, **errors(404, 409)})
def heartbeat(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:write")
    services.session_heartbeat(actor=request.auth, session=_session(request, session_id))
    return {"success": True}


class ToolIn(CamelIn):
    name: str
    tool_type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolAnswer(Schema):
    tool: ToolOut


class ToolsOut(Schema):
    tools: list[ToolOut]


@router.post("/agent/sessions/{session_id}/tools", response={201: ToolAnswer, **errors(404, 409, BODY)})
def register_tool(request: HttpRequest, session_id: str, payload: ToolIn):
    require_scope(request.auth, "sandboxes:write")
    tool = services.session_tool_register(
        actor=request.auth,
        session=_session(request, session_id),
        name=payload.name,
        tool_type=payload.tool_type,
        description=payload.description,
        input_schema=payload.input_schema,
    )
    return Status(201, {"tool": tool_out(tool)})


@router.get("/agent/sessions/{session_id}/tools", response={200: ToolsOut, **errors(404)})
def list_tools(request: HttpRequest, session_id: str):
    require_scope(request.auth, "sandboxes:read")
    return {"tools": [tool_out(t) for t in session_tools(session=_session(request, session_id))]}


@router.get("/agent/sessions/{session_id}/files", response={200: FileReadOut, **errors(404, 409, 413, WORKER)})
def read_session_file(request: HttpRequest, session_id: str, path: str):
    require_scope(request.auth, "sandboxes:read")
    return workspace.session_read_file(actor=request.auth, session=_session(request, session_id), path=path)


@router.post("/agent/sessions/{session_id}/files", response={200: FilesWriteOut, **errors(404, 409, BODY, WORKER)})
def write_session_files(request: HttpRequest, session_id: str, payload: FilesWriteIn):
    require_scope(request.auth, "sandboxes:write")
    written = workspace.session_write_files(
        actor=request.auth, session=_session(request, session_id), items=[f.dict() for f in payload.files]
    )
    return {"success": True, "files": written}


class SessionFilesOut(Schema):
    path: str
    files: list[FileEntryOut]


@router.get("/agent/sessions/{session_id}/files/list", response={200: SessionFilesOut, **errors(404, 409, WORKER)})
def list_session_files(request: HttpRequest, session_id: str, path: str = "/workspace", recursive: bool = False):
    require_scope(request.auth, "sandboxes:read")
    listed = workspace.session_list_files(
        actor=request.auth, session=_session(request, session_id), path=path, recursive=recursive
    )
    return {"path": path, "files": listed}


@router.post(
    "/agent/sessions/{session_id}/artifacts/upload", response={200: ArtifactOut, 202: TransferOut, **TRANSFER_ERRORS}
)
def upload_session_artifact(request: HttpRequest, session_id: str, payload: UploadIn, wait: bool = True):
    """Upload from the session's current sandbox; the artifact is tagged with the session. A
    session tag given to ``/sandbox/create`` as ``session_id`` (no agent session of that id)
    uploads from the newest running sandbox with that tag, as before agent sessions existed."""
    require_scope(request.auth, "artifacts:write")
    upload = {
        "path": payload.path,
        "remote_path": payload.remote_path,
        "content_type": payload.content_type,
        "metadata": payload.metadata,
        "expires_in": payload.expires_in,
    }
    session = session_find(organization_id=request.auth.organization_id, session_id=session_id)
    if session is not None:
        transfer = workspace.session_upload_artifact(actor=request.auth, session=session, wait=wait, **upload)
    else:
        sandbox = sandbox_newest_running_in_session(organization_id=request.auth.organization_id, session_id=session_id)
        transfer = artifact_upload_from_sandbox(
            actor=request.auth, sandbox=sandbox, session_id=session_id, wait=wait, **upload
        )
    if not wait:
        return Status(202, transfer_out(transfer))
    return Status(200, artifact_out(transfer.artifact))
