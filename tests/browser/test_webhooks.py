"""Webhooks in a real browser: add one with the event picker, copy the secret shown once, send a
test event to a real receiver (which verifies its signature), redeliver it from the delivery
log, disable and enable it, delete it. Every page is saved under docs/screenshots/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.browser.conftest import shoot
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _received(receiver: Receiver, count: int) -> list:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.received) < count:
        time.sleep(0.1)
    return list(receiver.received)


def test_add_test_redeliver_disable_and_delete_a_webhook(stack, page, receiver):
    page.goto(stack.base_url + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks", exact=True).click()
    page.wait_for_url("**/webhooks/")
    page.get_by_text("No webhooks yet").wait_for()

    page.get_by_label("Receiver URL").fill(receiver.url)
    page.get_by_label("Every event, including those added later").uncheck()
    page.get_by_label("artifact.uploaded").check()
    page.get_by_label("share.created").check()
    shoot(page, "webhooks")
    page.get_by_role("button", name="Add webhook").click()
    page.get_by_role("heading", name="Your new webhook").wait_for()
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)
    shoot(page, "webhook-created")

    page.get_by_role("link", name="I have copied it — go to the webhook").click()
    page.get_by_role("heading", name="Settings").wait_for()
    assert secret not in page.content()
    assert "artifact.uploaded, share.created" in page.content()

    page.get_by_role("button", name="Send a test event").click()
    page.get_by_text("The test event was delivered: HTTP 200.").wait_for()
    [request] = _received(receiver, 1)
    assert request.verified_with == [secret] and json.loads(request.body)["type"] == "webhook.test"
    row = page.locator("#delivery-table tbody tr").first
    assert "webhook.test" in row.inner_text() and "succeeded" in row.inner_text()
    shoot(page, "webhook-detail")

    row.get_by_role("button", name="Redeliver").click()
    page.get_by_text("is being sent again, with the same webhook-id").wait_for()
    first, again = _received(receiver, 2)
    assert again.webhook_id == first.webhook_id and again.verified_with == [secret]

    page.get_by_role("button", name="Disable").click()
    page.get_by_text("The webhook is disabled").wait_for()
    assert page.locator("#webhook-disabled").is_visible()
    page.get_by_role("button", name="Enable").click()
    page.get_by_text("The webhook is enabled.").wait_for()
    assert page.locator("#webhook-disabled").count() == 0

    page.get_by_text("Delete…").click()
    page.get_by_role("button", name="Delete the webhook").click()
    page.wait_for_url("**/webhooks/")
    page.get_by_text("No webhooks yet").wait_for()
