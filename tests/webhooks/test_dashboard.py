"""The webhooks pages: admins and owners only; the secret shown once; test, enable, disable,
delete and redeliver through the same services as the API."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from tests.factories import make_webhook
from webhooks.models import DeliveryState, Webhook, WebhookDelivery
from webhooks.outbox import emit
from webhooks.worker import event_dispatch

pytestmark = pytest.mark.django_db


def test_only_admins_and_owners_see_the_page(dashboard):
    assert dashboard.owner.get("/webhooks/").status_code == 200
    assert dashboard.admin.get("/webhooks/").status_code == 200
    assert dashboard.member.get("/webhooks/").status_code == 404
    assert dashboard.viewer.get("/webhooks/").status_code == 404
    assert dashboard.anonymous.get("/webhooks/").status_code == 302


def test_create_shows_the_secret_once(dashboard, receiver):
    response = dashboard.owner.post(
        "/webhooks/new/",
        {"url": receiver.url, "events": ["artifact.uploaded", "share.created"], "retry_count": 2, "timeout_ms": 5000},
    )
    assert response.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.events == ["artifact.uploaded", "share.created"]
    body = response.content.decode()
    assert 'value="whsec_' in body
    secret = body.split('value="whsec_', 1)[1].split('"', 1)[0]
    detail = dashboard.owner.get(f"/webhooks/{webhook.id}/").content.decode()
    assert secret not in detail and secret not in dashboard.owner.get("/webhooks/").content.decode()
    assert AuditEvent.objects.filter(action="webhook.create").exists()


def test_a_refused_url_is_shown_on_the_form_and_nothing_is_made(dashboard):
    response = dashboard.owner.post(
        "/webhooks/new/", {"url": "file:///etc/passwd", "all_events": "on", "retry_count": 1, "timeout_ms": 5000}
    )
    assert response.status_code == 400 and b"http or https" in response.content
    response = dashboard.owner.post(
        "/webhooks/new/", {"url": "https://example.com/", "retry_count": 1, "timeout_ms": 5000}
    )
    assert response.status_code == 400 and b"Pick the events" in response.content
    assert not Webhook.objects.exists()


def test_disable_enable_redeliver_and_delete(dashboard, owner, receiver, monkeypatch):
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    webhook = make_webhook(owner.org_id, receiver.url)
    page = f"/webhooks/{webhook.id}/"
    dashboard.admin.post(page + "enabled/", {"enabled": "0"})
    webhook.refresh_from_db()
    assert not webhook.enabled
    assert b"webhook-disabled" in dashboard.admin.get(page).content
    dashboard.admin.post(page + "enabled/", {"enabled": "1"})
    webhook.refresh_from_db()
    assert webhook.enabled
    event = emit(organization_id=owner.org_id, type="artifact.uploaded", data={})
    event_dispatch(event_id=event.id)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(id=delivery.id).update(
        state=DeliveryState.FAILED, response_status=500, response_excerpt="<b>boom</b>"
    )
    detail = dashboard.admin.get(page).content.decode()
    assert "artifact.uploaded" in detail and "HTTP 500" in detail
    assert "&lt;b&gt;boom&lt;/b&gt;" in detail and "<b>boom</b>" not in detail
    dashboard.admin.post(f"{page}deliveries/{delivery.id}/redeliver/")
    assert WebhookDelivery.objects.get(id=delivery.id).state == DeliveryState.PENDING
    dashboard.admin.post(page + "delete/")
    assert not Webhook.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook.disable", "webhook.update", "webhook.redeliver", "webhook.delete"} <= actions


def test_the_delivery_log_is_a_fragment_for_htmx(dashboard, owner, receiver):
    webhook = make_webhook(owner.org_id, receiver.url)
    response = dashboard.owner.get(f"/webhooks/{webhook.id}/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="webhook-deliveries">') and "<html" not in body


def test_another_organizations_webhook_is_404(dashboard, stranger, receiver):
    theirs = make_webhook(stranger.org_id, receiver.url)
    for path in ("", "test/", "enabled/", "delete/"):
        method = dashboard.owner.get if path == "" else dashboard.owner.post
        assert method(f"/webhooks/{theirs.id}/{path}").status_code == 404
    assert Webhook.objects.filter(id=theirs.id, enabled=True).exists()


def test_the_list_makes_no_query_per_webhook(dashboard, owner, receiver):
    for n in range(3):
        make_webhook(owner.org_id, f"{receiver.url}/{n}")
    with CaptureQueriesContext(connection) as few:
        dashboard.owner.get("/webhooks/")
    for n in range(10):
        make_webhook(owner.org_id, f"{receiver.url}/more{n}")
    with CaptureQueriesContext(connection) as many:
        dashboard.owner.get("/webhooks/")
    assert len(many) == len(few)
