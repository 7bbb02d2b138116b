"""A page and its fragment from one view: htmx asks for the fragment, everyone else gets the page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseStopPolling


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request, but not a history restore, which needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def fragment(request: HttpRequest, template: str, context: dict[str, Any], *, final: bool = False) -> HttpResponse:
    """The fragment alone; once what it shows is final, 286 tells htmx to stop polling."""
    if final:
        return HttpResponseStopPolling(render_to_string(template, context, request))
    return render(request, template, context)


def page_or_fragment(
    request: HttpRequest, page: str, fragment_template: str, context: dict[str, Any], *, final: bool = False
) -> HttpResponse:
    response = (
        fragment(request, fragment_template, context, final=final)
        if wants_fragment(request)
        else render(request, page, context)
    )
    # A browser's cache must not hand the fragment to a plain visit of the same URL, or back.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response
