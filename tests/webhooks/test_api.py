"""/api/v1/webhooks in the SDK's shapes, and every bad input: a 4xx with a code, nothing changed."""

from __future__ import annotations

import pytest
from django.test import override_settings
from stateset_sandbox.types import Webhook as SdkWebhook
from stateset_sandbox.types import WebhookDelivery as SdkDelivery

from accounts.services import api_key_create
from audit.models import AuditEvent
from core.actor import Actor
from tests.factories import make_webhook
from webhooks.models import Webhook, WebhookDelivery
from webhooks.outbox import emit
from webhooks.secrets import decrypt_secret
from webhooks.worker import delivery_attempt, event_dispatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def inline_tests(monkeypatch):
    """POST …/test runs its attempt here instead of on a worker."""
    from webhooks import worker

    monkeypatch.setattr("webhooks.services.enqueue", lambda task, task_id, delivery_id, on_unavailable: delivery_id)
    from core.dispatch import wait_for

    class Done:
        def __init__(self, delivery_id):
            self.answer = worker.deliver_test(delivery_id)

        def get(self, **kwargs):
            return self.answer

    monkeypatch.setattr(
        "webhooks.services.wait_for", lambda delivery_id, timeout: wait_for(Done(delivery_id), timeout=timeout)
    )
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)


def test_create_list_and_delete_in_the_sdks_shapes(owner, receiver):
    response = owner.post(
        "/webhooks",
        {"url": receiver.url, "events": ["artifact.uploaded", "sandbox.created"], "headers": {"X-Team": "a"}},
    )
    assert response.status_code == 201, response.content
    created = SdkWebhook(**response.json())
    assert created.secret.startswith("whsec_") and created.enabled
    assert (created.retry_count, created.retry_delay_ms, created.timeout_ms) == (3, 1000, 30000)
    row = Webhook.objects.get(id=created.id)
    # Encrypted at rest: the row never holds the secret itself.
    assert created.secret not in row.secret_encrypted and decrypt_secret(row.secret_encrypted) == created.secret
    listed = owner.get("/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [created.id] and listed[0]["secret"] is None
    assert SdkWebhook(**listed[0]).events == ["artifact.uploaded", "sandbox.created"]
    assert owner.delete(f"/webhooks/{created.id}").json() == {"success": True}
    assert not Webhook.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.create", "webhook.delete"} <= actions


def test_a_given_secret_and_every_event(owner, receiver):
    secret = "whsec_" + "A" * 43
    created = owner.post("/webhooks", {"url": receiver.url, "events": "*", "secret": secret}).json()
    assert created["events"] == "*" and created["secret"] == secret


def test_deliveries_in_the_sdks_shape_and_redeliver(owner, receiver, monkeypatch):
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    webhook = make_webhook(owner.org_id, receiver.url)
    event = emit(organization_id=owner.org_id, type="artifact.uploaded", data={})
    event_dispatch(event_id=event.id)
    delivery = WebhookDelivery.objects.get()
    delivery_attempt(delivery_id=delivery.id)
    answer = owner.get(f"/webhooks/{webhook.id}/deliveries", {"limit": 10}).json()["deliveries"]
    parsed = SdkDelivery(**answer[0])
    assert (parsed.event, parsed.status, parsed.attempts, parsed.response_status) == (
        "artifact.uploaded",
        "succeeded",
        1,
        200,
    )
    assert answer[0]["latency_ms"] is not None and answer[0]["response_excerpt"] == "ok"
    redelivered = owner.post(f"/webhooks/{webhook.id}/deliveries/{delivery.id}/redeliver")
    assert redelivered.status_code == 202 and redelivered.json()["status"] == "pending"


def test_test_sends_a_signed_test_event(owner, receiver, inline_tests):
    created = owner.post("/webhooks", {"url": receiver.url}).json()
    receiver.secrets.append(created["secret"])
    answer = owner.post(f"/webhooks/{created['id']}/test").json()
    assert answer["success"] is True and answer["response_status"] == 200
    [request] = receiver.received
    assert request.verified_with and b'"type":"webhook.test"' in request.body


def test_enable_disable_patch_and_rotate(owner, receiver):
    created = owner.post("/webhooks", {"url": receiver.url}).json()
    hook = f"/webhooks/{created['id']}"
    assert owner.post(hook + "/disable").json()["enabled"] is False
    assert Webhook.objects.get().disabled_reason
    assert owner.post(hook + "/enable").json()["enabled"] is True
    patched = owner.client.patch(
        "/api/v1" + hook,
        {"events": ["share.created"], "retry_count": 5},
        content_type="application/json",
        headers=owner.headers(),
    )
    assert patched.status_code == 200 and patched.json()["events"] == ["share.created"]
    assert patched.json()["retry_count"] == 5
    rotated = owner.post(hook + "/rotate-secret", {"overlap_seconds": 3600}).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["secret_rotation_ends_at"] is not None
    actions = list(AuditEvent.objects.filter(resource=f"webhook:{created['id']}").values_list("action", flat=True))
    assert {"webhook.create", "webhook.disable", "webhook.update"} <= set(actions)


def _good(receiver, **changes):
    return {"url": receiver.url, **changes}


BAD_CREATES = [
    ("unknown event", {"events": ["artifact.uploaded", "artifact.exploded"]}, "UNKNOWN_EVENT"),
    ("empty events", {"events": []}, "VALIDATION_ERROR"),
    ("empty url", {"url": ""}, "WEBHOOK_URL_REFUSED"),
    ("malformed url", {"url": "http://[::1"}, "WEBHOOK_URL_REFUSED"),
    ("no host", {"url": "http:///hook"}, "WEBHOOK_URL_REFUSED"),
    ("spaces", {"url": "http://exa mple.com/"}, "WEBHOOK_URL_REFUSED"),
    ("file scheme", {"url": "file:///etc/passwd"}, "WEBHOOK_URL_REFUSED"),
    ("gopher scheme", {"url": "gopher://127.0.0.1:70/"}, "WEBHOOK_URL_REFUSED"),
    ("ftp scheme", {"url": "ftp://example.com/"}, "WEBHOOK_URL_REFUSED"),
    ("javascript", {"url": "javascript:alert(1)"}, "WEBHOOK_URL_REFUSED"),
    ("credentials", {"url": "http://user:pass@127.0.0.1/hook"}, "WEBHOOK_URL_REFUSED"),
    ("user only", {"url": "http://user@127.0.0.1/hook"}, "WEBHOOK_URL_REFUSED"),
    ("signature header", {"headers": {"webhook-signature": "v1,forged"}}, "RESERVED_HEADER"),
    ("id header", {"headers": {"Webhook-Id": "msg_1"}}, "RESERVED_HEADER"),
    ("host header", {"headers": {"Host": "elsewhere"}}, "RESERVED_HEADER"),
    ("CR LF in a value", {"headers": {"X-A": "a\r\nX-Injected: 1"}}, "VALIDATION_ERROR"),
    ("LF in a value", {"headers": {"X-A": "a\nb"}}, "VALIDATION_ERROR"),
    ("bad header name", {"headers": {"X A": "b"}}, "VALIDATION_ERROR"),
    ("zero timeout", {"timeout_ms": 0}, "VALIDATION_ERROR"),
    ("huge timeout", {"timeout_ms": 10**9}, "VALIDATION_ERROR"),
    ("negative retries", {"retry_count": -1}, "VALIDATION_ERROR"),
    ("absurd retries", {"retry_count": 1000}, "VALIDATION_ERROR"),
    ("zero delay", {"retry_delay_ms": 0}, "VALIDATION_ERROR"),
    ("string number", {"retry_count": "3"}, "VALIDATION_ERROR"),
    ("boolean number", {"timeout_ms": True}, "VALIDATION_ERROR"),
    ("short secret", {"secret": "short"}, "VALIDATION_ERROR"),
    ("bad whsec", {"secret": "whsec_!!!"}, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize("case,changes,code", BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_bad_input_is_refused_and_creates_nothing(owner, receiver, case, changes, code):
    response = owner.post("/webhooks", _good(receiver, **changes))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Webhook.objects.exists()
    assert not AuditEvent.objects.filter(action="webhook.create").exists()


FORBIDDEN_ADDRESSES = ["127.0.0.1", "10.0.0.5", "10.255.255.255", "169.254.169.254", "::1", "192.168.1.1", "224.0.0.1"]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
def test_names_that_resolve_to_forbidden_addresses_are_refused(owner, monkeypatch, address):
    monkeypatch.setattr("webhooks.network.resolve", lambda host, port: [address])
    with override_settings(STOWAGE_WEBHOOK_ALLOWED_HOSTS=[]):
        response = owner.post("/webhooks", {"url": "https://hooks.example.com/in"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_URL_REFUSED"
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::1]:8080/", "http://169.254.169.254/latest/meta-data"])
def test_literal_forbidden_addresses_are_refused_unless_allowed(owner, url):
    with override_settings(STOWAGE_WEBHOOK_ALLOWED_HOSTS=[]):
        response = owner.post("/webhooks", {"url": url})
    assert response.status_code == 400 and response.json()["error"]["code"] == "WEBHOOK_URL_REFUSED"
    assert not Webhook.objects.exists()


def test_an_allowed_network_or_host_name_may_be_reached(owner, monkeypatch):
    monkeypatch.setattr("webhooks.network.resolve", lambda host, port: ["10.1.2.3"])
    with override_settings(STOWAGE_WEBHOOK_ALLOWED_HOSTS=["10.0.0.0/8"]):
        assert owner.post("/webhooks", {"url": "http://hooks.corp/in"}).status_code == 201
    with override_settings(STOWAGE_WEBHOOK_ALLOWED_HOSTS=["hooks.corp"]):
        assert owner.post("/webhooks", {"url": "http://hooks.corp/in"}).status_code == 201


def test_production_accepts_only_https(owner, monkeypatch):
    monkeypatch.setattr("webhooks.network.resolve", lambda host, port: ["93.184.216.34"])
    with override_settings(PRODUCTION=True, STOWAGE_WEBHOOK_ALLOWED_HOSTS=[]):
        response = owner.post("/webhooks", {"url": "http://hooks.example.com/in"})
        assert response.status_code == 400 and "https" in response.json()["error"]["message"]
        assert owner.post("/webhooks", {"url": "https://hooks.example.com/in"}).status_code == 201


def test_a_name_that_does_not_resolve_is_refused(owner, monkeypatch):
    def nxdomain(host, port):
        raise OSError("Name or service not known")

    monkeypatch.setattr("webhooks.network.resolve", nxdomain)
    response = owner.post("/webhooks", {"url": "https://nowhere.invalid/"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "WEBHOOK_URL_REFUSED"


BAD_PATCHES = [
    ({"url": "gopher://x/"}, "WEBHOOK_URL_REFUSED"),
    ({"events": ["nope"]}, "UNKNOWN_EVENT"),
    ({"headers": {"webhook-timestamp": "1"}}, "RESERVED_HEADER"),
    ({"timeout_ms": -5}, "VALIDATION_ERROR"),
    ({"retry_count": 99}, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize("changes,code", BAD_PATCHES)
def test_a_bad_update_changes_nothing(owner, receiver, changes, code):
    webhook = make_webhook(owner.org_id, receiver.url)
    before = Webhook.objects.filter(id=webhook.id).values().get()
    response = owner.client.patch(
        f"/api/v1/webhooks/{webhook.id}", changes, content_type="application/json", headers=owner.headers()
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert Webhook.objects.filter(id=webhook.id).values().get() == before


def test_a_bad_rotation_changes_nothing(owner, receiver):
    webhook = make_webhook(owner.org_id, receiver.url)
    for body in ({"secret": "tiny"}, {"overlap_seconds": -1}, {"overlap_seconds": 10**9}):
        response = owner.post(f"/webhooks/{webhook.id}/rotate-secret", body)
        assert response.status_code == 400
    assert Webhook.objects.get(id=webhook.id).secret_encrypted == webhook.secret_encrypted


def test_another_organizations_webhook_is_not_found(owner, stranger, receiver, monkeypatch):
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    theirs = make_webhook(stranger.org_id, receiver.url)
    event = emit(organization_id=stranger.org_id, type="artifact.uploaded", data={})
    event_dispatch(event_id=event.id)
    delivery = WebhookDelivery.objects.get()
    hook = f"/webhooks/{theirs.id}"
    answers = [
        owner.get(hook),
        owner.delete(hook),
        owner.post(hook + "/test"),
        owner.post(hook + "/disable"),
        owner.post(hook + "/enable"),
        owner.post(hook + "/rotate-secret"),
        owner.get(hook + "/deliveries"),
        owner.post(f"{hook}/deliveries/{delivery.id}/redeliver"),
        owner.client.patch(
            "/api/v1" + hook, {"enabled": False}, content_type="application/json", headers=owner.headers()
        ),
    ]
    for response in answers:
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
    assert Webhook.objects.filter(id=theirs.id, enabled=True).exists()
    assert owner.get("/webhooks").json() == {"webhooks": []}
    # Their delivery under our webhook's id is not found either.
    ours = make_webhook(owner.org_id, receiver.url)
    response = owner.post(f"/webhooks/{ours.id}/deliveries/{delivery.id}/redeliver")
    assert response.status_code == 404 and response.json()["error"]["code"] == "DELIVERY_NOT_FOUND"


def test_a_key_without_the_webhooks_scope_is_refused(owner, receiver):
    from accounts.models import Organization

    _, key = api_key_create(
        organization=Organization.objects.get(id=owner.org_id),
        name="reader",
        actor=Actor.system(owner.org_id),
        scopes=["artifacts:read"],
    )
    headers = {"Authorization": f"ApiKey {key}", "X-Org-Id": owner.org_id}
    response = owner.client.post(
        "/api/v1/webhooks", {"url": receiver.url}, content_type="application/json", headers=headers
    )
    assert response.status_code == 403 and not Webhook.objects.exists()
    assert owner.client.get("/api/v1/webhooks").status_code == 401


def test_a_test_while_the_queue_is_down_is_503_and_never_sent_later(owner, receiver, monkeypatch):
    from kombu.exceptions import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr("webhooks.worker.deliver_test.apply_async", down)
    webhook = make_webhook(owner.org_id, receiver.url)
    response = owner.post(f"/webhooks/{webhook.id}/test")
    assert response.status_code == 503 and response.json()["error"]["code"] == "BROKER_UNAVAILABLE"
    assert WebhookDelivery.objects.get().state == "failed"


def test_the_lists_make_no_query_per_row(owner, receiver, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    webhook = make_webhook(owner.org_id, receiver.url)

    def counts() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as hooks:
            assert owner.get("/webhooks").status_code == 200
        with CaptureQueriesContext(connection) as deliveries:
            assert owner.get(f"/webhooks/{webhook.id}/deliveries").status_code == 200

        # Only the webhooks' own: the key's last use is written now and then, whatever the page.
        def ours(captured) -> int:
            return sum("webhooks_" in query["sql"] for query in captured.captured_queries)

        return ours(hooks), ours(deliveries)

    def more(n: int) -> None:
        for _ in range(n):
            make_webhook(owner.org_id, receiver.url)
            event_dispatch(event_id=emit(organization_id=owner.org_id, type="artifact.deleted", data={}).id)

    more(2)
    few = counts()
    more(8)
    assert counts() == few


def test_a_test_no_worker_answers_in_time_is_reported_as_pending(owner, receiver, monkeypatch):
    from core.errors import GatewayTimeout

    def busy(result, timeout):
        raise GatewayTimeout("no worker answered")

    monkeypatch.setattr("webhooks.services.enqueue", lambda task, **kwargs: None)
    monkeypatch.setattr("webhooks.services.wait_for", busy)
    webhook = make_webhook(owner.org_id, receiver.url)
    answer = owner.post(f"/webhooks/{webhook.id}/test")
    assert answer.status_code == 200
    assert answer.json()["success"] is False and answer.json()["status"] == "pending"
    assert "delivery log" in answer.json()["error"]


def test_a_failed_test_reports_the_receivers_answer(owner, receiver, inline_tests):
    from tests.webhooks.receiver import Answer

    receiver.default = Answer(status=500, body=b"broken")
    webhook = make_webhook(owner.org_id, receiver.url)
    answer = owner.post(f"/webhooks/{webhook.id}/test").json()
    assert answer["success"] is False and answer["response_status"] == 500 and answer["error"] == "HTTP 500"
    # A test is one attempt and says nothing about the webhook's health.
    assert Webhook.objects.get(id=webhook.id).consecutive_failures == 0
