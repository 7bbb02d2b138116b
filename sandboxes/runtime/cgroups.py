"""cgroups for sandboxes: their processes, memory and CPU, and killing all of a sandbox's processes.

In order of preference:

* cgroup v1 (``/sys/fs/cgroup/{pids,memory,cpu}`` writable, as on this host's Debian 12 VM):
  ``pids/stowage/<sandbox>/`` holds ``pids.max`` and one child cgroup per execution, so a
  timeout kills exactly that execution's processes and ``stop()`` kills the whole sandbox;
  ``memory/stowage/<sandbox>/`` holds ``memory.limit_in_bytes`` (and ``memsw``: no swap
  escape); ``cpu/stowage/<sandbox>/`` holds the CFS quota for ``cpus``, and ``cpu/stowage/``
  weighs as many processes as it holds sandboxes (``weigh_sandboxes``).
* cgroup v2 (``/sys/fs/cgroup`` is a cgroup2 mount and writable): the same tree under
  ``/sys/fs/cgroup/stowage/`` with ``pids.max``, ``memory.max``/``memory.swap.max``, ``cpu.max``.
* neither (``version == 0``): the runtime falls back to rlimits and process groups (spawn.py).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .base import SandboxRuntimeError

logger = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
_KILL_WAIT_S = 5.0
# The kernel's weight of one group (or one process at nice 0) and its largest, per version.
_CPU_WEIGHT = {1: ("cpu.shares", 1024, 262_144), 2: ("cpu.weight", 100, 10_000)}


@dataclass(frozen=True)
class Cgroups:
    version: int  # 0: none usable, 1 or 2
    pids: str | None = None
    memory: str | None = None
    cpu: str | None = None

    def controller_dirs(self, name: str) -> list[str]:
        return sorted({os.path.join(base, name) for base in (self.pids, self.memory, self.cpu) if base})


@dataclass(frozen=True)
class CommandCgroup:
    leaf: str  # the command's own pids cgroup
    procs_files: tuple[str, ...]  # the files the command writes "0" to, joining each cgroup
    oom_file: str | None  # counts OOM kills of the sandbox's memory cgroup


_detected: Cgroups | None = None
_detect_lock = threading.Lock()


def detect() -> Cgroups:
    """The cgroups this host lets us use, probed once per process."""
    global _detected
    with _detect_lock:
        if _detected is None:
            _detected = _probe_v1() or _probe_v2() or Cgroups(version=0)
            logger.debug("sandbox cgroups: %s", _detected)
        return _detected


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


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


def _probe_v1() -> Cgroups | None:
    pids = _v1_base("pids", "pids.max")
    if pids is None:
        return None
    return Cgroups(
        version=1,
        pids=pids,
        memory=_v1_base("memory", "memory.limit_in_bytes"),
        cpu=_v1_base("cpu", "cpu.cfs_quota_us"),
    )


def _probe_v2() -> Cgroups | None:
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
    return Cgroups(
        version=2,
        pids=base,
        memory=base if "memory" in enabled else None,
        cpu=base if "cpu" in enabled else None,
    )


def limit_sandbox(groups: Cgroups, name: str, *, memory_bytes: int | None, cpus: float | None, pids_max: int) -> None:
    """Make the sandbox's cgroups (again) and write its limits into them."""
    try:
        _limit_sandbox(groups, name, memory_bytes=memory_bytes, cpus=cpus, pids_max=pids_max)
    except OSError as exc:
        raise _sandbox_limits_failed(exc) from None


def _limit_sandbox(groups: Cgroups, name: str, *, memory_bytes: int | None, cpus: float | None, pids_max: int) -> None:
    if groups.version == 0:
        return
    pids_dir = os.path.join(groups.pids, name)  # type: ignore[arg-type]
    os.makedirs(pids_dir, exist_ok=True)
    _write(os.path.join(pids_dir, "pids.max"), str(pids_max))
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
    # On v2 a sandbox without a CPU limit is in the shared group too, and counts.
    weigh_sandboxes(groups)


def weigh_sandboxes(groups: Cgroups) -> None:
    """Give the sandboxes' shared CPU group the weight of as many processes as it holds sandboxes.

    The kernel weighs that group against each process outside it as one process: left at its
    default, every sandbox's start and run together would share one process's slice of a busy
    host, so a command waited hundreds of milliseconds for bwrap to set up. Made again whenever a
    sandbox's CPU group comes or goes; a count that races another one is put right by the next.
    """
    if not groups.cpu or groups.version not in _CPU_WEIGHT:
        return
    name, one, most = _CPU_WEIGHT[groups.version]
    try:
        with os.scandir(groups.cpu) as entries:
            sandboxes = sum(1 for entry in entries if entry.is_dir(follow_symlinks=False))
        _write(os.path.join(groups.cpu, name), str(min(most, max(1, sandboxes) * one)))
    except OSError as exc:
        logger.warning("could not weigh the sandboxes' CPU group %s: %s", groups.cpu, exc)


def _sandbox_limits_failed(exc: OSError) -> SandboxRuntimeError:
    return SandboxRuntimeError(f"could not set the sandbox's resource limits: {exc}", code="RESOURCE_LIMITS_FAILED")


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


def command_cgroup(
    groups: Cgroups, name: str, leaf_name: str, *, memory_bytes: int | None, cpus: float | None, pids_max: int
) -> CommandCgroup:
    """A new cgroup for one command below the sandbox's, and the files it joins them through.

    On cgroup v1 the command joins through ``tasks``: writing "0" there moves only the writing
    thread (the command's still single-threaded first process), which the kernel does without the
    global lock that a write to ``cgroup.procs`` takes; that lock waits for an RCU grace period
    (8-13 ms on the hosts measured) whenever no other move happened just before.

    Raises FileNotFoundError when the sandbox's cgroups were removed (by stop()) meanwhile.
    """
    sandbox_pids = os.path.join(groups.pids, name)  # type: ignore[arg-type]
    leaf = os.path.join(sandbox_pids, leaf_name)
    memory_dir = os.path.join(groups.memory, name) if memory_bytes and groups.memory else None
    cpu_dir = os.path.join(groups.cpu, name) if cpus and groups.cpu else None
    try:
        os.mkdir(leaf)
        ready = all(os.path.isdir(d) for d in (memory_dir, cpu_dir) if d)
    except FileNotFoundError:
        ready = False
    except OSError as exc:
        raise _command_limits_failed(exc) from None
    if not ready:
        # First execution after stop() (which removes the cgroups) or after a host reboot.
        try:
            _limit_sandbox(groups, name, memory_bytes=memory_bytes, cpus=cpus, pids_max=pids_max)
        except OSError as exc:
            # ENODEV: a limit written into a cgroup that a concurrent stop() just removed; EEXIST:
            # makedirs found the directory while stop() was removing it, then found it gone.
            if exc.errno in (errno.ENOENT, errno.ENODEV, errno.EEXIST):
                raise FileNotFoundError(exc.errno, "the sandbox's cgroups were removed meanwhile") from None
            raise _sandbox_limits_failed(exc) from None
        try:
            os.mkdir(leaf)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise  # stop() removed the sandbox's cgroups meanwhile; the caller says so
        except OSError as exc:
            raise _command_limits_failed(exc) from None
    if groups.version == 1:
        procs = [os.path.join(d, "tasks") for d in (leaf, memory_dir, cpu_dir) if d]
    else:
        procs = [os.path.join(leaf, "cgroup.procs")]
    oom_file = None
    if memory_dir:
        oom_file = os.path.join(memory_dir, "memory.oom_control" if groups.version == 1 else "memory.events")
    return CommandCgroup(leaf=leaf, procs_files=tuple(procs), oom_file=oom_file)


def _command_limits_failed(exc: OSError) -> SandboxRuntimeError:
    return SandboxRuntimeError(f"could not set the command's resource limits: {exc}", code="RESOURCE_LIMITS_FAILED")


def remove_command_cgroup(leaf: str, version: int) -> None:
    try:
        os.rmdir(leaf)
    except FileNotFoundError:
        pass
    except OSError:
        # With a PID namespace nothing outlives the command; without one, background jobs may.
        kill_tree(leaf, version, remove=True)


def remove_sandbox(groups: Cgroups, name: str) -> None:
    """Kill every process of the sandbox and remove its cgroups."""
    for directory in groups.controller_dirs(name):
        kill_tree(directory, groups.version, remove=True)
    weigh_sandboxes(groups)


def _pids(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs"), "rb") as handle:
            return [int(line) for line in handle.read().split()]
    except OSError:  # ENOENT, or ENODEV when removed between open and read
        return []


def kill_tree(directory: str, version: int, *, remove: bool = False) -> None:
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
            pids = _pids(current)
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


def oom_kills(path: str | None) -> int:
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
