"""The one JSON error body, for the API and for the dashboard's JSON endpoints alike, and the one
way their JSON request bodies are read."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from core.errors import InvalidInput, PayloadTooLarge, StowageError
from core.text import json_without_lone_surrogates

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
    if status in (429, 503):
        response["Retry-After"] = RETRY_AFTER_SECONDS
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def stowage_error_response(request: HttpRequest, exc: StowageError) -> JsonResponse:
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return error_response(
        request, status=exc.status, code=exc.code, message=exc.message, details=exc.details, headers=headers
    )


def body_too_large() -> PayloadTooLarge:
    limit = settings.API_MAX_BODY_BYTES
    return PayloadTooLarge(
        f"the request body is larger than the {limit} bytes a JSON request may be; send files as artifacts",
        details={"limit": limit},
    )


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is an empty object), or InvalidInput
    (INVALID_JSON, INVALID_TEXT) or PayloadTooLarge, before anything is done with it."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise body_too_large() from None
    if len(raw) > settings.API_MAX_BODY_BYTES:
        raise body_too_large()
    if not raw:
        return {}
    try:
        # Strict: a surrogate smuggled in as UTF-8-like bytes is not UTF-8 either.
        payload = json_without_lone_surrogates(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("the request body is not UTF-8 text", code="INVALID_JSON") from None
    except ValueError:
        raise InvalidInput("the request body is not valid JSON", code="INVALID_JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object", code="INVALID_JSON")
    return payload
