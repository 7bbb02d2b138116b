"""The REST API: one NinjaAPI under /api/v1, API-key authentication and JSON errors."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from config.auth import ApiKeyAuth
from core.errors import StowageError
from core.http import body_too_large, error_response, read_json_object, stowage_error_response

logger = logging.getLogger(__name__)


class JsonObjectParser(Parser):
    """Every request body is one JSON object of Unicode text no larger than
    settings.API_MAX_BODY_BYTES; anything else is refused here, before any schema or service."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return read_json_object(request)


api = NinjaAPI(
    title="Stowage API",
    version="1",
    description="Persistent artifact storage for sandboxes.",
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=JsonObjectParser(),
)


@api.exception_handler(StowageError)
def _stowage_error(request: HttpRequest, exc: StowageError) -> HttpResponse:
    return stowage_error_response(request, exc)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for err in exc.errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(problems) if problems else "invalid request"
    details = {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors]}
    return error_response(request, status=400, code="VALIDATION_ERROR", message=message, details=details)


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, status=401, code="UNAUTHORIZED", message="authentication required")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, status=404, code="NOT_FOUND", message="not found")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, StowageError):
        # ninja wraps whatever the body parser raised in its own "Cannot parse request body".
        return stowage_error_response(request, exc.__cause__)
    code = "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR"
    return error_response(request, status=exc.status_code, code=code, message=str(exc))


@api.exception_handler(SuspiciousOperation)
def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Django's own limits: a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many query fields.
    if isinstance(exc, RequestDataTooBig):
        return stowage_error_response(request, body_too_large())
    return error_response(request, status=400, code="BAD_REQUEST", message=str(exc) or "bad request")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled API error (request %s)", getattr(request, "request_id", ""))
    message = "internal error; the request id identifies it in the server logs"
    return error_response(request, status=500, code="INTERNAL_ERROR", message=message)


def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, status=404, code="NOT_FOUND", message=f"no API endpoint at /api/v1/{path}")


api.add_router("", "accounts.api.router")
api.add_router("", "audit.api.router")
api.add_router("", "sandboxes.api.router")
api.add_router("", "artifacts.api.router")
api.add_router("", "artifacts.share_api.router")
