"""The one JSON error body, for the API and for the dashboard's JSON endpoints alike."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from core.errors import StowageError

RETRY_AFTER_SECONDS = "5"


def error_response(
    request: HttpRequest,
    *,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "request_id": getattr(request, "request_id", ""),
            "details": details or {},
        }
    }
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_SECONDS
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def stowage_error_response(request: HttpRequest, exc: StowageError) -> JsonResponse:
    return error_response(request, status=exc.status, code=exc.code, message=exc.message, details=exc.details)
