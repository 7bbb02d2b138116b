"""Each workspace is a filesystem of its own: the kernel stops a sandbox at its disk size."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from config.stack import LocalStack
from sandboxes.runtime import LocalRuntime, disk

LOOP_REASON = disk.unavailable_reason()
needs_loop = pytest.mark.skipif(
    LOOP_REASON is not None, reason=f"workspace images cannot be loop-mounted on this host: {LOOP_REASON}"
)


def mounted(path: Path) -> bool:
    with open("/proc/mounts") as handle:
        return any(line.split()[1] == str(path) for line in handle)


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(tmp_path / "root")


def new_sandbox(runtime: LocalRuntime, disk_bytes: int | None) -> str:
    sandbox_id = "t_" + secrets.token_hex(6)
    runtime.create(sandbox_id, env={}, memory_bytes=None, cpus=None, disk_bytes=disk_bytes)
    return sandbox_id


@needs_loop
def test_writing_past_the_disk_size_fails_inside_while_another_sandbox_keeps_writing(runtime):
    small, other = new_sandbox(runtime, 32 << 20), new_sandbox(runtime, 64 << 20)
    try:
        assert runtime.disk_enforced(small) and runtime.disk_enforced(other)
        full = runtime.execute(small, "head -c 48000000 /dev/zero > /workspace/fill", timeout_s=60)
        assert full.exit_code != 0
        assert "No space left on device" in full.stderr
        assert runtime.workspace_usage(small) <= 32 << 20

        fine = runtime.execute(
            other, "head -c 16000000 /dev/zero > /workspace/ok && wc -c < /workspace/ok", timeout_s=60
        )
        assert (fine.exit_code, fine.stdout.strip()) == (0, "16000000")
        # The full one still runs commands and frees space for itself.
        again = runtime.execute(
            small, "rm /workspace/fill && echo freed > /workspace/note && cat /workspace/note", timeout_s=60
        )
        assert (again.exit_code, again.stdout) == (0, "freed\n")
    finally:
        runtime.destroy(small)
        runtime.destroy(other)


@needs_loop
def test_destroy_unmounts_the_workspace_and_deletes_its_image(runtime):
    sandbox_id = new_sandbox(runtime, 32 << 20)
    workspace = runtime.root / sandbox_id / "workspace"
    image = runtime.root / sandbox_id / "meta" / disk.IMAGE_NAME
    assert mounted(workspace) and image.is_file()
    # Sparse: the image holds only what was written, not its size.
    assert image.stat().st_blocks * 512 < 8 << 20
    assert runtime.list_files(sandbox_id) == []
    runtime.write_file(sandbox_id, "/workspace/a.txt", b"hello")

    runtime.destroy(sandbox_id)
    assert not mounted(workspace)
    assert not (runtime.root / sandbox_id).exists()
    runtime.destroy(sandbox_id)


@needs_loop
def test_destroy_unmounts_even_while_a_host_process_holds_a_file_open(runtime):
    sandbox_id = new_sandbox(runtime, 32 << 20)
    workspace = runtime.root / sandbox_id / "workspace"
    runtime.write_file(sandbox_id, "/workspace/held", b"x")
    handle = open(workspace / "held", "rb")  # noqa: SIM115 held across destroy on purpose
    try:
        runtime.destroy(sandbox_id)
        assert not mounted(workspace)
    finally:
        handle.close()


def test_with_enforcement_off_the_workspace_is_a_plain_directory(tmp_path):
    runtime = LocalRuntime(tmp_path / "root", disk_enforce="off")
    sandbox_id = new_sandbox(runtime, 32 << 20)
    try:
        assert runtime.disk_enforced(sandbox_id) is False
        assert not mounted(runtime.root / sandbox_id / "workspace")
    finally:
        runtime.destroy(sandbox_id)


def test_where_loop_mounts_are_impossible_auto_falls_back_and_loop_refuses(tmp_path, monkeypatch):
    monkeypatch.setattr(
        disk, "unavailable_reason", lambda: "this host has no loop devices (/dev/loop-control, /dev/loop*)"
    )
    auto = LocalRuntime(tmp_path / "auto")
    sandbox_id = new_sandbox(auto, 32 << 20)
    assert auto.disk_enforced(sandbox_id) is False
    assert auto.execute(sandbox_id, "echo hi > /workspace/x && cat /workspace/x", timeout_s=30).stdout == "hi\n"
    auto.destroy(sandbox_id)

    strict = LocalRuntime(tmp_path / "loop", disk_enforce="loop")
    with pytest.raises(disk.DiskUnavailable, match="no loop devices"):
        new_sandbox(strict, 32 << 20)
    assert not any(os.scandir(strict.root))


def test_an_unknown_enforcement_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="auto, loop, off"):
        LocalRuntime(tmp_path / "root", disk_enforce="quota")


@needs_loop
def test_a_local_stack_thrown_away_leaves_no_workspace_mounted(tmp_path):
    var_dir = tmp_path / "var"
    runtime = LocalRuntime(var_dir / "sandboxes")
    sandbox_id = new_sandbox(runtime, 32 << 20)
    assert mounted(runtime.root / sandbox_id / "workspace")

    LocalStack(var_dir).remove_sandboxes()
    assert not mounted(runtime.root / sandbox_id / "workspace")
    assert runtime.sandbox_ids() == []
