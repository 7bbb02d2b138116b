"""Versions in a real browser against the whole stack: an agent uploads three versions of a
file through the API; the owner compares two of them (metadata changes, the diff shown as
text, never as markup) and moves an alias from one version to another."""

from __future__ import annotations

import json
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
def versions(agent) -> list[dict]:
    remote_path = f"browser-{secrets.token_hex(4)}/config.txt"
    bodies = [
        ("threshold = 0.5\nmode = fast\n", {"run": "1", "owner": "ci"}),
        ("threshold = 0.7\nmode = fast\n<script>document.title = 'pwned'</script>\n", {"run": "2", "stage": "eval"}),
        ("threshold = 0.9\nmode = careful\n", {"run": "3"}),
    ]
    made = []
    for text, metadata in bodies:
        response = agent.put(
            "/artifacts",
            params={"remote_path": remote_path},
            content=text.encode(),
            headers={"Content-Type": "text/plain", "X-Artifact-Metadata": json.dumps(metadata)},
        )
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


def test_compare_two_versions(stack, page, versions):
    v1, v2, _v3 = versions
    page.goto(stack.base_url + f"/artifacts/{v2['id']}/")
    page.get_by_role("link", name="Compare v2 with v1").click()
    page.wait_for_url(f"**/artifacts/{v2['id']}/compare/?against={v1['id']}")
    result = page.locator("#compare-result")
    assert "From v1 to v2" in result.get_by_role("heading").first.inner_text()
    metadata = page.locator("#compare-metadata").inner_text()
    assert "stage" in metadata and "added" in metadata and "owner" in metadata and "removed" in metadata
    diff = page.locator("#compare-text")
    assert "-threshold = 0.5" in diff.inner_text() and "+threshold = 0.7" in diff.inner_text()
    # The markup in the file is text on the page: shown, never run.
    assert "+<script>document.title = 'pwned'</script>" in diff.inner_text()
    assert diff.locator("script").count() == 0 and page.title() != "pwned"
    shoot(page, "artifact-compare")
    # Another version picked in the form swaps the result in place, and the address follows it.
    page.get_by_label("Another version of this path").select_option(label="v3")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare/?against=*")
    page.locator("#compare-result", has_text="From v3 to v2").wait_for()
    assert "-mode = careful" in page.locator("#compare-text").inner_text()


def test_move_an_alias_between_versions(stack, page, agent, versions):
    v1, v2, v3 = versions
    page.goto(stack.base_url + f"/artifacts/{v3['id']}/")
    aliases = page.locator("#aliases")
    assert "No aliases on this path yet" in aliases.inner_text()
    page.get_by_label("Alias", exact=True).fill("production")
    page.get_by_label("On version").select_option(label="v1")
    page.get_by_role("button", name="Set or move the alias").click()
    page.locator("#alias-list", has_text="production").wait_for()
    assert "v1" in page.locator("#alias-list").inner_text()
    assert "production" in page.locator("#version-1").inner_text()
    assert "latest" in page.locator("#version-3").inner_text()
    by_path = agent.get("/artifacts/by-path", params={"remote_path": v1["remote_path"], "alias": "production"})
    assert by_path.json()["id"] == v1["id"]

    page.get_by_label("Alias", exact=True).fill("production")
    page.get_by_label("On version").select_option(label="v2")
    page.get_by_role("button", name="Set or move the alias").click()
    page.locator("#version-2", has_text="production").wait_for()
    assert "production" not in page.locator("#version-1").inner_text()
    shoot(page, "artifact-aliases")
    by_path = agent.get("/artifacts/by-path", params={"remote_path": v1["remote_path"], "alias": "production"})
    assert by_path.json()["id"] == v2["id"]
    assert by_path.json()["aliases"] == ["production"]

    # A reload shows the same, from the server.
    page.reload()
    assert "production" in page.locator("#version-2").inner_text()
    page.get_by_role("button", name="Remove the alias production").click()
    page.locator("#aliases", has_text="No aliases on this path yet").wait_for()
    assert agent.get(f"/artifacts/{v2['id']}").json()["aliases"] == []
