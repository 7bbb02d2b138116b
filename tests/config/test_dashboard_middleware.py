"""API requests pass over the dashboard's middleware; dashboard pages keep all of it, through
the WSGI and the ASGI handler alike."""

from __future__ import annotations

import asyncio

import pytest
from django.test import AsyncClient, Client


@pytest.fixture(params=["wsgi", "asgi"])
def fetch(request):
    def sync_get(path: str, **headers: str):
        return Client().get(path, headers=headers)

    def async_get(path: str, **headers: str):
        return asyncio.run(AsyncClient().get(path, headers=headers))

    return sync_get if request.param == "wsgi" else async_get


def test_a_dashboard_page_keeps_its_csrf_cookie_and_security_headers(db, fetch):
    response = fetch("/login/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


@pytest.fixture
def committed_owner(transactional_db):
    # Under ASGI the view runs in another thread: the key must be committed for it to see.
    from tests.conftest import _make_user

    return _make_user("Acme", "owner@acme.test")


def test_an_api_request_sets_no_session_or_csrf_cookie_and_still_answers(committed_owner, fetch):
    response = fetch("/api/v1/sandboxes", **committed_owner.headers())
    assert response.status_code == 200
    assert response.json()["sandboxes"] == []
    assert not response.cookies
    # Headers the whole site gets still come (SecurityMiddleware is not the dashboard's).
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_api_error_is_still_json(transactional_db, fetch):
    response = fetch("/api/v1/sandboxes")
    assert response.status_code == 401
    assert response.json()["error"]["code"]
    assert not response.cookies


def test_a_signed_in_dashboard_page_still_sees_its_user(owner, client):
    client.login(username=owner.username, password=owner.password)
    response = client.get("/artifacts/")
    assert response.status_code == 200
    assert owner.username in response.content.decode()
