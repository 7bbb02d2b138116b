"""The share dialog and the recipient's page in a real browser, at a desktop and a phone width:
a labelled link with a note, focus on its copy button once made, copied again later from the list,
and a password-protected page that shows nothing of the file until the password is right."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser.conftest import ConsoleLog, new_context, shoot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WIDTHS = {"desktop": 1280, "phone": 390}
BODY = b"loss,step\n0.9,1\n0.5,2\n"


def no_sideways_scroll(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


@pytest.fixture(scope="module")
def artifact(stack) -> dict:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id, "Content-Type": "text/csv"}
    response = httpx.put(
        stack.base_url + "/api/v1/artifacts",
        params={"remote_path": "runs/a-rather-long-folder-name/evaluation-results-final.csv"},
        content=BODY,
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def make_link(page, stack, artifact, *, label: str, note: str, password: str = "") -> str:
    page.goto(f"{stack.base_url}/artifacts/{artifact['id']}/")
    shares = page.locator("#share-links")
    shares.get_by_label("Label").fill(label)
    shares.get_by_label("Note to the recipient").fill(note)
    shares.get_by_label("Or expires on (UTC)").fill("2099-01-01T00:00")
    shares.get_by_label("Or expires on (UTC)").fill("")
    shares.get_by_label("Expires after").select_option(label="7 days")
    if password:
        shares.get_by_label("Password").fill(password)
    shares.get_by_role("button", name="Create a share link").click()
    copy = page.locator(".share-new-ready").get_by_role("button", name="Copy link")
    copy.wait_for()
    # Focus goes where the person needs it next: the new link's copy button.
    page.wait_for_function("document.activeElement && document.activeElement.id.startsWith('share-copy-')")
    url = page.locator(".share-new-ready input").input_value()
    page.locator("#share-list").get_by_role("row").filter(has_text=label).wait_for()
    return url


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_share_dialog_makes_a_labelled_link_and_copies_it_again(stack, context, artifact, width):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    label = f"For Ana at {width}"
    url = make_link(page, stack, artifact, label=label, note="The numbers we spoke of.")
    assert re.fullmatch(re.escape(stack.base_url) + r"/s/[A-Za-z0-9_\-]{20,}", url), url
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    no_sideways_scroll(page)
    shoot(page, f"share-dialog-{width}")

    # Later, from a fresh load of the page: the list still offers the link to copy.
    page.reload()
    row = page.locator("#share-list").get_by_role("row").filter(has_text=label)
    assert "by " in row.inner_text() and "never" in row.inner_text()
    row.get_by_role("button", name="Copy link").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_recipients_page_asks_for_the_password_first_and_counts_down(stack, browser, context, artifact, width):
    page = context.new_page()
    url = make_link(page, stack, artifact, label=f"locked {width}", note="Only for you, Ana.", password="open sesame")
    console = ConsoleLog()
    recipient = new_context(browser, console)
    try:
        landing = recipient.new_page()
        landing.set_viewport_size({"width": width, "height": 900})
        landing.goto(url)
        text = landing.locator("main").inner_text()
        for hidden in ("evaluation-results-final", "Only for you", "loss,step", "sha256:", "Downloads left"):
            assert hidden not in text, hidden
        assert "Shared by" in text
        no_sideways_scroll(landing)
        shoot(landing, f"share-locked-{width}")

        console.expected.append("status of 403")  # the wrong password's page is a 403
        landing.get_by_label("Password").fill("not the password")
        landing.get_by_role("button", name="Download").click()
        landing.get_by_role("alert").wait_for()
        assert "not right" in landing.get_by_role("alert").inner_text()

        landing.get_by_label("Password").fill("open sesame")
        with landing.expect_download() as downloading:
            landing.get_by_role("button", name="Download").click()
        assert downloading.value.suggested_filename == "evaluation-results-final.csv"
        landing.get_by_role("status").wait_for()
        assert landing.get_by_role("alert").count() == 0
        text = landing.locator("main").inner_text()
        assert "evaluation-results-final.csv" in text and "Only for you, Ana." in text
        assert artifact["checksum"] in text
        # The CSV preview, escaped, as the dashboard shows it.
        assert landing.get_by_role("cell", name="0.9").count() == 1
        no_sideways_scroll(landing)
        shoot(landing, f"share-landing-{width}")
    finally:
        recipient.close()
    assert not console.unexpected(), "\n".join(console.unexpected())


def test_downloads_left_change_after_each_download(stack, browser, context, artifact):
    page = context.new_page()
    page.goto(f"{stack.base_url}/artifacts/{artifact['id']}/")
    shares = page.locator("#share-links")
    shares.get_by_label("Label").fill("twice")
    shares.get_by_label("Download limit").fill("2")
    shares.get_by_role("button", name="Create a share link").click()
    page.locator(".share-new-ready").get_by_role("button", name="Copy link").wait_for()
    url = page.locator(".share-new-ready input").input_value()
    console = ConsoleLog()
    recipient = new_context(browser, console)
    try:
        landing = recipient.new_page()
        landing.goto(url)
        assert landing.locator("#downloads-left").inner_text() == "2"
        with landing.expect_download():
            landing.get_by_role("button", name="Download").click()
        landing.get_by_role("status").wait_for()
        assert landing.locator("#downloads-left").inner_text() == "1"
        with landing.expect_download():
            landing.get_by_role("button", name="Download again").click()
        landing.locator("#downloads-left").filter(has_text="0").wait_for()
        assert "last download" in landing.locator("main").inner_text()
    finally:
        recipient.close()
    assert not console.unexpected(), "\n".join(console.unexpected())
    page.reload()
    row = page.locator("#share-list").get_by_role("row").filter(has_text="twice")
    # Counted, and the last download's time replaces "never".
    assert "2 of 2" in row.inner_text() and "never" not in row.inner_text()
