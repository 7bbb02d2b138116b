"""Every call on a sandbox's files: checked here (paths before anything reaches a worker), run by
the worker of the sandbox's host (``sandboxes.worker``), audited. The same path and link safety
for all of them: paths stay under /workspace and no call goes through a symbolic link."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings

from core.actor import Actor
from core.dispatch import run_on_host
from core.errors import InvalidInput, PayloadTooLarge
from sandboxes import worker
from sandboxes.events import sandbox_emit
from sandboxes.models import Sandbox
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime.fileops import parse_pattern
from sandboxes.services import check_sandbox_path, require_running
from sandboxes.states import audited

MAX_FILES_PER_WRITE = 1000
MAX_GLOB_RESULTS = 10000


def sandbox_write_files(*, actor: Actor, sandbox: Sandbox, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    if not files:
        raise InvalidInput("files must list at least one file", details={"field": "files"})
    if len(files) > MAX_FILES_PER_WRITE:
        raise InvalidInput(f"at most {MAX_FILES_PER_WRITE} files per request", details={"field": "files"})
    limit = settings.SANDBOX_FILE_API_MAX_BYTES
    prepared, total = [], 0
    # Everything is checked before anything is written, so a bad entry changes nothing.
    for index, item in enumerate(files):
        path = check_sandbox_path(item.get("path"), field=f"files[{index}].path")
        try:
            size = len(base64.b64decode(item.get("content", ""), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"files[{index}].content is not valid base64",
                code="INVALID_BASE64",
                details={"field": f"files[{index}].content"},
            ) from None
        total += size
        if total > limit:
            raise PayloadTooLarge(
                f"files larger than {limit} bytes in one request go through artifacts instead",
                code="FILE_TOO_LARGE",
                details={"limit": limit},
            )
        prepared.append({"path": path, "content": item.get("content", "")})
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.write",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{prepared[0]['path']}",
        details={"paths": [f["path"] for f in prepared][:100], "bytes": total},
    ):
        answer = run_on_host(
            worker.sandbox_write_files,
            host=sandbox.host,
            timeout=settings.SANDBOX_FILE_WAIT_SECONDS,
            sandbox_id=sandbox.id,
            files=prepared,
        )
    sandbox_emit(
        sandbox,
        "file.written",
        paths=[f["path"] for f in prepared][:100],
        file_count=len(prepared),
        bytes=total,
    )
    return answer["written"]


def sandbox_read_file(*, actor: Actor, sandbox: Sandbox, path: str) -> dict[str, Any]:
    path = check_sandbox_path(path)
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.read",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path},
    ) as details:
        answer = run_on_host(
            worker.sandbox_read_file,
            host=sandbox.host,
            timeout=settings.SANDBOX_FILE_WAIT_SECONDS,
            sandbox_id=sandbox.id,
            path=path,
            max_bytes=settings.SANDBOX_FILE_API_MAX_BYTES,
        )
        details["bytes"] = answer["size"]
    return answer


def sandbox_list_files(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool) -> list[dict[str, Any]]:
    path = check_sandbox_path(path or "/workspace", allow_root=True)
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.list",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
    ):
        answer = run_on_host(
            worker.sandbox_list_files,
            host=sandbox.host,
            timeout=settings.SANDBOX_FILE_WAIT_SECONDS,
            sandbox_id=sandbox.id,
            path=path,
            recursive=recursive,
        )
    return answer["files"]


def sandbox_delete_file(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool) -> None:
    path = check_sandbox_path(path)
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.delete",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
    ):
        run_on_host(
            worker.sandbox_delete_file,
            host=sandbox.host,
            timeout=settings.SANDBOX_FILE_WAIT_SECONDS,
            sandbox_id=sandbox.id,
            path=path,
            recursive=recursive,
        )


def _on_host(task, sandbox: Sandbox, **kwargs: Any) -> dict[str, Any]:
    return run_on_host(
        task, host=sandbox.host, timeout=settings.SANDBOX_FILE_WAIT_SECONDS, sandbox_id=sandbox.id, **kwargs
    )


def sandbox_glob(*, actor: Actor, sandbox: Sandbox, pattern: str) -> list[dict[str, Any]]:
    try:
        parse_pattern(pattern)
    except SandboxRuntimeError as exc:
        raise InvalidInput(exc.message, code=exc.code, details={"field": "pattern"}) from None
    require_running(sandbox)
    with audited(actor=actor, action="file.glob", sandbox=sandbox, details={"pattern": pattern[:1000]}) as details:
        answer = _on_host(worker.sandbox_glob, sandbox, pattern=pattern, limit=MAX_GLOB_RESULTS)
        details["matches"] = len(answer["files"])
    return answer["files"]


def sandbox_make_directory(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool = True) -> dict[str, Any]:
    path = check_sandbox_path(path)
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.mkdir",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
    ):
        return _on_host(worker.sandbox_make_directory, sandbox, path=path, recursive=recursive)["entry"]


def _move_or_copy(*, actor: Actor, sandbox: Sandbox, source: str, destination: str, copy: bool) -> dict[str, Any]:
    source = check_sandbox_path(source, field="source")
    destination = check_sandbox_path(destination, field="destination")
    require_running(sandbox)
    with audited(
        actor=actor,
        action="file.copy" if copy else "file.move",
        sandbox=sandbox,
        resource=f"sandbox:{sandbox.id}:{destination}",
        details={"source": source, "destination": destination},
    ):
        task = worker.sandbox_copy_path if copy else worker.sandbox_move_path
        return _on_host(task, sandbox, source=source, destination=destination)["entry"]


def sandbox_move_path(*, actor: Actor, sandbox: Sandbox, source: str, destination: str) -> dict[str, Any]:
    return _move_or_copy(actor=actor, sandbox=sandbox, source=source, destination=destination, copy=False)


def sandbox_copy_path(*, actor: Actor, sandbox: Sandbox, source: str, destination: str) -> dict[str, Any]:
    return _move_or_copy(actor=actor, sandbox=sandbox, source=source, destination=destination, copy=True)


def sandbox_extract_archive(*, actor: Actor, sandbox: Sandbox, path: str, remove: bool = True) -> int:
    """Unpack a tar.gz that Stowage archived (a saved workspace) into the sandbox's /workspace."""
    path = check_sandbox_path(path)
    require_running(sandbox)
    with audited(
        actor=actor, action="file.extract", sandbox=sandbox, details={"path": path, "remove": remove}
    ) as details:
        answer = _on_host(worker.sandbox_extract_archive, sandbox, path=path, remove=remove)
        details["entries"] = answer["entries"]
    return answer["entries"]
