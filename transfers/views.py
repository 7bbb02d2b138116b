"""The dashboard's upload page. Its script sends each file to the JSON endpoints of
transfers/browser_api.py; this page also takes one file through a plain form without JavaScript."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from accounts.access import org_view
from accounts.models import Role
from core.errors import StowageError
from transfers.forms import UploadForm, browser_content_type, file_too_large, metadata_from_rows
from transfers.put import artifact_put

# The no-JavaScript upload form posts multipart, which Django spools to a temporary file first.
FORM_UPLOAD_MAX_BYTES = 100 << 20


def _upload_page(request: HttpRequest, form: UploadForm, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "error": error,
        "max_bytes": settings.ARTIFACT_MAX_BYTES,
        "folder_max_entries": settings.FOLDER_MAX_ENTRIES,
        "folder_max_bytes": settings.FOLDER_MAX_BYTES,
        "form_max_bytes": min(FORM_UPLOAD_MAX_BYTES, settings.ARTIFACT_MAX_BYTES),
        "metadata_rows": range(3),
    }
    return render(request, "artifacts/artifact_upload.html", context, status=status)


# The multipart fallback is checked for CSRF only after its size: CsrfViewMiddleware would read
# (and spool) the whole body first to find the token field.
@csrf_exempt
@org_view(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def artifact_upload(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _upload_page(request, UploadForm())
    limit = min(FORM_UPLOAD_MAX_BYTES, settings.ARTIFACT_MAX_BYTES)
    length = request.META.get("CONTENT_LENGTH", "")
    if length.isdigit() and int(length) > limit + 64 * 1024:
        error = f"This form takes files up to {filesizeformat(limit)}. Turn on JavaScript to upload larger files (up to {filesizeformat(settings.ARTIFACT_MAX_BYTES)})."
        return _upload_page(request, UploadForm(), error=error, status=413)
    return _upload_form_post(request)


@csrf_protect
def _upload_form_post(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    uploaded = form.cleaned_data["file"]
    limit = min(FORM_UPLOAD_MAX_BYTES, settings.ARTIFACT_MAX_BYTES)
    try:
        if uploaded.size > limit:
            raise file_too_large(uploaded.size, limit)
        metadata = metadata_from_rows(request.POST.getlist("meta_key"), request.POST.getlist("meta_value"))
        artifact = artifact_put(
            actor=request.actor,
            stream=uploaded,
            remote_path=form.cleaned_data["remote_path"] or uploaded.name,
            content_type=browser_content_type(uploaded.content_type or ""),
            metadata=metadata,
            content_length=uploaded.size,
        )
    except StowageError as exc:
        return _upload_page(request, form, error=exc.message, status=exc.status)
    messages.success(request, f"Uploaded {artifact.remote_path} (version {artifact.version}).")
    return redirect("artifact-detail", artifact.id)
