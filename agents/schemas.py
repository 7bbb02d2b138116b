"""The shapes of the agent-session API: what the SDK sends (camelCase or snake_case, both taken)
and every field of the SDK's ``AgentSession``, ``AgentEvent`` and tool models in the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema
from ninja.schema import DjangoGetter
from pydantic import ConfigDict, StrictInt, model_validator
from pydantic.alias_generators import to_camel

from agents.models import AgentEvent, AgentSession, AgentTool, SessionStatus

# Values a caller may have stored but must not read back: env values can hold secrets.
HIDDEN = "***"


class CamelIn(Schema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        # A ninja Schema reads attributes off whatever it is given: a list would pass as empty.
        given = data._obj if isinstance(data, DjangoGetter) else data
        if not isinstance(given, (dict, Schema)):
            raise ValueError("must be a JSON object")
        return data


class BudgetIn(CamelIn):
    cost_cap_cents: StrictInt | None = None
    iteration_limit: StrictInt | None = None
    duration_limit_seconds: StrictInt | None = None


class RotationIn(CamelIn):
    pre_rotate_buffer_seconds: StrictInt | None = None


class SandboxConfigIn(CamelIn):
    cpus: str | StrictInt | float | None = None
    memory: str | StrictInt | None = None
    timeout_seconds: StrictInt | None = None
    isolation: str | None = None
    env: dict[str, str] | None = None


class SessionCreateIn(CamelIn):
    name: str | None = None
    description: str | None = None
    budget: BudgetIn | None = None
    rotation: RotationIn | None = None
    sandbox: SandboxConfigIn | None = None
    client_id: str | None = None


class BudgetConfigOut(Schema):
    cost_cap_cents: int | None
    iteration_limit: int | None
    duration_limit_seconds: int | None


class BudgetConsumedOut(Schema):
    cost_cents: int
    iterations: int
    duration_seconds: int


class RotationConfigOut(Schema):
    pre_rotate_buffer_seconds: int


class SandboxConfigOut(Schema):
    cpus: str | None
    memory: str | None
    timeout_seconds: int | None
    isolation: str | None
    env: dict[str, str] | None


class ContextOut(Schema):
    working_dir: str | None
    env_vars: dict[str, str] | None
    custom_state: dict[str, Any] | None
    last_checkpoint_id: str | None
    last_sandbox_id: str | None


class ToolOut(Schema):
    name: str
    tool_type: str
    description: str | None
    input_schema: dict[str, Any] | None
    enabled: bool


class SessionOut(Schema):
    id: str
    organization_id: str
    status: SessionStatus
    current_sandbox_id: str | None
    name: str | None
    description: str | None
    agent_context: ContextOut
    tool_registry: list[ToolOut]
    budget_config: BudgetConfigOut
    budget_consumed: BudgetConsumedOut
    rotation_config: RotationConfigOut
    sandbox_config: SandboxConfigOut
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    client_id: str | None
    last_heartbeat_at: datetime | None
    rotation_count: int
    total_exec_count: int
    error_message: str | None
    error_code: str | None


def _hidden(env: dict[str, str] | None) -> dict[str, str] | None:
    return None if env is None else dict.fromkeys(env, HIDDEN)


def context_out(session: AgentSession) -> dict[str, Any]:
    context = session.context or {}
    return {
        "working_dir": context.get("working_dir"),
        "env_vars": _hidden(context.get("env_vars")),
        "custom_state": context.get("custom_state"),
        "last_checkpoint_id": session.last_checkpoint_id or None,
        "last_sandbox_id": session.last_sandbox_id or None,
    }


def tool_out(tool: AgentTool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "tool_type": tool.tool_type,
        "description": tool.description or None,
        "input_schema": tool.input_schema,
        "enabled": tool.enabled,
    }


def session_out(session: AgentSession, tools: list[AgentTool] | None = None) -> dict[str, Any]:
    config = session.sandbox_config or {}
    tools = list(session.tools.all()) if tools is None else tools
    return {
        "id": session.id,
        "organization_id": session.organization_id,
        "status": session.status,
        "current_sandbox_id": session.current_sandbox_id or None,
        "name": session.name or None,
        "description": session.description or None,
        "agent_context": context_out(session),
        "tool_registry": [tool_out(tool) for tool in tools],
        "budget_config": {
            "cost_cap_cents": session.cost_cap_cents,
            "iteration_limit": session.iteration_limit,
            "duration_limit_seconds": session.duration_limit_seconds,
        },
        "budget_consumed": {
            "cost_cents": session.cost_cents,
            "iterations": session.exec_count,
            "duration_seconds": session.duration_seconds(),
        },
        "rotation_config": {"pre_rotate_buffer_seconds": session.pre_rotate_buffer_seconds},
        "sandbox_config": {
            "cpus": config.get("cpus"),
            "memory": config.get("memory"),
            "timeout_seconds": config.get("timeout_seconds"),
            "isolation": config.get("isolation"),
            "env": _hidden(config.get("env")),
        },
        "created_at": session.created_at,
        "started_at": session.started_at,
        "completed_at": session.completed_at,
        "last_activity_at": session.last_activity_at,
        "client_id": session.client_id or None,
        "last_heartbeat_at": session.last_heartbeat_at,
        "rotation_count": session.rotation_count,
        "total_exec_count": session.exec_count,
        "error_message": session.error_message or None,
        "error_code": session.error_code or None,
    }


class EventOut(Schema):
    id: str
    session_id: str
    sandbox_id: str | None
    event_type: str
    event_subtype: str | None
    payload: dict[str, Any]
    sequence_number: int
    duration_ms: int | None
    success: bool | None
    error_message: str | None
    created_at: datetime


def event_out(event: AgentEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "session_id": event.session_id,
        "sandbox_id": event.sandbox_id or None,
        "event_type": event.event_type,
        "event_subtype": event.event_subtype or None,
        "payload": event.payload,
        "sequence_number": event.sequence_number,
        "duration_ms": event.duration_ms,
        "success": event.success,
        "error_message": event.error_message or None,
        "created_at": event.created_at,
    }
