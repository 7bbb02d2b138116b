"""The API answers like an API: JSON 404 and 405 for every route and method, a server-made
request id beside the client's, and retried POSTs with an Idempotency-Key run once."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from core.models import IdempotentRequest


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_an_unknown_route_is_a_json_404_for_every_method(owner, method):
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/v1/no/such/route", headers=owner.headers())
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_a_wrong_method_on_a_known_route_is_a_json_405(owner):
    response = owner.client.put("/api/v1/sandboxes", headers=owner.headers())
    assert response.status_code == 405
    error = response.json()["error"]
    assert error["code"] == "METHOD_NOT_ALLOWED" and error["details"]["allowed_methods"] == ["GET"]
    assert response["Allow"] == "GET"


def test_each_request_gets_a_server_id_and_keeps_the_clients_beside_it(owner):
    first = owner.post("/api-keys", {"name": "one"}, **{"X-Request-Id": "req-1"})
    second = owner.post("/api-keys", {"name": "two"}, **{"X-Request-Id": "req-1"})
    assert first["X-Request-Id"] == second["X-Request-Id"] == "req-1"
    assert first["X-Server-Request-Id"] != second["X-Server-Request-Id"]
    events = AuditEvent.objects.filter(action="apikey.create", details__name__in=["one", "two"]).order_by("seq")
    assert [e.client_request_id for e in events] == ["req-1", "req-1"]
    assert [e.request_id for e in events] == [first["X-Server-Request-Id"], second["X-Server-Request-Id"]]


def test_a_retried_post_with_an_idempotency_key_runs_once(owner):
    first = owner.post("/api-keys", {"name": "ci"}, **{"Idempotency-Key": "key-create-1"})
    retry = owner.post("/api-keys", {"name": "ci"}, **{"Idempotency-Key": "key-create-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(action="apikey.create", details__name="ci").count() == 1


def test_the_same_key_with_another_body_is_a_422_and_changes_nothing(owner):
    owner.post("/api-keys", {"name": "ci"}, **{"Idempotency-Key": "key-create-2"})
    other = owner.post("/api-keys", {"name": "another"}, **{"Idempotency-Key": "key-create-2"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert not AuditEvent.objects.filter(action="apikey.create", details__name="another").exists()


def test_keys_belong_to_their_organization(owner, stranger):
    owner.post("/api-keys", {"name": "ci"}, **{"Idempotency-Key": "shared-key"})
    theirs = stranger.post("/api-keys", {"name": "ci"}, **{"Idempotency-Key": "shared-key"})
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert IdempotentRequest.objects.filter(key="shared-key").count() == 2


def test_an_answer_that_did_nothing_is_not_kept(owner):
    refused = owner.post("/api-keys", {"name": ""}, **{"Idempotency-Key": "k-bad"})
    assert refused.status_code == 400
    # A 4xx is an answer like another: the retry sees it again rather than running.
    assert owner.post("/api-keys", {"name": ""}, **{"Idempotency-Key": "k-bad"})["Idempotent-Replayed"] == "true"


def test_a_malformed_idempotency_key_is_refused(owner):
    answer = owner.post("/api-keys", {"name": "x"}, **{"Idempotency-Key": "has spaces in it"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert not AuditEvent.objects.filter(action="apikey.create", details__name="x").exists()
