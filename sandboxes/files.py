"""Every call on a sandbox's files: checked here (paths before anything reaches a worker), run by
the worker of the sandbox's host (``sandboxes.worker``), audited. The same path and link safety
for all of them: paths stay under /workspace and no call goes through a symbolic link.

Each call is built by its ``*_call`` function (checks first, so a bad one never leaves the web
process) and run by ``sandboxes.calls``: waited for here, or awaited by the API."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings

from core.actor import Actor
from core.errors import InvalidInput, PayloadTooLarge
from sandboxes import worker
from sandboxes.calls import HostCall, call_on_host
from sandboxes.models import Sandbox
from sandboxes.runtime import SandboxRuntimeError
from sandboxes.runtime.fileops import parse_pattern
from sandboxes.services import check_sandbox_path, require_running

MAX_FILES_PER_WRITE = 1000
MAX_GLOB_RESULTS = 10000


def write_files_call(*, sandbox: Sandbox, files: list[dict[str, str]]) -> HostCall:
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
    return HostCall(
        worker.sandbox_write_files,
        sandbox,
        {"files": prepared},
        action="file.write",
        resource=f"sandbox:{sandbox.id}:{prepared[0]['path']}",
        details={"paths": [f["path"] for f in prepared][:100], "bytes": total},
        result=lambda answer, details: answer["written"],
    )


def sandbox_write_files(*, actor: Actor, sandbox: Sandbox, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    return call_on_host(write_files_call(sandbox=sandbox, files=files), actor=actor)


def _read_result(answer: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    details["bytes"] = answer["size"]
    return answer


def read_file_call(*, sandbox: Sandbox, path: str) -> HostCall:
    path = check_sandbox_path(path)
    require_running(sandbox)
    return HostCall(
        worker.sandbox_read_file,
        sandbox,
        {"path": path, "max_bytes": settings.SANDBOX_FILE_API_MAX_BYTES},
        action="file.read",
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path},
        result=_read_result,
    )


def sandbox_read_file(*, actor: Actor, sandbox: Sandbox, path: str) -> dict[str, Any]:
    return call_on_host(read_file_call(sandbox=sandbox, path=path), actor=actor)


def list_files_call(*, sandbox: Sandbox, path: str, recursive: bool) -> HostCall:
    path = check_sandbox_path(path or "/workspace", allow_root=True)
    require_running(sandbox)
    return HostCall(
        worker.sandbox_list_files,
        sandbox,
        {"path": path, "recursive": recursive},
        action="file.list",
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
        result=lambda answer, details: answer["files"],
    )


def sandbox_list_files(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool) -> list[dict[str, Any]]:
    return call_on_host(list_files_call(sandbox=sandbox, path=path, recursive=recursive), actor=actor)


def delete_file_call(*, sandbox: Sandbox, path: str, recursive: bool) -> HostCall:
    path = check_sandbox_path(path)
    require_running(sandbox)
    return HostCall(
        worker.sandbox_delete_file,
        sandbox,
        {"path": path, "recursive": recursive},
        action="file.delete",
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
        result=lambda answer, details: None,
    )


def sandbox_delete_file(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool) -> None:
    call_on_host(delete_file_call(sandbox=sandbox, path=path, recursive=recursive), actor=actor)


def _glob_result(answer: dict[str, Any], details: dict[str, Any]) -> list[dict[str, Any]]:
    details["matches"] = len(answer["files"])
    return answer["files"]


def glob_call(*, sandbox: Sandbox, pattern: str) -> HostCall:
    try:
        parse_pattern(pattern)
    except SandboxRuntimeError as exc:
        raise InvalidInput(exc.message, code=exc.code, details={"field": "pattern"}) from None
    require_running(sandbox)
    return HostCall(
        worker.sandbox_glob,
        sandbox,
        {"pattern": pattern, "limit": MAX_GLOB_RESULTS},
        action="file.glob",
        details={"pattern": pattern[:1000]},
        result=_glob_result,
    )


def sandbox_glob(*, actor: Actor, sandbox: Sandbox, pattern: str) -> list[dict[str, Any]]:
    return call_on_host(glob_call(sandbox=sandbox, pattern=pattern), actor=actor)


def make_directory_call(*, sandbox: Sandbox, path: str, recursive: bool = True) -> HostCall:
    path = check_sandbox_path(path)
    require_running(sandbox)
    return HostCall(
        worker.sandbox_make_directory,
        sandbox,
        {"path": path, "recursive": recursive},
        action="file.mkdir",
        resource=f"sandbox:{sandbox.id}:{path}",
        details={"path": path, "recursive": recursive},
        result=lambda answer, details: answer["entry"],
    )


def sandbox_make_directory(*, actor: Actor, sandbox: Sandbox, path: str, recursive: bool = True) -> dict[str, Any]:
    return call_on_host(make_directory_call(sandbox=sandbox, path=path, recursive=recursive), actor=actor)


def move_or_copy_call(*, sandbox: Sandbox, source: str, destination: str, copy: bool) -> HostCall:
    source = check_sandbox_path(source, field="source")
    destination = check_sandbox_path(destination, field="destination")
    require_running(sandbox)
    return HostCall(
        worker.sandbox_copy_path if copy else worker.sandbox_move_path,
        sandbox,
        {"source": source, "destination": destination},
        action="file.copy" if copy else "file.move",
        resource=f"sandbox:{sandbox.id}:{destination}",
        details={"source": source, "destination": destination},
        result=lambda answer, details: answer["entry"],
    )


def sandbox_move_path(*, actor: Actor, sandbox: Sandbox, source: str, destination: str) -> dict[str, Any]:
    call = move_or_copy_call(sandbox=sandbox, source=source, destination=destination, copy=False)
    return call_on_host(call, actor=actor)


def sandbox_copy_path(*, actor: Actor, sandbox: Sandbox, source: str, destination: str) -> dict[str, Any]:
    call = move_or_copy_call(sandbox=sandbox, source=source, destination=destination, copy=True)
    return call_on_host(call, actor=actor)


def _extract_result(answer: dict[str, Any], details: dict[str, Any]) -> int:
    details["entries"] = answer["entries"]
    return answer["entries"]


def sandbox_extract_archive(*, actor: Actor, sandbox: Sandbox, path: str, remove: bool = True) -> int:
    """Unpack a tar.gz that Stowage archived (a saved workspace) into the sandbox's /workspace."""
    path = check_sandbox_path(path)
    require_running(sandbox)
    call = HostCall(
        worker.sandbox_extract_archive,
        sandbox,
        {"path": path, "remove": remove},
        action="file.extract",
        details={"path": path, "remove": remove},
        result=_extract_result,
    )
    return call_on_host(call, actor=actor)
