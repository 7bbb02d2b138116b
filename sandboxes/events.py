"""The webhook events of sandboxes, commands and files: their payloads, small and stable."""

from __future__ import annotations

from typing import Any

from sandboxes.models import Sandbox
from webhooks.outbox import emit


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def sandbox_data(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "sandbox_id": sandbox.id,
        "session_id": sandbox.session_id,
        "status": sandbox.status,
        "cpus": sandbox.cpus,
        "memory": sandbox.memory,
        "created_at": _iso(sandbox.created_at),
        "expires_at": _iso(sandbox.expires_at),
        "started_at": _iso(sandbox.started_at),
        "stopped_at": _iso(sandbox.stopped_at),
    }


def sandbox_emit(sandbox: Sandbox, type: str, **extra: Any) -> None:
    emit(organization_id=sandbox.organization_id, type=type, data={**sandbox_data(sandbox), **extra})


def sandbox_emit_by_id(sandbox_id: str, type: str, **extra: Any) -> None:
    sandbox = Sandbox.objects.filter(id=sandbox_id).first()
    if sandbox is not None:
        sandbox_emit(sandbox, type, **extra)


def command_emit(sandbox: Sandbox, type: str, *, command_id: str, wait: bool = True, **extra: Any) -> None:
    # The command line itself stays out: it may hold a token. It is in the audit log.
    emit(
        organization_id=sandbox.organization_id,
        type=type,
        data={"sandbox_id": sandbox.id, "session_id": sandbox.session_id, "command_id": command_id, **extra},
        wait=wait,
    )


def command_finished_emit(sandbox: Sandbox, command_id: str, answer: dict[str, Any]) -> None:
    """command.completed for an exit code of 0 in time, command.failed for anything else."""
    error = answer.get("error")
    exit_code = answer.get("exit_code")
    timed_out = bool(answer.get("timed_out"))
    extra: dict[str, Any] = {"exit_code": exit_code, "timed_out": timed_out}
    if error:
        extra["error"] = str(error.get("code", "") if isinstance(error, dict) else error)[:200]
    if "duration_ms" in answer:
        extra["duration_ms"] = answer["duration_ms"]
    succeeded = exit_code == 0 and not timed_out and not error
    command_emit(sandbox, "command.completed" if succeeded else "command.failed", command_id=command_id, **extra)
