"""The dashboard inside a folder artifact (its file browser, one file's page, download and inline
content) and the presigned URL of one of its files."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from accounts.access import org_view
from artifacts import preview as previews
from artifacts.folder_http import entry_content, entry_delivery, entry_response
from artifacts.folder_selectors import breadcrumbs, entry_file, entry_list
from artifacts.models import Artifact, ArtifactEntry
from artifacts.selectors import artifact_get
from artifacts.services import artifact_record_read
from core.errors import InvalidInput, NotFound

FOLDER_PAGE = 200


def folder_context(request: HttpRequest, artifact: Artifact) -> dict:
    """The file browser's part of a folder artifact's page: the entries of ``?dir=``, a page at a
    time (``?cursor=``), with breadcrumbs."""
    directory = request.GET.get("dir", "").strip("/")
    try:
        page = entry_list(
            artifact=artifact, directory=directory, cursor=request.GET.get("cursor") or None, limit=FOLDER_PAGE
        )
    except InvalidInput:
        directory, page = "", entry_list(artifact=artifact, directory="", limit=FOLDER_PAGE)
    return {
        "folder_dir": directory,
        "folder_crumbs": breadcrumbs(directory),
        "folder_entries": page.entries,
        "folder_next_cursor": page.next_cursor,
    }


def _artifact(request: HttpRequest, artifact_id: str) -> Artifact:
    try:
        return artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        raise Http404("not found") from None


def _entry(request: HttpRequest, artifact: Artifact) -> ArtifactEntry:
    try:
        return entry_file(artifact=artifact, path=request.GET.get("path", ""))
    except (NotFound, InvalidInput):
        raise Http404("no such file in this folder") from None


@org_view()
@require_GET
def artifact_file(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    entry = _entry(request, artifact)
    content = entry_content(artifact, entry)
    preview = previews.build_preview(content)  # type: ignore[arg-type]
    if preview.read_bytes:
        artifact_record_read(
            actor=request.actor,
            artifact=artifact,
            action="artifact.preview",
            details={"via": "dashboard", "path": entry.path, "bytes": preview.shown_bytes},
        )
    context = {
        "artifact": artifact,
        "entry": entry,
        "content": content,
        "preview": preview,
        "folder_crumbs": breadcrumbs(entry.parent),
        "content_url": reverse("artifact-file-content", args=[artifact.id]) + "?" + urlencode({"path": entry.path}),
        "download_url": reverse("artifact-file-download", args=[artifact.id]) + "?" + urlencode({"path": entry.path}),
    }
    return render(request, "artifacts/artifact_file.html", context)


@org_view()
@require_GET
def artifact_file_download(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    entry = _entry(request, artifact)
    artifact_record_read(
        actor=request.actor,
        artifact=artifact,
        action="artifact.download",
        details={"via": "dashboard", "path": entry.path, "range": request.headers.get("Range", "")},
    )
    return entry_delivery(request, artifact, entry)


@xframe_options_sameorigin
@org_view()
@require_GET
def artifact_file_content(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """An image or a PDF of the folder, inline for its preview, in a response that is its own sandbox."""
    artifact = _artifact(request, artifact_id)
    entry = _entry(request, artifact)
    content = entry_content(artifact, entry)
    content_type = previews.inline_content_type(content)  # type: ignore[arg-type]
    if content_type is None:
        raise Http404("no inline content for this file")
    response = entry_response(request, artifact, entry)
    if response.status_code in (200, 206):
        response["Content-Type"] = content_type
        response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    return response
