"""The dashboard's row actions on artifacts (the list and the folder view): a presigned URL made
for the copy button. JSON in and out, like the API: the page's script shows the message of any
refusal, and an artifact of another organization is the same 404 as a missing one."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from accounts.access import org_view
from artifacts.api import presigned_url
from artifacts.selectors import artifact_get
from artifacts.services import artifact_record_read
from audit.foreign_ids import audit_foreign_ids
from core.errors import NotFound
from core.http import error_response

DEFAULT_EXPIRES_IN = 3600


def _expires_in(raw: str) -> int | None:
    if not raw:
        return DEFAULT_EXPIRES_IN
    if not raw.isdigit() or not 1 <= int(raw) <= settings.PRESIGNED_URL_MAX_SECONDS:
        return None
    return int(raw)


@org_view()
@require_POST
def artifact_presign(request: HttpRequest, artifact_id: str) -> JsonResponse:
    expires_in = _expires_in(request.POST.get("expires_in", "").strip())
    if expires_in is None:
        return error_response(
            request,
            status=400,
            code="VALIDATION_ERROR",
            message=f"expires_in must be a whole number of seconds from 1 to {settings.PRESIGNED_URL_MAX_SECONDS}.",
            details={"field": "expires_in"},
        )
    try:
        artifact = artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        audit_foreign_ids(request, request.actor)
        return error_response(
            request, status=404, code="ARTIFACT_NOT_FOUND", message="That artifact is gone, or was never here."
        )
    url, expires_at = presigned_url(request, artifact, expires_in)
    artifact_record_read(
        actor=request.actor,
        artifact=artifact,
        action="artifact.url",
        details={"via": "dashboard", "expires_in": expires_in},
    )
    response = JsonResponse({"url": url, "expires_in": expires_in, "expires_at": expires_at.isoformat()})
    # It holds a working credential.
    add_never_cache_headers(response)
    return response
