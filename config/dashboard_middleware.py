"""The dashboard's middleware, passed over by API requests.

Sessions, sign-in, messages and the CSP header serve the dashboard; the API under /api/v1/
authenticates by API key alone, so it needs none of them. (CSRF and the framing header stay
for every path, where Django's deployment checks look for them.)
Under ASGI Django runs each hook of such a middleware in a thread of its own: two thread hops per
middleware on every request. Wrapped by ``dashboard_only``, a middleware runs as before for every
other path, and an API request goes straight on to the next one, with no hop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest

from config.middleware import is_api


def dashboard_only(middleware_class: type) -> type:
    """A subclass of ``middleware_class`` (Django's and django-axes' checks look for those)
    that API requests pass straight through."""

    class DashboardOnly(middleware_class):
        def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
            super().__init__(get_response)
            if hasattr(middleware_class, "process_view"):
                is_async = iscoroutinefunction(get_response)
                self.process_view = self._aprocess_view if is_async else self._process_view

        def __call__(self, request: HttpRequest) -> Any:
            if is_api(request):
                return self.get_response(request)
            return super().__call__(request)

        def _process_view(self, request: HttpRequest, view: Callable, args: Any, kwargs: Any) -> Any:
            if is_api(request):
                return None
            return middleware_class.process_view(self, request, view, args, kwargs)

        async def _aprocess_view(self, request: HttpRequest, view: Callable, args: Any, kwargs: Any) -> Any:
            if is_api(request):
                return None
            return await sync_to_async(middleware_class.process_view)(self, request, view, args, kwargs)

    DashboardOnly.__name__ = DashboardOnly.__qualname__ = f"DashboardOnly{middleware_class.__name__}"
    DashboardOnly.__doc__ = f"{middleware_class.__module__}.{middleware_class.__name__}, skipped for API requests."
    return DashboardOnly


DashboardSessionMiddleware = dashboard_only(SessionMiddleware)
DashboardAuthenticationMiddleware = dashboard_only(AuthenticationMiddleware)
DashboardMessageMiddleware = dashboard_only(MessageMiddleware)
DashboardCSPMiddleware = dashboard_only(CSPMiddleware)
