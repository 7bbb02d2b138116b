"""The sandbox runtime interface: what the rest of Stowage may ask of a sandbox host."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from core.errors import StowageError

WORKSPACE = "/workspace"


class SandboxRuntimeError(StowageError):
    """A failure inside a sandbox host, reported to the caller as-is (its status by its code)."""

    code: str = "SANDBOX_RUNTIME_ERROR"


# Also a ValueError so code that validates ids/paths generically can catch it without knowing us.
class InvalidPath(SandboxRuntimeError, ValueError):
    code = "INVALID_PATH"


class FileNotFound(SandboxRuntimeError):
    code = "FILE_NOT_FOUND"


class NotAFile(SandboxRuntimeError):
    code = "NOT_A_FILE"


class NotADirectory(SandboxRuntimeError):
    code = "NOT_A_DIRECTORY"


class FileTooLarge(SandboxRuntimeError):
    code = "FILE_TOO_LARGE"


class IsolationUnavailable(SandboxRuntimeError):
    code = "ISOLATION_UNAVAILABLE"


class SandboxGone(SandboxRuntimeError):
    code = "SANDBOX_GONE"


class CommandInvalid(SandboxRuntimeError):
    code = "INVALID_COMMAND"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    output_truncated: bool
    timed_out: bool
    duration_ms: int


@dataclass(frozen=True)
class FileEntry:
    name: str
    path: str  # absolute sandbox path, e.g. /workspace/a/b.txt
    type: str  # "file" | "directory" | "symlink" | "other"
    size: int
    modified_at: datetime  # timezone-aware UTC


OutputCallback = Callable[[str, bytes], None]


class SandboxRuntime(ABC):
    """One host's sandboxes. Paths are sandbox paths: ``/workspace/...`` or relative to it."""

    isolated: bool = True

    @abstractmethod
    def create(
        self,
        sandbox_id: str,
        *,
        env: dict[str, str],
        memory_bytes: int | None,
        cpus: float | None,
        disk_bytes: int | None = None,
    ) -> None:
        """Lay out the sandbox and remember its env and limits; ``disk_bytes`` sizes its workspace."""

    def sandbox_ids(self) -> list[str]:
        """The sandboxes whose trees are on this host, whatever their state."""
        return []

    def disk_enforced(self, sandbox_id: str) -> bool:
        """Whether the kernel holds the sandbox's workspace to its disk size."""
        return False

    @abstractmethod
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
        """Run ``command`` (a str goes through ``/bin/sh -c``) and wait for it, at most ``timeout_s``."""

    @abstractmethod
    def write_file(self, sandbox_id: str, path: str, data: bytes, *, mode: int = 0o644) -> int:
        """Atomically write ``data``, creating parent directories; returns the size written."""

    @abstractmethod
    def read_file(self, sandbox_id: str, path: str, *, max_bytes: int) -> bytes:
        """The whole file; FileTooLarge when it is bigger than ``max_bytes``."""

    @abstractmethod
    def open_read(self, sandbox_id: str, path: str) -> BinaryIO:
        """A binary reader on a regular file, for streaming; the caller closes it."""

    @abstractmethod
    def list_files(
        self, sandbox_id: str, path: str = WORKSPACE, *, recursive: bool = False, limit: int = 10000
    ) -> list[FileEntry]:
        """Entries under a directory; symbolic links are reported, never followed."""

    @abstractmethod
    def delete_file(self, sandbox_id: str, path: str, *, recursive: bool = False) -> None:
        """Remove a file, link or (with ``recursive`` when not empty) a directory."""

    @abstractmethod
    def workspace_usage(self, sandbox_id: str) -> int:
        """Bytes the workspace occupies on disk."""

    @abstractmethod
    def stop(self, sandbox_id: str) -> None:
        """Kill every process still running in the sandbox. Idempotent."""

    @abstractmethod
    def destroy(self, sandbox_id: str) -> None:
        """Stop the sandbox and remove all its files. Idempotent."""

    @abstractmethod
    def exists(self, sandbox_id: str) -> bool:
        """Whether the sandbox's tree is on this host."""

    # Streaming transfers (artifacts). Not abstract: a runtime without them still works for the rest.

    def stat_path(self, sandbox_id: str, path: str) -> FileEntry:
        """What is at ``path``; a final symbolic link is reported, not followed."""
        raise NotImplementedError

    def scratch_dir(self, sandbox_id: str) -> Path:
        """A host directory for temporary files about this sandbox, invisible inside it."""
        raise NotImplementedError

    def archive_directory(self, sandbox_id: str, path: str, out: BinaryIO) -> None:
        """Write the directory at ``path`` to ``out`` as tar.gz; links are stored, not followed."""
        raise NotImplementedError

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
        """write_file for data arriving in chunks; put in place only if the SHA-256 matches."""
        raise NotImplementedError

    def walk_tree(self, sandbox_id: str, path: str, *, limit: int) -> list:
        """The entries below the directory ``path`` (trees.TreeItem), links reported, never
        followed, special files and names that are not UTF-8 as skipped; at most ``limit`` + 1."""
        raise NotImplementedError

    @contextmanager
    def tree_files(self, sandbox_id: str, path: str) -> Iterator:
        """An opener of the regular files below the directory ``path``: its ``open(relative)``
        gives a reader, links never followed; ``branch()`` gives an opener for another thread.
        This default opens each one by its whole path."""
        yield _FilesByPath(self, sandbox_id, path)

    def write_tree(
        self,
        sandbox_id: str,
        path: str,
        entries: Iterable,
        chunks_for: Callable[[object], Iterable[bytes]],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Recreate a folder at ``path`` (which must not exist) from entries, parents first; each
        file checked against its SHA-256; built beside the target and renamed into place."""
        raise NotImplementedError

    # Glob, mkdir, move and copy (the SDK's file calls), and unpacking a saved workspace. Not
    # abstract either: a runtime without them answers those calls with NotImplementedError.

    def glob(self, sandbox_id: str, pattern: str, *, limit: int = 10000) -> list[FileEntry]:
        """Entries whose path below /workspace matches ``pattern`` (``**`` spans directories)."""
        raise NotImplementedError

    def make_directory(self, sandbox_id: str, path: str, *, recursive: bool = True) -> FileEntry:
        """Make a directory; ``recursive`` makes its parents too and accepts one that exists."""
        raise NotImplementedError

    def move_path(self, sandbox_id: str, source: str, destination: str) -> FileEntry:
        """Move or rename; a link is moved as a link, a destination that is one is refused."""
        raise NotImplementedError

    def copy_path(self, sandbox_id: str, source: str, destination: str) -> FileEntry:
        """Copy a file or a directory tree; links are copied as links, never followed."""
        raise NotImplementedError

    def extract_archive(self, sandbox_id: str, path: str, *, remove: bool = True) -> int:
        """Unpack a tar.gz of ``archive_directory`` into /workspace; the number of entries made."""
        raise NotImplementedError


class _FilesByPath:
    def __init__(self, runtime: SandboxRuntime, sandbox_id: str, path: str) -> None:
        self.runtime, self.sandbox_id, self.path = runtime, sandbox_id, path.rstrip("/")

    def open(self, relative: str) -> BinaryIO:
        return self.runtime.open_read(self.sandbox_id, f"{self.path}/{relative}")

    @contextmanager
    def branch(self) -> Iterator[_FilesByPath]:
        yield self
