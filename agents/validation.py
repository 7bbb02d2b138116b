"""Checks on what a caller asks of a session: budgets, rotation, sandbox config, tools, context.
Each returns the clean value or raises InvalidInput naming the field, before anything changes."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

from core.errors import InvalidInput
from sandboxes.limits import check_env, check_timeout_seconds, parse_cpus, parse_memory
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime.paths import parse_path, sandbox_path

# Far above any real session, low enough that a typo (or a negative number read as unsigned) is caught.
MAX_ITERATIONS = 1_000_000
MAX_DURATION_SECONDS = 30 * 86400
MAX_COST_CAP_CENTS = 100_000_000
MAX_JSON_BYTES = 64 * 1024
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TOOL_TYPES = ("builtin", "custom", "mcp")
# Stowage confines sandboxes with bubblewrap namespaces; "container" is what SDK users usually write.
ISOLATIONS = ("bubblewrap", "container")


def _whole(value: Any, *, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}", details={"field": field})
    return value


def check_budget(budget: dict[str, Any] | None) -> dict[str, int | None]:
    budget = budget or {}
    return {
        "cost_cap_cents": _whole(
            budget.get("cost_cap_cents"), field="budget.cost_cap_cents", low=1, high=MAX_COST_CAP_CENTS
        ),
        "iteration_limit": _whole(
            budget.get("iteration_limit"), field="budget.iteration_limit", low=1, high=MAX_ITERATIONS
        ),
        "duration_limit_seconds": _whole(
            budget.get("duration_limit_seconds"),
            field="budget.duration_limit_seconds",
            low=1,
            high=MAX_DURATION_SECONDS,
        ),
    }


def check_sandbox_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """What each of the session's sandboxes is made with, checked as a sandbox create checks it."""
    config = config or {}
    cpus, _ = parse_cpus(config.get("cpus"))
    memory, _ = parse_memory(config.get("memory"))
    timeout = config.get("timeout_seconds")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise InvalidInput(
            "sandbox.timeout_seconds must be a whole number", details={"field": "sandbox.timeout_seconds"}
        )
    lifetime = check_timeout_seconds(timeout)
    isolation = config.get("isolation")
    if isolation is not None and isolation not in ISOLATIONS:
        raise InvalidInput(
            f"sandbox.isolation {str(isolation)[:40]!r} is not available here; sandboxes are isolated with "
            f"bubblewrap (give {' or '.join(ISOLATIONS)}, or nothing)",
            details={"field": "sandbox.isolation"},
        )
    return {
        "cpus": cpus,
        "memory": memory,
        "timeout_seconds": lifetime,
        "isolation": isolation,
        "env": check_env(config.get("env")),
    }


def check_rotation(rotation: dict[str, Any] | None, *, lifetime: int) -> int:
    """The buffer before expiry at which a sandbox is rotated; shorter than the sandbox's life, or
    every new sandbox would be rotated at once."""
    value = (rotation or {}).get("pre_rotate_buffer_seconds")
    if value is None:
        value = min(60, lifetime // 2)
    buffer = _whole(value, field="rotation.pre_rotate_buffer_seconds", low=0, high=settings.SANDBOX_MAX_TIMEOUT_SECONDS)
    if buffer >= lifetime:
        raise InvalidInput(
            f"rotation.pre_rotate_buffer_seconds ({buffer}) must be shorter than the sandbox's lifetime "
            f"(sandbox.timeout_seconds, {lifetime})",
            details={"field": "rotation.pre_rotate_buffer_seconds"},
        )
    return buffer


def check_text(value: Any, *, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{field} must be text of at most {limit} characters", details={"field": field})
    return value.strip()


def check_client_id(value: Any, *, field: str = "client_id") -> str:
    text = check_text(value, field=field, limit=128)
    if value is not None and (not text or not text.isprintable()):
        raise InvalidInput(f"{field} must be 1 to 128 printable characters", details={"field": field})
    return text


def check_json_object(value: Any, *, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", details={"field": field})
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) > MAX_JSON_BYTES:
        raise InvalidInput(f"{field} must be at most {MAX_JSON_BYTES} bytes of JSON", details={"field": field})
    return value


def check_tool(*, name: Any, tool_type: Any, description: Any, input_schema: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise InvalidInput("tool name must be 1 to 64 letters, digits or '_', '-', '.', ':'", details={"field": "name"})
    tool_type = tool_type or "custom"
    if tool_type not in TOOL_TYPES:
        raise InvalidInput(f"tool_type must be one of {', '.join(TOOL_TYPES)}", details={"field": "tool_type"})
    return {
        "name": name,
        "tool_type": tool_type,
        "description": check_text(description, field="description", limit=4000),
        "input_schema": check_json_object(input_schema, field="input_schema"),
    }


def check_context(update: dict[str, Any]) -> dict[str, Any]:
    """The agent context fields an update sets; those it leaves out keep their values."""
    clean: dict[str, Any] = {}
    if update.get("working_dir") is not None:
        try:
            clean["working_dir"] = sandbox_path(parse_path(update["working_dir"], allow_root=True))
        except SandboxRuntimeError as exc:
            raise InvalidInput(exc.message, code=exc.code, details={"field": "working_dir"}) from None
    if update.get("env_vars") is not None:
        if not isinstance(update["env_vars"], dict):
            raise InvalidInput("env_vars must be an object of strings", details={"field": "env_vars"})
        clean["env_vars"] = check_env(update["env_vars"])
    if update.get("custom_state") is not None:
        clean["custom_state"] = check_json_object(update["custom_state"], field="custom_state")
    return clean
