"""An event exists exactly when its change was committed."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from agents.models import SessionStatus
from agents.states import session_move
from artifacts.models import Artifact, ArtifactState
from artifacts.services import artifact_delete, artifact_expire, artifact_record_read
from core.actor import Actor
from sandboxes.models import SandboxStatus
from sandboxes.states import sandbox_mark_expired, sandbox_mark_failed, sandbox_mark_running, sandbox_mark_terminated
from shares.models import ShareLink, ShareLinkState
from shares.services import share_link_revoke
from tests.factories import make_artifact, make_sandbox, make_session, make_webhook
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.outbox import emit
from webhooks.worker import sweep

pytestmark = pytest.mark.django_db


def _types(org_id: str) -> list[str]:
    return list(
        WebhookEvent.objects.filter(organization_id=org_id).order_by("created_at").values_list("type", flat=True)
    )


def _delete_then_fail(artifact: Artifact) -> None:
    with transaction.atomic():
        artifact_delete(actor=Actor.system(artifact.organization_id), artifact=artifact)
        raise RuntimeError("the caller's transaction fails after the change")


def test_a_rolled_back_change_emits_no_event(owner):
    artifact = make_artifact(owner.org_id, None, "out/report.pdf")
    with pytest.raises(RuntimeError):
        _delete_then_fail(artifact)
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.READY
    assert WebhookEvent.objects.count() == 0


def test_a_committed_deletion_has_its_event_with_public_fields_only(owner):
    artifact = make_artifact(owner.org_id, None, "out/report.pdf")
    artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    event = WebhookEvent.objects.get(type="artifact.deleted")
    assert event.organization_id == owner.org_id
    data = event.payload["data"]
    assert data["artifact_id"] == artifact.id and data["remote_path"] == "out/report.pdf"
    assert event.payload["id"] == event.id and event.payload["type"] == "artifact.deleted"
    assert "storage_key" not in str(event.payload) and artifact.storage_key not in str(event.payload)


def test_an_expired_artifact_emits_artifact_expired(owner):
    artifact = make_artifact(owner.org_id, None, "out/old.txt")
    Artifact.objects.filter(id=artifact.id).update(expires_at=timezone.now())
    assert artifact_expire() == 1
    assert _types(owner.org_id) == ["artifact.expired"]


def test_a_download_emits_artifact_downloaded(owner):
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    artifact_record_read(
        actor=Actor.system(owner.org_id), artifact=artifact, action="artifact.download", details={"via": "api"}
    )
    artifact_record_read(actor=Actor.system(owner.org_id), artifact=artifact, action="artifact.url")
    [event] = WebhookEvent.objects.all()
    assert event.type == "artifact.downloaded" and event.payload["data"]["via"] == "api"


def test_revoking_a_share_link_emits_share_revoked_without_its_token(owner):
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    link = ShareLink.objects.create(
        organization_id=owner.org_id, artifact=artifact, token_hash="f" * 64, state=ShareLinkState.ACTIVE
    )
    share_link_revoke(actor=Actor.system(owner.org_id), link=link)
    [event] = WebhookEvent.objects.all()
    assert event.type == "share.revoked" and event.payload["data"]["share_id"] == link.id
    assert "f" * 64 not in str(event.payload)


def test_deleting_an_artifact_revokes_its_links_with_events(owner):
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    ShareLink.objects.create(organization_id=owner.org_id, artifact=artifact, token_hash="e" * 64, state="active")
    artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    assert sorted(_types(owner.org_id)) == ["artifact.deleted", "share.revoked"]


def test_each_sandbox_status_change_emits_its_event(owner):
    ready = make_sandbox(owner.org_id, status=SandboxStatus.CREATING)
    assert sandbox_mark_running(sandbox_id=ready.id, isolated=True)
    # A second, duplicate change moves nothing and emits nothing.
    assert not sandbox_mark_running(sandbox_id=ready.id, isolated=True)
    failed = make_sandbox(owner.org_id, status=SandboxStatus.CREATING)
    sandbox_mark_failed(sandbox_id=failed.id, message="no")
    expired = make_sandbox(owner.org_id, minutes_ago=120)
    assert sandbox_mark_expired(sandbox_id=expired.id, now=timezone.now())
    assert sandbox_mark_terminated(sandbox_id=expired.id)
    assert _types(owner.org_id) == ["sandbox.ready", "sandbox.error", "sandbox.timeout", "sandbox.stopped"]
    event = WebhookEvent.objects.get(type="sandbox.ready")
    assert event.payload["data"]["sandbox_id"] == ready.id and event.payload["data"]["status"] == "running"


def test_an_agent_session_status_change_emits_its_event(owner):
    session = make_session(owner.org_id, status=SessionStatus.RUNNING)
    assert session_move(session=session, expected=[SessionStatus.RUNNING], to=SessionStatus.PAUSED)
    [event] = WebhookEvent.objects.all()
    assert event.type == "session.paused" and event.payload["data"]["session_id"] == session.id


def test_the_dispatcher_is_asked_on_commit(owner, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "webhooks.outbox.celery_app.send_task", lambda name, args=None, kwargs=None, **_: sent.append((name, kwargs))
    )
    make_webhook(owner.org_id, "http://127.0.0.1:9/hook")
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    event = WebhookEvent.objects.get()
    assert ("webhooks.dispatch", {"event_id": event.id}) in sent


def test_an_organization_without_webhooks_keeps_its_events_and_sends_no_task(
    owner, stranger, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "webhooks.outbox.celery_app.send_task", lambda name, args=None, kwargs=None, **_: sent.append((name, kwargs))
    )
    make_webhook(stranger.org_id, "http://127.0.0.1:9/hook")
    make_webhook(owner.org_id, "http://127.0.0.1:9/off", enabled=False)
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    event = WebhookEvent.objects.get(organization_id=owner.org_id)
    assert event.type == "artifact.deleted" and event.dispatched_at is not None
    assert [name for name, _ in sent if name.startswith("webhooks.")] == []
    assert sweep()["events"] == 0


def test_a_broker_outage_at_commit_loses_no_event(owner, django_capture_on_commit_callbacks, monkeypatch, settings):
    settings.STOWAGE_WEBHOOK_SWEEP_GRACE_SECONDS = 0

    def down(name, *args, **kwargs):
        if name == "webhooks.dispatch":
            raise OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr("webhooks.outbox.celery_app.send_task", down)
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    webhook = make_webhook(owner.org_id, "http://127.0.0.1:9/hook")
    artifact = make_artifact(owner.org_id, None, "out/a.txt")
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(actor=Actor.system(owner.org_id), artifact=artifact)
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.TRASHED
    event = WebhookEvent.objects.get(type="artifact.deleted")
    assert event.dispatched_at is None
    assert sweep()["events"] == 1
    assert WebhookDelivery.objects.filter(event=event, webhook=webhook).count() == 1


def test_dispatch_makes_one_delivery_per_subscribed_webhook(owner, stranger, monkeypatch):
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    from webhooks.outbox import emit
    from webhooks.worker import event_dispatch

    every = make_webhook(owner.org_id, "http://127.0.0.1:9/a")
    uploads = make_webhook(owner.org_id, "http://127.0.0.1:9/b", events=["artifact.uploaded"])
    make_webhook(owner.org_id, "http://127.0.0.1:9/c", events=["artifact.deleted"])
    make_webhook(owner.org_id, "http://127.0.0.1:9/d", enabled=False)
    make_webhook(stranger.org_id, "http://127.0.0.1:9/e")
    event = emit(organization_id=owner.org_id, type="artifact.uploaded", data={})
    assert len(event_dispatch(event_id=event.id)) == 2
    assert event_dispatch(event_id=event.id) == []
    assert {d.webhook_id for d in WebhookDelivery.objects.all()} == {every.id, uploads.id}


@pytest.mark.django_db(transaction=True)
def test_queued_events_of_organizations_with_and_without_webhooks_are_each_kept_as_theirs(owner, stranger, monkeypatch):
    # Events only queued (a command about to start) are written in batches that mix
    # organizations: only those of an organization with an enabled webhook are dispatched.
    sent = []
    monkeypatch.setattr(
        "webhooks.outbox.celery_app.send_task", lambda name, args=None, kwargs=None, **_: sent.append((name, kwargs))
    )
    make_webhook(stranger.org_id, "http://127.0.0.1:9/hook")
    queued = [
        emit(organization_id=org_id, type="command.started", data={"sandbox_id": f"sbx-{n}"}, wait=False)
        for n in range(60)
        for org_id in (owner.org_id, stranger.org_id)
    ]
    deadline = time.monotonic() + 60
    while WebhookEvent.objects.filter(id__in=[event.id for event in queued]).count() < len(queued):
        assert time.monotonic() < deadline, "queued events were not written"
        time.sleep(0.05)
    heard = set(
        WebhookEvent.objects.filter(id__in=[event.id for event in queued], dispatched_at__isnull=True).values_list(
            "id", flat=True
        )
    )
    assert heard == {event.id for event in queued if event.organization_id == stranger.org_id}
    deadline = time.monotonic() + 10
    while len([name for name, _ in sent if name == "webhooks.dispatch"]) < len(heard):
        assert time.monotonic() < deadline, "dispatches were not sent"
        time.sleep(0.05)
    assert {kwargs["event_id"] for name, kwargs in sent if name == "webhooks.dispatch"} == heard
