"""Under ASGI, Django's header and CSRF middleware run their hooks in the event loop for API
requests and on the request's thread for the dashboard, and do the same work either way."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.conf import settings
from django.core import checks
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware

from config.asgi import django_application
from tests.asgi_calls import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)

HOOKS = [
    (SecurityMiddleware, "process_request"),
    (SecurityMiddleware, "process_response"),
    (CommonMiddleware, "process_request"),
    (CommonMiddleware, "process_response"),
    (CsrfViewMiddleware, "process_request"),
    (CsrfViewMiddleware, "process_view"),
    (CsrfViewMiddleware, "process_response"),
    (XFrameOptionsMiddleware, "process_response"),
]


@pytest.fixture
def hook_threads(monkeypatch):
    """The thread each of the four middlewares' hooks ran on, by hook."""
    seen: dict[str, threading.Thread] = {}
    for cls, name in HOOKS:
        original = getattr(cls, name)

        def recording(self, *args, _original=original, _key=f"{cls.__name__}.{name}"):
            seen[_key] = threading.current_thread()
            return _original(self, *args)

        monkeypatch.setattr(cls, name, recording)
    return seen


def test_an_api_request_runs_them_in_the_loop_with_their_headers(hook_threads) -> None:
    status, headers, _ = asyncio.run(asgi_request(django_application, "GET", "/api/v1/artifacts"))
    assert status == 401
    assert set(hook_threads) == {f"{cls.__name__}.{name}" for cls, name in HOOKS}
    assert set(hook_threads.values()) == {threading.current_thread()}
    # What they add is there all the same.
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"


def test_a_missing_api_slash_is_still_redirected() -> None:
    status, headers, _ = asyncio.run(asgi_request(django_application, "GET", "/api/v1"))
    assert (status, headers["location"]) == (301, "/api/v1/")


def test_the_dashboard_runs_them_on_the_requests_thread_and_csrf_still_refuses(hook_threads) -> None:
    status, headers, _ = asyncio.run(asgi_request(django_application, "POST", "/login/"))
    assert status == 403  # no CSRF cookie or token
    assert "CsrfViewMiddleware.process_view" in hook_threads
    assert threading.current_thread() not in set(hook_threads.values())
    assert headers["x-frame-options"] == "DENY"


def test_the_settings_keep_djangos_names_for_its_deployment_checks() -> None:
    for cls in (SecurityMiddleware, CsrfViewMiddleware, XFrameOptionsMiddleware):
        assert f"{cls.__module__}.{cls.__name__}" in settings.MIDDLEWARE
    found = {message.id for message in checks.run_checks(include_deployment_checks=True)}
    assert not found & {"security.W001", "security.W002", "security.W003"}
