"""The NinjaAPI objects: the REST API under /api/v1 (API keys), and the JSON endpoints the
dashboard's upload page calls (the browser's session). Both answer errors in one shape."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from audit.foreign_ids import audit_foreign_ids
from audit.refusals import audit_refusal
from config.auth import ApiKeyAuth
from core.actor import Actor
from core.errors import StowageError
from core.http import body_too_large, error_response, read_json_object, stowage_error_response

logger = logging.getLogger(__name__)


PATH_REFUSED = "sandbox.path_refused"


class JsonObjectParser(Parser):
    """Every request body is one JSON object of Unicode text no larger than
    settings.API_MAX_BODY_BYTES; anything else is refused here, before any schema or service."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return read_json_object(request)


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


def register_error_handlers(ninja_api: NinjaAPI) -> None:
    """Every error as ``{"error": {"code", "message", "request_id", "details"}}``."""
    ninja_api.add_exception_handler(StowageError, _stowage_error)
    ninja_api.add_exception_handler(ValidationError, _validation_error)
    ninja_api.add_exception_handler(AuthenticationError, _auth_error)
    ninja_api.add_exception_handler(Http404, _not_found)
    ninja_api.add_exception_handler(HttpError, _http_error)
    ninja_api.add_exception_handler(SuspiciousOperation, _suspicious)
    ninja_api.add_exception_handler(Exception, _unexpected)


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
register_error_handlers(api)


# Exempt, or Django would answer an unknown POST with its HTML CSRF page instead of this 404.
@csrf_exempt
def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, status=404, code="NOT_FOUND", message=f"no API endpoint at /api/v1/{path}")


api.add_router("", "accounts.api.router")
api.add_router("", "audit.api.router")
api.add_router("", "sandboxes.api.router")
api.add_router("", "artifacts.api.router")
api.add_router("", "artifacts.folder_api.router")
api.add_router("", "shares.api.router")
api.add_router("", "transfers.api.router")
api.add_router("", "agents.api.router")

# The upload page's endpoints, under /artifacts/upload/: signed in through the dashboard's
# session (its CSRF token checked), and no part of the public API or its schema.
browser_api = NinjaAPI(
    title="Stowage dashboard uploads",
    version="browser",
    urls_namespace="browser-uploads",
    docs_url=None,
    openapi_url=None,
    parser=JsonObjectParser(),
)
register_error_handlers(browser_api)
browser_api.add_router("", "transfers.browser_api.router")
browser_api.add_router("", "transfers.browser_folders.router")
