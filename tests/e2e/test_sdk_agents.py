"""Every agent-session method of the stateset-sandbox SDK (2.1.0), unchanged, against the whole
stack (`manage.py runstack`): a session that works in its sandbox, rotates to a new one in the
middle (asked for, and on its own before its sandbox expires) with its files and artifacts kept,
and ends. Then every SDK method of the groups that docs/sdk.md lists, each called once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stateset_sandbox import AsyncSandbox, Sandbox, StateSetSandbox
from stateset_sandbox.errors import SandboxApiError
from stateset_sandbox.types import (
    AgentBudgetConfig,
    AgentExecuteOptions,
    AgentRotationConfig,
    AgentSandboxConfig,
    AgentSession,
    CreateAgentSessionOptions,
    CreateApiKeyOptions,
    CreateSandboxOptions,
    CreateWebhookOptions,
    RegisterToolOptions,
    UploadArtifactOptions,
)

from tests.conftest import StackOrganization
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.e2e

SDK_TABLE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


class Recorder:
    """The SDK's client itself, with a note of each of its methods that returned without error."""

    def __init__(self, client: StateSetSandbox, worked: set[str]) -> None:
        self._client = client
        self._worked = worked

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            result = attribute(*args, **kwargs)
            self._worked.add(f"StateSetSandbox.{name}")
            return result

        return call


@pytest.fixture(scope="module")
def worked() -> set[str]:
    return set()


@pytest.fixture(scope="module")
def client(stack: StackOrganization, worked: set[str]) -> Iterator[Recorder]:
    with StateSetSandbox(
        base_url=stack.base_url, auth_token=stack.api_key, org_id=stack.org_id, timeout=120_000
    ) as made:
        yield Recorder(made, worked)


def api_error(call, *args, **kwargs) -> SandboxApiError:
    with pytest.raises(SandboxApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def wait_until(check, *, timeout: float = 120, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("it did not happen in time")


def rotated(client, session_id: str, count: int):
    def check() -> AgentSession | None:
        session = client.get_agent_session(session_id)
        if session.rotation_count < count or session.status == "rotating":
            return None
        # The worker records the rotation's events just after it moves the session on.
        done = client.get_agent_session_events(session_id, event_type="rotation_completed")
        return session if len(done) >= count else None

    return wait_until(check)


def test_a_session_works_rotates_keeps_its_files_and_ends(client):
    client_id = f"e2e-{uuid.uuid4().hex[:10]}"
    options = CreateAgentSessionOptions(
        name="refactor the parser",
        description="an e2e session",
        budget=AgentBudgetConfig(iteration_limit=40, cost_cap_cents=2500, duration_limit_seconds=3600),
        rotation=AgentRotationConfig(pre_rotate_buffer_seconds=30),
        sandbox=AgentSandboxConfig(timeout_seconds=900, memory="512Mi", env={"FROM_CONFIG": "yes"}),
        client_id=client_id,
    )
    session = client.create_agent_session(options)
    assert (session.status, session.name, session.client_id) == ("pending", "refactor the parser", client_id)
    assert session.budget_config.iteration_limit == 40 and session.budget_config.cost_cap_cents == 2500
    assert session.rotation_config.pre_rotate_buffer_seconds == 30
    assert session.sandbox_config.timeout_seconds == 900 and session.sandbox_config.env == {"FROM_CONFIG": "***"}
    assert session.id in {s.id for s in client.list_agent_sessions(status="pending", limit=100, offset=0)}
    assert client.get_agent_session(session.id).id == session.id

    running = client.start_agent_session(session.id)
    assert running.status == "running" and running.current_sandbox_id and running.started_at
    first_sandbox = running.current_sandbox_id

    client.write_agent_session_file(session.id, "/workspace/notes/plan.md", "step 1\n")
    client.write_agent_session_files(session.id, [{"path": "src/main.py", "content": "print('hello from main')\n"}])
    assert client.read_agent_session_file(session.id, "notes/plan.md") == "step 1\n"
    raw = client.read_agent_session_file_raw(session.id, "/workspace/src/main.py")
    assert (raw.path, raw.size) == ("/workspace/src/main.py", len("print('hello from main')\n"))
    listed = client.list_agent_session_files_response(session.id, "/workspace", recursive=True)
    assert listed.path == "/workspace"
    assert {"/workspace/notes/plan.md", "/workspace/src/main.py"} <= {f["path"] for f in listed.files}
    assert [f["name"] for f in client.list_agent_session_files(session.id, "/workspace/src")] == ["main.py"]

    context = client.update_agent_context(
        session.id, {"working_dir": "/workspace/src", "env_vars": {"STEP": "1"}, "custom_state": {"todo": ["lexer"]}}
    )
    assert context["workingDir" if "workingDir" in context else "working_dir"] == "/workspace/src"
    result = client.execute_in_agent_session(
        session.id, AgentExecuteOptions(command='python3 main.py; echo "$STEP $FROM_CONFIG"', timeout_ms=30_000)
    )
    assert (result.exit_code, result.stdout) == (0, "hello from main\n1 yes\n")
    other_dir = client.execute_in_agent_session(
        session.id, AgentExecuteOptions(command="pwd", working_dir="/workspace")
    )
    assert other_dir.stdout == "/workspace\n"

    tool = client.register_agent_tool(
        session.id,
        RegisterToolOptions(
            name="code_search", tool_type="builtin", description="ripgrep", input_schema={"type": "object"}
        ),
    )
    assert (tool.name, tool.tool_type, tool.input_schema) == ("code_search", "builtin", {"type": "object"})
    assert [t.name for t in client.list_agent_tools(session.id)] == ["code_search"]
    assert client.agent_session_heartbeat(session.id) is True
    assert client.reattach_agent_session(client_id).id == session.id
    again = client.reattach_agent_session_response(client_id)
    assert again.reattached is True and again.session.id == session.id

    # uploadAgentSessionArtifact of the hosted API's docs: the Python SDK has no method for it.
    report = client._request("POST", f"/agent/sessions/{session.id}/artifacts/upload", {"path": "notes/plan.md"})
    assert (report["session_id"], report["sandbox_id"]) == (session.id, first_sandbox)

    # A rotation in the middle of the session (asked for; Stowage's own endpoint, not the SDK's).
    asked = client._request("POST", f"/agent/sessions/{session.id}/rotate")
    assert asked["session"]["status"] == "rotating"
    moved = rotated(client, session.id, 1)
    assert moved.status == "running" and moved.current_sandbox_id != first_sandbox
    assert moved.agent_context.last_sandbox_id == first_sandbox and moved.agent_context.last_checkpoint_id
    assert client.read_agent_session_file(session.id, "notes/plan.md") == "step 1\n"
    after = client.execute_in_agent_session(session.id, AgentExecuteOptions(command='python3 main.py; echo "$STEP"'))
    assert after.stdout == "hello from main\n1\n"
    tagged = client._request("GET", "/artifacts", params={"session_id": session.id})["artifacts"]
    assert {report["id"], moved.agent_context.last_checkpoint_id} == {a["id"] for a in tagged}
    assert client.get_artifact(report["id"]).checksum == report["checksum"]

    events = client.get_agent_session_events(session.id)
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(1, len(numbers) + 1))
    kinds = [e.event_type for e in events]
    for wanted in ("session_started", "sandbox_created", "exec_completed", "rotation_started", "rotation_completed"):
        assert wanted in kinds
    assert kinds.index("rotation_started") < kinds.index("rotation_completed")
    page = client.get_agent_session_events_response(session.id, after_sequence=2, event_type="exec_completed", limit=2)
    assert [e.event_type for e in page.events] == ["exec_completed", "exec_completed"]
    assert all(e.sequence_number > 2 for e in page.events) and page.latest_sequence == page.events[-1].sequence_number

    paused = client.pause_agent_session(session.id)
    assert paused.status == "paused"
    refused = api_error(client._client.execute_in_agent_session, session.id, AgentExecuteOptions(command="true"))
    assert (refused.status_code, refused.code) == (409, "SESSION_NOT_RUNNING")
    assert client.resume_agent_session(session.id).status == "running"
    assert client.stop_agent_session(session.id, reason="the parser is done") is True
    ended = client.get_agent_session(session.id)
    assert ended.status == "completed" and ended.completed_at and ended.total_exec_count == 3
    assert ended.budget_consumed.iterations == 3 and ended.budget_consumed.cost_cents == 0

    doomed = client.create_agent_session(CreateAgentSessionOptions(name="to cancel"))
    client.start_agent_session(doomed.id)
    assert client.cancel_agent_session(doomed.id) is True
    assert client.get_agent_session(doomed.id).status == "cancelled"
    assert client.delete_agent_session(doomed.id) is True
    gone = api_error(client._client.get_agent_session, doomed.id)
    assert (gone.status_code, gone.code) == (404, "SESSION_NOT_FOUND")


def test_a_session_rotates_on_its_own_before_its_sandbox_expires(client):
    options = CreateAgentSessionOptions(
        name="short-lived sandboxes",
        sandbox=AgentSandboxConfig(timeout_seconds=60),
        rotation=AgentRotationConfig(pre_rotate_buffer_seconds=45),
    )
    session = client.create_agent_session(options)
    first = client.start_agent_session(session.id).current_sandbox_id
    client.write_agent_session_file(session.id, "kept.txt", "survives expiry\n")
    # Paused, so that no command meets the next rotation; a paused session rotates all the same.
    client.pause_agent_session(session.id)
    moved = rotated(client, session.id, 1)
    assert moved.status == "paused" and moved.current_sandbox_id != first
    assert client.read_agent_session_file(session.id, "kept.txt") == "survives expiry\n"
    assert client.stop_agent_session(session.id) is True


def test_every_sdk_method_in_the_table_works(stack, client, worked):
    sandbox = client.create(CreateSandboxOptions(timeout_seconds=600))
    sid = sandbox.sandbox_id
    assert client.get(sid).status == "running" and sid in {s.sandbox_id for s in client.list()}
    assert client.execute(sid, "echo hi").stdout == "hi\n"
    out: list[str] = []
    client.execute_stream(sid, "echo streamed", on_stdout=out.append)
    assert "".join(out) == "streamed\n"
    status = client.get_status(sid)
    assert status.status == "running" and status.max_lifetime_seconds and status.remaining_extend_seconds > 0
    assert client.extend(sid, 60).sandbox_id == sid

    client.write_file(sid, "/workspace/a/one.txt", "one")
    client.write_files(sid, [{"path": "a/two.py", "content": "2"}, {"path": "b/three.py", "content": "3"}])
    assert client.read_file(sid, "a/one.txt") == "one" and client.read_file_raw(sid, "a/one.txt").size == 3
    assert {f["path"] for f in client.list_files(sid, "/workspace", recursive=True)} >= {"/workspace/a/one.txt"}
    assert [f["path"] for f in client.glob(sid, "**/*.py")] == ["/workspace/a/two.py", "/workspace/b/three.py"]
    assert client.mkdir(sid, "/workspace/c/d")["entry"]["type"] == "directory"
    assert client.move_file(sid, "a/one.txt", "c/d/one.txt")["path"] == "/workspace/c/d/one.txt"
    assert client.copy_file(sid, "c", "c-copy")["path"] == "/workspace/c-copy"
    assert client.read_file(sid, "c-copy/d/one.txt") == "one"
    escape = api_error(client._client.glob, sid, "../../etc/*")
    assert (escape.status_code, escape.code) == (400, "INVALID_PATH")
    client.delete_file(sid, "c-copy", recursive=True)

    artifact = client.upload_artifact(sid, UploadArtifactOptions(path="/workspace/c/d/one.txt"))
    assert client.get_artifact(artifact.id).size == 3
    assert artifact.id in {a.id for a in client.list_artifacts(sandbox_id=sid)}
    assert client.get_artifact_url(artifact.id, expires_in=60).startswith("http")
    assert client.download_artifact(sid, artifact.id, "/workspace/copy.txt") is True
    assert client.delete_artifact(artifact.id) is True
    assert client.list_audit_events(sandbox_id=sid, limit=5)["total"] > 0
    assert client.get_sandbox_audit_summary(sid).commands_executed == 2

    receiver = Receiver()
    try:
        hook = client.create_webhook(CreateWebhookOptions(url=receiver.url, events="*"))
        receiver.secrets.append(hook.secret)
        assert hook.id in {w.id for w in client.list_webhooks()}
        assert client.test_webhook(hook.id)["success"] is True
        assert receiver.received[-1].verified_with == [hook.secret]
        assert "webhook.test" in {d.event for d in client.get_webhook_deliveries(hook.id, limit=50)}
        assert client.delete_webhook(hook.id) is True
    finally:
        receiver.close()

    made = client.create_api_key(CreateApiKeyOptions(name="e2e-minted", scopes=["sandboxes:read"]))
    assert made.api_key.id in {k.id for k in client.list_api_keys()}
    assert client.revoke_api_key(made.api_key.id) is True

    # An access token: what Sandbox.create/connect need, and what to hand an agent in a sandbox.
    token = httpx.post(
        stack.base_url + "/api/v1/auth/token",
        json={"expires_in": 600},
        headers={"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id},
        timeout=30,
    ).json()["access_token"]
    with Sandbox.create(api_key=token, base_url=stack.base_url, timeout_seconds=300) as bound:
        worked.add("Sandbox.create")
        bound.write_file("/workspace/x.txt", "bound")
        assert bound.exec("cat x.txt").stdout == "bound"
        again = Sandbox.connect(bound.id, api_key=token, base_url=stack.base_url)
        worked.add("Sandbox.connect")
        assert again.read_file("x.txt") == "bound" and again.org_id == stack.org_id

    async def use_async() -> None:
        connected = await AsyncSandbox.connect(sid, api_key=stack.api_key, base_url=stack.base_url)
        worked.add("AsyncSandbox.connect")
        assert (await connected.exec("echo async")).stdout == "async\n"
        await connected.write_file("/workspace/async.txt", "from async")
        assert await connected.read_file("async.txt") == "from async"
        assert "/workspace/async.txt" in {f["path"] for f in await connected.list_files()}
        await connected.close()
        made = await AsyncSandbox.create(api_key=stack.api_key, base_url=stack.base_url, timeout_seconds=120)
        worked.add("AsyncSandbox.create")
        await made.close()

    asyncio.run(use_async())
    assert client.get(sid).status in {"terminating", "terminated"}
    spare = client.create(CreateSandboxOptions(timeout_seconds=120))
    assert client.stop(spare.sandbox_id) is True
    assert client.delete(client.create(CreateSandboxOptions(timeout_seconds=120)).sandbox_id) is True

    wanted, unknown = sdk_table()
    assert len(wanted) >= 58, "docs/sdk.md lost its table"
    assert not unknown, f"docs/sdk.md names methods the SDK does not have: {unknown}"
    assert not (wanted - worked), f"listed as working in docs/sdk.md but not called here: {sorted(wanted - worked)}"


def sdk_table() -> tuple[set[str], list[str]]:
    """The methods docs/sdk.md marks as working, and the names in it that the SDK does not have."""
    works, unknown = set(), []
    owners = {"StateSetSandbox": StateSetSandbox, "Sandbox": Sandbox, "AsyncSandbox": AsyncSandbox}
    for line in SDK_TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[1].startswith("`"):
            continue
        name = cells[1].strip("`")
        owner, _, method = name.partition(".")
        if owner not in owners or not hasattr(owners[owner], method):
            unknown.append(name)
        if cells[3].startswith("works"):
            works.add(name)
    return works, unknown
