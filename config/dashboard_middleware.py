"""The dashboard's middleware, passed over by API requests.

Sessions, sign-in, messages and the CSP header serve the dashboard; the API under /api/v1/
authenticates by API key alone, so it needs none of them. (CSRF and the framing header stay
for every path, where Django's deployment checks look for them.)
Under ASGI Django runs each hook of such a middleware in a thread of its own: two thread hops per
middleware on every request. Wrapped by ``dashboard_only``, a middleware runs as before for every
other path, and an API request goes straight on to the next one, with no hop.
"""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest

from config.middleware import is_api, named_variant


def dashboard_only(middleware_class: type) -> type:
    """A subclass of ``middleware_class`` (Django's admin checks look for those) that API
    requests pass straight through. For middleware without ``process_view``: every hook it has
    runs inside its own ``__call__``."""
    if hasattr(middleware_class, "process_view"):
        raise TypeError(f"{middleware_class.__name__} has process_view, which Django would still call")

    class DashboardOnly(middleware_class):
        def __call__(self, request: HttpRequest) -> Any:
            if is_api(request):
                return self.get_response(request)
            return super().__call__(request)

    return named_variant(DashboardOnly, middleware_class, "DashboardOnly", "skipped for API requests")


DashboardSessionMiddleware = dashboard_only(SessionMiddleware)
DashboardAuthenticationMiddleware = dashboard_only(AuthenticationMiddleware)
DashboardMessageMiddleware = dashboard_only(MessageMiddleware)
DashboardCSPMiddleware = dashboard_only(CSPMiddleware)
