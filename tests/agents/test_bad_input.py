"""Every bad request to agent sessions gets a clear 4xx and changes nothing."""

from __future__ import annotations

import pytest

from agents.models import AgentEvent, AgentSession, AgentTool, SessionStatus
from audit.models import AuditEvent
from tests.factories import make_session


def snapshot(session: AgentSession) -> tuple:
    row = AgentSession.objects.get(id=session.id)
    return (row.status, row.exec_count, row.last_sequence, row.context, row.current_sandbox_id, row.deleted_at)


ROUTES = [
    ("get", "", None),
    ("delete", "", None),
    ("post", "/start", {}),
    ("post", "/pause", {}),
    ("post", "/resume", {}),
    ("post", "/stop", {"reason": "x"}),
    ("post", "/cancel", {}),
    ("post", "/rotate", {}),
    ("post", "/exec", {"command": "true"}),
    ("get", "/events", None),
    ("post", "/context", {"workingDir": "/workspace"}),
    ("post", "/heartbeat", {}),
    ("post", "/tools", {"name": "search"}),
    ("get", "/tools", None),
    ("get", "/files?path=a.txt", None),
    ("post", "/files", {"files": [{"path": "a.txt", "content": ""}]}),
    ("get", "/files/list", None),
    ("post", "/artifacts/upload", {"path": "/workspace/a.txt"}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
def test_another_organizations_session_is_404_everywhere(owner, stranger, method, suffix, body):
    theirs = make_session(stranger.org_id, current_sandbox_id="sbx_theirs")
    before = snapshot(theirs)
    call = getattr(owner, method)
    answer = (
        call(f"/agent/sessions/{theirs.id}{suffix}", body)
        if body is not None
        else call(f"/agent/sessions/{theirs.id}{suffix}")
    )
    assert answer.status_code == 404, answer.content
    assert answer.json()["error"]["code"] in {"SESSION_NOT_FOUND", "NOT_FOUND"}
    assert snapshot(theirs) == before
    assert not AgentTool.objects.filter(session=theirs).exists()


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
def test_an_unknown_session_is_404_everywhere(owner, method, suffix, body):
    call = getattr(owner, method)
    path = f"/agent/sessions/ses_nobody{suffix}"
    answer = call(path, body) if body is not None else call(path)
    assert answer.status_code == 404
    assert AgentEvent.objects.count() == 0


@pytest.mark.parametrize("status", [SessionStatus.PAUSED, SessionStatus.COMPLETED, SessionStatus.CANCELLED])
def test_exec_on_a_session_that_is_not_running_is_refused(owner, status):
    session = make_session(owner.org_id, status=status, current_sandbox_id="sbx_x")
    before = snapshot(session)
    answer = owner.post(f"/agent/sessions/{session.id}/exec", {"command": "echo hi"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "SESSION_NOT_RUNNING"
    assert answer.json()["error"]["details"]["status"] == status
    assert snapshot(session) == before
    assert not AuditEvent.objects.filter(action="command.execute").exists()
    assert AuditEvent.objects.get(action="session.exec").outcome == "denied"


def test_exec_past_the_iteration_limit_is_refused(owner):
    session = make_session(owner.org_id, iteration_limit=3, exec_count=3, current_sandbox_id="sbx_x")
    answer = owner.post(f"/agent/sessions/{session.id}/exec", {"command": "echo hi"})
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "BUDGET_EXCEEDED" and error["details"] == {
        "budget": "iteration_limit",
        "limit": 3,
        "consumed": 3,
    }
    assert AgentSession.objects.get(id=session.id).exec_count == 3
    assert not AuditEvent.objects.filter(action="command.execute").exists()


def test_exec_past_the_duration_limit_is_refused(owner):
    session = make_session(owner.org_id, duration_limit_seconds=60, active_seconds=61, current_sandbox_id="sbx_x")
    answer = owner.post(f"/agent/sessions/{session.id}/exec", {"command": "echo hi"})
    assert answer.status_code == 409 and answer.json()["error"]["details"]["budget"] == "duration_limit_seconds"
    assert AgentSession.objects.get(id=session.id).exec_count == 0


@pytest.mark.parametrize(
    "budget",
    [
        {"iterationLimit": -1},
        {"iterationLimit": 0},
        {"iterationLimit": 10**12},
        {"durationLimitSeconds": -60},
        {"durationLimitSeconds": 10**9},
        {"costCapCents": -1},
        {"costCapCents": 10**15},
        {"iterationLimit": True},
        {"iterationLimit": "10"},
    ],
)
def test_a_negative_or_absurd_budget_is_refused(owner, budget):
    answer = owner.post("/agent/sessions", {"name": "x", "budget": budget})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not AgentSession.objects.exists()
    assert not AuditEvent.objects.filter(action="session.create").exists()


def test_a_rotation_buffer_longer_than_the_sandbox_lifetime_is_refused(owner):
    body = {"sandbox": {"timeoutSeconds": 300}, "rotation": {"preRotateBufferSeconds": 300}}
    answer = owner.post("/agent/sessions", body)
    assert answer.status_code == 400
    assert answer.json()["error"]["details"]["field"] == "rotation.pre_rotate_buffer_seconds"
    assert not AgentSession.objects.exists()


@pytest.mark.parametrize("sandbox", [{"memory": "1Ti"}, {"cpus": "-1"}, {"isolation": "gvisor"}, {"timeoutSeconds": 0}])
def test_a_sandbox_config_no_sandbox_could_have_is_refused(owner, sandbox):
    assert owner.post("/agent/sessions", {"sandbox": sandbox}).status_code == 400
    assert not AgentSession.objects.exists()


def test_reattach_with_an_unknown_client_id_is_404(owner, stranger):
    make_session(stranger.org_id, client_id="agent-7")
    make_session(owner.org_id, status=SessionStatus.COMPLETED, client_id="agent-7")
    answer = owner.post("/agent/sessions/reattach", {"clientId": "agent-7"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert AgentEvent.objects.count() == 0


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "semi;colon"])
def test_a_tool_name_that_is_empty_or_too_long_is_refused(owner, name):
    session = make_session(owner.org_id)
    answer = owner.post(f"/agent/sessions/{session.id}/tools", {"name": name, "toolType": "custom"})
    assert answer.status_code == 400
    assert answer.json()["error"]["details"]["field"] == "name"
    assert not AgentTool.objects.exists()
    assert AgentSession.objects.get(id=session.id).last_sequence == 0


def test_a_session_without_a_running_sandbox_cannot_upload(owner):
    session = make_session(owner.org_id, status=SessionStatus.PENDING)
    answer = owner.post(f"/agent/sessions/{session.id}/artifacts/upload", {"path": "/workspace/a.txt"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] in {"SESSION_NOT_RUNNING", "SESSION_NO_SANDBOX"}
    running = make_session(owner.org_id, current_sandbox_id="sbx_gone")
    gone = owner.post(f"/agent/sessions/{running.id}/artifacts/upload", {"path": "/workspace/a.txt"})
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "SESSION_NO_SANDBOX"


def test_a_client_id_still_in_use_is_refused(owner):
    make_session(owner.org_id, client_id="agent-1")
    answer = owner.post("/agent/sessions", {"clientId": "agent-1"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "CLIENT_ID_IN_USE"
    assert AgentSession.objects.count() == 1


def test_a_context_with_a_path_outside_the_workspace_is_refused(owner):
    session = make_session(owner.org_id)
    answer = owner.post(f"/agent/sessions/{session.id}/context", {"workingDir": "/etc"})
    assert answer.status_code == 400
    assert AgentSession.objects.get(id=session.id).context == {}


def test_an_ended_session_cannot_be_started_or_given_tools(owner):
    session = make_session(owner.org_id, status=SessionStatus.CANCELLED)
    for path, body in [
        ("/start", {}),
        ("/tools", {"name": "grep"}),
        ("/heartbeat", {}),
        ("/context", {"customState": {}}),
    ]:
        answer = owner.post(f"/agent/sessions/{session.id}{path}", body)
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "SESSION_ENDED", path
    assert snapshot(session)[0] == SessionStatus.CANCELLED


def test_exec_and_writes_on_a_rotating_session_are_refused(owner):
    session = make_session(owner.org_id, status=SessionStatus.ROTATING, current_sandbox_id="sbx_x")
    before = snapshot(session)
    for path, body in [("/exec", {"command": "true"}), ("/files", {"files": [{"path": "a", "content": ""}]})]:
        answer = owner.post(f"/agent/sessions/{session.id}{path}", body)
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "SESSION_ROTATING"
    again = owner.post(f"/agent/sessions/{session.id}/rotate")
    assert again.status_code == 409 and again.json()["error"]["code"] == "SESSION_ROTATING"
    assert snapshot(session) == before
