"""The SDK's webhook calls against the whole stack (`manage.py runstack`, as `make run`), with a
real receiver on loopback that verifies every signature with the `standardwebhooks` package."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from stateset_sandbox import StateSetSandbox
from stateset_sandbox.errors import SandboxApiError
from stateset_sandbox.types import CreateWebhookOptions, WebhookEvent

from tests.conftest import StackOrganization
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(stack: StackOrganization) -> Iterator[StateSetSandbox]:
    with StateSetSandbox(
        base_url=stack.base_url, auth_token=stack.api_key, org_id=stack.org_id, timeout=60_000
    ) as made:
        yield made


def _wait_for(receiver: Receiver, event_type: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in list(receiver.received):
            body = json.loads(request.body)
            if body["type"] == event_type:
                assert request.verified_with, "the signature did not verify"
                assert request.webhook_id == body["id"]
                return body
        time.sleep(0.1)
    raise AssertionError(
        f"no {event_type} event arrived; got {[json.loads(r.body)['type'] for r in receiver.received]}"
    )


def test_the_sdks_webhook_calls_end_to_end(stack: StackOrganization, client: StateSetSandbox, receiver: Receiver):
    created = client.create_webhook(
        CreateWebhookOptions(url=receiver.url, events=[WebhookEvent.ARTIFACT_UPLOADED], retry_count=2, timeout_ms=5000)
    )
    assert created.secret and created.secret.startswith("whsec_") and created.enabled
    receiver.secrets.append(created.secret)
    assert [w.id for w in client.list_webhooks()] == [created.id]
    assert client.list_webhooks()[0].secret is None

    answer = client.test_webhook(created.id)
    assert answer["success"] is True and answer["response_status"] == 200
    assert _wait_for(receiver, "webhook.test")["data"]["webhook_id"] == created.id

    # A real change: an artifact uploaded through the API arrives as artifact.uploaded.
    put = httpx.put(
        f"{stack.base_url}/api/v1/artifacts",
        params={"remote_path": "reports/e2e.txt"},
        content=b"hello from the e2e test",
        headers={"Authorization": f"ApiKey {stack.api_key}", "X-Org-Id": stack.org_id},
        timeout=60,
    )
    assert put.status_code == 201, put.text
    event = _wait_for(receiver, "artifact.uploaded")
    assert event["data"]["artifact_id"] == put.json()["id"] and event["organization_id"] == stack.org_id

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        deliveries = client.get_webhook_deliveries(created.id, limit=10)
        if {d.event for d in deliveries} == {"webhook.test", "artifact.uploaded"} and all(
            d.status == "succeeded" for d in deliveries
        ):
            break
        time.sleep(0.2)
    assert {(d.event, d.status, d.response_status) for d in deliveries} == {
        ("webhook.test", "succeeded", 200),
        ("artifact.uploaded", "succeeded", 200),
    }

    assert client.delete_webhook(created.id) is True
    assert client.list_webhooks() == []
    with pytest.raises(SandboxApiError) as caught:
        client.get_webhook_deliveries(created.id)
    assert caught.value.status_code == 404


def test_a_forbidden_url_is_refused_through_the_sdk(stack: StackOrganization, client: StateSetSandbox):
    with pytest.raises(SandboxApiError) as caught:
        client.create_webhook(CreateWebhookOptions(url="http://169.254.169.254/latest/meta-data/"))
    assert caught.value.status_code == 400
    assert client.list_webhooks() == []
