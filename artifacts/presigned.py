"""Presigned URLs made by Stowage itself (local storage, and every folder archive): anyone holding an
unexpired, untampered URL gets the bytes; everyone else the same 403, and the refusal is audited."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from artifacts.folder_http import entry_response
from artifacts.folder_selectors import entry_file
from artifacts.http import artifact_delivery
from artifacts.models import Artifact
from artifacts.services import artifact_record_read
from artifacts.signing import verify
from audit.refusals import audit_refusal
from config.auth import client_ip, request_actor
from core.actor import Actor
from core.errors import InvalidInput, NotFound


def file_subject(artifact_id: str, path: str) -> str:
    """What a presigned URL of one file of a folder signs: the artifact and the path, so neither can be swapped."""
    return f"{artifact_id}\n{path}"


def _forbidden() -> HttpResponse:
    response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


def _audit_refused_url(request: HttpRequest, artifact_id: str, expires: str) -> None:
    """In the log of the artifact's organization; of the instance when no such artifact exists."""
    organization_id = Artifact.objects.filter(id=artifact_id[:40]).values_list("organization_id", flat=True).first()
    expired = expires.isdigit() and int(expires) < timezone.now().timestamp()
    audit_refusal(
        actor=request_actor(request, label="presigned url", organization_id=organization_id),
        action="artifact.url_refused",
        reason="the presigned URL has expired" if expired else "the presigned URL's signature does not match",
        organization_id=organization_id,
        resource=f"artifact:{artifact_id[:40]}",
        details={"via": "presigned url"},
    )


@require_GET
def presigned_download(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """Anyone holding an unexpired, untampered URL gets the bytes; everyone else the same 403."""
    params = request.GET
    if not verify(artifact_id, params.get("expires", ""), params.get("kv", ""), params.get("sig", "")):
        _audit_refused_url(request, artifact_id, params.get("expires", ""))
        return _forbidden()
    artifact = Artifact.objects.visible().filter(id=artifact_id).first()
    if artifact is None:
        return _forbidden()
    actor = Actor(
        organization_id=artifact.organization_id,
        label="presigned url",
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
    )
    artifact_record_read(
        actor=actor,
        artifact=artifact,
        action="artifact.download",
        details={"via": "presigned url", "range": request.headers.get("Range", "")},
    )
    return artifact_delivery(request, artifact)


@require_GET
def presigned_file_download(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """One file of a folder for anyone holding an unexpired, untampered URL of it; else 403."""
    params = request.GET
    path = params.get("path", "")
    if not verify(
        file_subject(artifact_id, path), params.get("expires", ""), params.get("kv", ""), params.get("sig", "")
    ):
        _audit_refused_url(request, artifact_id, params.get("expires", ""))
        return _forbidden()
    artifact = Artifact.objects.visible().filter(id=artifact_id, is_folder=True).first()
    if artifact is None:
        return _forbidden()
    try:
        entry = entry_file(artifact=artifact, path=path)
    except (NotFound, InvalidInput):
        return _forbidden()
    actor = Actor(
        organization_id=artifact.organization_id,
        label="presigned url",
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
    )
    artifact_record_read(
        actor=actor,
        artifact=artifact,
        action="artifact.download",
        details={"via": "presigned url", "path": entry.path, "range": request.headers.get("Range", "")},
    )
    return entry_response(request, artifact, entry)
