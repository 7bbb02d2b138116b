"""A real browser (Debian's Chromium, driven by Playwright) against the whole stack.

The stack is ``LocalStack`` in a temporary directory, as ``make run`` starts it, shared by the
modules that need no settings of their own, each in an organization of its own; the browser is
``/usr/bin/chromium``, never one that Playwright downloads. Every page a test visits is saved as
a full-page screenshot under ``docs/screenshots/`` and must log no console error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config.stack import LocalStack
from tests.conftest import StackOrganization

CHROMIUM = Path(os.environ.get("STOWAGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Long enough for a Celery task on a loaded two-CPU machine, short enough to fail a hung page fast.
TIMEOUT_MS = 20_000
# The one console error not held against a page: the dashboard declares no icon, so Chromium asks
# for /favicon.ico on its own and logs the 404. (Reported; a <link rel="icon"> in base.html ends it.)
IGNORED_CONSOLE_ERRORS = ("/favicon.ico",)


def require_chromium() -> None:
    # CI must run these tests, not skip them: a missing browser is a failure that says what to install.
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}, and it is missing. Install the Debian package "
            "`chromium` (apt-get install chromium; `make test` does it through scripts/system-packages.sh test), "
            "or point STOWAGE_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def stack(shared_stack: LocalStack, request: pytest.FixtureRequest) -> StackOrganization:
    """The module's own organization on the suite's shared stack."""
    require_chromium()
    return StackOrganization.create(shared_stack, request.module.__name__)


@pytest.fixture(scope="module")
def browser(stack: LocalStack):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of every page of one browser context."""

    errors: list[str] = field(default_factory=list)
    # Substrings of messages the test expects (a 404 page it opened on purpose).
    expected: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))

    def _console(self, page, message) -> None:
        if message.type != "error":
            return
        text = f"{page.url}: {message.text}"
        location = message.location or {}
        if location.get("url"):
            text += f" ({location['url']}:{location.get('lineNumber', '?')})"
        self.errors.append(text)

    def unexpected(self) -> list[str]:
        allowed = (*IGNORED_CONSOLE_ERRORS, *self.expected)
        return [error for error in self.errors if not any(text in error for text in allowed)]


def new_context(browser, console: ConsoleLog, **options):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.on("page", console.watch)
    return context


def sign_in(page, stack: LocalStack) -> None:
    page.goto(stack.base_url + "/login/")
    page.get_by_label("Username").fill(stack.username)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture(scope="module")
def signed_in_state(browser, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The cookies of a signed-in owner, so each test starts signed in without the form."""
    console = ConsoleLog()
    context = new_context(browser, console)
    try:
        page = context.new_page()
        sign_in(page, stack)
        path = tmp_path_factory.mktemp("browser-state") / "owner.json"
        context.storage_state(path=str(path))
    finally:
        context.close()
    return str(path)


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def context(browser, console: ConsoleLog, signed_in_state: str) -> Iterator:
    """A browser context signed in as the organization's owner; no console error is allowed in it."""
    made = new_context(browser, console, storage_state=signed_in_state)
    yield made
    made.close()
    assert not console.unexpected(), "console errors:\n" + "\n".join(console.unexpected())


@pytest.fixture
def anonymous(browser, console: ConsoleLog) -> Iterator:
    """A fresh context with no cookies at all: someone who was only sent a link."""
    made = new_context(browser, console)
    yield made
    made.close()
    assert not console.unexpected(), "console errors:\n" + "\n".join(console.unexpected())


@pytest.fixture
def page(context):
    return context.new_page()


def shoot(page, name: str) -> Path:
    """A full-page screenshot at docs/screenshots/<name>.png, once the page has settled."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    try:
        # A page that polls (htmx "every 500ms") may never go quiet; that is fine.
        page.wait_for_load_state("networkidle", timeout=3_000)
    except Exception:  # playwright's TimeoutError
        pass
    target = SCREENSHOTS / f"{name}.png"
    partial = target.with_suffix(".partial.png")
    page.screenshot(path=str(partial), full_page=True, animations="disabled", caret="hide")
    shutil.move(partial, target)
    return target
