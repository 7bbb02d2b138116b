"""Domain errors and the one table that gives each error code its HTTP status.

Services, storage and the sandbox runtime raise these; the API and the dashboard's JSON endpoints
render them through ``core.http.error_response``, the dashboard's pages show their message. Codes
that cross a process boundary as plain strings (a worker's answer, a failed transfer's row) become
errors again through ``error_from_code``.
"""

from __future__ import annotations

from typing import Any

# Codes whose status is not their class's: the runtime's, the storage's and the worker's.
STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 400,
    "INVALID_DIGEST": 400,
    "INVALID_PATH": 400,
    "INVALID_COMMAND": 400,
    "INVALID_CURSOR": 400,
    "INVALID_ALIAS": 400,
    "ALIAS_PATH_MISMATCH": 400,
    "NOT_A_FILE": 400,
    "NOT_A_DIRECTORY": 400,
    "WEBHOOK_URL_REFUSED": 400,
    "UNKNOWN_EVENT": 400,
    "RESERVED_HEADER": 400,
    "UNAUTHORIZED": 401,
    "INVALID_TOKEN": 401,
    "TOKEN_EXPIRED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "FILE_NOT_FOUND": 404,
    "SESSION_NOT_FOUND": 404,
    "WEBHOOK_NOT_FOUND": 404,
    "DELIVERY_NOT_FOUND": 404,
    "ALIAS_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "SANDBOX_NOT_RUNNING": 409,
    "FILE_CHANGED": 409,
    "FILE_EXISTS": 409,
    "NOT_A_FOLDER": 409,
    "SESSION_NOT_RUNNING": 409,
    "SESSION_ROTATING": 409,
    "SESSION_NO_SANDBOX": 409,
    "SESSION_ENDED": 409,
    "BUDGET_EXCEEDED": 409,
    "IDEMPOTENCY_KEY_IN_USE": 409,
    "UPLOAD_GONE": 409,
    "DELIVERY_IN_FLIGHT": 409,
    "WEBHOOK_LIMIT": 409,
    "ALIAS_CHANGED": 409,
    "LEGAL_HOLD": 409,
    "TRASH_EXPIRED": 409,
    "BACKLOG_FULL": 429,
    "PAYLOAD_TOO_LARGE": 413,
    "FILE_TOO_LARGE": 413,
    "FOLDER_TOO_LARGE": 413,
    "FOLDER_TOO_MANY_ENTRIES": 413,
    "INVALID_MANIFEST": 422,
    "CHECKSUM_MISMATCH": 422,
    "DIGEST_MISMATCH": 422,
    "TRANSFER_FAILED": 422,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "IO_ERROR": 500,
    "STORAGE_ERROR": 502,
    "WORKER_FAILED": 502,
    "SERVICE_UNAVAILABLE": 503,
    "BROKER_UNAVAILABLE": 503,
    "ISOLATION_UNAVAILABLE": 503,
    "DISK_UNAVAILABLE": 503,
    "WORKER_TIMEOUT": 504,
    "STORAGE_FULL": 507,
    "NO_SPACE": 507,
}

# The runtime says a sandbox is gone; to the caller that sandbox is simply not running.
_RENAMED = {"SANDBOX_GONE": "SANDBOX_NOT_RUNNING"}


class StowageError(Exception):
    """A failure to report as-is: ``code`` is stable for programs, ``message`` is for people."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.status = status or STATUS_BY_CODE.get(self.code, type(self).status)

    def __str__(self) -> str:
        return self.message


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


class TooBusy(StowageError):
    """More work waits for a sandbox host than its backlog holds; ``retry_after`` is in seconds."""

    status = 429
    code = "BACKLOG_FULL"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GatewayTimeout(StowageError):
    status = 504
    code = "WORKER_TIMEOUT"


_CLASS_BY_STATUS: dict[int, type[StowageError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
    504: GatewayTimeout,
}


def error_from_code(code: str, message: str, *, default_status: int = 400) -> StowageError:
    """The error a code names when it arrives as text, of the class its status implies."""
    code = _RENAMED.get(code, code)
    status = STATUS_BY_CODE.get(code, default_status)
    return _CLASS_BY_STATUS.get(status, StowageError)(message, code=code, status=status)
