"""The local sandbox runtime: one directory tree per sandbox, commands confined by bubblewrap.

Layout under ``root``::

    root/<sandbox_id>/workspace/   the user's files; /workspace inside the sandbox
    root/<sandbox_id>/meta/        runtime-private (env given at create, limits); never mounted

Resource limits, in order of preference:

* cgroup v1 (``/sys/fs/cgroup/{pids,memory,cpu}`` writable, as on this host's Debian 12 VM):
  ``pids/stowage/<sandbox>/`` holds ``pids.max`` and one child cgroup per execution, so a
  timeout kills exactly that execution's processes and ``stop()`` kills the whole sandbox;
  ``memory/stowage/<sandbox>/`` holds ``memory.limit_in_bytes`` (and ``memsw``: no swap
  escape); ``cpu/stowage/<sandbox>/`` holds the CFS quota for ``cpus``.
* cgroup v2 (``/sys/fs/cgroup`` is a cgroup2 mount and writable): the same tree under
  ``/sys/fs/cgroup/stowage/`` with ``pids.max``, ``memory.max``/``memory.swap.max``, ``cpu.max``.
* neither: rlimits in the child. ``RLIMIT_AS`` bounds memory per process (not per sandbox);
  ``RLIMIT_NPROC`` bounds processes but the kernel ignores it for uid 0, so a worker running
  as root has no fork-bomb protection in this mode. Processes are then found for
  ``stop()`` through their process group, recorded under ``meta/procs/``; a process that
  calls setsid() escapes that (it still dies with the sandbox's PID namespace when isolated).

The child joins its cgroups before bwrap starts, so nothing it starts can run outside them: a
tiny ``/bin/sh`` prologue writes its own pid to ``cgroup.procs`` and then execs bwrap (this
lets subprocess use vfork; a fork of a large worker costs milliseconds), or a ``preexec_fn``
does it when rlimits or a parent-death signal must be set in the child anyway. Each sandbox's cgroup name carries a hash of ``root``, so two runtimes with
different roots (e.g. parallel test runs) never kill each other's processes.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import logging
import os
import re
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from core.text import displayable

from . import paths
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

BWRAP_MISSING_MESSAGE = (
    "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package "
    "or set STOWAGE_ALLOW_UNISOLATED=1 to run sandboxes without isolation"
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIDS_MAX = 512
TIMEOUT_EXIT_CODE = 124
TMP_SIZE_BYTES = 1 << 30
CHUNK_BYTES = 64 * 1024
CPU_PERIOD_US = 100_000

_SANDBOX_ID = re.compile(r"[a-z0-9_]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_META_FILE = "sandbox.json"
# Seconds to wait for the pipes to close after the command exited: only background processes
# holding them (possible without a PID namespace) keep them open that long, and are then killed.
_EXIT_GRACE_S = 0.5
_KILL_WAIT_S = 5.0
_POLL_S = 0.25

# Only what common programs need: each bind costs time on every execution, and /etc/ssl as a
# whole would expose /etc/ssl/private (the sandbox runs as uid 0 of the host, without caps).
_ETC_FILES = (
    "alternatives",  # Debian's /usr/bin/awk, editor, java... are links through here
    "ld.so.cache",
    "ssl/certs",
    "ssl/openssl.cnf",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "localtime",
)
_MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Options an older bubblewrap may not know; dropped if the probe run rejects them.
_OPTIONAL_OPTIONS = (("--disable-userns",), ("--unshare-user",), ("--size", str(TMP_SIZE_BYTES)))


# ---------------------------------------------------------------------------------------------
# cgroups


@dataclass(frozen=True)
class _Cgroups:
    version: int  # 0: none usable, 1 or 2
    pids: str | None = None
    memory: str | None = None
    cpu: str | None = None

    def controller_dirs(self, name: str) -> list[str]:
        return sorted({os.path.join(base, name) for base in (self.pids, self.memory, self.cpu) if base})


_cgroups: _Cgroups | None = None
_cgroups_lock = threading.Lock()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _detect_cgroups() -> _Cgroups:
    global _cgroups
    with _cgroups_lock:
        if _cgroups is None:
            _cgroups = _probe_cgroup_v1() or _probe_cgroup_v2() or _Cgroups(version=0)
            logger.debug("sandbox cgroups: %s", _cgroups)
        return _cgroups


def _v1_base(controller: str, marker: str) -> str | None:
    mount = f"/sys/fs/cgroup/{controller}"
    base = os.path.join(mount, "stowage")
    try:
        if not os.path.exists(os.path.join(mount, "cgroup.procs")):
            return None
        os.makedirs(base, exist_ok=True)
        if os.path.exists(os.path.join(base, marker)) and os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return None


def _probe_cgroup_v1() -> _Cgroups | None:
    pids = _v1_base("pids", "pids.max")
    if pids is None:
        return None
    return _Cgroups(
        version=1,
        pids=pids,
        memory=_v1_base("memory", "memory.limit_in_bytes"),
        cpu=_v1_base("cpu", "cpu.cfs_quota_us"),
    )


def _probe_cgroup_v2() -> _Cgroups | None:
    mount = "/sys/fs/cgroup"
    base = os.path.join(mount, "stowage")
    try:
        if not os.path.exists(os.path.join(mount, "cgroup.controllers")):
            return None
        available = set(Path(mount, "cgroup.controllers").read_text().split())
        wanted = [c for c in ("pids", "memory", "cpu") if c in available]
        if "pids" not in wanted:
            return None
        _write(os.path.join(mount, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))
        os.makedirs(base, exist_ok=True)
        _write(os.path.join(base, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))
        enabled = set(Path(base, "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    if "pids" not in enabled:
        return None
    return _Cgroups(
        version=2,
        pids=base,
        memory=base if "memory" in enabled else None,
        cpu=base if "cpu" in enabled else None,
    )


def _cgroup_pids(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs"), "rb") as handle:
            return [int(line) for line in handle.read().split()]
    except OSError:  # ENOENT, or ENODEV when removed between open and read
        return []


def _kill_cgroup_tree(directory: str, version: int, *, remove: bool = False) -> None:
    """SIGKILL every process in ``directory`` and below until none is left; then rmdir them all.

    Kill and rmdir alternate until the tree is gone, because a command that was starting may
    join a cgroup after a kill pass; once its cgroup is removed it can no longer start.
    """
    deadline = time.monotonic() + _KILL_WAIT_S
    delay = 0.001
    while True:
        if version == 2 and os.path.exists(os.path.join(directory, "cgroup.kill")):
            try:
                _write(os.path.join(directory, "cgroup.kill"), "1")
            except OSError:
                pass
        # Deepest first, so a pass of rmdir can empty the tree.
        tree = sorted((current for current, _dirs, _files in os.walk(directory)), key=lambda d: -d.count("/"))
        found = False
        for current in tree:
            pids = _cgroup_pids(current)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            found = found or bool(pids)
            if remove and not pids:
                try:
                    os.rmdir(current)
                except OSError:
                    pass  # busy for a moment after its last process died, or a new child
        done = not os.path.isdir(directory) if remove else not found
        if done:
            return
        if time.monotonic() > deadline:
            logger.warning("cgroup %s still has processes or could not be removed", directory)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ---------------------------------------------------------------------------------------------
# the child side of an execution


JOIN_FAILED = "[stowage] could not place the command in its cgroup"
# Joins the cgroups given as arguments up to "--", then execs the rest; never runs it otherwise.
_JOIN_CGROUPS = (
    f'p=$$; while [ "$1" != -- ]; do echo $p > "$1" || {{ echo "{JOIN_FAILED}" >&2; exit 125; }}; shift; done; '
    'shift; ulimit -c 0; exec "$@"'
)


def _preexec(
    procs_files: tuple[str, ...], rlimits: tuple[tuple[int, tuple[int, int]], ...], pdeathsig: Callable[[], Any] | None
) -> Callable[[], None]:
    pid_files = tuple(os.fsencode(path) for path in procs_files)

    # Runs in the forked child before exec: only plain syscalls, nothing that takes locks.
    def run() -> None:
        pid = str(os.getpid()).encode()
        for path in pid_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for limit, value in rlimits:
            resource.setrlimit(limit, value)
        if pdeathsig is not None:
            pdeathsig()

    return run


def _pdeathsig_function() -> Callable[[], Any] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def _process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    return data[data.rindex(b")") + 2 :].split()[19].decode()


@dataclass
class _Execution:
    procs_files: tuple[str, ...] = ()
    leaf: str | None = None  # this execution's own pids cgroup
    rlimits: tuple[tuple[int, tuple[int, int]], ...] = ()
    oom_file: str | None = None  # counts OOM kills of the sandbox's memory cgroup
    oom_kills: int = 0
    memory_bytes: int | None = None


def _oom_kills(path: str | None) -> int:
    """The ``oom_kill`` counter of memory.oom_control (v1) or memory.events (v2)."""
    if path is None:
        return 0
    try:
        with open(path, "rb") as handle:
            for line in handle.read().splitlines():
                key, _, value = line.partition(b" ")
                if key == b"oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


# ---------------------------------------------------------------------------------------------


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
    ) -> None:
        self.root = Path(root).absolute()
        self.allow_unisolated = allow_unisolated
        self.output_limit_bytes = output_limit_bytes
        self.max_file_bytes = max_file_bytes
        self.network = network
        candidate = bwrap_path or shutil.which("bwrap") or "/usr/bin/bwrap"
        self.bwrap_path: str | None = candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
        # A missing bwrap without the opt-in stays "isolated": create() refuses instead of downgrading.
        self.isolated = self.bwrap_path is not None or not allow_unisolated
        self._bwrap_options = self._base_options()
        self._bwrap_checked = False
        self._check_lock = threading.Lock()
        self._cgroups = _detect_cgroups()
        self._root_tag = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:10]
        self._exec_counter = itertools.count()
        self._pdeathsig = None if self.isolated else _pdeathsig_function()

    # -- setup -----------------------------------------------------------------------------

    def _base_options(self) -> list[str]:
        options = ["--unshare-all", "--unshare-user", "--disable-userns"]
        if self.network:
            options.append("--share-net")
        options += ["--die-with-parent", "--new-session", "--clearenv"]
        options += ["--setenv", "PATH", DEFAULT_PATH, "--setenv", "HOME", WORKSPACE, "--setenv", "LANG", "C.UTF-8"]
        options += ["--ro-bind", "/usr", "/usr"]
        for name in _MERGED_USR:
            host = f"/{name}"
            if os.path.islink(host):
                options += ["--symlink", os.readlink(host), host]
            elif os.path.isdir(host):
                options += ["--ro-bind", host, host]
        etc = list(_ETC_FILES) + (["resolv.conf"] if self.network else [])
        for name in etc:
            host = f"/etc/{name}"
            if os.path.exists(host):
                options += ["--ro-bind", host, host]
        options += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_SIZE_BYTES), "--tmpfs", "/tmp"]  # noqa: S108 the sandbox's own private /tmp
        options += ["--hostname", "sandbox", "--cap-drop", "ALL"]
        return options

    def _check_isolation(self) -> None:
        """Fail with IsolationUnavailable unless commands can run (confined, or by opt-in not)."""
        if not self.isolated:
            return
        if self.bwrap_path is None:
            raise IsolationUnavailable(BWRAP_MISSING_MESSAGE)
        if self._bwrap_checked:
            return
        with self._check_lock:
            if self._bwrap_checked:
                return
            # One real run tells whether namespaces work here and which options this bwrap knows.
            options = list(self._bwrap_options)
            error = self._probe(options)
            for optional in _OPTIONAL_OPTIONS:
                if error is None:
                    break
                options = _without(options, optional)
                error = self._probe(options)
            if error is not None:
                if self.allow_unisolated:
                    logger.warning("bubblewrap cannot create sandboxes here (%s); running unisolated as allowed", error)
                    self.isolated = False
                    self._pdeathsig = _pdeathsig_function()
                    self._bwrap_checked = True
                    return
                raise IsolationUnavailable(f"bubblewrap is installed but cannot create a sandbox on this host: {error}")
            self._bwrap_options = options
            self._bwrap_checked = True

    def _probe(self, options: list[str]) -> str | None:
        assert self.bwrap_path is not None
        try:
            done = subprocess.run(
                [self.bwrap_path, *options, "--", "/bin/sh", "-c", "exit 0"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env={},
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if done.returncode == 0:
            return None
        return done.stderr.decode("utf-8", "replace").strip()[:500] or f"exit status {done.returncode}"

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

    def _open_workspace(self, sandbox_id: str) -> int:
        try:
            return paths.open_workspace(self._dir(sandbox_id) / "workspace")
        except (FileNotFoundError, NotADirectoryError):
            raise SandboxGone(f"sandbox {sandbox_id} does not exist on this host") from None

    # -- lifecycle -------------------------------------------------------------------------

    def create(self, sandbox_id: str, *, env: dict[str, str], memory_bytes: int | None, cpus: float | None) -> None:
        directory = self._dir(sandbox_id)
        _check_env(env)
        if memory_bytes is not None and (not isinstance(memory_bytes, int) or memory_bytes <= 0):
            raise ValueError(f"memory_bytes must be a positive integer or None, not {memory_bytes!r}")
        if cpus is not None and not cpus > 0:
            raise ValueError(f"cpus must be positive or None, not {cpus!r}")
        self._check_isolation()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        directory.mkdir(exist_ok=True, mode=0o700)
        (directory / "workspace").mkdir(exist_ok=True, mode=0o755)
        meta = directory / "meta"
        meta.mkdir(exist_ok=True, mode=0o700)
        record = {"version": 1, "env": dict(env), "memory_bytes": memory_bytes, "cpus": cpus}
        # The env may hold secrets: 0600 from the first byte, replaced atomically.
        temp = meta / f".{_META_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)
        os.replace(temp, meta / _META_FILE)
        self._ensure_cgroups(sandbox_id, record)

    def _ensure_cgroups(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        groups = self._cgroups
        if groups.version == 0:
            return
        name = self._cgroup_name(sandbox_id)
        memory_bytes = meta.get("memory_bytes")
        cpus = meta.get("cpus")
        try:
            pids_dir = os.path.join(groups.pids, name)  # type: ignore[arg-type]
            os.makedirs(pids_dir, exist_ok=True)
            _write(os.path.join(pids_dir, "pids.max"), str(PIDS_MAX))
            if memory_bytes and groups.memory:
                memory_dir = os.path.join(groups.memory, name)
                os.makedirs(memory_dir, exist_ok=True)
                if groups.version == 1:
                    _set_v1_memory(memory_dir, int(memory_bytes))
                else:
                    _write(os.path.join(memory_dir, "memory.max"), str(int(memory_bytes)))
                    if os.path.exists(os.path.join(memory_dir, "memory.swap.max")):
                        _write(os.path.join(memory_dir, "memory.swap.max"), "0")
            if cpus and groups.cpu:
                cpu_dir = os.path.join(groups.cpu, name)
                os.makedirs(cpu_dir, exist_ok=True)
                quota = max(1000, int(float(cpus) * CPU_PERIOD_US))
                if groups.version == 1:
                    _write(os.path.join(cpu_dir, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
                    _write(os.path.join(cpu_dir, "cpu.cfs_quota_us"), str(quota))
                else:
                    _write(os.path.join(cpu_dir, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
        except OSError as exc:
            raise SandboxRuntimeError(
                f"could not set the sandbox's resource limits: {exc}", code="RESOURCE_LIMITS_FAILED"
            ) from None

    def exists(self, sandbox_id: str) -> bool:
        directory = self._dir(sandbox_id)
        return (directory / "workspace").is_dir() and (directory / "meta" / _META_FILE).is_file()

    def stop(self, sandbox_id: str) -> None:
        directory = self._dir(sandbox_id)
        groups = self._cgroups
        if groups.version:
            dirs = groups.controller_dirs(self._cgroup_name(sandbox_id))
            for cgroup_dir in dirs:
                _kill_cgroup_tree(cgroup_dir, groups.version, remove=True)
        self._kill_recorded(directory / "meta" / "procs")

    def destroy(self, sandbox_id: str) -> None:
        directory = self._dir(sandbox_id)
        self.stop(sandbox_id)
        # Python >= 3.11 on Linux removes fd-relative and never follows links the sandbox planted.
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass

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
        argv = _command_argv(command)
        if env:
            _check_env(env)
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise CommandInvalid(f"timeout must be a positive number of seconds, not {timeout_s!r}")
        self._check_isolation()
        meta = self._load_meta(sandbox_id)
        workdir = WORKSPACE
        if working_dir is not None:
            parts = paths.parse_path(working_dir, allow_root=True)
            ws_fd = self._open_workspace(sandbox_id)
            try:
                os.close(paths.open_dir(ws_fd, parts))
            finally:
                os.close(ws_fd)
            workdir = paths.sandbox_path(parts)
        full_env = {"PATH": DEFAULT_PATH, "HOME": WORKSPACE, "LANG": "C.UTF-8"}
        full_env.update(meta.get("env") or {})
        full_env.update(env or {})
        workspace = str(directory / "workspace")

        if self.isolated:
            # --remount-ro / last: bwrap's root is a writable tmpfs (/etc, /) otherwise.
            options = [*self._bwrap_options, "--bind", workspace, WORKSPACE, "--remount-ro", "/", "--chdir", workdir]
            for name, value in full_env.items():
                options += ["--setenv", name, value]
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
        try:
            proc = self._spawn(sandbox_id, argv, options, popen_env, cwd, execution)
        except BaseException:
            self._finish_execution(execution)
            raise
        if proc is None:
            self._finish_execution(execution)
            return ExecResult(127, "", f"{argv[0]}: command not found\n", False, False, _ms_since(started))
        record = None if execution.leaf else self._record_process(directory, proc.pid)
        try:
            result = self._collect(proc, execution, started, timeout_s, on_output)
            if result.exit_code == 125 and not result.stdout and result.stderr.endswith(JOIN_FAILED + "\n"):
                # Only stop() removes a sandbox's cgroups while a command is starting.
                raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting")
            return result
        finally:
            self._finish_execution(execution)
            if record is not None:
                try:
                    record.unlink()
                except OSError:
                    pass

    def _spawn(
        self,
        sandbox_id: str,
        argv: list[str],
        options: list[str],
        env: dict[str, str],
        cwd: str,
        execution: _Execution,
    ) -> subprocess.Popen[bytes] | None:
        """Start the command (under bwrap when ``options``); None when, unisolated, the program does not exist."""
        args_fd = -1
        try:
            if options:
                # Options go through a memfd, so env values (secrets) and host paths are not on
                # bwrap's command line, which every host user and the sandbox's pid 1 could read.
                args_fd = os.memfd_create("bwrap-args", 0)
                _write_all(args_fd, b"".join(os.fsencode(option) + b"\0" for option in options))
                os.lseek(args_fd, 0, os.SEEK_SET)
                argv = [self.bwrap_path or "bwrap", "--args", str(args_fd), "--", *argv]
            preexec: Callable[[], None] | None = None
            if execution.rlimits or self._pdeathsig is not None or not execution.procs_files:
                preexec = _preexec(execution.procs_files, execution.rlimits, self._pdeathsig)
            else:
                # Same as the preexec_fn, but lets subprocess use vfork: a fork of a big worker
                # costs milliseconds per execution.
                argv = ["/bin/sh", "-c", _JOIN_CGROUPS, "stowage-join", *execution.procs_files, "--", *argv]
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                pass_fds=(args_fd,) if args_fd >= 0 else (),
                preexec_fn=preexec,
            )
        except FileNotFoundError:
            if self.isolated:
                raise IsolationUnavailable(BWRAP_MISSING_MESSAGE) from None
            return None
        except (OSError, subprocess.SubprocessError) as exc:
            if not self.exists(sandbox_id) or (execution.leaf and not os.path.isdir(execution.leaf)):
                raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting") from None
            raise SandboxRuntimeError(f"could not start the command: {exc}", code="EXEC_FAILED") from None
        finally:
            if args_fd >= 0:
                os.close(args_fd)

    def _prepare_execution(self, sandbox_id: str, meta: dict[str, Any]) -> _Execution:
        groups = self._cgroups
        memory_bytes = meta.get("memory_bytes")
        cpus = meta.get("cpus")
        rlimits: list[tuple[int, tuple[int, int]]] = []
        if groups.version == 0:
            if memory_bytes:
                rlimits.append((resource.RLIMIT_AS, (int(memory_bytes), int(memory_bytes))))
            rlimits.append((resource.RLIMIT_NPROC, (PIDS_MAX, PIDS_MAX)))
            return _Execution(rlimits=tuple(rlimits))
        name = self._cgroup_name(sandbox_id)
        sandbox_pids = os.path.join(groups.pids, name)  # type: ignore[arg-type]
        leaf = os.path.join(sandbox_pids, f"x{os.getpid()}_{next(self._exec_counter)}")
        memory_dir = os.path.join(groups.memory, name) if memory_bytes and groups.memory else None
        cpu_dir = os.path.join(groups.cpu, name) if cpus and groups.cpu else None
        if memory_bytes and not groups.memory:
            rlimits.append((resource.RLIMIT_AS, (int(memory_bytes), int(memory_bytes))))
        try:
            os.mkdir(leaf)
            if (memory_dir and not os.path.isdir(memory_dir)) or (cpu_dir and not os.path.isdir(cpu_dir)):
                raise FileNotFoundError
        except FileNotFoundError:
            # First execution after stop() (which removes the cgroups) or after a host reboot.
            self._ensure_cgroups(sandbox_id, meta)
            try:
                os.mkdir(leaf)
            except FileExistsError:
                pass
            except FileNotFoundError:
                raise SandboxGone(f"sandbox {sandbox_id} was stopped while the command was starting") from None
            except OSError as exc:
                raise SandboxRuntimeError(
                    f"could not set the command's resource limits: {exc}", code="RESOURCE_LIMITS_FAILED"
                ) from None
        except OSError as exc:
            raise SandboxRuntimeError(
                f"could not set the command's resource limits: {exc}", code="RESOURCE_LIMITS_FAILED"
            ) from None
        procs = [os.path.join(leaf, "cgroup.procs")]
        if groups.version == 1:
            procs += [os.path.join(d, "cgroup.procs") for d in (memory_dir, cpu_dir) if d]
        oom_file = None
        if memory_dir:
            oom_file = os.path.join(memory_dir, "memory.oom_control" if groups.version == 1 else "memory.events")
        return _Execution(
            procs_files=tuple(procs),
            leaf=leaf,
            rlimits=tuple(rlimits),
            oom_file=oom_file,
            oom_kills=_oom_kills(oom_file),
            memory_bytes=int(memory_bytes) if memory_bytes else None,
        )

    def _collect(  # noqa: C901 split with the runtime module
        self,
        proc: subprocess.Popen[bytes],
        execution: _Execution,
        started: float,
        timeout_s: float,
        on_output: OutputCallback | None,
    ) -> ExecResult:
        deadline = started + timeout_s
        limit = self.output_limit_bytes
        buffers = {"stdout": bytearray(), "stderr": bytearray()}
        truncated = False
        timed_out = False
        exited_at: float | None = None
        give_up_at: float | None = None
        assert proc.stdout is not None and proc.stderr is not None

        def kill() -> None:
            # Once reaped, its pid could be reused; the cgroup finds the rest when there is one.
            if proc.returncode is None or execution.leaf is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if execution.leaf:
                _kill_cgroup_tree(execution.leaf, self._cgroups.version)

        selector = selectors.DefaultSelector()
        try:
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
            while selector.get_map():
                now = time.monotonic()
                if give_up_at is None:
                    if now >= deadline:
                        timed_out = True
                        kill()
                        give_up_at = now + 2.0
                    else:
                        if exited_at is None and proc.poll() is not None:
                            exited_at = now
                        if exited_at is not None and now - exited_at >= _EXIT_GRACE_S:
                            kill()  # leftovers holding our pipes open
                            give_up_at = now + 2.0
                elif now >= give_up_at:
                    break
                wait = _POLL_S if give_up_at is None else max(0.0, give_up_at - now)
                if give_up_at is None:
                    wait = min(wait, max(0.0, deadline - now))
                for key, _events in selector.select(wait):
                    chunk = os.read(key.fd, CHUNK_BYTES)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    buffer = buffers[key.data]
                    room = limit - len(buffer)
                    if room <= 0:
                        truncated = True  # keep draining so the command never blocks on a full pipe
                        continue
                    if len(chunk) > room:
                        chunk = chunk[:room]
                        truncated = True
                    buffer += chunk
                    if on_output is not None:
                        on_output(key.data, chunk)
            if not timed_out:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True  # it closed its output but kept running
                    kill()
            if proc.returncode is None:
                proc.wait()
        except BaseException:
            kill()
            proc.wait()
            raise
        finally:
            selector.close()
            proc.stdout.close()
            proc.stderr.close()

        stdout = buffers["stdout"].decode("utf-8", "replace")
        stderr = buffers["stderr"].decode("utf-8", "replace")
        if execution.oom_file and _oom_kills(execution.oom_file) > execution.oom_kills:
            # Otherwise the user only sees an unexplained exit status 137.
            stderr += f"\n[stowage] the sandbox ran out of memory (limit {execution.memory_bytes} bytes) and a process was killed\n"
        if timed_out:
            exit_code = TIMEOUT_EXIT_CODE
            stderr += f"\n[stowage] command timed out after {timeout_s:g}s and was killed\n"
        else:
            code = proc.returncode
            exit_code = 128 - code if code < 0 else code
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            output_truncated=truncated,
            timed_out=timed_out,
            duration_ms=_ms_since(started),
        )

    def _finish_execution(self, execution: _Execution) -> None:
        if execution.leaf is None:
            return
        try:
            os.rmdir(execution.leaf)
        except FileNotFoundError:
            pass
        except OSError:
            # With a PID namespace nothing outlives the command; without one, background jobs may.
            _kill_cgroup_tree(execution.leaf, self._cgroups.version, remove=True)

    # Without cgroups, stop() finds running commands through these records (pid + start time,
    # so a recycled pid is never killed).
    def _record_process(self, directory: Path, pid: int) -> Path | None:
        start = _process_start_time(pid)
        if start is None:
            return None
        procs = directory / "meta" / "procs"
        try:
            procs.mkdir(exist_ok=True, mode=0o700)
            record = procs / str(pid)
            record.write_text(start)
        except OSError:
            return None
        return record

    def _kill_recorded(self, procs: Path) -> None:
        try:
            records = list(procs.iterdir())
        except OSError:
            return
        for record in records:
            try:
                pid = int(record.name)
                expected = record.read_text()
            except (ValueError, OSError):
                continue
            if _process_start_time(pid) == expected:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                record.unlink()
            except OSError:
                pass

    # -- files -----------------------------------------------------------------------------

    def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> int:
        parts = paths.parse_path(path)
        if not parts:
            raise InvalidPath(f"cannot write to {WORKSPACE} itself")
        if len(data) > self.max_file_bytes:
            raise FileTooLarge(
                f"{paths.sandbox_path(parts)}: {len(data)} bytes is more than the {self.max_file_bytes} bytes allowed"
            )
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be a permission number such as 0o644, not {mode!r}")
        ws_fd = self._open_workspace(sandbox_id)
        try:
            return paths.write_file(ws_fd, parts, data, mode)
        finally:
            os.close(ws_fd)

    def read_file(self, sandbox_id: str, path: str, *, max_bytes: int) -> bytes:
        parts = paths.parse_path(path)
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        ws_fd = self._open_workspace(sandbox_id)
        try:
            fd = paths.open_file(ws_fd, parts)
        finally:
            os.close(ws_fd)
        try:
            return paths.read_all(fd, min(max_bytes, self.max_file_bytes), parts)
        finally:
            os.close(fd)

    def open_read(self, sandbox_id: str, path: str) -> BinaryIO:
        parts = paths.parse_path(path)
        ws_fd = self._open_workspace(sandbox_id)
        try:
            fd = paths.open_file(ws_fd, parts)
        finally:
            os.close(ws_fd)
        return os.fdopen(fd, "rb")

    def list_files(
        self, sandbox_id: str, path: str = WORKSPACE, *, recursive: bool = False, limit: int = 10000
    ) -> list[FileEntry]:
        parts = paths.parse_path(path, allow_root=True)
        ws_fd = self._open_workspace(sandbox_id)
        try:
            dir_fd = paths.open_dir(ws_fd, parts)
        finally:
            os.close(ws_fd)
        entries: list[FileEntry] = []
        try:
            if limit <= 0:
                return entries
            for entry_path, name, st in paths.walk(dir_fd, paths.sandbox_path(parts), recursive=recursive):
                entries.append(
                    FileEntry(
                        # A name the sandbox made of bytes that are not UTF-8 is shown, not sent on as is.
                        name=displayable(name),
                        path=displayable(entry_path),
                        type=_entry_type(st.st_mode),
                        size=st.st_size,
                        modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
                    )
                )
                if len(entries) >= limit:
                    break
        finally:
            os.close(dir_fd)
        return entries

    def delete_file(self, sandbox_id: str, path: str, *, recursive: bool = False) -> None:
        parts = paths.parse_path(path)
        ws_fd = self._open_workspace(sandbox_id)
        try:
            paths.delete(ws_fd, parts, recursive=recursive)
        finally:
            os.close(ws_fd)

    # -- streaming transfers (artifacts); the work is in streams.py -------------------------

    def stat_path(self, sandbox_id: str, path: str) -> FileEntry:
        """What is at ``path`` (a final link is reported, not followed)."""
        from . import streams

        parts = paths.parse_path(path, allow_root=True)
        ws_fd = self._open_workspace(sandbox_id)
        try:
            return streams.stat_entry(ws_fd, parts)
        finally:
            os.close(ws_fd)

    def scratch_dir(self, sandbox_id: str) -> Path:
        """A host directory for the runtime's temporary files about this sandbox; never mounted."""
        if not self.exists(sandbox_id):
            raise SandboxGone(f"sandbox {sandbox_id} does not exist on this host")
        directory = self._dir(sandbox_id) / "scratch"
        directory.mkdir(mode=0o700, exist_ok=True)
        return directory

    def archive_directory(self, sandbox_id: str, path: str, out: BinaryIO) -> None:
        """Write the directory at ``path`` to ``out`` as tar.gz, links stored, never followed."""
        from . import streams

        parts = paths.parse_path(path, allow_root=True)
        ws_fd = self._open_workspace(sandbox_id)
        try:
            streams.archive_directory(ws_fd, parts, out)
        finally:
            os.close(ws_fd)

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
        from . import streams

        parts = paths.parse_path(path)
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be a permission number such as 0o644, not {mode!r}")
        ws_fd = self._open_workspace(sandbox_id)
        try:
            return streams.write_stream(
                ws_fd, parts, chunks, mode=mode, expected_sha256=expected_sha256, on_progress=on_progress
            )
        finally:
            os.close(ws_fd)

    def workspace_usage(self, sandbox_id: str) -> int:
        """Bytes allocated on disk (like ``du``), hard links counted once, links not followed."""
        ws_fd = self._open_workspace(sandbox_id)
        try:
            total = os.fstat(ws_fd).st_blocks * 512
            seen: set[tuple[int, int]] = set()
            for _path, _name, st in paths.walk(ws_fd, WORKSPACE, recursive=True):
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
            return total
        finally:
            os.close(ws_fd)


# ---------------------------------------------------------------------------------------------
# helpers


def _without(options: list[str], optional: tuple[str, ...]) -> list[str]:
    result: list[str] = []
    index = 0
    while index < len(options):
        if tuple(options[index : index + len(optional)]) == optional:
            index += len(optional)
            continue
        result.append(options[index])
        index += 1
    return result


def _set_v1_memory(directory: str, limit: int) -> None:
    limit_file = os.path.join(directory, "memory.limit_in_bytes")
    memsw_file = os.path.join(directory, "memory.memsw.limit_in_bytes")
    has_memsw = os.path.exists(memsw_file)
    # The kernel keeps memsw >= limit: when growing, memsw must move first; when shrinking
    # (or from "unlimited") that first write fails and memsw follows the limit instead.
    if has_memsw:
        try:
            _write(memsw_file, str(limit))
        except OSError:
            pass
    _write(limit_file, str(limit))
    if has_memsw:
        _write(memsw_file, str(limit))


def _check_env(env: object) -> None:
    if not isinstance(env, dict):
        raise CommandInvalid("env must be a mapping of names to strings")
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise CommandInvalid(f"invalid environment variable name {str(name)[:64]!r}")
        if not isinstance(value, str) or "\x00" in value:
            raise CommandInvalid(f"environment variable {name} must be a string without NUL bytes")


def _command_argv(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        if not command.strip():
            raise CommandInvalid("command must not be empty")
        if "\x00" in command:
            raise CommandInvalid("command must not contain NUL bytes")
        return ["/bin/sh", "-c", command]
    if not isinstance(command, (list, tuple)) or not command:
        raise CommandInvalid("command must be a non-empty string or list of strings")
    argv = list(command)
    for arg in argv:
        if not isinstance(arg, str):
            raise CommandInvalid("every argument of the command must be a string")
        if "\x00" in arg:
            raise CommandInvalid("command must not contain NUL bytes")
    if not argv[0]:
        raise CommandInvalid("the program name must not be empty")
    return argv


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _entry_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"
