from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from core.http import body_too_large, error_response
from ops.logging import request_id_var

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FORM = "application/x-www-form-urlencoded"


class RequestIdMiddleware:
    """Gives every request an id, echoed in ``X-Request-Id`` and stored on audit events."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-Id", "")
        request.request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request.request_id
        return response


def _is_form_text(raw: bytes) -> bool:
    """Whether URL-encoded bytes (a query string, a form body) decode to UTF-8 text without NUL."""
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        return True
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return False
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_header_text(value: str) -> bool:
    # The server hands headers over as Latin-1; their bytes must still be UTF-8.
    if value.isascii():
        return "\x00" not in value
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _problem(request: HttpRequest) -> str | None:
    # Django keeps a path's undecodable bytes percent-encoded, so only a NUL is left to refuse.
    if "\x00" in request.path:
        return "The address holds a NUL character."
    try:
        query = request.META.get("QUERY_STRING", "").encode("latin-1")
    except UnicodeEncodeError:
        query = b"\xff"
    if not _is_form_text(query):
        return "The query string is not UTF-8 text, or holds a NUL character."
    for name, value in request.META.items():
        is_header = name.startswith("HTTP_") or name == "CONTENT_TYPE"
        if is_header and isinstance(value, str) and not _is_header_text(value):
            header = name.removeprefix("HTTP_").replace("_", "-").title()
            return f"The {header} header is not UTF-8 text, or holds a NUL character."
    if request.method == "POST" and request.content_type == _FORM and not _is_form_text(request.body):
        return "The form is not UTF-8 text, or holds a NUL character."
    return None


class BadInputMiddleware:
    """Refuses a request whose address, query string, headers or form are not UTF-8 text or hold
    a NUL, before any view sees it: Django would quietly replace the bytes it cannot decode, and
    a NUL reaches a database that refuses it (PostgreSQL) as a server error. The API and the
    dashboard's scripts get the JSON error body, a browser's page a readable one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            problem = _problem(request)
        except RequestDataTooBig:
            exc = body_too_large()
            return _refusal(request, exc.status, exc.code, exc.message)
        if problem is not None:
            return _refusal(request, 400, "INVALID_TEXT", problem)
        return self.get_response(request)


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", ""):
        return error_response(request, status=status, code=code, message=message)
    # Rendered without the request: sessions and users are not loaded yet.
    page = render_to_string("bad_request.html", {"message": message})
    return HttpResponse(page, status=status)
