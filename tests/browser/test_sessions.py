"""The agent sessions pages in a real browser against the whole stack: an agent (the API) works
in a session and rotates it; the owner finds it in the list, reads its page (status, budget,
timeline, sandboxes across the rotation, artifacts linked to their lineage) and pauses it."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.browser.conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def agent(stack) -> httpx.Client:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    with httpx.Client(base_url=stack.base_url + "/api/v1", headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def session(agent) -> dict:
    made = agent.post(
        "/agent/sessions", json={"name": "browser session", "budget": {"iterationLimit": 10, "costCapCents": 300}}
    ).json()
    sid = made["id"]
    first = agent.post(f"/agent/sessions/{sid}/start").json()["current_sandbox_id"]
    content = base64.b64encode(b"# Findings\n").decode()
    agent.post(f"/agent/sessions/{sid}/files", json={"files": [{"path": "findings.md", "content": content}]})
    agent.post(f"/agent/sessions/{sid}/exec", json={"command": "wc -c findings.md"})
    agent.post(f"/agent/sessions/{sid}/artifacts/upload", json={"path": "/workspace/findings.md"})
    assert agent.post(f"/agent/sessions/{sid}/rotate").status_code == 202
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = agent.get(f"/agent/sessions/{sid}").json()
        # Moved on, and recorded: the worker writes the rotation's events just after it moves the session.
        done = agent.get(f"/agent/sessions/{sid}/events", params={"event_type": "rotation_completed"}).json()["events"]
        if now["rotation_count"] == 1 and now["status"] == "running" and done:
            break
        time.sleep(0.5)
    assert now["current_sandbox_id"] != first
    return {**now, "first_sandbox_id": first}


def test_the_session_page_shows_its_life(stack, page, session):
    page.goto(stack.base_url + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agent sessions").click()
    page.wait_for_url("**/sessions/")
    page.get_by_role("link", name="browser session").click()
    page.wait_for_url(f"**/sessions/{session['id']}/")
    assert page.get_by_role("heading", name="browser session").is_visible()
    status = page.locator("#session-status")
    assert "Running" in status.inner_text() and session["current_sandbox_id"] in status.inner_text()
    budget = page.get_by_role("region", name="Budget")
    assert "10" in budget.inner_text() and "(10%)" in budget.inner_text()
    timeline = page.locator("#timeline").inner_text()
    for kind in ("session_started", "exec_completed", "rotation_started", "checkpoint_created", "rotation_completed"):
        assert kind in timeline, kind
    sandboxes = page.locator("#session-sandboxes").inner_text()
    assert session["first_sandbox_id"] in sandboxes and session["current_sandbox_id"] in sandboxes
    artifacts = page.locator("#session-artifacts")
    assert "findings.md" in artifacts.inner_text()
    shoot(page, "session-detail")
    artifacts.get_by_role("link", name="findings.md").click()
    page.wait_for_url("**/artifacts/**")
    lineage = page.get_by_role("region", name="Lineage").inner_text()
    assert session["id"] in lineage and session["first_sandbox_id"] in lineage


def test_the_owner_pauses_and_resumes_the_session(stack, page, session):
    page.goto(stack.base_url + f"/sessions/{session['id']}/")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_load_state("load")
    assert "Paused" in page.locator("#session-status").inner_text()
    page.get_by_role("button", name="Resume").click()
    page.wait_for_load_state("load")
    assert "Running" in page.locator("#session-status").inner_text()
    page.goto(stack.base_url + "/sessions/")
    assert page.get_by_role("link", name="browser session").is_visible()
    shoot(page, "sessions")
