from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException
from django.template.loader import render_to_string
from whitenoise.middleware import WhiteNoiseMiddleware

from config.auth import authenticate
from core.errors import StowageError
from core.http import body_too_large, error_response, stowage_error_response
from core.idempotency import (
    HEADER,
    check_key,
    idempotency_begin,
    idempotency_finish,
    idempotency_release,
    request_fingerprint,
)
from core.middleware import SyncAndAsyncMiddleware
from ops.logging import request_id_var

CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FORM = "application/x-www-form-urlencoded"
API_PREFIX = "/api/v1/"
SERVER_REQUEST_ID_HEADER = "X-Server-Request-Id"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def named_variant(subclass: type, base: type, prefix: str, how: str) -> type:
    """``subclass`` of the middleware ``base``, named ``prefix`` + its name, documented as ``how``."""
    subclass.__name__ = subclass.__qualname__ = f"{prefix}{base.__name__}"
    subclass.__doc__ = f"{base.__module__}.{base.__name__}, {how}."
    return subclass


class RequestIdMiddleware(SyncAndAsyncMiddleware):
    """Gives every request an id of the server's own, unique, stored on audit events and in error
    bodies. A client's X-Request-Id is kept beside it (and in audit), never taken for it: clients
    reuse theirs (the SDK numbers requests from 1 in every process)."""

    def _name(self, request: HttpRequest) -> str:
        supplied = request.headers.get("X-Request-Id", "")
        request.request_id = f"req_{uuid.uuid4().hex}"
        request.client_request_id = supplied if CLIENT_REQUEST_ID.match(supplied) else ""
        # Logs and the echoed header speak of the request by the id its caller knows it by.
        request.known_request_id = request.client_request_id or request.request_id
        return request.known_request_id

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Request-Id"] = request.known_request_id
        response[SERVER_REQUEST_ID_HEADER] = request.request_id
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        token = request_id_var.set(self._name(request))
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        return self.after(request, response)

    async def acall(self, request: HttpRequest) -> HttpResponse:
        token = request_id_var.set(self._name(request))
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        return self.after(request, response)


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


class BadInputMiddleware(SyncAndAsyncMiddleware):
    """Refuses a request whose address, query string, headers or form are not UTF-8 text or hold
    a NUL, before any view sees it: Django would quietly replace the bytes it cannot decode, and
    a NUL reaches a database that refuses it (PostgreSQL) as a server error. The API and the
    dashboard's scripts get the JSON error body, a browser's page a readable one."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        try:
            problem = _problem(request)
        except RequestDataTooBig:
            exc = body_too_large()
            return _refusal(request, exc.status, exc.code, exc.message)
        if problem is not None:
            return _refusal(request, 400, "INVALID_TEXT", problem)
        return None


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", ""):
        return error_response(request, status=status, code=code, message=message)
    # Rendered without the request: sessions and users are not loaded yet.
    page = render_to_string("bad_request.html", {"message": message})
    return HttpResponse(page, status=status)


_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


class ApiJsonErrorsMiddleware(SyncAndAsyncMiddleware):
    """Every error under /api/v1 is the usual JSON error body, whoever made it: a wrong method on
    a known route (405 from django-ninja), Django's CSRF or size refusals, a missing route."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (
            not is_api(request)
            or response.status_code < 400
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        code = _CODE_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        details: dict[str, object] = {}
        message = HTTPStatus(status).phrase.lower() if status in HTTPStatus._value2member_map_ else "error"
        allow = response.get("Allow")
        if status == 405 and allow:
            details["allowed_methods"] = sorted(method.strip() for method in allow.split(","))
            message = f"{request.method} is not allowed on {request.path}; use {allow}"
        converted = error_response(request, status=status, code=code, message=message, details=details)
        if allow:
            converted["Allow"] = allow
        return converted


class IdempotencyMiddleware(SyncAndAsyncMiddleware):
    """A POST to the API with an ``Idempotency-Key`` header runs once per organization and key;
    a retry within a day gets the first answer (``Idempotent-Replayed: true``) instead of running
    again, and the same key with another request is a 422 (``core.idempotency``)."""

    def __call__(self, request: HttpRequest) -> Any:
        key = request.headers.get(HEADER)
        if key is None or request.method != "POST" or not is_api(request):
            return self.get_response(request)
        if self.is_async:
            # Rare (a client's explicit key) and database-bound: run whole in a thread.
            return sync_to_async(self._keyed)(request, key, async_to_sync(self.get_response))
        return self._keyed(request, key, self.get_response)

    def _keyed(
        self, request: HttpRequest, key: str, get_response: Callable[[HttpRequest], HttpResponse]
    ) -> HttpResponse:
        try:
            check_key(key)
        except StowageError as exc:
            return stowage_error_response(request, exc)
        try:
            actor = authenticate(request)
            body = request.body
        except (StowageError, RequestDataTooBig, RawPostDataException):
            # Refused by the endpoint itself, the way it always is; nothing runs, so nothing is kept.
            return get_response(request)
        fingerprint = request_fingerprint(
            method=request.method, path=request.path, query=request.META.get("QUERY_STRING", ""), body=body
        )
        try:
            outcome = idempotency_begin(
                organization_id=actor.organization_id,
                key=key,
                fingerprint=fingerprint,
                method=request.method,
                path=request.path,
            )
        except StowageError as exc:
            return stowage_error_response(request, exc)
        if outcome.replay:
            return _replay(outcome.record)
        try:
            response = get_response(request)
        except BaseException:
            idempotency_release(record=outcome.record)
            raise
        idempotency_finish(
            record=outcome.record,
            status=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=None if response.streaming else response.content,
        )
        return response


def _replay(record) -> HttpResponse:
    response = HttpResponse(bytes(record.body), status=record.status, content_type=record.content_type or None)
    response["Idempotent-Replayed"] = "true"
    return response


class StaticFilesMiddleware(SyncAndAsyncMiddleware):
    """WhiteNoise's static files, in front of views that may be async: WhiteNoise's own middleware
    is synchronous only and would hold a thread for every request that passes through it."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.static_files = WhiteNoiseMiddleware(get_response=lambda request: None)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return self.static_files(request)
