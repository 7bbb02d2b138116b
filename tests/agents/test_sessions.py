"""Agent sessions through the API against a real worker: their life, commands, files, events,
rotation, budgets, and another organization's session being a 404 everywhere."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentEvent, AgentSession, Rotation, RotationState
from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from sandboxes.models import Sandbox, SandboxStatus

pytestmark = pytest.mark.worker


def started(owner, **body) -> dict:
    made = owner.post("/agent/sessions", {"name": "research", "sandbox": {"timeoutSeconds": 600}, **body})
    assert made.status_code == 201, made.content
    answer = owner.post(f"/agent/sessions/{made.json()['id']}/start")
    assert answer.status_code == 200, answer.content
    return answer.json()


def wait_for_rotation(session_id: str, timeout: float = 90) -> Rotation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rotation = Rotation.objects.filter(session_id=session_id).order_by("-created_at").first()
        # Finished, and recorded: the worker writes the rotation's events, then its audit event,
        # after it marks the rotation finished.
        if (
            rotation
            and rotation.state in (RotationState.COMPLETED, RotationState.FAILED)
            and AuditEvent.objects.filter(action="session.rotate", details__rotation_id=rotation.id).exists()
        ):
            return rotation
        time.sleep(0.25)
    raise AssertionError("the rotation did not finish")


def event_types(owner, session_id: str) -> list[str]:
    return [e["event_type"] for e in owner.get(f"/agent/sessions/{session_id}/events").json()["events"]]


def test_a_session_starts_runs_commands_and_stops(owner, live):
    session = started(owner, budget={"iterationLimit": 10})
    assert session["status"] == "running"
    sandbox = Sandbox.objects.get(id=session["current_sandbox_id"])
    assert sandbox.session_id == session["id"] and sandbox.status == SandboxStatus.RUNNING
    ran = owner.post(f"/agent/sessions/{session['id']}/exec", {"command": "echo hi; pwd", "timeoutMs": 10000})
    assert ran.status_code == 200, ran.content
    assert ran.json()["result"]["stdout"] == "hi\n/workspace\n"
    assert ran.json()["budget_consumed"]["iterations"] == 1
    stopped = owner.post(f"/agent/sessions/{session['id']}/stop", {"reason": "done"})
    assert stopped.json() == {"success": True}
    row = AgentSession.objects.get(id=session["id"])
    assert row.status == "completed" and row.completed_at is not None
    assert event_types(owner, session["id"]) == [
        "session_started",
        "sandbox_created",
        "exec_completed",
        "sandbox_terminated",
        "session_completed",
    ]
    actions = list(AuditEvent.objects.filter(session_id=session["id"]).order_by("seq").values_list("action", flat=True))
    assert actions[:1] == ["session.create"] and "session.start" in actions and "session.stop" in actions


def test_a_rotation_keeps_the_files_context_and_artifacts(owner, live):
    session = started(owner)
    sid = session["id"]
    content = base64.b64encode(b"kept across the move\n").decode()
    assert (
        owner.post(
            f"/agent/sessions/{sid}/files", {"files": [{"path": "notes/plan.md", "content": content}]}
        ).status_code
        == 200
    )
    assert (
        owner.post(
            f"/agent/sessions/{sid}/context", {"workingDir": "/workspace/notes", "envVars": {"STEP": "2"}}
        ).status_code
        == 200
    )
    uploaded = owner.post(f"/agent/sessions/{sid}/artifacts/upload", {"path": "/workspace/notes/plan.md"})
    assert uploaded.status_code == 200, uploaded.content
    old_sandbox = session["current_sandbox_id"]
    asked = owner.post(f"/agent/sessions/{sid}/rotate")
    assert asked.status_code == 202, asked.content
    rotation = wait_for_rotation(sid)
    assert rotation.state == RotationState.COMPLETED, rotation.error_message
    moved = owner.get(f"/agent/sessions/{sid}").json()
    assert moved["status"] == "running" and moved["rotation_count"] == 1
    assert moved["current_sandbox_id"] != old_sandbox
    assert moved["agent_context"]["last_sandbox_id"] == old_sandbox
    ran = owner.post(f"/agent/sessions/{sid}/exec", {"command": 'cat plan.md; echo "$STEP"'}).json()["result"]
    assert ran["stdout"] == "kept across the move\n2\n"
    listed = owner.get("/artifacts", {"session_id": sid}).json()["artifacts"]
    assert {a["id"] for a in listed} == {uploaded.json()["id"], moved["agent_context"]["last_checkpoint_id"]}
    types = event_types(owner, sid)
    for wanted in ("rotation_started", "checkpoint_created", "checkpoint_restored", "rotation_completed"):
        assert wanted in types
    deadline = time.monotonic() + 30
    while Sandbox.objects.get(id=old_sandbox).status != SandboxStatus.TERMINATED and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Sandbox.objects.get(id=old_sandbox).status == SandboxStatus.TERMINATED
    assert Artifact.objects.get(id=rotation.artifact_id).state == ArtifactState.READY
    assert AuditEvent.objects.filter(session_id=sid, action="session.rotate", outcome="success").count() == 1


def test_events_are_numbered_and_paged(owner, live):
    session = started(owner)
    events = AgentEvent.objects.filter(session_id=session["id"]).order_by("sequence_number")
    assert [e.sequence_number for e in events] == [1, 2]
    page = owner.get(f"/agent/sessions/{session['id']}/events", {"afterSequence": 1, "limit": 5}).json()
    assert [e["sequence_number"] for e in page["events"]] == [2]
    assert page["latest_sequence"] == 2 and page["has_more"] is False


def test_a_retried_exec_with_an_idempotency_key_runs_once(owner, live):
    session = started(owner)
    body = {"command": "echo once >> count.txt; wc -l < count.txt"}
    first = owner.post(f"/agent/sessions/{session['id']}/exec", body, **{"Idempotency-Key": "exec-1"})
    retry = owner.post(f"/agent/sessions/{session['id']}/exec", body, **{"Idempotency-Key": "exec-1"})
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(action="command.execute", session_id=session["id"]).count() == 1
    assert AgentSession.objects.get(id=session["id"]).exec_count == 1


def test_a_retried_sandbox_create_with_an_idempotency_key_makes_one_sandbox(owner, live):
    first = owner.post("/sandbox/create", {"timeout_seconds": 300}, **{"Idempotency-Key": "create-1"})
    retry = owner.post("/sandbox/create", {"timeout_seconds": 300}, **{"Idempotency-Key": "create-1"})
    assert first.status_code == retry.status_code == 201
    assert first.json()["sandbox_id"] == retry.json()["sandbox_id"]
    assert Sandbox.objects.filter(organization_id=owner.org_id).count() == 1
    assert AuditEvent.objects.filter(action="sandbox.create", organization_id=owner.org_id).count() == 1


def test_the_iteration_budget_stops_commands(owner, live):
    session = started(owner, budget={"iterationLimit": 2, "costCapCents": 500})
    path = f"/agent/sessions/{session['id']}/exec"
    assert [owner.post(path, {"command": "true"}).status_code for _ in range(3)] == [200, 200, 409]
    fetched = owner.get(f"/agent/sessions/{session['id']}").json()
    assert fetched["budget_consumed"]["iterations"] == fetched["total_exec_count"] == 2
    assert fetched["budget_config"] == {"cost_cap_cents": 500, "iteration_limit": 2, "duration_limit_seconds": None}
    assert AuditEvent.objects.filter(action="command.execute", session_id=session["id"]).count() == 2
    assert "budget_exceeded" in event_types(owner, session["id"])


def test_a_failed_rotation_leaves_the_session_on_its_sandbox(owner, live):
    session = started(owner)
    sid, sandbox_id = session["id"], session["current_sandbox_id"]
    # More than the worker's artifact limit (tests/conftest.py), and random so it does not compress.
    made = owner.post(f"/agent/sessions/{sid}/exec", {"command": "head -c 22000000 /dev/urandom > big.bin"})
    assert made.json()["result"]["exit_code"] == 0
    assert owner.post(f"/agent/sessions/{sid}/rotate").status_code == 202
    rotation = wait_for_rotation(sid)
    assert rotation.state == RotationState.FAILED and rotation.new_sandbox_id == ""
    after = owner.get(f"/agent/sessions/{sid}").json()
    assert (after["status"], after["current_sandbox_id"], after["rotation_count"]) == ("running", sandbox_id, 0)
    assert after["error_message"].startswith("rotation failed")
    assert (
        owner.post(f"/agent/sessions/{sid}/exec", {"command": "ls big.bin"}).json()["result"]["stdout"] == "big.bin\n"
    )
    assert event_types(owner, sid)[-2:] == ["rotation_failed", "exec_completed"]
    assert AuditEvent.objects.get(session_id=sid, action="session.rotate").outcome == "failure"


def test_the_sweep_rotates_a_session_whose_sandbox_nears_its_end(owner, live):
    from agents.worker import rotate_expiring

    near = started(owner, sandbox={"timeoutSeconds": 120}, rotation={"preRotateBufferSeconds": 100})
    far = started(owner, sandbox={"timeoutSeconds": 600}, rotation={"preRotateBufferSeconds": 60})
    # As if 30 seconds of its life were left.
    Sandbox.objects.filter(id=near["current_sandbox_id"]).update(expires_at=timezone.now() + timedelta(seconds=30))
    assert rotate_expiring() == 1
    rotation = wait_for_rotation(near["id"])
    assert (rotation.reason, rotation.state) == ("expiring", RotationState.COMPLETED)
    assert not Rotation.objects.filter(session_id=far["id"]).exists()
    moved = AgentSession.objects.get(id=near["id"])
    assert moved.current_sandbox_id != near["current_sandbox_id"] and moved.status == "running"


def test_a_rotation_that_never_finished_is_given_up(owner, db):
    from agents.worker import rotations_recover
    from tests.factories import make_sandbox, make_session

    old = make_sandbox(owner.org_id)
    session = make_session(owner.org_id, status="rotating", current_sandbox_id=old.id)
    old.session_id = session.id
    old.save()
    lost = Rotation.objects.create(
        session=session,
        reason="expiring",
        state=RotationState.RUNNING,
        resume_status="running",
        old_sandbox_id=old.id,
        created_at=timezone.now() - timedelta(hours=2),
    )
    assert rotations_recover() == 1
    assert Rotation.objects.get(id=lost.id).state == RotationState.FAILED
    kept = AgentSession.objects.get(id=session.id)
    assert (kept.status, kept.current_sandbox_id, kept.error_code) == ("running", old.id, "ROTATION_LOST")
    assert rotations_recover() == 0
