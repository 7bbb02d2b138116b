"""A folder in the browser: picked on the upload page and sent as one folder artifact with one
progress bar, then opened in its file browser (breadcrumbs, sizes, modes) down to one file's
preview. Pages are saved under docs/screenshots/; no page may log a console error."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.browser.conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_picked_folder_uploads_as_one_artifact_and_opens_file_by_file(stack, context, tmp_path: Path):
    token = secrets.token_hex(4)
    folder = tmp_path / "site"
    (folder / "data").mkdir(parents=True)
    (folder / "css").mkdir()
    (folder / "README.md").write_text(f"# Site {token}\n\nA folder from the browser.\n")
    (folder / "css" / "site.css").write_text("body { color: black; }\n" * 2000)
    (folder / "data" / "table.csv").write_text("name,value\n" + "".join(f"row-{i},{i}\n" for i in range(500)))

    page = context.new_page()
    page.goto(stack.base_url + "/artifacts/upload/")
    uploader = page.locator("#folder-uploader")
    assert uploader.is_visible()
    page.locator("#folder-picker").set_input_files(str(folder))
    page.locator("#folder-status").filter(has_text="3 files").wait_for()
    name = page.get_by_label("The folder's artifact name (remote_path)")
    assert name.input_value() == "site"
    name.fill(f"browser-{token}/site")
    uploader.get_by_role("button", name="Upload the folder").click()
    status = page.locator("#folder-status")
    status.filter(has_text="Stored").wait_for()
    assert page.get_by_label("Progress of the whole folder").evaluate("el => el.value") == 100
    assert "5 entries" in status.inner_text()
    shoot(page, "folder-upload")

    status.get_by_role("link", name="Open the folder").click()
    page.wait_for_url(re.compile(r"/artifacts/art_[0-9a-z]+/$"))
    browser_card = page.locator("#folder-browser")
    assert browser_card.get_by_role("link", name="data/").is_visible()
    assert browser_card.get_by_role("cell", name="-rw-r--r--").first.is_visible()
    shoot(page, "folder-browser")

    browser_card.get_by_role("link", name="data/").click()
    page.wait_for_url(re.compile(r"\?dir=data$"))
    crumbs = page.locator("#folder-browser").get_by_role("navigation", name="Folder")
    assert crumbs.inner_text().split() == ["site", "/", "data"]
    page.locator("#folder-browser").get_by_role("link", name="table.csv").click()
    page.wait_for_url(re.compile(r"/file/\?path=data(/|%2F)table.csv$"))
    table = page.locator("#preview").get_by_role("table")
    assert [h.strip() for h in table.get_by_role("columnheader").all_inner_texts()] == ["name", "value"]
    assert table.get_by_role("cell", name="row-0", exact=True).is_visible()
    shoot(page, "folder-file")

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=f"browser-{token}/site").click()
    page.locator("#folder-browser").get_by_role("link", name="README.md").click()
    assert page.locator("#preview .preview-markdown h1").inner_text() == f"Site {token}"
