"""The dashboard in a real browser (Chromium through Playwright) against the whole stack.

The tests follow one user's day, in file order: sign in; upload two files (one picked, one
dropped) and watch the progress bars; find one by search; preview it; share it, download it
through the link from a browser that never signed in, revoke the link; save a sandbox's file as
an artifact; read all of it on the audit page. Every page visited is saved under
docs/screenshots/, and no page may log a console error.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.browser.conftest import ConsoleLog, new_context, shoot, sign_in

# Also e2e: it starts the whole stack, so `make test-fast` (not worker and not e2e) leaves it out.
pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CSV_ROWS = 40_000  # about 1 MB: enough for the upload's progress events to move the bar


def _csv(token: str) -> bytes:
    lines = ["city,station,reading"] + [f"City {i % 97},{token}-{i},{(i * 37) % 1000 / 10}" for i in range(CSV_ROWS)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Journey:
    """What the earlier tests made, for the later ones (tests run in file order)."""

    token: str = field(default_factory=lambda: secrets.token_hex(4))
    csv: bytes = b""
    notes: bytes = b""
    csv_path: str = ""
    shared: bool = False
    saved_from_sandbox: bool = False

    @property
    def folder(self) -> str:
        return f"browser-{self.token}"


@pytest.fixture(scope="module")
def journey() -> Journey:
    made = Journey()
    made.csv = _csv(made.token)
    made.notes = f"Notes of run {made.token}\nline two ✓\n".encode()
    made.csv_path = f"{made.folder}/measurements.csv"
    return made


def main_nav(page):
    return page.get_by_role("navigation", name="Main")


def test_sign_in_then_home(stack, anonymous):
    page = anonymous.new_page()
    page.goto(stack.base_url + "/")
    page.wait_for_url("**/login/**")
    assert page.get_by_role("heading", name="Sign in to Stowage").is_visible()
    shoot(page, "login")
    sign_in(page, stack)
    assert page.url.rstrip("/") == stack.base_url
    nav = main_nav(page)
    for name in ("Home", "Artifacts", "Sandboxes", "Audit", "API keys"):
        assert nav.get_by_role("link", name=name, exact=True).is_visible(), name
    shoot(page, "home")


def test_keyboard_focus_is_visible_on_the_sign_in_form(stack, anonymous):
    page = anonymous.new_page()
    page.goto(stack.base_url + "/login/")
    button = page.get_by_role("button", name="Sign in")
    for _ in range(10):
        page.keyboard.press("Tab")
        if button.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("tabbing from the top of the sign-in page never reached the Sign in button")
    style = button.evaluate(
        """el => { const s = getComputedStyle(el);
                   return {outline: s.outlineStyle, width: s.outlineWidth, color: s.outlineColor, shadow: s.boxShadow,
                           focusVisible: el.matches(':focus-visible')}; }"""
    )
    assert style["focusVisible"], style
    assert (style["outline"] != "none" and style["width"] != "0px") or style["shadow"] != "none", (
        f"no visible focus style on the Sign in button: {style}"
    )


# Records every value the upload page's progress bars take, from the moment it is installed.
_WATCH_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver((records) => {
    for (const record of records) {
      const bar = record.target;
      if (bar.matches && bar.matches('progress')) window.__progress.push([bar.getAttribute('aria-label'), bar.getAttribute('value')]);
    }
  }).observe(document.getElementById('upload-queue'), {subtree: true, attributes: true, attributeFilter: ['value']});
}"""

# Drag and drop as a user does it: a drop event on the drop zone carrying a file.
_DROP_FILE = """([name, text, type]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, {type}));
  const zone = document.getElementById('dropzone');
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(kind, {bubbles: true, cancelable: true, dataTransfer: data}));
  }
}"""


def test_upload_page_shows_progress_until_done(stack, context, journey, tmp_path: Path):
    page = context.new_page()
    page.goto(stack.base_url + "/artifacts/")
    page.get_by_role("link", name="Upload files").click()
    page.wait_for_url("**/artifacts/upload/")
    uploader = page.locator("#uploader")
    assert uploader.is_visible()
    picked = tmp_path / "measurements.csv"
    picked.write_bytes(journey.csv)
    page.get_by_label("Choose files…").set_input_files(str(picked))
    page.evaluate(_DROP_FILE, ["notes.txt", journey.notes.decode(), "text/plain"])
    queue = page.locator("#upload-queue")
    assert queue.get_by_role("listitem").count() == 2
    page.locator("#common-prefix").fill(journey.folder + "/")
    metadata = page.locator("#metadata-rows .metadata-row").first
    metadata.get_by_role("textbox", name="Key", exact=True).fill("run")
    metadata.get_by_role("textbox", name="Value", exact=True).fill(journey.token)
    page.evaluate(_WATCH_PROGRESS)
    uploader.get_by_role("button", name="Upload", exact=True).click()

    summary = page.locator("#upload-summary")
    summary.filter(has_text="2 uploaded.").wait_for()
    for name in ("measurements.csv", "notes.txt"):
        bar = page.get_by_label(f"Upload progress of {name}")
        assert bar.evaluate("el => [el.value, el.max]") == [100, 100], name
        item = queue.get_by_role("listitem").filter(has=bar)
        assert "Uploaded as" in item.get_by_role("status").inner_text()
        assert item.get_by_role("link", name="Open it").is_visible()
    seen = page.evaluate("window.__progress")
    csv_values = [
        int(value) for label, value in seen if label == "Upload progress of measurements.csv" and value is not None
    ]
    assert csv_values and csv_values[-1] == 100, seen
    assert csv_values == sorted(csv_values), f"the progress bar went backwards: {csv_values}"
    shoot(page, "upload")


def test_search_finds_the_upload_and_its_detail_previews_it(stack, context, journey):
    page = context.new_page()
    page.goto(stack.base_url + "/artifacts/")
    search = page.get_by_role("search", name="Search and filter artifacts")
    search.get_by_label("Search").fill(f"{journey.token} measurements")
    search.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"[?&]q="))
    results = page.locator("#artifact-results")
    link = results.get_by_role("link", name=journey.csv_path, exact=True)
    link.wait_for()
    # Both words must match: notes.txt shares the folder, not the name.
    assert results.get_by_role("link", name=f"{journey.folder}/notes.txt").count() == 0
    shoot(page, "artifacts")

    link.click()
    page.wait_for_url(re.compile(r"/artifacts/art_[0-9a-z]+/$"))
    assert page.get_by_role("heading", level=1).inner_text().startswith("measurements.csv")
    preview = page.locator("#preview")
    table = preview.get_by_role("table")
    assert [h.strip() for h in table.get_by_role("columnheader").all_inner_texts()] == ["city", "station", "reading"]
    assert table.get_by_role("cell", name=f"{journey.token}-0", exact=True).is_visible()
    assert page.get_by_role("cell", name="run", exact=True).is_visible()  # the metadata table
    shoot(page, "artifact-detail")


def _open_detail(page, stack, journey) -> None:
    page.goto(stack.base_url + "/artifacts/?" + urlencode({"q": f"{journey.token} measurements"}))
    page.locator("#artifact-results").get_by_role("link", name=journey.csv_path, exact=True).click()
    page.wait_for_url(re.compile(r"/artifacts/art_[0-9a-z]+/$"))


def test_share_link_download_without_an_account_then_revoke(stack, browser, context, journey):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    page = context.new_page()
    _open_detail(page, stack, journey)
    shares = page.locator("#share-links")
    shares.get_by_label("Expires after").select_option(label="1 day")
    shares.get_by_label("Download limit").fill("3")
    shares.get_by_role("button", name="Create a share link").click()
    # The worker makes the link; the block polls until it is ready, then shows it once.
    copy = page.locator(".share-new").get_by_role("button", name="Copy link")
    copy.wait_for()
    url = page.get_by_role("textbox", name="Share link", exact=True).input_value()
    assert re.fullmatch(re.escape(stack.base_url) + r"/s/[A-Za-z0-9_\-]{20,}", url), url
    copy.click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    row = page.locator("#share-list").get_by_role("row").filter(has_text="active")
    row.wait_for()
    assert "0 of 3" in row.inner_text()

    # Someone who was only sent the link: a fresh browser context, no cookies, no sign-in.
    recipient_console = ConsoleLog()
    recipient = new_context(browser, recipient_console)
    try:
        landing = recipient.new_page()
        landing.goto(url)
        assert landing.get_by_role("heading", name="measurements.csv").is_visible()
        facts = landing.locator("dl").inner_text()
        assert "Downloads left\n3" in facts or "Downloads left\t3" in facts, facts
        shoot(landing, "share-landing")
        with landing.expect_download() as downloading:
            landing.get_by_role("button", name="Download").click()
        download = downloading.value
        assert download.suggested_filename == "measurements.csv"
        assert Path(download.path()).read_bytes() == journey.csv

        # Revoked by its owner, the link leads to the friendly page that says nothing more.
        page.reload()
        page.locator("#share-list").get_by_role("row").filter(has_text="1 of 3").get_by_role(
            "link", name="Revoke…"
        ).click()
        page.wait_for_url("**/revoke/")
        assert page.get_by_role("heading", name="Revoke this share link?").is_visible()
        shoot(page, "share-revoke")
        page.get_by_role("button", name="Revoke the link").click()
        page.wait_for_url(re.compile(r"/artifacts/art_[0-9a-z]+/"))
        assert page.get_by_text("The share link is revoked").is_visible()
        assert page.locator("#share-list").get_by_role("row").filter(has_text="revoked").count() == 1

        recipient_console.expected.append("status of 404")  # the "not available" page is a 404
        response = landing.goto(url)
        assert response.status == 404
        assert landing.get_by_role("heading", name="This link is not available").is_visible()
        assert landing.get_by_role("button", name="Download").count() == 0
        shoot(landing, "share-missing")
        response = landing.goto(url + "/download")
        assert response.status == 404
        assert landing.get_by_role("heading", name="This link is not available").is_visible()
    finally:
        recipient.close()
    assert not recipient_console.unexpected(), "console errors in the recipient's browser:\n" + "\n".join(
        recipient_console.unexpected()
    )
    journey.shared = True


def test_save_a_sandbox_file_as_an_artifact(stack, context, journey):
    api = httpx.Client(
        base_url=stack.base_url + "/api/v1",
        headers={"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id},
        timeout=30,
    )
    with api:
        made = api.post("/sandbox/create", json={"timeout_seconds": 900})
        assert made.status_code in (200, 201), made.text
        sandbox_id = made.json()["sandbox_id"]
        content = f"step,loss\n1,0.9\n2,0.4\n# {journey.token}\n".encode()
        wrote = api.post(
            f"/sandbox/{sandbox_id}/files",
            json={"files": [{"path": "/workspace/out/results.csv", "content": base64.b64encode(content).decode()}]},
        )
        assert wrote.status_code in (200, 201), wrote.text

    page = context.new_page()
    page.goto(stack.base_url + "/sandboxes/")
    page.get_by_role("link", name=sandbox_id).first.wait_for()
    shoot(page, "sandboxes")
    page.get_by_role("link", name=sandbox_id).first.click()
    page.wait_for_url(f"**/sandboxes/{sandbox_id}/")
    workspace = page.locator("#workspace-browser")
    workspace.get_by_role("link", name="out/").click()
    workspace.get_by_role("cell", name="results.csv", exact=True).wait_for()
    with page.expect_response(
        lambda r: r.url.endswith(f"/sandboxes/{sandbox_id}/save/") and r.request.method == "POST"
    ) as saving:
        workspace.get_by_role("button", name="Save results.csv as an artifact").click()
    # The transfer starts queued, with its progress bar, and the worker does the copy.
    started = saving.value.text()
    assert (
        "<progress" in started
        and 'Saving <span class="mono">/workspace/out/results.csv</span> as an artifact' in started
    ), started
    transfers = page.locator("#transfers")
    transfers.locator(".transfer").first.wait_for()
    # The block polls the transfer until it is done; then the bar gives way to a link to the artifact.
    done = transfers.get_by_role("status").filter(has_text="Saved")
    done.wait_for()
    assert transfers.locator("progress").count() == 0
    assert re.search(r"results\.csv \(v\d+\)$", done.get_by_role("link").inner_text()), done.inner_text()
    page.reload()
    artifacts = page.get_by_role("region", name="Artifacts from this sandbox")
    assert artifacts.get_by_role("link", name=re.compile(r"results\.csv$")).is_visible()
    shoot(page, "sandbox-detail")
    journey.saved_from_sandbox = True


def test_audit_page_shows_the_day(stack, context, journey):
    if not journey.shared:
        pytest.fail("this test reads the events of the share test before it; run the whole module")
    page = context.new_page()
    page.goto(stack.base_url + "/")
    main_nav(page).get_by_role("link", name="Audit", exact=True).click()
    page.wait_for_url("**/audit/")
    events = page.locator("#audit-events")
    actions = {text.strip() for text in events.locator("tbody td.mono").all_inner_texts()}
    for action in ("artifact.upload", "share.create", "share.download", "share.revoke"):
        assert action in actions, f"{action} is not on the audit page; it shows {sorted(actions)}"
    # Filtering by action narrows the table to that action alone.
    page.get_by_label("Action").fill("share.download")
    page.get_by_role("search", name="Filter events").get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=share\.download"))
    rows = events.locator("tbody > tr")
    rows.first.wait_for()
    assert {
        text.strip()
        for text in events.locator("tbody td.mono").filter(has_text=re.compile(r"^[a-z]+\.[a-z_]+$")).all_inner_texts()
    } == {"share.download"}
    page.goto(stack.base_url + "/audit/")
    shoot(page, "audit")


def test_api_keys_page(stack, context):
    page = context.new_page()
    page.goto(stack.base_url + "/")
    main_nav(page).get_by_role("link", name="API keys", exact=True).click()
    page.wait_for_url("**/keys/")
    keys = page.get_by_role("table")
    assert keys.get_by_role("cell", name="bootstrap", exact=True).is_visible()
    assert stack.api_key not in page.content(), "the page shows a whole API key"
    shoot(page, "api-keys")
