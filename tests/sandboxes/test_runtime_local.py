"""LocalRuntime against the real bubblewrap of this host: isolation, limits and file safety."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import stat
import subprocess
import tarfile
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest

from sandboxes.runtime import (
    CommandInvalid,
    FileEntry,
    FileNotFound,
    FileTooLarge,
    InvalidPath,
    IsolationUnavailable,
    LocalRuntime,
    NotADirectory,
    NotAFile,
    SandboxGone,
    SandboxRuntimeError,
    cgroups,
    paths,
)
from sandboxes.runtime.local import PIDS_MAX


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(tmp_path / "root")


@pytest.fixture
def sid(runtime: LocalRuntime):
    sandbox_id = "t_" + secrets.token_hex(6)
    runtime.create(sandbox_id, env={}, memory_bytes=None, cpus=None)
    yield sandbox_id
    runtime.destroy(sandbox_id)


def marker_pids(marker: str, program: str = "") -> list[int]:
    """Host pids whose command line mentions ``marker`` (no psutil: read /proc directly)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
                if marker.encode() in cmdline and cmdline.startswith(program.encode()):
                    found.append(int(entry))
        except OSError:
            continue
    return found


# Deadlines for processes to start or to be gone: generous, since each wait ends as soon as it can
# and CI runs four passes at once on two cores, where a killed process may wait to be scheduled.
PATIENCE = 30


def wait_until_gone(marker: str, seconds: float = PATIENCE) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := marker_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- execution -----------------------------------------------------------------------------


def test_execute_list_and_string_forms(runtime: LocalRuntime, sid: str) -> None:
    listed = runtime.execute(sid, ["echo", "hello", "$HOME"], timeout_s=10)
    assert listed.exit_code == 0
    assert listed.stdout == "hello $HOME\n"  # argv form: no shell expansion
    shell = runtime.execute(sid, "echo hello $HOME | tr a-z A-Z", timeout_s=10)
    assert shell.stdout == "HELLO /WORKSPACE\n"
    assert not shell.timed_out and not shell.output_truncated
    assert shell.duration_ms >= 0
    assert runtime.isolated is True


def test_exit_codes_and_stderr(runtime: LocalRuntime, sid: str) -> None:
    result = runtime.execute(sid, "echo out; echo oops >&2; exit 7", timeout_s=10)
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "oops\n")
    assert runtime.execute(sid, ["false"], timeout_s=10).exit_code == 1
    killed = runtime.execute(sid, "kill -9 $$", timeout_s=10)
    assert killed.exit_code == 137 and not killed.timed_out
    missing = runtime.execute(sid, ["no-such-program-xyz"], timeout_s=10)
    assert missing.exit_code != 0


def test_invalid_commands_are_rejected(runtime: LocalRuntime, sid: str) -> None:
    for command in ("", "   ", [], [""], ["echo", "a\x00b"], "echo \x00", [1]):
        with pytest.raises(CommandInvalid) as info:
            runtime.execute(sid, command, timeout_s=5)  # type: ignore[arg-type]
        assert info.value.code == "INVALID_COMMAND"
    with pytest.raises(CommandInvalid):
        runtime.execute(sid, ["true"], env={"BAD-NAME": "x"}, timeout_s=5)
    with pytest.raises(CommandInvalid):
        runtime.execute(sid, ["true"], timeout_s=0)


def test_env_is_cleared_and_applied(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOWAGE_TEST_HOST_SECRET", "host-value")
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/preload.so")
    runtime.create("env_box", env={"FROM_CREATE": "c", "BOTH": "create"}, memory_bytes=None, cpus=None)
    try:
        result = runtime.execute("env_box", ["env"], env={"BOTH": "command", "ONLY_CMD": "x"}, timeout_s=10)
        env = dict(line.split("=", 1) for line in result.stdout.splitlines())
        assert "STOWAGE_TEST_HOST_SECRET" not in env and "LD_PRELOAD" not in env
        assert env["HOME"] == "/workspace"
        assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        assert env["LANG"] == "C.UTF-8"
        assert (env["FROM_CREATE"], env["BOTH"], env["ONLY_CMD"]) == ("c", "command", "x")
        # Per-command env does not stick.
        again = runtime.execute("env_box", "echo ${ONLY_CMD:-unset} $BOTH", timeout_s=10)
        assert again.stdout == "unset create\n"
    finally:
        runtime.destroy("env_box")


def test_create_env_is_private_to_the_runtime(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.create("secret_box", env={"API_TOKEN": "s3cr3t-t0ken"}, memory_bytes=None, cpus=None)
    try:
        box = tmp_path / "root" / "secret_box"
        meta_files = [p for p in (box / "meta").iterdir() if p.is_file()]
        assert meta_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in meta_files)
        assert not any(b"s3cr3t" in p.read_bytes() for p in (box / "workspace").rglob("*") if p.is_file())
        # Inside: no view of the meta dir, nor of host paths through pid 1's command line.
        cmdline = runtime.execute("secret_box", ["cat", "/proc/1/cmdline"], timeout_s=10).stdout
        assert str(tmp_path) not in cmdline and "s3cr3t" not in cmdline
        assert runtime.execute("secret_box", ["ls", "-a", "/workspace"], timeout_s=10).stdout.split() == [".", ".."]
        found = runtime.execute(
            "secret_box", "grep -rl s3cr3''t-t0ken /workspace /tmp /etc 2>/dev/null; true", timeout_s=10
        )
        assert found.stdout == ""
    finally:
        runtime.destroy("secret_box")


def test_working_dir(runtime: LocalRuntime, sid: str) -> None:
    runtime.write_file(sid, "sub/dir/file.txt", b"x")
    assert runtime.execute(sid, ["pwd"], working_dir="sub/dir", timeout_s=10).stdout == "/workspace/sub/dir\n"
    assert runtime.execute(sid, ["pwd"], working_dir="/workspace/sub", timeout_s=10).stdout == "/workspace/sub\n"
    assert runtime.execute(sid, ["pwd"], working_dir="/workspace", timeout_s=10).stdout == "/workspace\n"
    assert runtime.execute(sid, ["pwd"], timeout_s=10).stdout == "/workspace\n"
    with pytest.raises(FileNotFound):
        runtime.execute(sid, ["pwd"], working_dir="nope", timeout_s=10)
    with pytest.raises(NotADirectory):
        runtime.execute(sid, ["pwd"], working_dir="sub/dir/file.txt", timeout_s=10)
    for bad in ("/tmp", "../", "/workspace/../etc"):
        with pytest.raises(InvalidPath):
            runtime.execute(sid, ["pwd"], working_dir=bad, timeout_s=10)


def test_workspace_is_writable_and_system_is_read_only(runtime: LocalRuntime, sid: str) -> None:
    result = runtime.execute(sid, "echo data > /workspace/made.txt && echo ok", timeout_s=10)
    assert result.stdout == "ok\n"
    assert runtime.read_file(sid, "made.txt", max_bytes=100) == b"data\n"
    for target in ("/usr/x", "/etc/x", "/bin/x", "/x", "/proc/x"):
        denied = runtime.execute(sid, f"echo x > {target}", timeout_s=10)
        assert denied.exit_code != 0, target
    assert not os.path.exists("/usr/x")
    # /tmp is a private scratch tmpfs.
    assert runtime.execute(sid, "echo t > /tmp/t && cat /tmp/t", timeout_s=10).stdout == "t\n"


def test_host_paths_are_not_visible(runtime: LocalRuntime, sid: str, tmp_path: Path) -> None:
    top = runtime.execute(sid, ["ls", "-a", "/"], timeout_s=10).stdout.split()
    assert set(top) <= {
        ".",
        "..",
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "sbin",
        "tmp",
        "usr",
        "workspace",
    }
    probe = runtime.execute(
        sid,
        f"for p in /root /work /home /var /sys /etc/shadow /etc/ssl/private /etc/hostname {tmp_path}; do test -e $p && echo VISIBLE $p; done; true",
        timeout_s=10,
    )
    assert "VISIBLE" not in probe.stdout
    assert runtime.execute(sid, ["hostname"], timeout_s=10).stdout.strip() == "sandbox"
    # What programs need from /etc is there.
    tools = runtime.execute(
        sid, "echo a b | awk '{print $2}'; id -un; test -d /etc/ssl/certs && echo certs", timeout_s=10
    )
    assert tools.stdout.split() == ["b", "root", "certs"], tools.stderr


def test_no_network_but_python_is_there(runtime: LocalRuntime, sid: str) -> None:
    assert runtime.execute(sid, ["test", "-x", "/usr/bin/python3"], timeout_s=10).exit_code == 0
    connect = runtime.execute(
        sid, ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 6379), 1)"], timeout_s=10
    )
    assert connect.exit_code != 0
    assert "Error" in connect.stderr
    interfaces = runtime.execute(sid, "tail -n +3 /proc/net/dev | cut -d: -f1", timeout_s=10).stdout.split()
    assert interfaces == ["lo"]


def test_own_pid_namespace(runtime: LocalRuntime, sid: str) -> None:
    result = runtime.execute(sid, "echo $$; ls /proc | grep -c '^[0-9]'", timeout_s=10)
    shell_pid, visible = (int(x) for x in result.stdout.split())
    assert shell_pid < 10
    assert visible < 10


def test_no_new_user_namespaces_and_no_capabilities(runtime: LocalRuntime, sid: str) -> None:
    caps = runtime.execute(sid, "grep CapEff /proc/self/status", timeout_s=10).stdout.split()
    assert caps[-1] == "0000000000000000"
    assert runtime.execute(sid, ["unshare", "-U", "true"], timeout_s=10).exit_code != 0


def test_timeout_kills_the_whole_tree(runtime: LocalRuntime, sid: str) -> None:
    marker = "stowage-marker-" + secrets.token_hex(6)
    sleeper = f"python3 -c 'import time; time.sleep(1000)' {marker}"
    nested = f'setsid sh -c "{sleeper} & sleep 1000" {marker}'
    seen: list[int] = []

    def on_output(stream: str, chunk: bytes) -> None:
        if b"ready" in chunk:
            seen.append(len(marker_pids(marker)))

    started = time.monotonic()
    result = runtime.execute(
        sid,
        f"setsid {sleeper} & {sleeper} & ({nested} &) ; sleep 0.7; echo ready; sleep 1000",
        timeout_s=2.5,
        on_output=on_output,
    )
    assert time.monotonic() - started < 6
    assert seen and seen[0] >= 3, "the background processes should have been running"
    assert result.timed_out is True
    assert result.exit_code == 124
    assert result.stdout == "ready\n"
    assert result.stderr.endswith("\n[stowage] command timed out after 2.5s and was killed\n")
    assert wait_until_gone(marker) == []


def test_output_flood_is_capped(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "root", output_limit_bytes=100_000)
    runtime.create("flood", env={}, memory_bytes=None, cpus=None)
    try:
        streamed = []
        started = time.monotonic()
        result = runtime.execute(
            "flood", "yes | head -c 50000000", timeout_s=30, on_output=lambda s, c: streamed.append((s, len(c)))
        )
        assert time.monotonic() - started < 15
        assert result.exit_code == 0 and not result.timed_out
        assert result.output_truncated is True
        assert len(result.stdout) == 100_000
        assert sum(n for s, n in streamed if s == "stdout") == 100_000
        # A command that never stops writing is ended by its timeout, output still capped.
        endless = runtime.execute("flood", ["yes"], timeout_s=1.5)
        assert endless.timed_out and endless.output_truncated and len(endless.stdout) == 100_000
        small = runtime.execute("flood", "printf 'a%.0s' $(seq 1 100)", timeout_s=10)
        assert small.stdout == "a" * 100 and not small.output_truncated
    finally:
        runtime.destroy("flood")


def test_fork_bomb_is_contained(runtime: LocalRuntime, sid: str) -> None:
    marker = "bomb" + secrets.token_hex(6)
    peak = [0]

    def on_output(stream: str, chunk: bytes) -> None:
        peak[0] = max(peak[0], len(marker_pids(marker)))

    started = time.monotonic()
    result = runtime.execute(sid, ["bash", "-c", ":(){ :|:& };:; sleep 1000", marker], timeout_s=5, on_output=on_output)
    assert time.monotonic() - started < 20
    assert result.timed_out or result.exit_code != 0
    # The host can still start processes, and nothing of the bomb is left.
    assert subprocess.run(["true"], check=False).returncode == 0
    assert wait_until_gone(marker) == []
    if runtime._cgroups.version:
        assert peak[0] <= PIDS_MAX
    # The sandbox is still usable afterwards.
    assert runtime.execute(sid, ["echo", "alive"], timeout_s=10).stdout == "alive\n"


def test_memory_hog_fails_without_hurting_the_host(runtime: LocalRuntime) -> None:
    runtime.create("hog", env={}, memory_bytes=256 << 20, cpus=0.5)
    try:
        result = runtime.execute("hog", ["python3", "-c", "b = b'x' * (2 << 30); print(len(b))"], timeout_s=30)
        assert result.exit_code != 0
        assert "2147483648" not in result.stdout
        assert not result.timed_out
        if runtime._cgroups.memory:
            assert "ran out of memory" in result.stderr
        if runtime._cgroups.version == 1:
            name = runtime._cgroup_name("hog")
            assert Path(runtime._cgroups.pids, name, "pids.max").read_text().strip() == str(PIDS_MAX)
            assert Path(runtime._cgroups.memory, name, "memory.limit_in_bytes").read_text().strip() == str(256 << 20)
            if runtime._cgroups.cpu:
                assert Path(runtime._cgroups.cpu, name, "cpu.cfs_quota_us").read_text().strip() == "50000"
        # Below the limit works.
        ok = runtime.execute("hog", ["python3", "-c", "b = b'x' * (32 << 20); print(len(b))"], timeout_s=30)
        assert ok.exit_code == 0 and ok.stdout == f"{32 << 20}\n"
    finally:
        runtime.destroy("hog")
    assert len(b"y" * (64 << 20)) == 64 << 20  # this process is fine


def test_every_process_of_a_command_is_in_each_of_its_sandboxs_cgroups(runtime: LocalRuntime) -> None:
    groups = runtime._cgroups
    if not groups.version:
        pytest.skip("this host gives the runtime no cgroups")  # rlimits instead; tested above
    runtime.create("members", env={}, memory_bytes=256 << 20, cpus=0.5)
    marker = "member" + secrets.token_hex(6)
    seen: dict[str, list[int]] = {}

    def on_output(stream: str, chunk: bytes) -> None:
        if seen:
            return
        name = runtime._cgroup_name("members")
        for directory in groups.controller_dirs(name):
            seen[directory] = [pid for current, _dirs, _files in os.walk(directory) for pid in cgroups._pids(current)]

    try:
        # A child in the background and the shell itself: both must be counted and limited.
        script = f"sleep 30 & echo {marker}; wait"
        result = runtime.execute("members", ["sh", "-c", script, marker], timeout_s=3, on_output=on_output)
        assert result.timed_out
    finally:
        runtime.destroy("members")
    assert len(seen) == len(groups.controller_dirs("members")) > 0
    in_pids = set(seen[os.path.join(groups.pids, runtime._cgroup_name("members"))])
    # bwrap, the sandbox's first process, the shell and its sleep, in every controller alike.
    assert len(in_pids) >= 3
    assert all(set(pids) == in_pids for pids in seen.values()), seen
    assert wait_until_gone(marker) == []


@pytest.mark.parametrize(("version", "weight_file", "one"), [(1, "cpu.shares", 1024), (2, "cpu.weight", 100)])
def test_the_sandboxes_cpu_group_weighs_as_many_processes_as_it_holds_sandboxes(
    tmp_path: Path, version: int, weight_file: str, one: int
) -> None:
    # A tree laid out as the kernel's: the shared group, one directory per sandbox, files beside them.
    shared = tmp_path / "stowage"
    shared.mkdir()
    (shared / weight_file).write_text(str(one))
    groups = cgroups.Cgroups(version=version, pids=str(shared), cpu=str(shared))
    for name in ("a", "b", "c"):
        (shared / name).mkdir()
    cgroups.weigh_sandboxes(groups)
    assert (shared / weight_file).read_text() == str(3 * one)
    for name in ("a", "b", "c"):
        (shared / name).rmdir()
    cgroups.weigh_sandboxes(groups)
    assert (shared / weight_file).read_text() == str(one)  # never below one process's
    for n in range(300):
        (shared / f"s{n}").mkdir()
    cgroups.weigh_sandboxes(groups)
    assert (shared / weight_file).read_text() == str(262_144 if version == 1 else 10_000)  # the kernel's most


def test_sandboxes_with_cpus_raise_their_shared_groups_weight(runtime: LocalRuntime) -> None:
    groups = runtime._cgroups
    if not groups.cpu:
        pytest.skip("this host gives the runtime no CPU cgroup")  # nothing to weigh
    weight_file, one = ("cpu.shares", 1024) if groups.version == 1 else ("cpu.weight", 100)
    names = [f"weigh{n}" for n in range(2)]
    for name in names:
        runtime.create(name, env={}, memory_bytes=None, cpus=0.5)
    try:
        # Other test runs on this host may hold sandboxes too: at least ours count.
        assert int(Path(groups.cpu, weight_file).read_text()) >= 2 * one
        assert runtime.execute(names[0], ["true"], timeout_s=10).exit_code == 0
    finally:
        for name in names:
            runtime.destroy(name)


def test_stop_then_execute_again(runtime: LocalRuntime, sid: str) -> None:
    runtime.stop(sid)
    runtime.stop(sid)
    assert runtime.execute(sid, ["echo", "again"], timeout_s=10).stdout == "again\n"


def test_destroys_of_one_sandbox_at_once_all_succeed_and_leave_nothing(runtime: LocalRuntime) -> None:
    # Each destroy's stop() writes into meta/ while another may be emptying it.
    for round in range(10):
        name = f"twice{round}"
        runtime.create(name, env={}, memory_bytes=None, cpus=None)
        for n in range(50):
            runtime.write_file(name, f"d{n % 5}/f{n}.txt", b"x")
        start = threading.Barrier(5)
        errors: list[BaseException] = []

        def destroy(name: str = name, start: threading.Barrier = start, errors: list = errors) -> None:
            try:
                start.wait(10)
                runtime.destroy(name)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=destroy) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if errors:
            raise errors[0]
        assert not (runtime.root / name).exists()


def test_destroy_removes_everything_and_kills_processes(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.create("doomed", env={}, memory_bytes=None, cpus=None)
    runtime.write_file("doomed", "a/b.txt", b"bye")
    marker = "doomed" + secrets.token_hex(6)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            runtime.execute("doomed", f"python3 -c 'import time; time.sleep(1000)' {marker} & sleep 1000", timeout_s=60)
        )
    )
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not marker_pids(marker, "python3") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_pids(marker, "python3")
    runtime.destroy("doomed")
    thread.join(PATIENCE)
    assert not thread.is_alive()
    assert results and not results[0].timed_out
    assert wait_until_gone(marker) == []
    assert not (tmp_path / "root" / "doomed").exists()
    assert runtime.exists("doomed") is False
    runtime.destroy("doomed")  # idempotent
    runtime.stop("doomed")
    with pytest.raises(SandboxGone) as info:
        runtime.execute("doomed", ["true"], timeout_s=5)
    assert info.value.code == "SANDBOX_GONE"
    with pytest.raises(SandboxGone):
        runtime.read_file("doomed", "a/b.txt", max_bytes=10)


def test_stop_while_commands_start(runtime: LocalRuntime, sid: str) -> None:
    """stop() racing with commands that are starting: every call ends, nothing survives."""
    marker = "racing" + secrets.token_hex(6)
    outcomes: list[str] = []

    def run() -> None:
        try:
            result = runtime.execute(sid, f"python3 -c 'import time; time.sleep(1000)' {marker}", timeout_s=30)
            outcomes.append("timed out" if result.timed_out else "ended")
        except SandboxGone:
            outcomes.append("gone")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for index, thread in enumerate(threads):
        thread.start()
        if index % 2:
            runtime.stop(sid)
    # A thread scheduled late may start its command after a stop(): stop again until all ended.
    deadline = time.monotonic() + 15
    while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:
        time.sleep(0.3)
        runtime.stop(sid)
    assert not any(thread.is_alive() for thread in threads)
    assert len(outcomes) == 8 and "timed out" not in outcomes
    assert wait_until_gone(marker) == []
    assert runtime.execute(sid, ["echo", "still usable"], timeout_s=10).stdout == "still usable\n"


def test_invalid_sandbox_ids(runtime: LocalRuntime, tmp_path: Path) -> None:
    for bad in ("", "A", "a-b", "../x", "a/b", "x" * 65, ".", "a\x00"):
        with pytest.raises(ValueError):
            runtime.create(bad, env={}, memory_bytes=None, cpus=None)
        with pytest.raises(InvalidPath):
            runtime.exists(bad)
    assert not (tmp_path / "root").exists() or list((tmp_path / "root").iterdir()) == []


# -- files -----------------------------------------------------------------------------------


def test_file_round_trip(runtime: LocalRuntime, sid: str) -> None:
    blob = bytes(range(256)) * 40
    assert runtime.write_file(sid, "/workspace/a/b/c.bin", blob) == len(blob)
    assert runtime.read_file(sid, "a/b/c.bin", max_bytes=1 << 20) == blob
    with runtime.open_read(sid, "a/b/c.bin") as handle:
        assert handle.read() == blob
    inside = runtime.execute(sid, "wc -c < /workspace/a/b/c.bin", timeout_s=10)
    assert inside.stdout.strip() == str(len(blob))

    runtime.write_file(sid, "a/top.txt", b"v1", mode=0o600)
    runtime.write_file(sid, "a/top.txt", b"version 2")
    assert runtime.read_file(sid, "a/top.txt", max_bytes=100) == b"version 2"
    runtime.write_file(sid, "run.sh", b"#!/bin/sh\necho ran\n", mode=0o4755)
    assert runtime.execute(sid, ["./run.sh"], timeout_s=10).stdout == "ran\n"
    entries = {e.name: e for e in runtime.list_files(sid)}
    assert stat.S_IMODE(os.stat(runtime.root / sid / "workspace" / "run.sh").st_mode) == 0o755  # no setuid
    assert entries["a"].type == "directory" and entries["a"].path == "/workspace/a"
    assert entries["run.sh"].type == "file" and entries["run.sh"].size == 19
    assert entries["run.sh"].modified_at.tzinfo == UTC
    deep = runtime.list_files(sid, "/workspace/a", recursive=True)
    assert [e.path for e in deep] == ["/workspace/a/b", "/workspace/a/b/c.bin", "/workspace/a/top.txt"]
    assert all(isinstance(e, FileEntry) for e in deep)
    assert len(runtime.list_files(sid, recursive=True, limit=2)) == 2
    assert not any(e.name.startswith(".stowage-") for e in runtime.list_files(sid, recursive=True))

    with pytest.raises(NotAFile):
        runtime.write_file(sid, "a/b", b"onto a directory")
    with pytest.raises(NotADirectory):
        runtime.write_file(sid, "a/top.txt/x", b"under a file")
    with pytest.raises(NotADirectory):
        runtime.list_files(sid, "a/top.txt")
    with pytest.raises(NotAFile):
        runtime.delete_file(sid, "a")  # not empty, not recursive
    runtime.delete_file(sid, "a/b/c.bin")
    runtime.delete_file(sid, "a/b")  # now empty
    runtime.delete_file(sid, "a", recursive=True)
    with pytest.raises(FileNotFound):
        runtime.delete_file(sid, "a")
    assert [e.name for e in runtime.list_files(sid)] == ["run.sh"]
    assert runtime.workspace_usage(sid) > 0


def test_streamed_writes_publish_only_after_the_check(runtime: LocalRuntime, sid: str, tmp_path: Path) -> None:
    workspace = tmp_path / "root" / sid / "workspace"
    ws_fd = paths.open_workspace(workspace)
    try:
        size = paths.write_chunks(ws_fd, ("s", "f.bin"), iter([b"ab", b"", b"cd"]), 0o600)
        assert size == 4 and (workspace / "s" / "f.bin").read_bytes() == b"abcd"

        def refuse() -> None:
            raise SandboxRuntimeError("checksum mismatch", code="CHECKSUM_MISMATCH")

        with pytest.raises(SandboxRuntimeError, match="checksum"):
            paths.write_chunks(ws_fd, ("s", "f.bin"), iter([b"other"]), 0o600, before_publish=refuse)
        assert (workspace / "s" / "f.bin").read_bytes() == b"abcd"
        assert sorted(p.name for p in (workspace / "s").iterdir()) == ["f.bin"]  # no temporary left
    finally:
        os.close(ws_fd)


def test_streaming_transfer_helpers(runtime: LocalRuntime, sid: str) -> None:
    import io
    import tarfile

    data = os.urandom(200_000)
    expected = hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert runtime.write_stream(sid, "up/blob.bin", iter(chunks), expected_sha256=expected) == len(data)
    assert runtime.read_file(sid, "up/blob.bin", max_bytes=1 << 20) == data
    with pytest.raises(SandboxRuntimeError):
        runtime.write_stream(sid, "up/blob.bin", iter([b"tampered"]), expected_sha256=expected)
    assert runtime.read_file(sid, "up/blob.bin", max_bytes=1 << 20) == data

    runtime.execute(sid, "ln -s /etc/passwd up/link", timeout_s=10)
    assert runtime.stat_path(sid, "up").type == "directory"
    assert runtime.stat_path(sid, "up/link").type == "symlink"
    assert runtime.stat_path(sid, "/workspace").path == "/workspace"
    with pytest.raises(FileNotFound):
        runtime.stat_path(sid, "up/none")

    scratch = runtime.scratch_dir(sid)
    assert scratch.is_dir() and "workspace" not in scratch.parts
    archive = io.BytesIO()
    runtime.archive_directory(sid, "up", archive)
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["link"].issym() and members["link"].linkname == "/etc/passwd"
        assert tar.extractfile(members["blob.bin"]).read() == data  # type: ignore[union-attr]


def test_read_errors(runtime: LocalRuntime, sid: str) -> None:
    runtime.write_file(sid, "dir/file.txt", b"x" * 1000)
    with pytest.raises(NotAFile) as info:
        runtime.read_file(sid, "dir", max_bytes=100)
    assert info.value.code == "NOT_A_FILE"
    with pytest.raises(FileNotFound) as missing:
        runtime.read_file(sid, "dir/nope.txt", max_bytes=100)
    assert missing.value.code == "FILE_NOT_FOUND" and "/workspace/dir/nope.txt" in str(missing.value)
    with pytest.raises(FileNotFound):
        runtime.list_files(sid, "nodir")
    with pytest.raises(FileTooLarge) as large:
        runtime.read_file(sid, "dir/file.txt", max_bytes=999)
    assert large.value.code == "FILE_TOO_LARGE"
    assert len(runtime.read_file(sid, "dir/file.txt", max_bytes=1000)) == 1000


def test_max_file_bytes(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "root", max_file_bytes=1000)
    runtime.create("small", env={}, memory_bytes=None, cpus=None)
    try:
        with pytest.raises(FileTooLarge):
            runtime.write_file("small", "big", b"x" * 1001)
        runtime.execute("small", "head -c 2000 /dev/zero > big", timeout_s=10)
        with pytest.raises(FileTooLarge):
            runtime.read_file("small", "big", max_bytes=10_000)
    finally:
        runtime.destroy("small")


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "/workspace/../x",
        "/workspacex/a",
        "/",
        "a\x00b",
        "x" * 300,
        "a/" * 2100,
        "",
    ],
)
def test_path_rules(runtime: LocalRuntime, sid: str, bad: str, tmp_path: Path) -> None:
    before = sorted(p.name for p in (tmp_path / "root").iterdir())
    with pytest.raises(InvalidPath) as info:
        runtime.write_file(sid, bad, b"x")
    assert info.value.code == "INVALID_PATH" and str(info.value) == info.value.message and info.value.message
    with pytest.raises(InvalidPath):
        runtime.read_file(sid, bad, max_bytes=10)
    with pytest.raises(InvalidPath):
        runtime.delete_file(sid, bad, recursive=True)
    with pytest.raises(InvalidPath):
        runtime.open_read(sid, bad)
    if bad not in ("/",):
        with pytest.raises(InvalidPath):
            runtime.list_files(sid, bad)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == before
    assert runtime.list_files(sid, recursive=True) == []


def test_path_parsing() -> None:
    assert paths.parse_path("a/./b//c") == ("a", "b", "c")
    assert paths.parse_path("/workspace/a") == ("a",)
    assert paths.parse_path("//workspace//a/") == ("a",)
    assert paths.parse_path("/workspace", allow_root=True) == ()
    assert paths.parse_path(".", allow_root=True) == ()
    with pytest.raises(InvalidPath, match="itself"):
        paths.parse_path("/workspace")
    with pytest.raises(InvalidPath, match="outside"):
        paths.parse_path("/etc/passwd")
    with pytest.raises(InvalidPath, match=r"\.\."):
        paths.parse_path("a/../b")
    with pytest.raises(InvalidPath, match="255"):
        paths.parse_path("y" * 256)
    assert paths.parse_path("é" * 127) == ("é" * 127,)  # 254 bytes
    with pytest.raises(InvalidPath, match="255"):
        paths.parse_path("é" * 128)  # 256 bytes


def test_planted_symlinks_are_never_followed(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.create("victim", env={}, memory_bytes=None, cpus=None)
    runtime.create("attacker", env={}, memory_bytes=None, cpus=None)
    try:
        runtime.write_file("victim", "secret.txt", b"victim data")
        victim_ws = tmp_path / "root" / "victim" / "workspace"
        passwd_before = digest("/etc/passwd")
        hostname_before = digest("/etc/hostname") if os.path.exists("/etc/hostname") else None
        plant = runtime.execute(
            "attacker",
            "ln -s /etc/passwd p && ln -s / root && ln -s /etc etc "
            f"&& ln -s {victim_ws} other && ln -s {victim_ws}/secret.txt otherfile "
            "&& ln -s ../../victim/workspace rel && mkdir d && ln -s .. d/up && echo ok",
            timeout_s=10,
        )
        assert plant.stdout == "ok\n", plant.stderr

        for path in (
            "p",
            "root/etc/passwd",
            "other/secret.txt",
            "otherfile",
            "rel/secret.txt",
            "etc/hostname",
            "d/up/p",
        ):
            with pytest.raises(InvalidPath, match="symbolic link"):
                runtime.read_file("attacker", path, max_bytes=1 << 20)
            with pytest.raises(InvalidPath, match="symbolic link"):
                runtime.open_read("attacker", path)
            with pytest.raises(InvalidPath, match="symbolic link"):
                runtime.write_file("attacker", path, b"pwned")
            with pytest.raises(InvalidPath, match="symbolic link"):
                runtime.execute("attacker", ["true"], working_dir=path, timeout_s=5)
        for path in ("root/etc/hostname", "other/secret.txt", "rel/secret.txt", "d/up/otherfile"):
            with pytest.raises(InvalidPath, match="goes through a symbolic link"):
                runtime.delete_file("attacker", path, recursive=True)
        for path in ("root", "other", "rel", "etc", "d/up"):
            with pytest.raises(InvalidPath, match="symbolic link"):
                runtime.list_files("attacker", path, recursive=True)
        with pytest.raises(InvalidPath):
            runtime.write_file("attacker", "root/tmp/created-by-test", b"x")
        assert not os.path.exists("/tmp/created-by-test")

        listed = {e.path: e.type for e in runtime.list_files("attacker", recursive=True)}
        assert listed == {
            "/workspace/d": "directory",
            "/workspace/d/up": "symlink",
            "/workspace/etc": "symlink",
            "/workspace/other": "symlink",
            "/workspace/otherfile": "symlink",
            "/workspace/p": "symlink",
            "/workspace/rel": "symlink",
            "/workspace/root": "symlink",
        }
        assert runtime.workspace_usage("attacker") < 1 << 20

        # Deleting a link removes the link only, even recursively.
        runtime.delete_file("attacker", "other", recursive=True)
        runtime.delete_file("attacker", "root", recursive=True)
        runtime.delete_file("attacker", "d", recursive=True)
        runtime.delete_file("attacker", "otherfile")
        assert sorted(e.name for e in runtime.list_files("attacker")) == ["etc", "p", "rel"]

        assert digest("/etc/passwd") == passwd_before
        if hostname_before:
            assert digest("/etc/hostname") == hostname_before
        assert runtime.read_file("victim", "secret.txt", max_bytes=100) == b"victim data"
        assert [e.name for e in runtime.list_files("victim")] == ["secret.txt"]
        assert os.path.isdir(tmp_path / "root" / "attacker" / "workspace")
    finally:
        runtime.destroy("attacker")
        runtime.destroy("victim")
    # destroy() did not follow the links either.
    assert digest("/etc/passwd") == passwd_before


def test_directory_swapped_for_symlink_is_never_followed(runtime: LocalRuntime, sid: str, tmp_path: Path) -> None:
    """A process flips a directory and a link to the host while the runtime writes through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"keep")
    workspace = tmp_path / "root" / sid / "workspace"
    (workspace / "a").mkdir()
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            try:
                os.rename(workspace / "a", workspace / "a_real")
                os.symlink(outside, workspace / "a")
                os.unlink(workspace / "a")
                os.rename(workspace / "a_real", workspace / "a")
            except OSError:
                pass

    thread = threading.Thread(target=flip)
    thread.start()
    try:
        outcomes = set()
        for index in range(400):
            try:
                runtime.write_file(sid, f"a/x{index}.txt", b"data")
                outcomes.add("written")
            except (InvalidPath, FileNotFound, NotADirectory) as exc:
                outcomes.add(type(exc).__name__)
            for call in (
                lambda: runtime.read_file(sid, "a/keep.txt", max_bytes=100),
                lambda: runtime.list_files(sid, "a", recursive=True),
                lambda: runtime.delete_file(sid, "a/keep.txt"),
            ):
                try:
                    result = call()
                    assert result is None or result == [] or all("keep" not in e.name for e in result)  # type: ignore[union-attr]
                except (InvalidPath, FileNotFound, NotADirectory):
                    pass
    finally:
        stop.set()
        thread.join()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_bytes() == b"keep"
    assert "written" in outcomes


def test_planted_fifo_does_not_hang(runtime: LocalRuntime, sid: str) -> None:
    assert runtime.execute(sid, "mkfifo /workspace/pipe && echo ok", timeout_s=10).stdout == "ok\n"
    started = time.monotonic()
    with pytest.raises(NotAFile):
        runtime.read_file(sid, "pipe", max_bytes=100)
    with pytest.raises(NotAFile):
        runtime.open_read(sid, "pipe")
    assert time.monotonic() - started < 2
    assert [(e.name, e.type) for e in runtime.list_files(sid)] == [("pipe", "other")]
    runtime.delete_file(sid, "pipe")


# A process in the sandbox may name files with bytes that are not UTF-8.
MAKE_UNDECODABLE_NAMES = (
    "import os; os.mkdir(b'sub\\xfe'); "
    "open(b'bad\\xff name', 'w').write('x'); open(b'sub\\xfe/in\\xff', 'w').write('y'); open('caf\u00e9', 'w')"
)


def test_names_that_are_not_utf8_are_listed_escaped(runtime: LocalRuntime, sid: str) -> None:
    assert runtime.execute(sid, ["python3", "-c", MAKE_UNDECODABLE_NAMES], timeout_s=10).exit_code == 0
    listed = runtime.list_files(sid, recursive=True)
    assert [(e.name, e.path) for e in listed] == [
        ("bad\\xff name", "/workspace/bad\\xff name"),
        ("caf\u00e9", "/workspace/caf\u00e9"),
        ("sub\\xfe", "/workspace/sub\\xfe"),
        ("in\\xff", "/workspace/sub\\xfe/in\\xff"),
    ]
    for entry in listed:
        entry.name.encode("utf-8")
        entry.path.encode("utf-8")
    assert [e.type for e in listed] == ["file", "file", "directory", "file"]
    assert paths.shown("bad\udcff name") == "bad\\xff name" and paths.shown("caf\u00e9") == "caf\u00e9"
    assert runtime.workspace_usage(sid) > 0


def test_a_shown_name_is_not_found_and_a_lone_surrogate_is_refused(runtime: LocalRuntime, sid: str) -> None:
    runtime.execute(sid, ["python3", "-c", MAKE_UNDECODABLE_NAMES], timeout_s=10)
    for path in ("bad\\xff name", "/workspace/sub\\xfe/in\\xff"):
        with pytest.raises(FileNotFound):
            runtime.read_file(sid, path, max_bytes=10)
        with pytest.raises(FileNotFound):
            runtime.open_read(sid, path)
        with pytest.raises(FileNotFound):
            runtime.stat_path(sid, path)
        with pytest.raises(FileNotFound):
            runtime.delete_file(sid, path)
    with pytest.raises(FileNotFound):
        runtime.list_files(sid, "sub\\xfe")
    with pytest.raises(FileNotFound):
        runtime.archive_directory(sid, "sub\\xfe", io.BytesIO())
    # Python reads b"\xff" as "\udcff"; taken from a caller it would reach the file by a name never shown.
    for path in ("bad\udcff name", "/workspace/sub\udcfe/in\udcff", "x\ud800"):
        for call in (
            lambda p: runtime.read_file(sid, p, max_bytes=10),
            lambda p: runtime.open_read(sid, p),
            lambda p: runtime.stat_path(sid, p),
            lambda p: runtime.list_files(sid, p),
            lambda p: runtime.delete_file(sid, p, recursive=True),
            lambda p: runtime.write_file(sid, p, b"x"),
            lambda p: runtime.execute(sid, ["true"], working_dir=p, timeout_s=5),
        ):
            with pytest.raises(InvalidPath) as info:
                call(path)
            assert info.value.code == "INVALID_PATH"
    assert len(runtime.list_files(sid, recursive=True)) == 4


def test_an_archive_keeps_names_that_are_not_utf8(runtime: LocalRuntime, sid: str) -> None:
    runtime.execute(sid, ["python3", "-c", MAKE_UNDECODABLE_NAMES], timeout_s=10)
    archive = io.BytesIO()
    runtime.archive_directory(sid, "/workspace", archive)
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        names = [os.fsencode(name) for name in tar.getnames()]
    assert names == [b"bad\xff name", "caf\u00e9".encode(), b"sub\xfe", b"sub\xfe/in\xff"]


def test_commands_that_are_not_utf8_are_refused(runtime: LocalRuntime, sid: str) -> None:
    for command in ("echo \udcff", ["echo", "a\ud800"], ["cat", "bad\udcff name"]):
        with pytest.raises(CommandInvalid) as info:
            runtime.execute(sid, command, timeout_s=5)
        assert info.value.code == "INVALID_COMMAND"
    with pytest.raises(CommandInvalid):
        runtime.execute(sid, ["true"], env={"NAME": "\udcff"}, timeout_s=5)
    with pytest.raises(CommandInvalid):
        runtime.create("t_bad_env", env={"NAME": "a\ud800"}, memory_bytes=None, cpus=None)
    assert not runtime.exists("t_bad_env")


def test_deep_trees_are_listed_and_measured(runtime: LocalRuntime, sid: str) -> None:
    depth = 80  # beyond the walker's open-fd window, so directories get reopened by name
    nested = "/".join(f"d{i}" for i in range(depth))
    made = runtime.execute(
        sid,
        f"p=.; for i in $(seq 0 {depth - 1}); do p=$p/d$i; mkdir -p $p/z; echo hi > $p/z/f; done; echo ok",
        timeout_s=20,
    )
    assert made.stdout == "ok\n", made.stderr
    entries = runtime.list_files(sid, recursive=True)
    assert len(entries) == depth * 3
    paths_found = {e.path for e in entries}
    for level in range(1, depth + 1):
        prefix = "/workspace/" + "/".join(f"d{i}" for i in range(level))
        assert {prefix, prefix + "/z", prefix + "/z/f"} <= paths_found
    # Depth-first, by name: the top level's "z" comes after the whole d1 subtree.
    assert [e.path for e in entries[-2:]] == ["/workspace/d0/z", "/workspace/d0/z/f"]
    assert entries[depth - 1].path == f"/workspace/{nested}"
    assert runtime.read_file(sid, f"{nested}/z/f", max_bytes=10) == b"hi\n"
    assert runtime.workspace_usage(sid) >= depth * 3
    runtime.delete_file(sid, "d0", recursive=True)
    assert runtime.list_files(sid) == []


def test_workspace_usage(runtime: LocalRuntime, sid: str) -> None:
    empty = runtime.workspace_usage(sid)
    runtime.write_file(sid, "big.bin", os.urandom(300_000))
    runtime.execute(sid, "ln big.bin hard.bin && ln -s / root", timeout_s=10)
    used = runtime.workspace_usage(sid)
    assert 300_000 <= used - empty < 400_000  # hard link counted once, / not followed


def test_no_file_descriptors_leak(runtime: LocalRuntime, sid: str) -> None:
    runtime.execute(sid, "mkdir -p a/b && echo x > a/b/f && ln -s / link && mkfifo fifo", timeout_s=10)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        runtime.list_files(sid, recursive=True)
        runtime.read_file(sid, "a/b/f", max_bytes=10)
        runtime.write_file(sid, "a/b/g", b"y")
        runtime.workspace_usage(sid)
        runtime.execute(sid, ["true"], working_dir="a/b", timeout_s=10)
        for call in (
            lambda: runtime.read_file(sid, "link/etc/passwd", max_bytes=10),
            lambda: runtime.read_file(sid, "fifo", max_bytes=10),
            lambda: runtime.read_file(sid, "a/b/f", max_bytes=0),
            lambda: runtime.write_file(sid, "link/x", b"x"),
            lambda: runtime.write_file(sid, "a/b", b"x"),
            lambda: runtime.delete_file(sid, "nope/x"),
            lambda: runtime.list_files(sid, "a/b/f"),
        ):
            with pytest.raises(SandboxRuntimeError):
                call()
    assert len(os.listdir("/proc/self/fd")) == before


def test_errors_carry_code_and_message() -> None:
    error = InvalidPath("bad path")
    assert isinstance(error, SandboxRuntimeError) and isinstance(error, ValueError)
    assert (error.code, error.message, str(error)) == ("INVALID_PATH", "bad path", "bad path")
    assert IsolationUnavailable("x").code == "ISOLATION_UNAVAILABLE"
    assert CommandInvalid("x").code == "INVALID_COMMAND"


def test_without_cgroups_rlimits_and_process_groups_are_used(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "root")
    runtime._cgroups = cgroups.Cgroups(version=0)  # as on a host without writable cgroups
    runtime.create("nocg", env={}, memory_bytes=256 << 20, cpus=None)
    try:
        hog = runtime.execute("nocg", ["python3", "-c", "b = b'x' * (2 << 30); print(len(b))"], timeout_s=30)
        assert hog.exit_code != 0 and "MemoryError" in hog.stderr
        marker = "nocg" + secrets.token_hex(6)
        timed = runtime.execute(
            "nocg", f"python3 -c 'import time; time.sleep(1000)' {marker} & sleep 1000", timeout_s=1.5
        )
        assert timed.timed_out
        assert wait_until_gone(marker) == []
        results = []
        thread = threading.Thread(
            target=lambda: results.append(runtime.execute("nocg", f"sleep 1000; : {marker}", timeout_s=60))
        )
        thread.start()
        deadline = time.monotonic() + PATIENCE
        while not marker_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        runtime.stop("nocg")
        thread.join(PATIENCE)
        assert not thread.is_alive() and results and not results[0].timed_out
        assert wait_until_gone(marker) == []
    finally:
        runtime.destroy("nocg")


def test_without_cgroups_a_command_starting_while_the_sandbox_stops_is_killed(tmp_path: Path, monkeypatch) -> None:
    runtime = LocalRuntime(tmp_path / "root")
    runtime._cgroups = cgroups.Cgroups(version=0)
    runtime.create("race", env={}, memory_bytes=None, cpus=None)
    marker = "race" + secrets.token_hex(6)
    spawn_command = LocalRuntime._spawn

    def spawned_then_stopped(self, *args, **kwargs):
        proc = spawn_command(self, *args, **kwargs)
        # stop() runs after the command started but before the command's record is written.
        self.stop("race")
        return proc

    monkeypatch.setattr(LocalRuntime, "_spawn", spawned_then_stopped)
    try:
        result = runtime.execute("race", f"sleep 1000; : {marker}", timeout_s=60)
        assert not result.timed_out and result.exit_code != 0
        assert wait_until_gone(marker) == []
    finally:
        monkeypatch.undo()
        runtime.destroy("race")


def test_network_when_enabled(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "root", network=True)
    runtime.create("net", env={}, memory_bytes=None, cpus=None)
    try:
        interfaces = runtime.execute("net", "tail -n +3 /proc/net/dev | cut -d: -f1", timeout_s=10).stdout.split()
        with open("/proc/net/dev") as handle:
            host = [line.split(":")[0].strip() for line in handle.readlines()[2:]]
        assert sorted(interfaces) == sorted(host)  # the host's network namespace
    finally:
        runtime.destroy("net")


# -- without bubblewrap ----------------------------------------------------------------------


def test_missing_bwrap_refuses_without_opt_in(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "root", bwrap_path=str(tmp_path / "no-bwrap"))
    assert runtime.isolated is True
    with pytest.raises(IsolationUnavailable) as info:
        runtime.create("box", env={}, memory_bytes=None, cpus=None)
    assert info.value.code == "ISOLATION_UNAVAILABLE"
    assert "STOWAGE_ALLOW_UNISOLATED=1" in info.value.message and "bubblewrap" in info.value.message
    assert not (tmp_path / "root" / "box").exists()


def test_unisolated_mode_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOWAGE_TEST_HOST_SECRET", "host-value")
    runtime = LocalRuntime(
        tmp_path / "root", allow_unisolated=True, bwrap_path=str(tmp_path / "no-bwrap"), output_limit_bytes=1000
    )
    assert runtime.isolated is False
    runtime.create("plain", env={"FROM_CREATE": "yes"}, memory_bytes=None, cpus=None)
    try:
        workspace = tmp_path / "root" / "plain" / "workspace"
        runtime.write_file("plain", "sub/f.txt", b"content")
        result = runtime.execute(
            "plain",
            "pwd; cat f.txt; echo; echo $FROM_CREATE ${STOWAGE_TEST_HOST_SECRET:-cleared} $HOME",
            working_dir="sub",
            timeout_s=10,
        )
        assert result.stdout.splitlines() == [str(workspace / "sub"), "content", f"yes cleared {workspace}"]
        assert runtime.execute("plain", ["no-such-program-xyz"], timeout_s=5).exit_code == 127
        flood = runtime.execute("plain", "yes | head -c 100000", timeout_s=10)
        assert flood.output_truncated and len(flood.stdout) == 1000

        marker = "plain" + secrets.token_hex(6)
        timed = runtime.execute(
            "plain", f"setsid python3 -c 'import time; time.sleep(1000)' {marker} & sleep 1000", timeout_s=1.5
        )
        assert timed.timed_out and timed.exit_code == 124
        assert wait_until_gone(marker) == []
        # Background jobs holding the output pipes do not keep the call waiting.
        started = time.monotonic()
        quick = runtime.execute(
            "plain", f"python3 -c 'import time; time.sleep(1000)' {marker} & echo done", timeout_s=30
        )
        assert quick.stdout == "done\n" and time.monotonic() - started < 5
        assert wait_until_gone(marker) == []
    finally:
        runtime.destroy("plain")
