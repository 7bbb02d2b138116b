"""A running command's output: read in chunks up to a cap, passed on as it comes, bounded in time."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import ExecResult, OutputCallback

TIMEOUT_EXIT_CODE = 124
CHUNK_BYTES = 64 * 1024
# Seconds to wait for the pipes to close after the command exited: only background processes
# holding them (possible without a PID namespace) keep them open that long, and are then killed.
_EXIT_GRACE_S = 0.5
# Seconds to keep draining after a kill, for the last output of what was killed.
_DRAIN_S = 2.0
_POLL_S = 0.25


@dataclass(frozen=True)
class Output:
    stdout: bytearray
    stderr: bytearray
    truncated: bool
    timed_out: bool


def collect(
    proc: subprocess.Popen[bytes],
    *,
    deadline: float,
    limit: int,
    on_output: OutputCallback | None,
    kill: Callable[[], None],
) -> Output:
    """Read the command's stdout and stderr until both close, and wait for it to exit.

    At ``deadline`` (``time.monotonic()``) the command is killed and reported as timed out.
    Each stream keeps at most ``limit`` bytes but is drained to the end, so the command never
    blocks on a full pipe. ``kill`` stops the command and everything it started.
    """
    return _Collector(proc, deadline=deadline, limit=limit, on_output=on_output, kill=kill).run()


class _Collector:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        deadline: float,
        limit: int,
        on_output: OutputCallback | None,
        kill: Callable[[], None],
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.deadline = deadline
        self.limit = limit
        self.on_output = on_output
        self.kill = kill
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.truncated = False
        self.timed_out = False
        self.exited_at: float | None = None
        self.give_up_at: float | None = None

    def run(self) -> Output:
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        selector = selectors.DefaultSelector()
        try:
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
            while selector.get_map():
                wait = self._wait_s(time.monotonic())
                if wait is None:
                    break
                for key, _events in selector.select(wait):
                    self._read(selector, key)
            self._wait_for_exit()
        except BaseException:
            self.kill()
            proc.wait()
            raise
        finally:
            selector.close()
            proc.stdout.close()
            proc.stderr.close()
        return Output(
            stdout=self.buffers["stdout"],
            stderr=self.buffers["stderr"],
            truncated=self.truncated,
            timed_out=self.timed_out,
        )

    def _wait_s(self, now: float) -> float | None:
        """How long to wait for output now; None once the last of it is no longer awaited."""
        if self.give_up_at is None:
            self._check_progress(now)
        elif now >= self.give_up_at:
            return None
        if self.give_up_at is not None:
            return max(0.0, self.give_up_at - now)
        return min(_POLL_S, max(0.0, self.deadline - now))

    def _check_progress(self, now: float) -> None:
        if now >= self.deadline:
            self.timed_out = True
            self._kill_and_drain(now)
            return
        if self.exited_at is None and self.proc.poll() is not None:
            self.exited_at = now
        if self.exited_at is not None and now - self.exited_at >= _EXIT_GRACE_S:
            self._kill_and_drain(now)  # leftovers holding our pipes open

    def _kill_and_drain(self, now: float) -> None:
        self.kill()
        self.give_up_at = now + _DRAIN_S

    def _read(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        chunk = os.read(key.fd, CHUNK_BYTES)
        if not chunk:
            selector.unregister(key.fd)
            return
        buffer = self.buffers[key.data]
        room = self.limit - len(buffer)
        if room <= 0:
            self.truncated = True  # keep draining so the command never blocks on a full pipe
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        buffer += chunk
        if self.on_output is not None:
            self.on_output(key.data, chunk)

    def _wait_for_exit(self) -> None:
        proc = self.proc
        if not self.timed_out:
            try:
                proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.timed_out = True  # it closed its output but kept running
                self.kill()
        if proc.returncode is None:
            proc.wait()


def exec_result(
    proc: subprocess.Popen[bytes], output: Output, *, started: float, timeout_s: float, notes: Sequence[str] = ()
) -> ExecResult:
    """The result of a command that exited; ``notes`` are explanations added to its stderr."""
    stdout = output.stdout.decode("utf-8", "replace")
    stderr = output.stderr.decode("utf-8", "replace")
    for note in notes:
        stderr += f"\n[stowage] {note}\n"
    if output.timed_out:
        exit_code = TIMEOUT_EXIT_CODE
        stderr += f"\n[stowage] command timed out after {timeout_s:g}s and was killed\n"
    else:
        code = proc.returncode
        exit_code = 128 - code if code < 0 else code
    return ExecResult(
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        output_truncated=output.truncated,
        timed_out=output.timed_out,
        duration_ms=ms_since(started),
    )


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
