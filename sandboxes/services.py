"""Every change a request makes to a sandbox: validated here, its status moved through
``sandboxes.states``, its work sent to the sandbox's host (``sandboxes.worker``), audited.
Calls on its files are in ``sandboxes.files``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit_record
from config.redis import get_redis
from core.actor import Actor
from core.answers import answer_key, async_stream_redis
from core.dispatch import await_task, enqueue, wait_for
from core.errors import Conflict, InvalidInput, StowageError
from core.threads import in_thread
from quotas.enforcement import quota_check_sandbox
from sandboxes import worker
from sandboxes.events import sandbox_emit
from sandboxes.limits import (
    check_env,
    check_exec_timeout_ms,
    check_timeout_seconds,
    grant_cpus,
    parse_cpus,
    parse_disk,
    parse_memory,
)
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime.paths import parse_path, sandbox_path
from sandboxes.states import audited, audited_wait, sandbox_mark_failed, sandbox_mark_terminating

# How long past a command's own timeout the API waits for the worker's answer.
EXEC_WAIT_MARGIN_SECONDS = 30
# A streamed command that prints nothing still gets a keepalive this often, so that proxies and
# clients do not take the quiet connection for a dead one.
STREAM_IDLE_SECONDS = 1


def require_running(sandbox: Sandbox) -> None:
    if sandbox.status != SandboxStatus.RUNNING:
        raise Conflict(
            f"Sandbox '{sandbox.id}' is {sandbox.status}, not running",
            code="SANDBOX_NOT_RUNNING",
            details={"status": sandbox.status},
        )


def check_sandbox_path(path: str | None, *, field: str = "path", allow_root: bool = False) -> str:
    """The normalized /workspace path, checked here so that a bad one never reaches a worker."""
    try:
        return sandbox_path(parse_path(path or "", allow_root=allow_root))
    except SandboxRuntimeError as exc:
        raise InvalidInput(exc.message, code=exc.code, details={"field": field}) from None


def _pick_host() -> str:
    hosts = settings.STOWAGE_SANDBOX_HOSTS
    if len(hosts) == 1:
        return hosts[0]
    running = dict(
        Sandbox.objects.filter(host__in=hosts, status__in=[SandboxStatus.CREATING, SandboxStatus.RUNNING])
        .values_list("host")
        .annotate(n=Count("id"))
    )
    return min(hosts, key=lambda host: running.get(host, 0))


def sandbox_create(
    *,
    actor: Actor,
    cpus: str | None = None,
    memory: str | None = None,
    disk: str | None = None,
    timeout_seconds: int | None = None,
    env: dict[str, str] | None = None,
    session_id: str | None = None,
    replaces_sandbox_id: str | None = None,
) -> Sandbox:
    """``replaces_sandbox_id``: the sandbox this one takes over from (an agent session's rotation),
    which the running sandboxes quota does not count while both run."""
    requested_cpus, requested_count = parse_cpus(cpus)
    cpus_text, cpu_count = grant_cpus(requested_cpus, requested_count)
    memory_text, memory_bytes = parse_memory(memory)
    disk_text, disk_bytes = parse_disk(disk)
    lifetime = check_timeout_seconds(timeout_seconds)
    env = check_env(env)
    if session_id is not None and not (1 <= len(session_id) <= 128 and session_id.isprintable()):
        raise InvalidInput("session_id must be 1 to 128 printable characters", details={"field": "session_id"})
    now = timezone.now()
    sandbox = Sandbox(
        organization_id=actor.organization_id,
        host=_pick_host(),
        cpus=cpus_text,
        cpu_count=cpu_count,
        cpus_requested=requested_cpus if requested_cpus != cpus_text else "",
        memory=memory_text,
        memory_bytes=memory_bytes,
        disk=disk_text,
        disk_bytes=disk_bytes,
        created_by_api_key_id=actor.api_key_id,
        created_by_user_id=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    if session_id:
        sandbox.session_id = session_id
    task_id = str(uuid.uuid4())
    with audited(
        actor=actor,
        action="sandbox.create",
        sandbox=sandbox,
        details={
            "cpus": cpus_text,
            "cpus_requested": requested_cpus,
            "memory": memory_text,
            "disk": disk_text,
            "timeout_seconds": lifetime,
            "host": sandbox.host,
            "env_names": sorted(env),
        },
    ):
        with transaction.atomic():
            quota_check_sandbox(organization_id=actor.organization_id, replacing=replaces_sandbox_id)
            sandbox.save(force_insert=True)
            sandbox_emit(sandbox, "sandbox.created")
            transaction.on_commit(
                lambda: enqueue(
                    worker.sandbox_provision,
                    host=sandbox.host,
                    task_id=task_id,
                    on_unavailable=lambda: sandbox_mark_failed(
                        sandbox_id=sandbox.id, message="the task queue was unavailable; the sandbox was not started"
                    ),
                    sandbox_id=sandbox.id,
                    env=env,
                )
            )
        try:
            wait_for(worker.sandbox_provision.AsyncResult(task_id), timeout=settings.SANDBOX_CREATE_WAIT_SECONDS)
        except StowageError:
            # Nobody will start it now; don't leave it half-made.
            sandbox_mark_failed(sandbox_id=sandbox.id, message="no worker provisioned the sandbox in time")
            raise
        sandbox.refresh_from_db()
    return sandbox


def _command_send(
    *,
    sandbox: Sandbox,
    command: str | list[str],
    timeout_ms: int | None,
    env: dict[str, str] | None,
    working_dir: str | None,
    stream_key: str | None,
    awaited: bool = False,
) -> tuple[Any, int]:
    """The pending task and the timeout it was given; ``awaited`` when its answer is awaited
    (``await_task``) rather than waited for."""
    _validate_command(command)
    timeout_ms = check_exec_timeout_ms(timeout_ms)
    env = check_env(env)
    if working_dir is not None:
        working_dir = check_sandbox_path(working_dir, field="working_dir", allow_root=True)
    require_running(sandbox)
    pending = enqueue(
        worker.sandbox_execute,
        host=sandbox.host,
        admit_org=sandbox.organization_id,
        hold_seconds=timeout_ms / 1000 + EXEC_WAIT_MARGIN_SECONDS,
        sandbox_id=sandbox.id,
        command=command,
        env=env,
        working_dir=working_dir,
        timeout_ms=timeout_ms,
        stream_key=stream_key,
        organization_id=sandbox.organization_id,
        session_id=sandbox.session_id or "",
        ignore_result=awaited,
    )
    return pending, timeout_ms


def sandbox_execute(
    *,
    actor: Actor,
    sandbox: Sandbox,
    command: str | list[str],
    timeout_ms: int | None = None,
    env: dict[str, str] | None = None,
    working_dir: str | None = None,
) -> dict[str, Any]:
    pending, timeout_ms = _command_send(
        sandbox=sandbox, command=command, timeout_ms=timeout_ms, env=env, working_dir=working_dir, stream_key=None
    )
    with audited(
        actor=actor, action="command.execute", sandbox=sandbox, details={"command": _command_text(command)}
    ) as details:
        answer = wait_for(pending, timeout=timeout_ms / 1000 + EXEC_WAIT_MARGIN_SECONDS)
        _describe_answer(answer, details, timeout_ms)
    return answer


def _describe_answer(answer: dict[str, Any], details: dict[str, Any], timeout_ms: int) -> None:
    details.update(
        exit_code=answer["exit_code"], timed_out=answer["timed_out"], output_truncated=answer["output_truncated"]
    )
    if answer["timed_out"]:
        details["_outcome"], details["_error"] = Outcome.FAILURE, f"timed out after {timeout_ms} ms"


async def sandbox_execute_async(
    *,
    actor: Actor,
    sandbox: Sandbox | Callable[[], Sandbox],
    command: str | list[str],
    timeout_ms: int | None = None,
    env: dict[str, str] | None = None,
    working_dir: str | None = None,
) -> dict[str, Any]:
    """``sandbox_execute`` for async callers: sent from a thread, its answer awaited without one.
    ``sandbox`` may be a call that finds it, made in that same thread (one hop, not two)."""

    def send() -> tuple[Sandbox, Any, int]:
        found = sandbox() if callable(sandbox) else sandbox
        options = dict(command=command, timeout_ms=timeout_ms, env=env, working_dir=working_dir, stream_key=None)
        return (found, *_command_send(sandbox=found, awaited=True, **options))

    sandbox, pending, timeout_ms = await in_thread(send)()
    return await audited_wait(
        await_task(pending.id, timeout=timeout_ms / 1000 + EXEC_WAIT_MARGIN_SECONDS),
        actor=actor,
        action="command.execute",
        sandbox=sandbox,
        details={"command": _command_text(command)},
        describe=lambda answer, details: _describe_answer(answer, details, timeout_ms),
    )


def sandbox_execute_stream(
    *,
    actor: Actor,
    sandbox: Sandbox,
    command: str | list[str],
    timeout_ms: int | None = None,
    env: dict[str, str] | None = None,
    working_dir: str | None = None,
) -> Generator[dict[str, Any] | None, None, None]:
    """Start the command and return its events as they come: ``stdout``/``stderr`` chunks, ``exit``
    or ``error``, then ``done``; ``None`` whenever nothing has come for a while.

    The command is checked and sent before this returns, so a bad one fails the request itself.
    """
    stream_key = f"stowage:exec:{uuid.uuid4().hex}"
    pending, timeout_ms = _command_send(
        sandbox=sandbox, command=command, timeout_ms=timeout_ms, env=env, working_dir=working_dir, stream_key=stream_key
    )
    return _command_events(
        actor=actor,
        sandbox=sandbox,
        command=command,
        stream_key=stream_key,
        pending=pending,
        timeout_s=timeout_ms / 1000 + EXEC_WAIT_MARGIN_SECONDS,
    )


def _command_events(
    *, actor: Actor, sandbox: Sandbox, command: str | list[str], stream_key: str, pending, timeout_s: float
) -> Generator[dict[str, Any] | None, None, None]:
    redis = get_redis()
    started = time.monotonic()
    deadline = started + timeout_s
    last_id = "0-0"
    final: dict[str, Any] = {"type": "error", "error": "the stream ended before the command finished"}
    try:
        while time.monotonic() < deadline:
            batches = redis.xread({stream_key: last_id}, block=STREAM_IDLE_SECONDS * 1000, count=256)
            if not batches:
                yield None
                continue
            for _, entries in batches:
                for entry_id, fields in entries:
                    last_id = entry_id
                    event = json.loads(fields[b"event"])
                    if event["type"] in ("exit", "error"):
                        final = event
                    yield event
                    if event["type"] == "done":
                        return
        final = {"type": "error", "error": "no answer from the sandbox host in time"}
        yield final
        yield {"type": "done"}
    finally:
        # Also when the client leaves mid-stream: the command ran all the same.
        redis.delete(stream_key)
        pending.forget()
        _stream_audit(
            actor=actor,
            sandbox=sandbox,
            command=command,
            final=final,
            duration_ms=int((time.monotonic() - started) * 1000),
        )


async def sandbox_execute_stream_async(
    *,
    actor: Actor,
    sandbox: Sandbox,
    command: str | list[str],
    timeout_ms: int | None = None,
    env: dict[str, str] | None = None,
    working_dir: str | None = None,
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """``sandbox_execute_stream`` for async callers: the events are read from Redis by the event
    loop, so a long stream holds no thread."""
    stream_key = f"stowage:exec:{uuid.uuid4().hex}"
    pending, timeout_ms = await in_thread(_command_send)(
        sandbox=sandbox, command=command, timeout_ms=timeout_ms, env=env, working_dir=working_dir, stream_key=stream_key
    )
    return _command_events_async(
        actor=actor,
        sandbox=sandbox,
        command=command,
        stream_key=stream_key,
        pending=pending,
        timeout_s=timeout_ms / 1000 + EXEC_WAIT_MARGIN_SECONDS,
    )


async def _command_events_async(
    *, actor: Actor, sandbox: Sandbox, command: str | list[str], stream_key: str, pending, timeout_s: float
) -> AsyncGenerator[dict[str, Any] | None, None]:
    redis = async_stream_redis()
    started = time.monotonic()
    deadline = started + timeout_s
    last_id = "0-0"
    final: dict[str, Any] = {"type": "error", "error": "the stream ended before the command finished"}
    finished = False

    async def cleanup() -> None:
        await redis.delete(stream_key, answer_key(pending.id))
        await sync_to_async(pending.forget, thread_sensitive=False)()
        duration_ms = int((time.monotonic() - started) * 1000)
        await in_thread(_stream_audit)(
            actor=actor, sandbox=sandbox, command=command, final=final, duration_ms=duration_ms
        )

    async def finish() -> None:
        nonlocal finished
        if not finished:
            finished = True
            await asyncio.shield(cleanup())

    try:
        while time.monotonic() < deadline:
            batches = await redis.xread({stream_key: last_id}, block=STREAM_IDLE_SECONDS * 1000, count=256)
            if not batches:
                yield None
                continue
            for _, entries in batches:
                for entry_id, fields in entries:
                    last_id = entry_id
                    event = json.loads(fields[b"event"])
                    if event["type"] in ("exit", "error"):
                        final = event
                    if event["type"] == "done":
                        # Recorded before the client hears the end, so what it asks next sees it.
                        await finish()
                        yield event
                        return
                    yield event
        final = {"type": "error", "error": "no answer from the sandbox host in time"}
        yield final
        await finish()
        yield {"type": "done"}
    finally:
        # Also when the client leaves mid-stream: the command ran all the same. A client that
        # leaves cancels this request's task; the clean-up and the audit event go on regardless.
        await finish()


def _stream_audit(
    *, actor: Actor, sandbox: Sandbox, command: str | list[str], final: dict[str, Any], duration_ms: int
) -> None:
    failed = final.get("type") != "exit" or final.get("timed_out")
    audit_record(
        actor=actor,
        action="command.execute",
        resource=f"sandbox:{sandbox.id}",
        sandbox_id=sandbox.id,
        session_id=sandbox.session_id,
        details={
            "command": _command_text(command),
            "stream": True,
            "exit_code": final.get("code"),
            "timed_out": bool(final.get("timed_out")),
        },
        outcome=Outcome.FAILURE if failed else Outcome.SUCCESS,
        error_message=str(final.get("error", "timed out" if final.get("timed_out") else "")),
        duration_ms=duration_ms,
        organization_id=sandbox.organization_id,
    )


def _validate_command(command: str | list[str]) -> None:
    parts = [command] if isinstance(command, str) else command
    if not parts or any(not isinstance(p, str) for p in parts) or (isinstance(command, str) and not command.strip()):
        raise InvalidInput(
            "command must be a non-empty string or a non-empty list of strings", details={"field": "command"}
        )
    if any("\x00" in p for p in parts):
        raise InvalidInput("command must not contain NUL bytes", details={"field": "command"})
    if sum(len(p) for p in parts) > 128 * 1024:
        raise InvalidInput("command is longer than 128 KiB", details={"field": "command"})


def _command_text(command: str | list[str]) -> str:
    text = command if isinstance(command, str) else " ".join(command)
    return text[:1000]


def sandbox_stop(
    *, actor: Actor, sandbox: Sandbox, action: str = "sandbox.stop", reason: str = "requested", wait: bool = True
) -> Sandbox:
    """Stop the sandbox and remove its files. Stopping a stopped sandbox succeeds (retries are safe)."""
    with audited(actor=actor, action=action, sandbox=sandbox, details={"reason": reason}) as details:
        details["previous_status_changed"] = sandbox_mark_terminating(sandbox_id=sandbox.id)
        sandbox.refresh_from_db()
        if sandbox.status == SandboxStatus.TERMINATING:
            pending = enqueue(worker.sandbox_terminate, host=sandbox.host, sandbox_id=sandbox.id)
            if wait:
                wait_for(pending, timeout=settings.SANDBOX_FILE_WAIT_SECONDS)
                sandbox.refresh_from_db()
    return sandbox


def sandbox_extend(*, actor: Actor, sandbox: Sandbox, additional_seconds: int) -> Sandbox:
    high = settings.SANDBOX_MAX_TIMEOUT_SECONDS
    if not 1 <= additional_seconds <= high:
        raise InvalidInput(
            f"additional_seconds must be between 1 and {high}; got {additional_seconds}",
            details={"field": "additional_seconds"},
        )
    with audited(
        actor=actor, action="sandbox.extend", sandbox=sandbox, details={"additional_seconds": additional_seconds}
    ) as details:
        require_running(sandbox)
        now = timezone.now()
        new_expiry = max(sandbox.expires_at, now) + timedelta(seconds=additional_seconds)
        if new_expiry > now + timedelta(seconds=high):
            raise InvalidInput(
                f"a sandbox may live at most {high} seconds from now; extend by at most {int((now + timedelta(seconds=high) - sandbox.expires_at).total_seconds())} seconds",
                details={"field": "additional_seconds"},
            )
        # Compare-and-set: a concurrent stop wins over an extension.
        updated = Sandbox.objects.filter(
            id=sandbox.id, status=SandboxStatus.RUNNING, expires_at=sandbox.expires_at
        ).update(expires_at=new_expiry)
        if not updated:
            raise Conflict("the sandbox changed while extending it; try again", code="SANDBOX_CHANGED")
        details["expires_at"] = new_expiry.isoformat()
        sandbox.refresh_from_db()
    return sandbox


def sandbox_lifetime(*, sandbox: Sandbox) -> dict[str, Any]:
    """The SDK's status answer. An extension may reach now plus the longest lifetime, no further."""
    now = timezone.now()
    longest = settings.SANDBOX_MAX_TIMEOUT_SECONDS
    ceiling = now + timedelta(seconds=longest)
    end = sandbox.stopped_at or now
    used = max(0, int((end - sandbox.created_at).total_seconds()))
    planned = max(1, int((sandbox.expires_at - sandbox.created_at).total_seconds()))
    live = sandbox.status in (SandboxStatus.CREATING, SandboxStatus.RUNNING)
    return {
        "sandbox_id": sandbox.id,
        "status": sandbox.status,
        "expires_at": sandbox.expires_at.isoformat(),
        "max_expires_at": ceiling.isoformat() if live else None,
        "max_lifetime_seconds": longest,
        "remaining_extend_seconds": max(0, int((ceiling - sandbox.expires_at).total_seconds())) if live else 0,
        "lifetime_used_seconds": used,
        "lifetime_used_percent": round(min(100.0, used * 100 / planned), 2),
    }
