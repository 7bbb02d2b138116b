"""Every dashboard page at a desktop and a phone width, in a real browser against the whole
stack: no page scrolls sideways, tables become labelled cards and the navigation folds behind a
menu button at 390 px; the row actions of the folder view and the list (download, a copied
presigned link that downloads the file, share); the total above a listing; characters that
reorder text made visible. The pages are listed once, in tests/browser/pages.py."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from config.stack import free_port
from tests.browser.conftest import ConsoleLog, new_context
from tests.browser.pages import PAGES, Made

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WIDTHS = {"desktop": 1280, "phone": 390}
LONG_FOLDER = "runs/2026-11-30/an-experiment-whose-name-is-much-longer-than-a-phone-is-wide/"
LONG_PATH = LONG_FOLDER + "evaluation-results-of-the-final-checkpoint.csv"
BIDI_PATH = "invoices/report\u202efdp.exe"
BODY = b"step,loss\n1,0.9\n2,0.4\n"
BULK = 55


def _put(api: httpx.Client, remote_path: str, body: bytes, metadata: dict[str, str] | None = None) -> dict:
    headers = {"Content-Type": "text/csv"}
    if metadata:
        headers["X-Artifact-Metadata"] = json.dumps(metadata)
    made = api.put("/artifacts", params={"remote_path": remote_path}, content=body, headers=headers)
    assert made.status_code == 201, made.text
    return made.json()


def _b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def _folder_from_a_sandbox(api: httpx.Client) -> tuple[str, str]:
    sandbox = api.post("/sandbox/create", json={"timeout_seconds": 900})
    assert sandbox.status_code in (200, 201), sandbox.text
    sandbox_id = sandbox.json()["sandbox_id"]
    files = [
        {"path": "/workspace/site/notes.txt", "content": base64.b64encode(b"Notes\n").decode()},
        {"path": "/workspace/site/data/a-rather-long-file-name-for-a-narrow-screen.csv", "content": _b64(BODY)},
    ]
    wrote = api.post(f"/sandbox/{sandbox_id}/files", json={"files": files})
    assert wrote.status_code in (200, 201), wrote.text
    upload = api.post(
        f"/sandbox/{sandbox_id}/artifacts/upload", json={"path": "/workspace/site", "remote_path": "sites/site"}
    )
    assert upload.status_code in (200, 201), upload.text
    return sandbox_id, upload.json()["id"]


def _paused_webhook(api: httpx.Client) -> str:
    """A webhook to a loopback port nothing listens on, disabled at once: it never sends."""
    url = f"http://127.0.0.1:{free_port()}/a-receiver-path-long-enough-to-wrap-on-a-phone"
    made = api.post("/webhooks", json={"url": url, "events": ["artifact.uploaded"]})
    assert made.status_code == 201, made.text
    webhook_id = made.json()["id"]
    assert api.post(f"/webhooks/{webhook_id}/disable").status_code == 200
    return webhook_id


@pytest.fixture(scope="module")
def made(stack) -> Made:
    headers = {"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id}
    with httpx.Client(base_url=stack.base_url + "/api/v1", headers=headers, timeout=120) as api:
        older = _put(api, LONG_PATH, BODY, {"run": "1"})
        newer = _put(api, LONG_PATH, BODY + b"3,0.2\n", {"run": "2", "checkpoint": "sha-0123456789abcdef0123456789"})
        for i in range(3):
            _put(api, f"{LONG_FOLDER}more-{i}.csv", BODY + str(i).encode())
        # More than a page (50) of them, for "Load more".
        for i in range(BULK):
            _put(api, f"bulk/{i:03d}.txt", str(i).encode())
        # Something in the trash, for its page.
        doomed = _put(api, LONG_FOLDER + "deleted-by-mistake.csv", BODY + b"4,0.1\n")
        assert api.delete(f"/artifacts/{doomed['id']}").status_code in (200, 204)
        _put(api, BIDI_PATH, b"MZ", {"note\u2066": "paid\u202e"})
        sandbox_id, folder_id = _folder_from_a_sandbox(api)
        session = api.post("/agent/sessions", json={"name": "A session with a long name for a phone"})
        assert session.status_code in (200, 201), session.text
        share = api.post(f"/artifacts/{newer['id']}/shares", json={"label": "For Ana", "note": "The numbers."})
        assert share.status_code == 201, share.text
        webhook_id = _paused_webhook(api)
    # The instance's pages (organizations, the security log) are for staff.
    stack.manage("staff", "promote", stack.username)
    return Made(
        artifact_id=newer["id"],
        older_version_id=older["id"],
        folder_id=folder_id,
        sandbox_id=sandbox_id,
        session_id=session.json()["id"],
        share_id=share.json()["id"],
        share_url=share.json()["url"],
        folder_path=LONG_FOLDER,
        extra={"webhook_id": webhook_id},
    )


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def settle(page) -> None:
    page.wait_for_load_state("load")
    try:
        page.wait_for_load_state("networkidle", timeout=3_000)
    except Exception:  # playwright's TimeoutError: a page that polls never goes quiet
        pass


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_no_page_scrolls_sideways(stack, browser, context, made, width):
    console = ConsoleLog()
    signed_out = new_context(browser, console)
    try:
        wide: list[str] = []
        for entry in PAGES:
            url = entry.path(made)
            tab = (signed_out if entry.anonymous else context).new_page()
            tab.set_viewport_size({"width": width, "height": 900})
            response = tab.goto(url if url.startswith("http") else stack.base_url + url)
            assert response is not None and response.status == 200, f"{entry.name}: {url} answered {response.status}"
            settle(tab)
            if overflow(tab) > 0:
                wide.append(f"{entry.name} ({url}) by {overflow(tab)}px")
            tab.close()
        assert not wide, f"pages that scroll sideways at {width}px: " + ", ".join(wide)
    finally:
        signed_out.close()
    assert not console.unexpected(), "\n".join(console.unexpected())


def test_at_390px_tables_are_labelled_cards_and_the_menu_folds(stack, context, made):
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(stack.base_url + "/artifacts/")
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    assert menu.is_visible() and menu.get_attribute("aria-expanded") == "false"
    assert not nav.is_visible()
    menu.focus()
    page.keyboard.press("Enter")
    assert menu.get_attribute("aria-expanded") == "true" and nav.is_visible()
    # The first link takes the focus; Escape folds the menu and gives it back to the button.
    assert page.evaluate("document.activeElement.textContent") == "Home"
    page.keyboard.press("Escape")
    assert not nav.is_visible() and page.evaluate("document.activeElement.className") == "menu-toggle"

    cell = page.locator("#artifact-results tbody td[data-label='Size']").first
    assert cell.evaluate("td => getComputedStyle(td).display") == "flex"
    assert cell.evaluate("td => getComputedStyle(td, '::before').content") == '"Size"'
    head = page.locator("#artifact-results thead")
    # Kept for screen readers, out of sight.
    assert head.evaluate("el => el.getBoundingClientRect().height") <= 1
    # Every cell of every table of the page is labelled with its column's name.
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('table.stack tbody td:not([data-label]):not([colspan])')].length"
    )
    assert unlabelled == 0

    page.set_viewport_size({"width": 1280, "height": 900})
    assert nav.is_visible() and not menu.is_visible()
    assert head.evaluate("el => el.getBoundingClientRect().height") > 10


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_folder_views_copy_link_gives_a_url_that_downloads_the_file(stack, browser, context, made, width):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{stack.base_url}/artifacts/folders/?path={LONG_FOLDER}")
    total = page.locator("#folder-total").inner_text()
    assert total.startswith("5 artifacts (every version)"), total
    row = page.get_by_role("row").filter(has_text="evaluation-results-of-the-final-checkpoint.csv")
    row.get_by_role("button", name="Copy link").click()
    row.get_by_role("status").filter(has_text="Link copied").wait_for()
    url = page.evaluate("navigator.clipboard.readText()")
    assert url.startswith(stack.base_url + "/dl/"), url
    assert row.get_by_label("Presigned link").input_value() == url
    assert overflow(page) <= 0
    # Anyone holding it, signed in or not, gets the newest version's bytes.
    downloaded = httpx.get(url, timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == BODY + b"3,0.2\n"

    with page.expect_download() as downloading:
        row.get_by_role("link", name="Download").click()
    assert downloading.value.suggested_filename == "evaluation-results-of-the-final-checkpoint.csv"

    row.get_by_role("link", name="Share").click()
    page.wait_for_url(re.compile(rf"/artifacts/{made.artifact_id}/#share-links$"))
    # The share dialog is open for it, its first field focused.
    page.wait_for_function("() => document.activeElement && document.activeElement.name === 'label'")
    assert overflow(page) <= 0


def test_the_lists_copy_link_falls_back_to_a_selected_field_without_the_clipboard(stack, context, made):
    context.clear_permissions()
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 900})
    page.add_init_script(
        "Object.defineProperty(navigator, 'clipboard', {value: {writeText: () => Promise.reject(new Error('refused'))}})"
    )
    page.goto(stack.base_url + "/artifacts/?q=evaluation")
    assert "match this search" in page.locator("#artifact-total").inner_text()
    row = page.get_by_role("row").filter(has_text="v2").filter(has_text="evaluation-results")
    row.get_by_role("button", name="Copy link").click()
    row.get_by_role("status").filter(has_text="Copy the link from the field").wait_for()
    field = row.get_by_label("Presigned link")
    assert page.evaluate("document.activeElement.id") == field.get_attribute("id")
    assert field.input_value().startswith(stack.base_url + "/dl/")
    selected = field.evaluate("el => el.value.substring(el.selectionStart, el.selectionEnd)")
    assert selected == field.input_value()
    assert overflow(page) <= 0


def test_load_more_moves_the_focus_to_the_first_new_row(stack, context, made):
    page = context.new_page()
    page.goto(stack.base_url + "/artifacts/?path=bulk/&sort=name")
    assert page.locator("#artifact-total").inner_text() == f"{BULK} artifacts match this search."
    assert page.locator("#artifact-results tbody a.path").count() == 50
    page.get_by_role("link", name="Load more").click()
    page.locator("#artifact-results tbody a.path").nth(50).wait_for()
    page.wait_for_function("() => document.activeElement && document.activeElement.textContent === 'bulk/050.txt'")


def test_characters_that_reorder_text_are_shown_not_obeyed(stack, context, made):
    page = context.new_page()
    page.goto(stack.base_url + "/artifacts/?q=invoices")
    link = page.locator("#artifact-results a.path").filter(has_text="invoices/")
    assert link.inner_text() == "invoices/report<U+202E>fdp.exe"
    assert link.locator(".bidi-control").count() == 1
    assert "\u202e" not in page.locator("#artifact-results").inner_html()
    chips = page.locator("#artifact-results .chip").filter(has_text="paid").inner_text()
    assert chips == "note<U+2066>=paid<U+202E>"
    page.goto(stack.base_url + "/artifacts/folders/?path=invoices/")
    shown = page.locator("#folder-results a.path").first
    assert shown.inner_text() == "report<U+202E>fdp.exe"
    shown.click()
    page.wait_for_url(re.compile(r"/artifacts/art_[0-9a-z]+/$"))
    assert page.title().startswith("report<U+202E>fdp.exe")
    assert page.locator("h1").inner_text().startswith("report<U+202E>fdp.exe")
