"""The REST API: one NinjaAPI under /api/v1, API-key authentication and JSON errors."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from config.auth import ApiKeyAuth
from config.errors import StowageError

logger = logging.getLogger(__name__)


api = NinjaAPI(
    title="Stowage API",
    version="1",
    description="Persistent artifact storage for sandboxes.",
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def error_response(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    details: dict | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    response = api.create_response(
        request,
        {
            "error": {
                "code": code,
                "message": message,
                "request_id": getattr(request, "request_id", ""),
                "details": details or {},
            }
        },
        status=status,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(StowageError)
def _stowage_error(request: HttpRequest, exc: StowageError) -> HttpResponse:
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for err in exc.errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(problems) if problems else "invalid request"
    return error_response(
        request,
        400,
        "VALIDATION_ERROR",
        message,
        {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors]},
    )


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "UNAUTHORIZED", "authentication required")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, "NOT_FOUND", "not found")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(
        request, exc.status_code, "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR", str(exc)
    )


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled API error (request %s)", getattr(request, "request_id", ""))
    return error_response(
        request, 500, "INTERNAL_ERROR", "internal error; the request id identifies it in the server logs"
    )


def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, "NOT_FOUND", f"no API endpoint at /api/v1/{path}")


api.add_router("", "accounts.api.router")
api.add_router("", "audit.api.router")
api.add_router("", "sandboxes.api.router")
api.add_router("", "artifacts.api.router")
api.add_router("", "artifacts.share_api.router")
