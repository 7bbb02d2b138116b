"""The worker side of sandboxes: work on a sandbox's files, run only by the worker of its host,
and the sweep that stops expired sandboxes.

Each task takes ids and plain values and calls one function. A runtime error (bad path, missing
file...) is an answer ``{"error": {...}}``, not a task failure, because retrying cannot fix it.

The tasks keep the ``sandboxes.tasks.`` names they had before they moved here: a name is what a
web process sends and a worker looks up, and during a rolling upgrade the two run different code.
"""

from __future__ import annotations

import base64
import codecs
import json
import logging
import tarfile
from datetime import datetime
from typing import Any

from celery import current_task, shared_task
from celery.signals import worker_ready
from django.db import close_old_connections
from django.utils import timezone

from config.celery import hand_back_now
from config.redis import get_redis
from core.actor import Actor
from core.dispatch import enqueue
from sandboxes.events import command_emit, command_finished_emit, sandbox_emit_by_id
from sandboxes.models import Sandbox, SandboxStatus
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime_loader import get_runtime
from sandboxes.states import (
    EXPIRABLE,
    audited,
    sandbox_mark_expired,
    sandbox_mark_failed,
    sandbox_mark_running,
    sandbox_mark_terminated,
)

logger = logging.getLogger(__name__)

STREAM_TTL_SECONDS = 600
EXPIRY_BATCH = 200


def _error(exc: SandboxRuntimeError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}


def provision(*, sandbox: Sandbox, env: dict[str, str]) -> dict[str, Any]:
    if sandbox.status != SandboxStatus.CREATING:
        # Delivered again after it already ran, or stopped before it started.
        return {"status": sandbox.status}
    runtime = get_runtime()
    try:
        runtime.create(
            sandbox.id,
            env=env,
            memory_bytes=sandbox.memory_bytes,
            cpus=sandbox.cpu_count,
            disk_bytes=sandbox.disk_bytes,
        )
        disk_enforced = runtime.disk_enforced(sandbox.id)
    except SandboxRuntimeError as exc:
        sandbox_mark_failed(sandbox_id=sandbox.id, message=exc.message)
        return _error(exc)
    sandbox_mark_running(sandbox_id=sandbox.id, isolated=runtime.isolated, disk_enforced=disk_enforced)
    return {"status": SandboxStatus.RUNNING, "isolated": runtime.isolated, "disk_enforced": disk_enforced}


@shared_task(name="sandboxes.tasks.sandbox_provision")
def sandbox_provision(*, sandbox_id: str, host: str, env: dict[str, str]) -> dict[str, Any]:
    sandbox = Sandbox.objects.filter(id=sandbox_id).first()
    if sandbox is None:
        return {"status": "missing"}
    return provision(sandbox=sandbox, env=env)


class _StreamPublisher:
    """Forwards output to a Redis stream that the web process relays as Server-Sent Events."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.redis = get_redis()
        self.decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }

    def send(self, event: dict[str, Any]) -> None:
        self.redis.xadd(self.key, {"event": json.dumps(event)})

    def output(self, stream: str, chunk: bytes) -> None:
        text = self.decoders[stream].decode(chunk)
        if text:
            self.send({"type": stream, "data": text})

    def finish(self, final: dict[str, Any]) -> None:
        for stream, decoder in self.decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self.send({"type": stream, "data": tail})
        self.send(final)
        self.send({"type": "done"})
        self.redis.expire(self.key, STREAM_TTL_SECONDS)


def run_command(
    *,
    sandbox_id: str,
    command: str | list[str],
    env: dict[str, str],
    working_dir: str | None,
    timeout_ms: int,
    stream_key: str | None,
) -> dict[str, Any]:
    """Run the command; with ``stream_key`` its output also goes, as it comes, to that Redis stream."""
    publisher = _StreamPublisher(stream_key) if stream_key else None
    try:
        result = get_runtime().execute(
            sandbox_id,
            command,
            env=env,
            working_dir=working_dir,
            timeout_s=timeout_ms / 1000,
            on_output=publisher.output if publisher else None,
        )
    except SandboxRuntimeError as exc:
        if publisher:
            publisher.finish({"type": "error", "error": exc.message, "code": exc.code})
        return _error(exc)
    answer = {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "output_truncated": result.output_truncated,
        "timed_out": result.timed_out,
        "duration_ms": result.duration_ms,
    }
    if publisher:
        publisher.finish(
            {
                "type": "exit",
                "code": result.exit_code,
                "output_truncated": result.output_truncated,
                "timed_out": result.timed_out,
            }
        )
        # The stream already carried the output; the result only needs the summary.
        answer["stdout"] = answer["stderr"] = ""
    return answer


# Acknowledged on receipt: running a command twice is worse than reporting that it was lost.
@shared_task(name="sandboxes.tasks.sandbox_execute", acks_late=False)
def sandbox_execute(
    *,
    sandbox_id: str,
    host: str,
    command: str | list[str],
    env: dict[str, str],
    working_dir: str | None,
    timeout_ms: int,
    stream_key: str | None = None,
    organization_id: str | None = None,
    session_id: str = "",
) -> dict[str, Any]:
    """``organization_id`` and ``session_id`` are the sandbox's, for its events (a task sent by
    the previous release has neither, and the sandbox is looked up)."""
    # The task id is the command's id: the web process waits on it under that name.
    command_id = current_task.request.id or ""
    if organization_id is None:
        sandbox = _looked_up(sandbox_id)
    else:
        sandbox = Sandbox(id=sandbox_id, organization_id=organization_id, session_id=session_id)
    if sandbox is not None:
        # Queued, not waited for: the command starts without asking the database anything (under
        # load its write lock can take seconds to get). command.completed, written after it in
        # the same queue, never lands before it.
        command_emit(sandbox, "command.started", command_id=command_id, wait=False)
    answer = run_command(
        sandbox_id=sandbox_id,
        command=command,
        env=env,
        working_dir=working_dir,
        timeout_ms=timeout_ms,
        stream_key=stream_key,
    )
    # command.completed is written once the answer is on its way.
    hand_back_now(current_task, answer)
    if sandbox is not None:
        command_finished_emit(sandbox, command_id, answer)
    return answer


def _looked_up(sandbox_id: str) -> Sandbox | None:
    try:
        return Sandbox.objects.filter(id=sandbox_id).only("id", "organization_id", "session_id").first()
    finally:
        # The command may run for hours: its thread must not hold a pooled connection meanwhile.
        close_old_connections()


@shared_task(name="sandboxes.tasks.sandbox_write_files")
def sandbox_write_files(*, sandbox_id: str, host: str, files: list[dict[str, str]]) -> dict[str, Any]:
    runtime = get_runtime()
    written = []
    try:
        for item in files:
            size = runtime.write_file(sandbox_id, item["path"], base64.b64decode(item["content"]))
            written.append({"path": item["path"], "size": size})
    except SandboxRuntimeError as exc:
        answer = _error(exc)
        answer["written"] = written
        _files_written(sandbox_id, written)
        return answer
    _files_written(sandbox_id, written)
    return {"written": written}


def _files_written(sandbox_id: str, written: list[dict[str, Any]]) -> None:
    if written:
        sandbox_emit_by_id(
            sandbox_id,
            "file.written",
            paths=[item["path"] for item in written][:100],
            file_count=len(written),
            bytes=sum(item["size"] for item in written),
        )


@shared_task(name="sandboxes.tasks.sandbox_read_file")
def sandbox_read_file(*, sandbox_id: str, host: str, path: str, max_bytes: int) -> dict[str, Any]:
    try:
        data = get_runtime().read_file(sandbox_id, path, max_bytes=max_bytes)
    except SandboxRuntimeError as exc:
        return _error(exc)
    return {"path": path, "content": base64.b64encode(data).decode(), "size": len(data)}


@shared_task(name="sandboxes.tasks.sandbox_list_files")
def sandbox_list_files(*, sandbox_id: str, host: str, path: str, recursive: bool) -> dict[str, Any]:
    try:
        entries = get_runtime().list_files(sandbox_id, path, recursive=recursive)
    except SandboxRuntimeError as exc:
        return _error(exc)
    return {
        "files": [
            {"name": e.name, "path": e.path, "type": e.type, "size": e.size, "modified_at": e.modified_at.isoformat()}
            for e in entries
        ]
    }


@shared_task(name="sandboxes.tasks.sandbox_delete_file")
def sandbox_delete_file(*, sandbox_id: str, host: str, path: str, recursive: bool) -> dict[str, Any]:
    try:
        get_runtime().delete_file(sandbox_id, path, recursive=recursive)
    except SandboxRuntimeError as exc:
        return _error(exc)
    return {"deleted": path}


def terminate(*, sandbox_id: str) -> dict[str, Any]:
    # Destroying is idempotent, so a redelivered task simply finds nothing left to remove.
    get_runtime().destroy(sandbox_id)
    sandbox_mark_terminated(sandbox_id=sandbox_id)
    return {"status": SandboxStatus.TERMINATED}


@shared_task(name="sandboxes.tasks.sandbox_terminate")
def sandbox_terminate(*, sandbox_id: str, host: str) -> dict[str, Any]:
    return terminate(sandbox_id=sandbox_id)


def sweep_host() -> int:
    """Destroy what this host holds of sandboxes no longer creating or running: their processes,
    their workspace mounts and images, their files. What a crashed or lost terminate left behind."""
    runtime = get_runtime()
    on_host = runtime.sandbox_ids()
    live = set(Sandbox.objects.filter(id__in=on_host, status__in=EXPIRABLE).values_list("id", flat=True))
    removed = 0
    for sandbox_id in on_host:
        if sandbox_id in live:
            continue
        try:
            runtime.destroy(sandbox_id)
        except SandboxRuntimeError as exc:
            logger.warning("could not remove the leftovers of sandbox %s: %s", sandbox_id, exc.message)
            continue
        removed += 1
    if removed:
        logger.info("removed the leftovers of %d stopped sandboxes", removed)
    return removed


@shared_task(name="sandboxes.tasks.sweep_host_sandboxes")
def sweep_host_sandboxes(*, host: str) -> int:
    return sweep_host()


@worker_ready.connect
def _sweep_host_on_start(**_kwargs: Any) -> None:
    # A worker that died mid-terminate left mounts behind; the restarted one finds them first.
    try:
        sweep_host()
    except Exception:
        logger.exception("the sweep of stopped sandboxes at worker start failed")


def stop_expired(*, now: datetime | None = None, batch: int = EXPIRY_BATCH) -> int:
    """Start stopping the sandboxes past their expiry; each host's worker removes its own."""
    now = now or timezone.now()
    expired = list(Sandbox.objects.filter(status__in=EXPIRABLE, expires_at__lte=now).order_by("expires_at")[:batch])
    for sandbox in expired:
        if not sandbox_mark_expired(sandbox_id=sandbox.id, now=now):
            # Stopped or extended since it was found; that change was recorded by whoever made it.
            continue
        with audited(
            actor=Actor.system(sandbox.organization_id),
            action="sandbox.stop",
            sandbox=sandbox,
            details={"reason": "expired", "previous_status_changed": True},
        ):
            enqueue(sandbox_terminate, host=sandbox.host, sandbox_id=sandbox.id)
    return len(expired)


@shared_task(name="sandboxes.tasks.stop_expired_sandboxes")
def stop_expired_sandboxes() -> int:
    return stop_expired()


def _entry(entry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "path": entry.path,
        "type": entry.type,
        "size": entry.size,
        "modified_at": entry.modified_at.isoformat(),
    }


@shared_task(name="sandboxes.tasks.sandbox_glob")
def sandbox_glob(*, sandbox_id: str, host: str, pattern: str, limit: int) -> dict[str, Any]:
    try:
        return {"files": [_entry(e) for e in get_runtime().glob(sandbox_id, pattern, limit=limit)]}
    except SandboxRuntimeError as exc:
        return _error(exc)


@shared_task(name="sandboxes.tasks.sandbox_make_directory")
def sandbox_make_directory(*, sandbox_id: str, host: str, path: str, recursive: bool) -> dict[str, Any]:
    try:
        return {"entry": _entry(get_runtime().make_directory(sandbox_id, path, recursive=recursive))}
    except SandboxRuntimeError as exc:
        return _error(exc)


@shared_task(name="sandboxes.tasks.sandbox_move_path")
def sandbox_move_path(*, sandbox_id: str, host: str, source: str, destination: str) -> dict[str, Any]:
    try:
        return {"entry": _entry(get_runtime().move_path(sandbox_id, source, destination))}
    except SandboxRuntimeError as exc:
        return _error(exc)


@shared_task(name="sandboxes.tasks.sandbox_copy_path")
def sandbox_copy_path(*, sandbox_id: str, host: str, source: str, destination: str) -> dict[str, Any]:
    try:
        return {"entry": _entry(get_runtime().copy_path(sandbox_id, source, destination))}
    except SandboxRuntimeError as exc:
        return _error(exc)


@shared_task(name="sandboxes.tasks.sandbox_extract_archive")
def sandbox_extract_archive(*, sandbox_id: str, host: str, path: str, remove: bool) -> dict[str, Any]:
    try:
        return {"entries": get_runtime().extract_archive(sandbox_id, path, remove=remove)}
    except SandboxRuntimeError as exc:
        return _error(exc)
    except (OSError, EOFError, tarfile.TarError) as exc:
        return {"error": {"code": "INVALID_ARCHIVE", "message": f"the archive could not be unpacked: {exc}"}}
