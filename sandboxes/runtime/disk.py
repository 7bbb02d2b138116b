"""A filesystem of its own for each workspace, so the kernel holds a sandbox to its disk size.

The workspace directory is the mount point of a sparse ext4 image kept in the sandbox's meta
directory (never visible inside): a sandbox that fills it gets ENOSPC ("No space left on
device") while the host's disk, the worker and the other sandboxes keep their space. The image
costs only the blocks written to it. Where loop mounts are impossible (not root, no
/dev/loop*, no mkfs.ext4) ``unavailable_reason`` says why, and the runtime decides by its
``enforce`` mode whether to refuse or to use a plain directory.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from pathlib import Path

from .base import SandboxRuntimeError

logger = logging.getLogger(__name__)

IMAGE_NAME = "workspace.img"
ENFORCE_MODES = ("auto", "loop", "off")
_COMMAND_TIMEOUT_S = 60
# No journal and lazy inode tables: mkfs writes a few hundred KiB whatever the size, and a
# workspace does not outlive its sandbox, so there is nothing for a journal to recover.
_MKFS_OPTIONS = ("-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard,root_owner=0:0")
# noinit_itable: the kernel would otherwise zero the lazily made inode tables in the background,
# writing to every image (and making it less sparse) for nothing a workspace needs.
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,noinit_itable"


class DiskUnavailable(SandboxRuntimeError):
    code = "DISK_UNAVAILABLE"


def unavailable_reason() -> str | None:
    """Why this host cannot give a workspace a filesystem of its own, or None if it can."""
    if os.geteuid() != 0:
        return "the worker does not run as root, so it cannot loop-mount a workspace image"
    if not os.path.exists("/dev/loop-control") and not glob.glob("/dev/loop[0-9]*"):
        return "this host has no loop devices (/dev/loop-control, /dev/loop*)"
    for program in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    return None


def _run(argv: list[str]) -> str | None:
    """None on success, else what the command said."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=_COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).decode("utf-8", "replace").strip()[:500] or f"exit status {done.returncode}"


def make(image: Path, mountpoint: Path, size_bytes: int) -> None:
    """A sparse ext4 image of ``size_bytes`` mounted on the empty directory ``mountpoint``."""
    if is_mounted(mountpoint):
        return  # created before; a redelivered create finds it done
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size_bytes)
    finally:
        os.close(fd)
    error = _run(["mkfs.ext4", *_MKFS_OPTIONS, str(image)])
    if error is None:
        error = _run(["mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(mountpoint)])
    if error is not None:
        image.unlink(missing_ok=True)
        raise DiskUnavailable(f"could not make the workspace filesystem: {error}")
    try:
        os.rmdir(mountpoint / "lost+found")
    except OSError:
        pass


def remove(image: Path, mountpoint: Path) -> None:
    """Unmount the workspace (lazily if something still holds it) and delete its image. Idempotent."""
    if is_mounted(mountpoint):
        error = _run(["umount", str(mountpoint)])
        if error is not None and is_mounted(mountpoint):
            # A process that outlived its sandbox's kill still has a file open: detach now, the
            # loop device is freed when the last reference goes.
            logger.warning("workspace %s was busy (%s); detaching it lazily", mountpoint, error)
            error = _run(["umount", "-l", str(mountpoint)])
            if error is not None and is_mounted(mountpoint):
                raise SandboxRuntimeError(
                    f"could not unmount the workspace {mountpoint}: {error}", code="UNMOUNT_FAILED"
                )
    image.unlink(missing_ok=True)


def _unescape(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and index + 4 <= len(field) and field[index + 1 : index + 4].isdigit():
            out.append(chr(int(field[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def mount_points() -> set[str]:
    """Every mount point of this process's mount namespace."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
            return {_unescape(line.split(" ", 5)[4]) for line in handle if line.count(" ") >= 5}
    except OSError:
        return set()


def is_mounted(mountpoint: Path) -> bool:
    return os.fspath(mountpoint) in mount_points()
