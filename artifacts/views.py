from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from artifacts.http import artifact_response
from artifacts.models import Artifact
from artifacts.services import artifact_record_read
from artifacts.signing import verify
from audit.services import Actor
from config.api import client_ip


def _forbidden() -> HttpResponse:
    response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def presigned_download(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """Anyone holding an unexpired, untampered URL gets the bytes; everyone else the same 403."""
    params = request.GET
    if not verify(artifact_id, params.get("expires", ""), params.get("kv", ""), params.get("sig", "")):
        return _forbidden()
    artifact = Artifact.objects.visible().filter(id=artifact_id).first()
    if artifact is None:
        return _forbidden()
    actor = Actor(organization_id=artifact.organization_id, label="presigned url", ip=client_ip(request), user_agent=request.headers.get("User-Agent", "")[:400], request_id=getattr(request, "request_id", ""))
    artifact_record_read(actor=actor, artifact=artifact, action="artifact.download", details={"via": "presigned url", "range": request.headers.get("Range", "")})
    return artifact_response(request, artifact)
