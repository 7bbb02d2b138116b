"""Retention in a real browser: an agent uploads versions of two files through the API; the owner
opens the retention page, and the preview follows the form as it is filled in (count, bytes, the
oldest versions), refuses a bad prefix in words, and the policy is saved only when asked."""

from __future__ import annotations

import secrets

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
def folder(agent) -> str:
    top = f"nightly-{secrets.token_hex(4)}/"
    for path, count in (("model.bin", 4), ("metrics.json", 2)):
        for n in range(count):
            response = agent.put(
                "/artifacts", params={"remote_path": top + path}, content=f"{path} version {n + 1}\n".encode() * 100
            )
            assert response.status_code == 201, response.text
    return top


def test_the_preview_follows_the_form_before_the_policy_is_saved(stack, page, agent, folder):
    page.goto(stack.base_url + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Retention", exact=True).click()
    page.wait_for_url("**/retention/")
    page.get_by_text("No retention policies yet").wait_for()
    page.get_by_text("Choose a rule and N").wait_for()

    page.get_by_label("Rule").select_option("keep_last")
    page.get_by_label("N", exact=True).fill("1")
    page.get_by_label("Only under this remote_path prefix").fill(folder)
    summary = page.locator("#preview-summary")
    summary.get_by_text("would remove 4 versions").wait_for()
    sample = page.locator("#preview-sample tbody tr")
    assert sample.count() == 4
    assert all(folder in row for row in sample.all_inner_texts())
    assert "v1" in sample.first.inner_text() and "model.bin" in sample.first.inner_text()
    shoot(page, "retention-preview")

    page.get_by_label("N", exact=True).fill("3")
    summary.get_by_text("would remove 1 version ").wait_for()
    assert page.locator("#preview-sample tbody tr").count() == 1

    page.get_by_label("Only under this remote_path prefix").fill(folder + "../elsewhere/")
    page.locator("#preview-refused").get_by_text("'..' segments").wait_for()
    assert agent.get("/retention-policies").json() == {"retention_policies": []}

    page.get_by_label("Only under this remote_path prefix").fill(folder)
    summary.get_by_text("would remove 1 version ").wait_for()
    page.get_by_label("Name").fill("keep three")
    page.get_by_role("button", name="Save policy").click()
    page.get_by_text("The policy “keep three” is saved").wait_for()
    row = page.locator("#policy-table tbody tr").first
    assert "keep the last 3 versions of each path under " + folder in row.inner_text()
    shoot(page, "retention")
    [policy] = agent.get("/retention-policies").json()["retention_policies"]
    assert (policy["kind"], policy["value"], policy["prefix"]) == ("keep_last", 3, folder)
    # Saving removed nothing: the run is the periodic task's.
    listed = agent.get("/artifacts", params={"prefix": folder, "limit": 50}).json()["artifacts"]
    assert len(listed) == 6

    row.get_by_role("button", name="Delete keep three").click()
    page.get_by_text("No retention policies yet").wait_for()
