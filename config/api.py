"""The NinjaAPI objects: the REST API under /api/v1 (API keys), and the JSON endpoints the
dashboard's upload page calls (the browser's session). Both answer errors in one shape."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.parser import Parser

from config.api_errors import PATH_REFUSED, register_error_handlers
from config.auth import ApiKeyAuth
from core.http import error_response, read_json_object

__all__ = ["PATH_REFUSED", "api", "api_not_found", "browser_api"]


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
register_error_handlers(api)


# Exempt, or Django would answer an unknown POST with its HTML CSRF page instead of this 404.
@csrf_exempt
def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, status=404, code="NOT_FOUND", message=f"no API endpoint at /api/v1/{path}")


api.add_router("", "accounts.api.router")
api.add_router("", "audit.api.router")
api.add_router("", "sandboxes.api.router")
# Before artifacts.api, whose /artifacts/{artifact_id} would take /artifacts/by-path.
api.add_router("", "artifacts.versions_api.router")
api.add_router("", "artifacts.trash_api.router")
api.add_router("", "artifacts.api.router")
api.add_router("", "artifacts.folder_api.router")
api.add_router("", "shares.api.router")
api.add_router("", "transfers.api.router")
api.add_router("", "agents.api.router")
api.add_router("", "webhooks.api.router")
api.add_router("", "retention.api.router")

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
