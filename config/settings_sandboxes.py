"""Sandbox resources: workspace disk limits and what the sandbox hosts can give."""

from __future__ import annotations

import os

from config.env import env_int, env_str


def _host_memory_bytes() -> int:
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# Each workspace is a filesystem of its own of this size, so a sandbox that fills it gets
# "No space left on device" and the host's disk is untouched (sandboxes/runtime/disk.py).
SANDBOX_DISK_DEFAULT = env_str("STOWAGE_SANDBOX_DISK_DEFAULT", "1Gi")
SANDBOX_DISK_MAX_BYTES = env_int("STOWAGE_SANDBOX_DISK_MAX_BYTES", 20 << 30)
SANDBOX_DISK_MIN_BYTES = 16 << 20
# auto: a loop-mounted image where this host allows it (root, /dev/loop*, mkfs.ext4), else a plain
# directory, reported as disk_enforced false; loop: refuse to create a sandbox without one; off: never.
SANDBOX_DISK_ENFORCE = env_str("STOWAGE_SANDBOX_DISK_ENFORCE", "auto").strip().lower()
if SANDBOX_DISK_ENFORCE not in {"auto", "loop", "off"}:
    raise ValueError(f"STOWAGE_SANDBOX_DISK_ENFORCE must be auto, loop or off, not {SANDBOX_DISK_ENFORCE!r}")

# What one sandbox host can give. The web process checks requests against these, so where web
# and sandbox hosts differ, set them to the sandbox hosts' figures.
SANDBOX_HOST_CPUS = env_int("STOWAGE_SANDBOX_HOST_CPUS", os.cpu_count() or 1)
SANDBOX_HOST_MEMORY_BYTES = env_int("STOWAGE_SANDBOX_HOST_MEMORY_BYTES", _host_memory_bytes())
