"""The local sandbox runtime: one directory tree per sandbox, commands confined by bubblewrap.

Layout under ``root``::

    root/<sandbox_id>/workspace/   the user's files; /workspace inside the sandbox
    root/<sandbox_id>/meta/        runtime-private (env given at create, limits); never mounted
    root/.host-etc/<key>/          the host's /etc files sandboxes see, bound read-only as /etc

The parts: ``bwrap`` builds the bubblewrap command line (``hostetc`` keeps its /etc),
``cgroups`` holds each sandbox's limits and finds its processes, ``spawn`` confines, starts and
kills one command (in its own cgroup, or under rlimits), ``output`` reads what it prints;
``paths`` and ``streams`` touch the workspace.
Each sandbox's cgroup name carries a hash of ``root``, so two runtimes with different roots
(e.g. parallel test runs) never kill each other's processes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO

from . import bwrap, cgroups, disk, fileops, hostetc, output, paths, spawn, streams, trees
from .base import (
    WORKSPACE,
    CommandInvalid,
    ExecResult,
    FileEntry,
    FileTooLarge,
    InvalidPath,
    IsolationUnavailable,
    OutputCallback,
    SandboxGone,
    SandboxRuntime,
    SandboxRuntimeError,
)

logger = logging.getLogger(__name__)

PIDS_MAX = 512

_SANDBOX_ID = re.compile(r"[a-z0-9_]{1,64}")
_META_FILE = "sandbox.json"


class LocalRuntime(SandboxRuntime):
    """Sandboxes as directories on this host, commands run under bubblewrap (see module doc)."""

    def __init__(
        self,
        root: Path | str,
        *,
        allow_unisolated: bool = False,
        output_limit_bytes: int = 1 << 20,
        max_file_bytes: int = 100 << 20,
        bwrap_path: str | None = None,
        network: bool = False,
        disk_enforce: str = "auto",
    ) -> None:
        if disk_enforce not in disk.ENFORCE_MODES:
            raise ValueError(f"disk_enforce must be one of {', '.join(disk.ENFORCE_MODES)}, not {disk_enforce!r}")
        self.disk_enforce = disk_enforce
        self.root = Path(root).absolute()
        self.allow_unisolated = allow_unisolated
        self.output_limit_bytes = output_limit_bytes
        self.max_file_bytes = max_file_bytes
        self.network = network
        self.bwrap_path = bwrap.find(bwrap_path)
        # A missing bwrap without the opt-in stays "isolated": create() refuses instead of downgrading.
        self.isolated = self.bwrap_path is not None or not allow_unisolated
        self._bwrap_options = bwrap.base_options(network=network)
        self._etc = hostetc.HostEtc(self.root, bwrap.etc_names(network=network))
        self._bwrap_checked = False
        self._check_lock = threading.Lock()
        self._cgroups = cgroups.detect()
        self._root_tag = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:10]
        self._exec_counter = itertools.count()
        self._pdeathsig = None if self.isolated else spawn.pdeathsig_function()

    def _check_isolation(self) -> None:
        """Fail with IsolationUnavailable unless commands can run (confined, or by opt-in not)."""
        if not self.isolated:
            return
        if self.bwrap_path is None:
            raise IsolationUnavailable(bwrap.BWRAP_MISSING_MESSAGE)
        if self._bwrap_checked:
            return
        with self._check_lock:
            if self._bwrap_checked:
                return
            options, error = bwrap.usable_options(self.bwrap_path, list(self._bwrap_options))
            if error is not None:
                if self.allow_unisolated:
                    logger.warning("bubblewrap cannot create sandboxes here (%s); running unisolated as allowed", error)
                    self.isolated = False
                    self._pdeathsig = spawn.pdeathsig_function()
                    self._bwrap_checked = True
                    return
                raise IsolationUnavailable(f"bubblewrap is installed but cannot create a sandbox on this host: {error}")
            self._bwrap_options = options
            self._bwrap_checked = True

    # -- identities and metadata -----------------------------------------------------------

    def _dir(self, sandbox_id: str) -> Path:
        if not isinstance(sandbox_id, str) or not _SANDBOX_ID.fullmatch(sandbox_id):
            raise InvalidPath(f"invalid sandbox id {str(sandbox_id)[:80]!r}: use 1 to 64 of a-z, 0-9 and '_'")
        return self.root / sandbox_id

    def _cgroup_name(self, sandbox_id: str) -> str:
        return f"{sandbox_id}-{self._root_tag}"

    def _load_meta(self, sandbox_id: str) -> dict[str, Any]:
        try:
            with open(self._dir(sandbox_id) / "meta" / _META_FILE, "rb") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            raise SandboxGone(f"sandbox {sandbox_id} does not exist on this host") from None

    @contextmanager
    def _workspace(self, sandbox_id: str) -> Iterator[int]:
        """An fd on the sandbox's workspace directory, closed on leaving."""
        try:
            ws_fd = paths.open_workspace(self._dir(sandbox_id) / "workspace")
        except (FileNotFoundError, NotADirectoryError):
            raise SandboxGone(f"sandbox {sandbox_id} does not exist on this host") from None
        try:
            yield ws_fd
        finally:
            os.close(ws_fd)

    # -- lifecycle -------------------------------------------------------------------------

    def create(
        self,
        sandbox_id: str,
        *,
        env: dict[str, str],
        memory_bytes: int | None,
        cpus: float | None,
        disk_bytes: int | None = None,
    ) -> None:
        directory = self._dir(sandbox_id)
        spawn.check_env(env)
        if memory_bytes is not None and (not isinstance(memory_bytes, int) or memory_bytes <= 0):
            raise ValueError(f"memory_bytes must be a positive integer or None, not {memory_bytes!r}")
        if cpus is not None and not cpus > 0:
            raise ValueError(f"cpus must be positive or None, not {cpus!r}")
        if disk_bytes is not None and (not isinstance(disk_bytes, int) or disk_bytes <= 0):
            raise ValueError(f"disk_bytes must be a positive integer or None, not {disk_bytes!r}")
        self._check_isolation()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        directory.mkdir(exist_ok=True, mode=0o700)
        (directory / "workspace").mkdir(exist_ok=True, mode=0o755)
        meta = directory / "meta"
        meta.mkdir(exist_ok=True, mode=0o700)
        disk_enforced = self._make_disk(sandbox_id, disk_bytes)
        record = {
            "version": 1,
            "env": dict(env),
            "memory_bytes": memory_bytes,
            "cpus": cpus,
            "disk_bytes": disk_bytes,
            "disk_enforced": disk_enforced,
        }
        # The env may hold secrets: 0600 from the first byte, replaced atomically.
        temp = meta / f".{_META_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)
        os.replace(temp, meta / _META_FILE)
        cgroups.limit_sandbox(
            self._cgroups, self._cgroup_name(sandbox_id), memory_bytes=memory_bytes, cpus=cpus, pids_max=PIDS_MAX
        )

    def _make_disk(self, sandbox_id: str, disk_bytes: int | None) -> bool:
        """Mount a filesystem of ``disk_bytes`` on the workspace; whether the kernel now enforces it."""
        if disk_bytes is None or self.disk_enforce == "off":
            return False
        directory = self._dir(sandbox_id)
        reason = disk.unavailable_reason()
        try:
            if reason is not None:
                raise disk.DiskUnavailable(f"the workspace disk limit cannot be enforced: {reason}")
            disk.make(directory / "meta" / disk.IMAGE_NAME, directory / "workspace", disk_bytes)
        except disk.DiskUnavailable as exc:
            if self.disk_enforce == "loop":
                shutil.rmtree(directory, ignore_errors=True)
                raise
            logger.warning("sandbox %s gets an unlimited workspace: %s", sandbox_id, exc.message)
            return False
        return True

    def disk_enforced(self, sandbox_id: str) -> bool:
        return bool(self._load_meta(sandbox_id).get("disk_enforced"))

    def sandbox_ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if _SANDBOX_ID.fullmatch(name) and (self.root / name).is_dir())

    def exists(self, sandbox_id: str) -> bool:
        directory = self._dir(sandbox_id)
        return (directory / "workspace").is_dir() and (directory / "meta" / _META_FILE).is_file()

    def stop(self, sandbox_id: str) -> None:
        directory = self._dir(sandbox_id)
        spawn.stop_begins(directory / "meta")
        if self._cgroups.version:
            cgroups.remove_sandbox(self._cgroups, self._cgroup_name(sandbox_id))
        spawn.kill_recorded(directory / "meta" / "procs")

    def destroy(self, sandbox_id: str) -> None:
        directory = self._dir(sandbox_id)
        self.stop(sandbox_id)
        # Its processes are gone, so the workspace can be unmounted before its tree is removed.
        disk.remove(directory / "meta" / disk.IMAGE_NAME, directory / "workspace")
        # Python >= 3.11 on Linux removes fd-relative and never follows links the sandbox planted.
        paths.remove_tree(directory)

    # -- execution -------------------------------------------------------------------------

    def execute(
        self,
        sandbox_id: str,
        command: str | list[str],
        *,
        env: dict[str, str] | None = None,
        working_dir: str | None = None,
        timeout_s: float,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        started = time.monotonic()
        directory = self._dir(sandbox_id)
        argv = spawn.command_argv(command)
        if env:
            spawn.check_env(env)
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise CommandInvalid(f"timeout must be a positive number of seconds, not {timeout_s!r}")
        self._check_isolation()
        meta = self._load_meta(sandbox_id)
        workdir = WORKSPACE
        if working_dir is not None:
            parts = paths.parse_path(working_dir, allow_root=True)
            with self._workspace(sandbox_id) as ws_fd:
                os.close(paths.open_dir(ws_fd, parts))
            workdir = paths.sandbox_path(parts)
        full_env = {"PATH": bwrap.DEFAULT_PATH, "HOME": WORKSPACE, "LANG": "C.UTF-8"}
        full_env.update(meta.get("env") or {})
        full_env.update(env or {})
        workspace = str(directory / "workspace")

        if self.isolated:
            copy = self._etc.current()
            etc = bwrap.etc_options(copy, self._etc.sources() if copy is None else [])
            options = bwrap.command_options(
                self._bwrap_options, etc=etc, workspace=workspace, workdir=workdir, env=full_env
            )
            # bwrap itself runs on the host: it must not see user env such as LD_PRELOAD.
            popen_env: dict[str, str] = {}
            cwd = "/"
        else:
            options = []
            popen_env = dict(full_env)
            # /workspace does not exist on the host; HOME points at the real directory.
            popen_env["HOME"] = workspace
            cwd = os.path.join(workspace, workdir[len(WORKSPACE) :].lstrip("/"))

        execution = self._prepare_execution(sandbox_id, meta)
        stops = spawn.stops_begun(directory / "meta") if execution.leaf is None else 0
        try:
            proc = self._spawn(sandbox_id, argv, options, popen_env, cwd, execution)
        except BaseException:
            spawn.finish(execution)
            raise
        if proc is None:
            spawn.finish(execution)
            return ExecResult(127, "", f"{argv[0]}: command not found\n", False, False, output.ms_since(started))
        # Without a cgroup of its own, stop() finds the command through a record of it.
        recorded = spawn.recorded(directory / "meta" / "procs", proc.pid) if execution.leaf is None else nullcontext()
        try:
            with recorded:
                if execution.leaf is None and spawn.stops_begun(directory / "meta") != stops:
                    # stop() began while the command was starting and may not have seen its record.
                    spawn.kill(proc, execution)
                collected = output.collect(
                    proc,
                    deadline=started + timeout_s,
                    limit=self.output_limit_bytes,
                    on_output=on_output,
                    kill=lambda: spawn.kill(proc, execution),
                )
            notes = spawn.notes(execution)
            result = output.exec_result(proc, collected, started=started, timeout_s=timeout_s, notes=notes)
            if result.exit_code == 125 and not result.stdout and result.stderr.endswith(spawn.JOIN_FAILED + "\n"):
                # Only stop() removes a sandbox's cgroups while a command is starting.
                raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting")
            return result
        finally:
            spawn.finish(execution)

    def _prepare_execution(self, sandbox_id: str, meta: dict[str, Any]) -> spawn.Execution:
        try:
            return spawn.prepare(
                self._cgroups,
                self._cgroup_name(sandbox_id),
                f"x{os.getpid()}_{next(self._exec_counter)}",
                memory_bytes=int(meta["memory_bytes"]) if meta.get("memory_bytes") else None,
                cpus=meta.get("cpus"),
                pids_max=PIDS_MAX,
            )
        except FileNotFoundError:
            raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting") from None

    def _spawn(
        self,
        sandbox_id: str,
        argv: list[str],
        options: list[str],
        env: dict[str, str],
        cwd: str,
        execution: spawn.Execution,
    ) -> subprocess.Popen[bytes] | None:
        """Start the command (under bwrap when ``options``); None when, unisolated, the program does not exist."""
        try:
            if not options:
                return spawn.start(argv, env=env, cwd=cwd, execution=execution, pdeathsig=self._pdeathsig)
            with bwrap.options_file(options) as options_fd:
                return spawn.start(
                    bwrap.wrap(self.bwrap_path, options_fd, argv),
                    env=env,
                    cwd=cwd,
                    execution=execution,
                    pdeathsig=self._pdeathsig,
                    pass_fds=(options_fd,),
                )
        except FileNotFoundError:
            if self.isolated:
                raise IsolationUnavailable(bwrap.BWRAP_MISSING_MESSAGE) from None
            return None
        except (OSError, subprocess.SubprocessError) as exc:
            if not self.exists(sandbox_id) or (execution.leaf and not os.path.isdir(execution.leaf)):
                raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting") from None
            raise SandboxRuntimeError(f"could not start the command: {exc}", code="EXEC_FAILED") from None

    # -- files -----------------------------------------------------------------------------

    def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> int:
        parts = paths.parse_path(path)
        if not parts:
            raise InvalidPath(f"cannot write to {WORKSPACE} itself")
        if len(data) > self.max_file_bytes:
            raise FileTooLarge(
                f"{paths.sandbox_path(parts)}: {len(data)} bytes is more than the {self.max_file_bytes} bytes allowed"
            )
        _check_mode(mode)
        with self._workspace(sandbox_id) as ws_fd:
            return paths.write_file(ws_fd, parts, data, mode)

    def read_file(self, sandbox_id: str, path: str, *, max_bytes: int) -> bytes:
        parts = paths.parse_path(path)
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        with self._workspace(sandbox_id) as ws_fd:
            fd = paths.open_file(ws_fd, parts)
        try:
            return paths.read_all(fd, min(max_bytes, self.max_file_bytes), parts)
        finally:
            os.close(fd)

    def open_read(self, sandbox_id: str, path: str) -> BinaryIO:
        parts = paths.parse_path(path)
        with self._workspace(sandbox_id) as ws_fd:
            fd = paths.open_file(ws_fd, parts)
        return os.fdopen(fd, "rb")

    def list_files(
        self, sandbox_id: str, path: str = WORKSPACE, *, recursive: bool = False, limit: int = 10000
    ) -> list[FileEntry]:
        parts = paths.parse_path(path, allow_root=True)
        with self._workspace(sandbox_id) as ws_fd:
            return streams.list_entries(ws_fd, parts, recursive=recursive, limit=limit)

    def delete_file(self, sandbox_id: str, path: str, *, recursive: bool = False) -> None:
        parts = paths.parse_path(path)
        with self._workspace(sandbox_id) as ws_fd:
            paths.delete(ws_fd, parts, recursive=recursive)

    def workspace_usage(self, sandbox_id: str) -> int:
        """Bytes allocated on disk (like ``du``), hard links counted once, links not followed."""
        with self._workspace(sandbox_id) as ws_fd:
            return streams.disk_usage(ws_fd)

    # -- streaming transfers (artifacts); the work is in streams.py -------------------------

    def stat_path(self, sandbox_id: str, path: str) -> FileEntry:
        """What is at ``path`` (a final link is reported, not followed)."""
        parts = paths.parse_path(path, allow_root=True)
        with self._workspace(sandbox_id) as ws_fd:
            return streams.stat_entry(ws_fd, parts)

    def scratch_dir(self, sandbox_id: str) -> Path:
        """A host directory for the runtime's temporary files about this sandbox; never mounted."""
        if not self.exists(sandbox_id):
            raise SandboxGone(f"sandbox {sandbox_id} does not exist on this host")
        directory = self._dir(sandbox_id) / "scratch"
        directory.mkdir(mode=0o700, exist_ok=True)
        return directory

    def archive_directory(self, sandbox_id: str, path: str, out: BinaryIO) -> None:
        """Write the directory at ``path`` to ``out`` as tar.gz, links stored, never followed."""
        parts = paths.parse_path(path, allow_root=True)
        with self._workspace(sandbox_id) as ws_fd:
            streams.archive_directory(ws_fd, parts, out)

    def write_stream(
        self,
        sandbox_id: str,
        path: str,
        chunks: Iterable[bytes],
        *,
        mode: int = 0o644,
        expected_sha256: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Like write_file for data arriving in chunks; published only if the checksum matches."""
        parts = paths.parse_path(path)
        _check_mode(mode)
        with self._workspace(sandbox_id) as ws_fd:
            return streams.write_stream(
                ws_fd, parts, chunks, mode=mode, expected_sha256=expected_sha256, on_progress=on_progress
            )

    def walk_tree(self, sandbox_id: str, path: str, *, limit: int) -> list:
        parts = paths.parse_path(path, allow_root=True)
        with self._workspace(sandbox_id) as ws_fd:
            return list(trees.read_tree(ws_fd, parts, limit=limit))

    @contextmanager
    def tree_files(self, sandbox_id: str, path: str) -> Iterator[trees.TreeFiles]:
        parts = paths.parse_path(path, allow_root=True)
        with self._workspace(sandbox_id) as ws_fd, trees.tree_files(ws_fd, parts) as files:
            yield files

    def write_tree(self, sandbox_id, path, entries, chunks_for, *, on_progress=None) -> int:
        parts = paths.parse_path(path)
        with self._workspace(sandbox_id) as ws_fd:
            return trees.write_tree(ws_fd, parts, entries, chunks_for, on_progress=on_progress)

    # -- glob, mkdir, move, copy and unpacking; the work is in fileops.py --------------------

    def _in_workspace(self, sandbox_id: str, work):
        with self._workspace(sandbox_id) as ws_fd:
            return work(ws_fd)

    def glob(self, sandbox_id: str, pattern: str, *, limit: int = 10000) -> list[FileEntry]:
        return self._in_workspace(sandbox_id, lambda ws_fd: fileops.glob(ws_fd, pattern, limit=limit))

    def make_directory(self, sandbox_id: str, path: str, *, recursive: bool = True) -> FileEntry:
        parts = paths.parse_path(path)
        return self._in_workspace(sandbox_id, lambda ws_fd: fileops.make_directory(ws_fd, parts, recursive=recursive))

    def move_path(self, sandbox_id: str, source: str, destination: str) -> FileEntry:
        source_parts, destination_parts = paths.parse_path(source), paths.parse_path(destination)
        return self._in_workspace(sandbox_id, lambda ws_fd: fileops.move(ws_fd, source_parts, destination_parts))

    def copy_path(self, sandbox_id: str, source: str, destination: str) -> FileEntry:
        source_parts, destination_parts = paths.parse_path(source), paths.parse_path(destination)
        return self._in_workspace(sandbox_id, lambda ws_fd: fileops.copy(ws_fd, source_parts, destination_parts))

    def extract_archive(self, sandbox_id: str, path: str, *, remove: bool = True) -> int:
        parts = paths.parse_path(path)
        return self._in_workspace(sandbox_id, lambda ws_fd: fileops.extract_archive(ws_fd, parts, remove=remove))


def _check_mode(mode: object) -> None:
    if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise ValueError(f"mode must be a permission number such as 0o644, not {mode!r}")
