"""Domain errors. Services raise them; the API renders them as JSON, the dashboard as messages."""

from __future__ import annotations

from typing import Any


class StowageError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidInput(StowageError):
    status = 400
    code = "VALIDATION_ERROR"


class Unauthorized(StowageError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(StowageError):
    status = 403
    code = "FORBIDDEN"


class NotFound(StowageError):
    status = 404
    code = "NOT_FOUND"


class Conflict(StowageError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(StowageError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unavailable(StowageError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


class GatewayTimeout(StowageError):
    status = 504
    code = "WORKER_TIMEOUT"
