"""A command's process: what may be run, its cgroup or rlimits, starting it, killing it.

The child joins its cgroups before bwrap starts, so nothing it starts can run outside them: a
tiny ``/bin/sh`` prologue writes "0" (itself) to each cgroup's join file and then execs bwrap (this
lets subprocess use vfork; a fork of a large worker costs milliseconds), or a ``preexec_fn``
does it when rlimits or a parent-death signal must be set in the child anyway.

Without cgroups, rlimits stand in: ``RLIMIT_AS`` bounds memory per process (not per sandbox);
``RLIMIT_NPROC`` bounds processes but the kernel ignores it for uid 0, so a worker running
as root has no fork-bomb protection in this mode. Processes are then found for ``stop()``
through their process group, recorded under ``meta/procs/``; a process that calls setsid()
escapes that (it still dies with the sandbox's PID namespace when isolated).
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cgroups
from .base import CommandInvalid

JOIN_FAILED = "[stowage] could not place the command in its cgroup"
# Joins the cgroups given as arguments up to "--", then execs the rest; never runs it otherwise.
_JOIN_CGROUPS = (
    f'while [ "$1" != -- ]; do echo 0 > "$1" || {{ echo "{JOIN_FAILED}" >&2; exit 125; }}; shift; done; '
    'shift; ulimit -c 0; exec "$@"'
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Rlimits = tuple[tuple[int, tuple[int, int]], ...]


def command_argv(command: str | Sequence[str]) -> list[str]:
    """The argv to run: a string goes through ``/bin/sh -c``, a list is run as it is."""
    if isinstance(command, str):
        if not command.strip():
            raise CommandInvalid("command must not be empty")
        _check_text(command)
        return ["/bin/sh", "-c", command]
    if not isinstance(command, (list, tuple)) or not command:
        raise CommandInvalid("command must be a non-empty string or list of strings")
    argv = list(command)
    for arg in argv:
        if not isinstance(arg, str):
            raise CommandInvalid("every argument of the command must be a string")
        _check_text(arg)
    if not argv[0]:
        raise CommandInvalid("the program name must not be empty")
    return argv


def check_env(env: object) -> None:
    if not isinstance(env, dict):
        raise CommandInvalid("env must be a mapping of names to strings")
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise CommandInvalid(f"invalid environment variable name {str(name)[:64]!r}")
        if not isinstance(value, str) or "\x00" in value or not _is_utf8(value):
            raise CommandInvalid(f"environment variable {name} must be UTF-8 text without NUL bytes")


def _check_text(arg: str) -> None:
    if "\x00" in arg:
        raise CommandInvalid("command must not contain NUL bytes")
    if not _is_utf8(arg):
        raise CommandInvalid("command is not valid UTF-8")


def _is_utf8(text: str) -> bool:
    # A lone surrogate (JSON may carry "\udcff") would reach exec as a raw byte, or fail there.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Execution:
    """How one command is confined: its own cgroup when this host has cgroups, else rlimits."""

    procs_files: tuple[str, ...] = ()
    leaf: str | None = None  # this execution's own pids cgroup
    cgroup_version: int = 0
    rlimits: Rlimits = ()
    oom_file: str | None = None  # counts OOM kills of the sandbox's memory cgroup
    oom_kills: int = 0
    memory_bytes: int | None = None


def prepare(
    groups: cgroups.Cgroups,
    name: str,
    leaf_name: str,
    *,
    memory_bytes: int | None,
    cpus: float | None,
    pids_max: int,
) -> Execution:
    """The confinement of a new command of the sandbox whose cgroups are called ``name``.

    Raises FileNotFoundError when the sandbox's cgroups were removed (by stop()) meanwhile.
    """
    if groups.version == 0:
        return Execution(rlimits=rlimits(memory_bytes=memory_bytes, processes=pids_max))
    cgroup = cgroups.command_cgroup(groups, name, leaf_name, memory_bytes=memory_bytes, cpus=cpus, pids_max=pids_max)
    return Execution(
        procs_files=cgroup.procs_files,
        leaf=cgroup.leaf,
        cgroup_version=groups.version,
        # Without a memory controller, memory is bounded per process instead.
        rlimits=rlimits(memory_bytes=None if groups.memory else memory_bytes),
        oom_file=cgroup.oom_file,
        oom_kills=cgroups.oom_kills(cgroup.oom_file),
        memory_bytes=memory_bytes,
    )


def rlimits(*, memory_bytes: int | None, processes: int | None = None) -> Rlimits:
    """Per-process limits for what no cgroup bounds."""
    limits = []
    if memory_bytes:
        limits.append((resource.RLIMIT_AS, (memory_bytes, memory_bytes)))
    if processes:
        limits.append((resource.RLIMIT_NPROC, (processes, processes)))
    return tuple(limits)


def pdeathsig_function() -> Callable[[], Any] | None:
    """A call that makes the calling process die with its parent, where libc has prctl."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def _preexec(procs_files: tuple[str, ...], limits: Rlimits, pdeathsig: Callable[[], Any] | None) -> Callable[[], None]:
    pid_files = tuple(os.fsencode(path) for path in procs_files)

    # Runs in the forked child before exec: only plain syscalls, nothing that takes locks.
    def run() -> None:
        for path in pid_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # the calling process (its one thread, on v1's tasks file)
            finally:
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for limit, value in limits:
            resource.setrlimit(limit, value)
        if pdeathsig is not None:
            pdeathsig()

    return run


def start(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    execution: Execution,
    pdeathsig: Callable[[], Any] | None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, inside the execution's cgroups and limits."""
    preexec: Callable[[], None] | None = None
    if execution.rlimits or pdeathsig is not None or not execution.procs_files:
        preexec = _preexec(execution.procs_files, execution.rlimits, pdeathsig)
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
        pass_fds=pass_fds,
        preexec_fn=preexec,
    )


def kill(proc: subprocess.Popen[bytes], execution: Execution) -> None:
    """SIGKILL the command and everything it started."""
    # Once reaped, its pid could be reused; the cgroup finds the rest when there is one.
    if proc.returncode is None or execution.leaf is None:
        kill_group(proc.pid)
    if execution.leaf:
        cgroups.kill_tree(execution.leaf, execution.cgroup_version)


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads and every process below ``pid``, if still there.

    Its descendants are stopped first, then killed: bwrap killed just after it started its
    sandbox's first process, before that process asked to die with it, would leave it running
    in a session of its own, which the group's kill does not reach.
    """
    stopped = []
    below = [pid]
    while below:
        current = below.pop()
        try:
            os.kill(current, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            continue
        stopped.append(current)
        below.extend(_children(current))
    for current in stopped:
        try:
            os.kill(current, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    children = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                children.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return children


def notes(execution: Execution) -> list[str]:
    """What the command's stderr should explain once it has exited."""
    if execution.oom_file and cgroups.oom_kills(execution.oom_file) > execution.oom_kills:
        # Otherwise the user only sees an unexplained exit status 137.
        return [f"the sandbox ran out of memory (limit {execution.memory_bytes} bytes) and a process was killed"]
    return []


def finish(execution: Execution) -> None:
    """Remove the command's own cgroup, killing what it left behind."""
    if execution.leaf is not None:
        cgroups.remove_command_cgroup(execution.leaf, execution.cgroup_version)


def process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    return data[data.rindex(b")") + 2 :].split()[19].decode()


# Without cgroups, stop() finds running commands through these records (pid + start time,
# so a recycled pid is never killed).
@contextmanager
def recorded(procs: Path, pid: int) -> Iterator[None]:
    """Keep a record of the process ``pid`` in the directory ``procs`` while inside."""
    record = _record_process(procs, pid)
    try:
        yield
    finally:
        if record is not None:
            try:
                record.unlink()
            except OSError:
                pass


def _record_process(procs: Path, pid: int) -> Path | None:
    start_time = process_start_time(pid)
    if start_time is None:
        return None
    try:
        procs.mkdir(exist_ok=True, mode=0o700)
        record = procs / str(pid)
        record.write_text(start_time)
    except OSError:
        return None
    return record


# A command that starts while stop() runs may be recorded only after stop() looked at the records;
# it compares this count before it started and once it is recorded, and kills itself if it moved.
def stops_begun(meta: Path) -> int:
    """How many times stop() began on the sandbox whose meta directory this is."""
    try:
        return int((meta / "stops").read_text())
    except (OSError, ValueError):
        return 0


def stop_begins(meta: Path) -> None:
    try:
        (meta / "stops").write_text(str(stops_begun(meta) + 1))
    except OSError:
        pass  # a sandbox whose directory is gone has nothing left to stop


def kill_recorded(procs: Path) -> None:
    """Kill the process group of each process recorded in ``procs`` that still runs, and forget them all."""
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
        if process_start_time(pid) == expected:
            kill_group(pid)
        try:
            record.unlink()
        except OSError:
            pass
