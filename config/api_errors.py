"""How the API's errors are answered: one JSON shape for every exception, for both NinjaAPI
objects, and the same for the async endpoints (``async_endpoint``), whose errors are rendered in
a thread because some of them are audited."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from audit.foreign_ids import audit_foreign_ids
from audit.refusals import audit_refusal
from core.actor import Actor
from core.errors import StowageError
from core.http import body_too_large, error_response, stowage_error_response
from core.threads import in_thread

logger = logging.getLogger(__name__)


PATH_REFUSED = "sandbox.path_refused"


def _audit_path_refusal(request: HttpRequest, exc: StowageError) -> None:
    """A path refused before it reached the sandbox's host (a worker's refusal is in the event
    of the operation it refused)."""
    actor = getattr(request, "auth", None)
    if not isinstance(actor, Actor) or getattr(exc, "audited", False):
        return
    sandbox_id = str((request.resolver_match.kwargs if request.resolver_match else {}).get("sandbox_id", ""))[:40]
    audit_refusal(
        actor=actor,
        action=PATH_REFUSED,
        reason=exc.message,
        organization_id=actor.organization_id,
        resource=f"sandbox:{sandbox_id}" if sandbox_id else "",
        sandbox_id=sandbox_id,
        details={"method": request.method, "path": request.path[:500], **exc.details},
    )


def _stowage_error(request: HttpRequest, exc: StowageError) -> HttpResponse:
    if exc.status == 404:
        audit_foreign_ids(request, getattr(request, "auth", None))
    elif exc.code == "INVALID_PATH":
        _audit_path_refusal(request, exc)
    return stowage_error_response(request, exc)


def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for err in exc.errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(problems) if problems else "invalid request"
    details = {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors]}
    return error_response(request, status=400, code="VALIDATION_ERROR", message=message, details=details)


def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, status=401, code="UNAUTHORIZED", message="authentication required")


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    audit_foreign_ids(request, getattr(request, "auth", None))
    return error_response(request, status=404, code="NOT_FOUND", message="not found")


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, StowageError):
        # ninja wraps whatever the body parser raised in its own "Cannot parse request body".
        return stowage_error_response(request, exc.__cause__)
    code = "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR"
    return error_response(request, status=exc.status_code, code=code, message=str(exc))


def _suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Django's own limits: a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many query fields.
    if isinstance(exc, RequestDataTooBig):
        return stowage_error_response(request, body_too_large())
    return error_response(request, status=400, code="BAD_REQUEST", message=str(exc) or "bad request")


def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled API error (request %s)", getattr(request, "request_id", ""))
    message = "internal error; the request id identifies it in the server logs"
    return error_response(request, status=500, code="INTERNAL_ERROR", message=message)


_HANDLERS: dict[type[Exception], Callable[[HttpRequest, Any], HttpResponse]] = {
    StowageError: _stowage_error,
    ValidationError: _validation_error,
    AuthenticationError: _auth_error,
    Http404: _not_found,
    HttpError: _http_error,
    SuspiciousOperation: _suspicious,
    Exception: _unexpected,
}


def register_error_handlers(ninja_api: NinjaAPI) -> None:
    """Every error as ``{"error": {"code", "message", "request_id", "details"}}``."""
    for exception, handler in _HANDLERS.items():
        ninja_api.add_exception_handler(exception, handler)


def error_answer(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The answer to ``exc``, by the handler of its nearest class, as NinjaAPI picks it."""
    for klass in type(exc).__mro__:
        if klass in _HANDLERS:
            return _HANDLERS[klass](request, exc)
    raise exc


def async_endpoint(view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An async API operation whose errors are answered like a synchronous one's: django-ninja
    calls its error handlers inside the event loop, where the audited ones may not touch the
    database, so they run in a thread here."""

    @functools.wraps(view)
    async def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return await view(request, *args, **kwargs)
        except Exception as exc:
            return await in_thread(error_answer)(request, exc)

    # django-ninja reads the parameters' types from the signature; resolve them against the
    # view's own module, not this one.
    endpoint.__signature__ = inspect.signature(view, eval_str=True)
    return endpoint
