"""The whole stack (`manage.py runstack`) driven over HTTP by the stateset-sandbox SDK, as a user drives it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from stateset_sandbox import StateSetSandbox
from stateset_sandbox.errors import SandboxApiError
from stateset_sandbox.types import CreateApiKeyOptions, CreateSandboxOptions, Sandbox

from config.stack import LocalStack
from tests.conftest import StackOrganization

pytestmark = pytest.mark.e2e


def sdk(stack: StackOrganization, key: str | None = None, org_id: str | None = None, **options) -> StateSetSandbox:
    return StateSetSandbox(
        base_url=stack.base_url, auth_token=key or stack.api_key, org_id=org_id or stack.org_id, **options
    )


@pytest.fixture(scope="module")
def client(stack: StackOrganization) -> Iterator[StateSetSandbox]:
    with sdk(stack) as made:
        yield made


@pytest.fixture(scope="module")
def strict(stack: StackOrganization) -> Iterator[StateSetSandbox]:
    """A client that reports an error at once instead of retrying it."""
    with sdk(stack, max_retries=0) as made:
        yield made


@pytest.fixture(scope="module")
def sandbox(client: StateSetSandbox) -> Sandbox:
    return client.create(CreateSandboxOptions(timeout_seconds=900, env={"FROM_CREATE": "set at create"}))


def api_error(call, *args, **kwargs) -> SandboxApiError:
    with pytest.raises(SandboxApiError) as caught:
        call(*args, **kwargs)
    assert caught.value.code and caught.value.message, caught.value
    return caught.value


def test_create_get_and_list_a_sandbox(stack, client):
    made = client.create(CreateSandboxOptions(cpus="2", memory="512Mi", timeout_seconds=600))
    assert made.status == "running"
    assert made.org_id == stack.org_id
    assert (made.cpus, made.memory) == ("2", "512Mi")
    assert 590 <= (made.expires_at - made.created_at).total_seconds() <= 610
    fetched = client.get(made.sandbox_id)
    assert (fetched.sandbox_id, fetched.status, fetched.org_id, fetched.session_id) == (
        made.sandbox_id,
        "running",
        stack.org_id,
        made.session_id,
    )
    assert made.sandbox_id in {s.sandbox_id for s in client.list()}


def test_execute_list_and_string_commands_with_env(client, sandbox):
    sid = sandbox.sandbox_id
    listed = client.execute(sid, ["echo", "hello", "world"])
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "hello world\n", "")
    shell = client.execute(sid, "echo out; echo err >&2; exit 3")
    assert (shell.exit_code, shell.stdout, shell.stderr) == (3, "out\n", "err\n")
    with_env = client.execute(sid, 'echo "$GREETING|$FROM_CREATE"', env={"GREETING": "hi there"})
    assert with_env.stdout == "hi there|set at create\n"
    # The variable was for that command only.
    assert client.execute(sid, 'echo "[$GREETING]"').stdout == "[]\n"


def test_execute_stream_delivers_output_and_exit_code(client, sandbox):
    out: list[str] = []
    err: list[str] = []
    exits: list[int] = []
    client.execute_stream(
        sandbox.sandbox_id,
        "echo one; echo two >&2; echo three; exit 4",
        on_stdout=out.append,
        on_stderr=err.append,
        on_exit=exits.append,
    )
    assert "".join(out) == "one\nthree\n"
    assert "".join(err) == "two\n"
    assert exits == [4]


def test_files_round_trip_and_are_visible_to_commands(client, sandbox):
    sid = sandbox.sandbox_id
    client.write_file(sid, "/workspace/data/deep/nested.txt", "nested ✓ content\n")
    client.write_file(sid, "top.txt", "top")
    assert client.read_file(sid, "/workspace/data/deep/nested.txt") == "nested ✓ content\n"
    assert client.read_file(sid, "/workspace/top.txt") == "top"
    by_path = {f["path"]: f for f in client.list_files(sid, "/workspace", recursive=True)}
    assert by_path["/workspace/data"]["type"] == by_path["/workspace/data/deep"]["type"] == "directory"
    assert by_path["/workspace/data/deep/nested.txt"]["type"] == "file"
    assert by_path["/workspace/data/deep/nested.txt"]["size"] == len("nested ✓ content\n".encode())
    assert by_path["/workspace/top.txt"]["name"] == "top.txt"
    shallow = {f["path"] for f in client.list_files(sid, "/workspace")}
    assert "/workspace/data" in shallow and "/workspace/data/deep/nested.txt" not in shallow
    assert client.execute(sid, ["cat", "/workspace/data/deep/nested.txt"]).stdout == "nested ✓ content\n"


def test_extend_then_stop_then_execute_is_refused(client, strict):
    made = client.create(CreateSandboxOptions(timeout_seconds=300))
    extended = client.extend(made.sandbox_id, 600)
    assert extended.expires_at > made.expires_at
    assert client.stop(made.sandbox_id) is True
    assert client.get(made.sandbox_id).status == "terminated"
    error = api_error(strict.execute, made.sandbox_id, ["true"])
    assert (error.status_code, error.code) == (409, "SANDBOX_NOT_RUNNING")


def test_audit_trail_and_summary_of_a_sandbox(client):
    sid = client.create(CreateSandboxOptions(timeout_seconds=300)).sandbox_id
    client.execute(sid, ["true"])
    client.write_file(sid, "a.txt", "a")
    client.read_file(sid, "a.txt")
    client.stop(sid)
    listed = client.list_audit_events(sandbox_id=sid)
    actions = [e.action for e in listed["events"]]
    assert {"sandbox.create", "command.execute", "file.write", "file.read", "sandbox.stop"} <= set(actions), actions
    assert all(e.sandbox_id == sid and e.outcome == "success" for e in listed["events"])
    summary = client.get_sandbox_audit_summary(sid)
    assert summary.total_events == listed["total"] == len(actions)
    assert (
        (summary.commands_executed, summary.files_written, summary.files_read, summary.errors)
        == (actions.count("command.execute"), actions.count("file.write"), actions.count("file.read"), 0)
        == (1, 1, 1, 0)
    )


def test_api_key_lifecycle(stack, client):
    created = client.create_api_key(CreateApiKeyOptions(name="ci job"))
    assert created.key.startswith(created.api_key.key_prefix) and len(created.key) > len(created.api_key.key_prefix)
    with sdk(stack, key=created.key, max_retries=0) as second:
        assert isinstance(second.list(), list)
        listed = {k.id: k for k in client.list_api_keys()}
        assert listed[created.api_key.id].key_prefix == created.api_key.key_prefix
        assert created.key not in str(client._request("GET", "/api-keys"))
        assert client.revoke_api_key(created.api_key.id) is True
        assert api_error(second.list).status_code == 401


def test_bad_input_is_reported_as_the_sdk_expects(stack, client, strict, sandbox):
    sid = sandbox.sandbox_id
    missing = api_error(strict.get, "sbx_doesnotexist")
    assert (missing.status_code, missing.code) == (404, "SANDBOX_NOT_FOUND")

    other = stack.bootstrap("Globex", "eve@globex.test")
    with sdk(stack, key=other["api_key"], org_id=other["org_id"], max_retries=0) as stranger:
        theirs = api_error(stranger.get, sid)
        nobody = api_error(stranger.get, "sbx_doesnotexist")
        assert (theirs.status_code, theirs.code, theirs.message.replace(sid, "ID")) == (
            nobody.status_code,
            nobody.code,
            nobody.message.replace("sbx_doesnotexist", "ID"),
        )
        assert api_error(stranger.execute, sid, ["true"]).status_code == 404
        assert sid not in {s.sandbox_id for s in stranger.list()}

    with sdk(stack, key="stow_" + "x" * 40, max_retries=0) as wrong:
        assert api_error(wrong.list).status_code == 401

    for path in ("../../etc/passwd", "/workspace/../etc/passwd", "/etc/passwd"):
        error = api_error(strict.read_file, sid, path)
        assert (error.status_code, error.code) == (400, "INVALID_PATH"), path
    error = api_error(strict.write_file, sid, "../escape.txt", "x")
    assert (error.status_code, error.code) == (400, "INVALID_PATH")

    absurd = api_error(strict.create, CreateSandboxOptions(cpus="100000"))
    assert absurd.status_code == 400
    assert re.search(r"between 0\.1 and \d+", absurd.message), absurd.message

    started = time.monotonic()
    raw = strict._request("POST", f"/sandbox/{sid}/execute", {"command": ["sleep", "30"], "timeout": 500})
    assert time.monotonic() - started < 10
    assert raw["timed_out"] is True and raw["exit_code"] == 124, raw


def _stack_processes(var_dir: Path, port: int) -> dict[int, str]:
    """Processes that belong to the stack: its var dir or port on their command line, or its var dir in their environment."""
    marks = (str(var_dir).encode(), f":{port}".encode())
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in marks) or b"STOWAGE_VAR_DIR=" + marks[0] + b"\0" in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def test_ctrl_c_stops_the_whole_stack(tmp_path: Path):
    var_dir = (tmp_path / "var").resolve()
    with LocalStack(var_dir) as running:
        with sdk(running) as own:
            sid = own.create(CreateSandboxOptions(timeout_seconds=300)).sandbox_id
            assert own.execute(sid, ["true"]).exit_code == 0
        before = _stack_processes(var_dir, running.port)
        # runstack, embedded Redis, worker, beat, gunicorn master and its workers
        assert len(before) >= 6, before
        started = time.monotonic()
    # Leaving the block sent SIGINT to the process group and waited for it.
    took = time.monotonic() - started
    assert running.process is not None and running.process.returncode == 0, running.log_tail()
    assert took < 30
    assert _stack_processes(var_dir, running.port) == {}
    log = running.log.read_text()
    assert "stopped" in log and "Traceback" not in log, log[-4000:]
    sock = var_dir / "run" / "redis.sock"
    if sock.exists():
        with pytest.raises(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()
