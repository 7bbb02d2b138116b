"""The usage page in a real browser: charts with their tables, quota use, the largest artifacts,
the staff page of every organization, and the artifact list sorted and filtered by downloads.
Every page is saved under docs/screenshots/."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.browser.conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def agent(stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    with httpx.Client(base_url=stack.base_url + "/api/v1", headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def stored(stack, agent) -> dict[str, dict]:
    """A few artifacts under three prefixes and two content types; one downloaded twice."""
    tag = secrets.token_hex(3)
    files = {
        "model": (f"models-{tag}/weights.bin", b"w" * 300_000, "application/octet-stream"),
        "report": (f"reports-{tag}/q1.csv", b"r" * 40_000, "text/csv"),
        "log": (f"logs-{tag}/run.txt", b"l" * 2_000, "text/plain"),
    }
    made = {}
    for name, (remote_path, body, content_type) in files.items():
        response = agent.put(
            "/artifacts", params={"remote_path": remote_path}, content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 201, response.text
        made[name] = response.json()
    for _ in range(2):
        assert agent.get(f"/artifacts/{made['report']['id']}/content").status_code == 200
    stack.manage("usage_snapshot")
    return made


def test_the_usage_page_draws_each_chart_beside_its_table(stack, page, stored):
    page.goto(stack.base_url + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage", exact=True).click()
    page.wait_for_url("**/usage/")
    page.get_by_role("heading", name="Usage", exact=True).wait_for()
    for name in ("Stored bytes by day", "Bytes by top-level path prefix", "Bytes by sandbox", "Bytes by content type"):
        assert page.get_by_role("img", name=name).is_visible(), name
        assert page.get_by_role("table", name=name).is_visible(), name
    prefixes = page.get_by_role("table", name="Bytes by top-level path prefix")
    rows = prefixes.locator("tbody tr").all_inner_texts()
    model_prefix = stored["model"]["remote_path"].split("/")[0] + "/"
    assert rows[0].startswith(model_prefix), rows
    bars = page.locator("#prefixes-chart rect")
    assert bars.count() == len(rows)
    widths = [float(bars.nth(i).get_attribute("width")) for i in range(bars.count())]
    assert widths[0] == max(widths) > 0
    types = page.get_by_role("table", name="Bytes by content type").inner_text()
    assert "text/csv" in types and "text/plain" in types
    largest = page.get_by_role("table", name="The largest artifacts, largest first")
    assert largest.locator("tbody tr").first.inner_text().startswith(stored["model"]["remote_path"])
    quotas = page.get_by_role("table", name="Quota use").inner_text()
    assert "Stored bytes" in quotas and "Artifacts" in quotas
    history = page.get_by_role("table", name="Stored bytes by day").locator("tbody tr")
    assert history.count() >= 1
    shoot(page, "usage")


def test_the_usage_page_reads_well_on_a_narrow_screen(stack, page, stored):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(stack.base_url + "/usage/")
    chart = page.locator("#types-chart")
    table = page.locator("#types-table")
    # The table wraps under its chart instead of squeezing beside it.
    assert table.bounding_box()["y"] >= chart.bounding_box()["y"] + chart.bounding_box()["height"] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    shoot(page, "usage-narrow")


def test_staff_see_every_organization_side_by_side(stack, page, stored):
    page.goto(stack.base_url + "/usage/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="All usage").click()
    page.wait_for_url("**/usage/all/")
    table = page.get_by_role("table", name="Every organization's usage, by name")
    row = table.locator(f"#usage-{stack.org_id}")
    assert row.is_visible()
    assert "KB" in row.inner_text()
    shoot(page, "usage-all")


def test_the_artifact_list_sorts_by_downloads_and_filters_the_undownloaded(stack, page, stored):
    page.goto(stack.base_url + "/artifacts/")
    page.get_by_label("Sort").select_option("downloads")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**sort=downloads**")
    first = page.locator("table.artifact-table tbody tr").first
    assert first.inner_text().startswith(stored["report"]["remote_path"])
    assert "2 downloads, last" in first.inner_text()
    page.locator("summary", has_text="Filters").click()
    page.get_by_label("Not downloaded in 30 days").check()
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**stale=on**")
    listed = page.locator("table.artifact-table tbody").inner_text()
    assert stored["report"]["remote_path"] not in listed and stored["model"]["remote_path"] in listed
    shoot(page, "artifacts-not-downloaded")
