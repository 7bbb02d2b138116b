"""The bubblewrap command line of a sandbox: its namespaces, the read-only host binds, per-command options."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from .base import WORKSPACE

BWRAP_MISSING_MESSAGE = (
    "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package "
    "or set STOWAGE_ALLOW_UNISOLATED=1 to run sandboxes without isolation"
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TMP_SIZE_BYTES = 1 << 30

# Only what common programs need: /etc/ssl as a whole would expose /etc/ssl/private (the
# sandbox runs as uid 0 of the host, without caps).
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


def find(bwrap_path: str | None) -> str | None:
    """The bwrap executable to use (the one given, else the one on PATH), or None if there is none."""
    candidate = bwrap_path or shutil.which("bwrap") or "/usr/bin/bwrap"
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def base_options(*, network: bool) -> list[str]:
    """What every command of every sandbox gets: new namespaces, no capabilities, the host's /usr read-only."""
    options = ["--unshare-all", "--unshare-user", "--disable-userns"]
    if network:
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
    options += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_SIZE_BYTES), "--tmpfs", "/tmp"]  # noqa: S108 the sandbox's own private /tmp
    options += ["--hostname", "sandbox", "--cap-drop", "ALL"]
    return options


def usable_options(bwrap_path: str, options: list[str]) -> tuple[list[str], str | None]:
    """``options`` less those this bwrap does not know, and the error if even then it cannot run here.

    One real run tells whether namespaces work on this host and which options this bwrap knows.
    """
    error = _probe(bwrap_path, options)
    for optional in _OPTIONAL_OPTIONS:
        if error is None:
            break
        options = _without(options, optional)
        error = _probe(bwrap_path, options)
    return options, error


def _probe(bwrap_path: str, options: list[str]) -> str | None:
    try:
        done = subprocess.run(
            [bwrap_path, *options, "--", "/bin/sh", "-c", "exit 0"],
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


def etc_names(*, network: bool) -> tuple[str, ...]:
    """The /etc files and directories a sandbox sees (``hostetc`` keeps them as one copy)."""
    return _ETC_FILES + (("resolv.conf",) if network else ())


def etc_options(copy: str | None, names: list[str]) -> list[str]:
    """/etc as the one directory ``copy``, or else each of ``names`` bound from the host."""
    if copy is not None:
        return ["--ro-bind", copy, "/etc"]
    return [option for name in names for option in ("--ro-bind", f"/etc/{name}", f"/etc/{name}")]


def command_options(base: list[str], *, etc: list[str], workspace: str, workdir: str, env: dict[str, str]) -> list[str]:
    """The options of one command: /etc, its sandbox's workspace, working directory and environment."""
    # --remount-ro / last: bwrap's root is a writable tmpfs (/etc, /) otherwise.
    options = [*base, *etc, "--bind", workspace, WORKSPACE, "--remount-ro", "/", "--chdir", workdir]
    for name, value in env.items():
        options += ["--setenv", name, value]
    return options


@contextmanager
def options_file(options: list[str]) -> Iterator[int]:
    """An fd from which bwrap reads ``options`` (``--args``); closed on leaving.

    Options go through a memfd, so env values (secrets) and host paths are not on bwrap's
    command line, which every host user and the sandbox's pid 1 could read.
    """
    fd = os.memfd_create("bwrap-args", 0)
    try:
        view = memoryview(b"".join(os.fsencode(option) + b"\0" for option in options))
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


def wrap(bwrap_path: str | None, options_fd: int, argv: list[str]) -> list[str]:
    """``argv`` run under bwrap with the options of ``options_fd``."""
    return [bwrap_path or "bwrap", "--args", str(options_fd), "--", *argv]
