"""Sandbox runtimes: where and how sandboxed commands and their files live on a host."""

from __future__ import annotations

from .base import (
    WORKSPACE,
    CommandInvalid,
    ExecResult,
    FileEntry,
    FileNotFound,
    FileTooLarge,
    InvalidPath,
    IsolationUnavailable,
    NotADirectory,
    NotAFile,
    OutputCallback,
    SandboxGone,
    SandboxRuntime,
    SandboxRuntimeError,
)
from .local import LocalRuntime

__all__ = [
    "WORKSPACE",
    "CommandInvalid",
    "ExecResult",
    "FileEntry",
    "FileNotFound",
    "FileTooLarge",
    "InvalidPath",
    "IsolationUnavailable",
    "LocalRuntime",
    "NotADirectory",
    "NotAFile",
    "OutputCallback",
    "SandboxGone",
    "SandboxRuntime",
    "SandboxRuntimeError",
]
