"""The sessions list and a session's page, as each role, a stranger and anonymous see them."""

from __future__ import annotations

import pytest

from agents.models import AgentEvent, AgentSession, SessionStatus
from artifacts.models import Artifact
from tests.factories import make_artifact, make_sandbox, make_session


@pytest.fixture
def session(dashboard) -> AgentSession:
    made = make_session(dashboard.org_id, name="nightly refactor", iteration_limit=20, exec_count=5)
    box = make_sandbox(dashboard.org_id, session_id=made.id)
    AgentSession.objects.filter(id=made.id).update(current_sandbox_id=box.id, last_sequence=1)
    AgentEvent.objects.create(session=made, sequence_number=1, event_type="session_started", sandbox_id=box.id)
    report = make_artifact(dashboard.org_id, box, "out/report.md")
    Artifact.objects.filter(id=report.id).update(session_id=made.id)
    made.refresh_from_db()
    return made


def test_the_list_shows_sessions_to_every_role(dashboard, session, django_assert_max_num_queries):
    for client in dashboard.by_role().values():
        response = client.get("/sessions/")
        assert response.status_code == 200
        assert b"nightly refactor" in response.content
    with django_assert_max_num_queries(12):
        dashboard.viewer.get("/sessions/")


def test_the_session_page_shows_budget_timeline_sandboxes_and_artifacts(dashboard, session):
    page = dashboard.member.get(f"/sessions/{session.id}/").content.decode()
    assert '5 <span class="muted">(25%)</span>' in page
    assert "session_started" in page
    assert session.current_sandbox_id in page
    assert "out/report.md" in page and "#lineage-heading" in page
    assert "Cost is not metered yet" in page


def test_a_stranger_and_anonymous_cannot_see_a_session(dashboard, session):
    assert dashboard.stranger.get(f"/sessions/{session.id}/").status_code == 404
    assert b"nightly refactor" not in dashboard.stranger.get("/sessions/").content
    assert dashboard.anonymous.get(f"/sessions/{session.id}/").status_code == 302


def test_a_viewer_cannot_act_on_a_session(dashboard, session):
    assert dashboard.viewer.post(f"/sessions/{session.id}/pause/").status_code == 404
    assert AgentSession.objects.get(id=session.id).status == SessionStatus.RUNNING


def test_a_member_pauses_and_resumes_a_session(dashboard, session):
    assert dashboard.member.post(f"/sessions/{session.id}/pause/").status_code == 302
    assert AgentSession.objects.get(id=session.id).status == SessionStatus.PAUSED
    assert dashboard.member.post(f"/sessions/{session.id}/resume/").status_code == 302
    assert AgentSession.objects.get(id=session.id).status == SessionStatus.RUNNING
    assert dashboard.member.post(f"/sessions/{session.id}/explode/").status_code == 404


def test_the_status_fragment_polls_only_while_the_session_moves(dashboard, session):
    fragment = dashboard.member.get(f"/sessions/{session.id}/", headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    AgentSession.objects.filter(id=session.id).update(status=SessionStatus.ROTATING)
    moving = dashboard.member.get(f"/sessions/{session.id}/", headers={"HX-Request": "true"})
    assert moving.status_code == 200 and b'hx-trigger="every 1s"' in moving.content
