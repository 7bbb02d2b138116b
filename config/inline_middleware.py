"""Django's own header and CSRF middleware, their hooks run in the event loop for API requests.

Under ASGI Django runs each hook of a ``MiddlewareMixin`` middleware on the request's thread:
for ``SecurityMiddleware``, ``CommonMiddleware``, ``CsrfViewMiddleware`` and
``XFrameOptionsMiddleware`` that is eight trips to a thread and back on every request, about as
long as a small API call's own work. For a request under /api/v1/ their hooks only read the
request's headers and path and set response headers, so they are called in the loop instead;
for the dashboard (whose CSRF check may read a form body, on disk for a large upload) they run
as Django runs them.

``settings.MIDDLEWARE`` keeps Django's names, where the deployment checks look for them; the
ASGI handler (``config.asgi_handler``) loads these subclasses in their place.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware

from config.middleware import is_api, named_variant


def inline_for_api(middleware_class: type) -> type:
    """A subclass of ``middleware_class`` whose hooks run without a thread for API requests."""

    class InlineForApi(middleware_class):
        async def __acall__(self, request: HttpRequest) -> HttpResponse:
            if not is_api(request):
                return await super().__acall__(request)
            response = self.process_request(request) if hasattr(self, "process_request") else None
            response = response or await self.get_response(request)
            if hasattr(self, "process_response"):
                response = self.process_response(request, response)
            return response

    if hasattr(middleware_class, "process_view"):

        async def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> Any:
            # An exempt view is passed over before anything reads the body; any other goes to a thread.
            if is_api(request) and getattr(view, "csrf_exempt", False):
                return middleware_class.process_view(self, request, view, args, kwargs)
            return await sync_to_async(middleware_class.process_view, thread_sensitive=True)(
                self, request, view, args, kwargs
            )

        InlineForApi.process_view = process_view

    return named_variant(InlineForApi, middleware_class, "InlineForApi", "in the loop for API requests")


InlineForApiSecurityMiddleware = inline_for_api(SecurityMiddleware)
InlineForApiCommonMiddleware = inline_for_api(CommonMiddleware)
InlineForApiCsrfViewMiddleware = inline_for_api(CsrfViewMiddleware)
InlineForApiXFrameOptionsMiddleware = inline_for_api(XFrameOptionsMiddleware)

# Django's name of each: the name of the subclass the ASGI handler loads instead.
REPLACEMENTS = {
    f"{cls.__module__}.{cls.__name__}": f"{__name__}.InlineForApi{cls.__name__}"
    for cls in (SecurityMiddleware, CommonMiddleware, CsrfViewMiddleware, XFrameOptionsMiddleware)
}


def replaced(middleware: list[str]) -> list[str]:
    return [REPLACEMENTS.get(path, path) for path in middleware]
