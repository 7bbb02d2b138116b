"""Members in a real browser: the owner invites a colleague by link, the colleague makes an account
and joins, the owner changes their role and removes them, and each change reaches the colleague's
next page. Every page is saved under docs/screenshots/ and must log no console error (the
Content-Security-Policy refuses inline script, so a violation would show here)."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.browser.conftest import new_context, shoot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "a-long-colleague-passphrase-7"


@pytest.fixture(scope="module")
def colleague() -> str:
    return f"colleague-{secrets.token_hex(3)}"


@pytest.fixture
def colleague_page(browser, console):
    made = new_context(browser, console)
    yield made.new_page()
    made.close()
    assert not console.unexpected(), "console errors:\n" + "\n".join(console.unexpected())


def test_invite_accept_change_role_and_remove(stack, context, console, colleague_page, colleague):
    # Opened on purpose: the used invitation (410) and the page of an organization left (404).
    console.expected.extend(["status of 410", "status of 404"])
    owner = context.new_page()
    owner.goto(stack.base_url + "/")
    owner.get_by_role("navigation", name="Main").get_by_role("link", name="Members", exact=True).click()
    owner.wait_for_url("**/members/")
    shoot(owner, "members")

    owner.get_by_label("Role", exact=True).select_option("member")
    owner.get_by_label("For", exact=True).fill("a new colleague")
    owner.get_by_role("button", name="Create invitation link").click()
    owner.get_by_role("heading", name="Your invitation link").wait_for()
    link = owner.get_by_label("Invitation link").input_value()
    assert re.match(rf"^{re.escape(stack.base_url)}/join/org_[0-9a-z]+/[\w-]{{43}}/$", link), link
    shoot(owner, "invitation-created")

    # The colleague has no account yet: they make one on the invitation's page and are in.
    colleague_page.goto(link)
    colleague_page.get_by_role("heading", name=re.compile("^Join ")).wait_for()
    shoot(colleague_page, "join")
    colleague_page.get_by_label("Username").fill(colleague)
    colleague_page.get_by_label("Password", exact=True).fill(PASSWORD)
    colleague_page.get_by_label("Password again").fill(PASSWORD)
    colleague_page.get_by_role("button", name="Create account and join").click()
    colleague_page.wait_for_url(stack.base_url + "/")
    assert colleague_page.get_by_text("you are member here").is_visible()
    colleague_page.goto(stack.base_url + "/artifacts/")
    assert colleague_page.get_by_role("link", name="Upload files").is_visible()

    # The link worked once: opened again it says so.
    colleague_page.goto(link)
    assert colleague_page.get_by_role("heading", name="This invitation cannot be used").is_visible()

    owner.goto(stack.base_url + "/members/")
    row = owner.locator("#member-table tbody tr", has_text=colleague)
    row.get_by_label(f"Role of {colleague}").select_option("viewer")
    row.get_by_role("button", name=f"Change role of {colleague}").click()
    owner.get_by_text(f"{colleague} is now viewer.").wait_for()

    colleague_page.goto(stack.base_url + "/artifacts/")
    assert colleague_page.locator(".topbar .role").inner_text() == "viewer"
    assert colleague_page.get_by_role("link", name="Upload files").count() == 0

    owner.locator("#member-table tbody tr", has_text=colleague).get_by_role("link", name=f"Remove {colleague}").click()
    owner.wait_for_url("**/remove/")
    owner.get_by_label(re.compile("^Revoke them")).check()
    shoot(owner, "member-remove")
    owner.get_by_role("button", name=f"Remove {colleague}").click()
    owner.get_by_text(f"{colleague} is no longer a member").wait_for()
    assert owner.locator("#member-table tbody tr", has_text=colleague).count() == 0

    # Removed: the colleague's very next page no longer shows the organization.
    colleague_page.goto(stack.base_url + "/artifacts/")
    assert colleague_page.get_by_role("heading", name="You are not in any organization").is_visible()
    shoot(colleague_page, "not-a-member")
