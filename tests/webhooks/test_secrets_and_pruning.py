"""Secrets at rest, and the pruning of old events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings
from django.utils import timezone

from tests.factories import make_webhook
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.outbox import emit
from webhooks.secrets import SecretUnreadable, decrypt_secret, encrypt_secret, generate_secret
from webhooks.worker import event_dispatch, events_prune

pytestmark = pytest.mark.django_db


def test_a_secret_is_encrypted_under_a_key_that_is_not_in_the_database():
    secret = generate_secret()
    token = encrypt_secret(secret)
    assert secret not in token and decrypt_secret(token) == secret
    other_instance = override_settings(SECRET_KEY="another-instance-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[])
    with other_instance, pytest.raises(SecretUnreadable):
        decrypt_secret(token)


def test_configured_keys_encrypt_with_the_first_and_decrypt_with_any():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(STOWAGE_SECRETS_KEY=old):
        token = encrypt_secret("a-plain-secret-of-my-own")
    with override_settings(STOWAGE_SECRETS_KEY=f"{new},{old}"):
        assert decrypt_secret(token) == "a-plain-secret-of-my-own"
        assert Fernet(new.encode()).decrypt(encrypt_secret("x").encode()) == b"x"


def test_old_dispatched_events_are_pruned_with_their_deliveries(owner, monkeypatch):
    monkeypatch.setattr("webhooks.worker.send_deliver", lambda *a, **k: None)
    make_webhook(owner.org_id, "http://127.0.0.1:9/hook", created_at=timezone.now() - timedelta(days=60))
    old = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
    undispatched = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
    fresh = emit(organization_id=owner.org_id, type="artifact.deleted", data={})
    WebhookEvent.objects.filter(id__in=[old.id, undispatched.id]).update(created_at=timezone.now() - timedelta(days=40))
    event_dispatch(event_id=old.id)
    event_dispatch(event_id=fresh.id)
    assert events_prune() == 1
    assert set(WebhookEvent.objects.values_list("id", flat=True)) == {undispatched.id, fresh.id}
    assert WebhookDelivery.objects.filter(event_id=old.id).count() == 0
