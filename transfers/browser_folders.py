"""The JSON endpoints of the dashboard's folder upload (static/js/folder_upload.js), under
/artifacts/upload/folders/: begin with the folder's plan, send each file as a raw body, commit
them as one folder artifact. Mounted on config.api.browser_api beside transfers.browser_api."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Status

from accounts.access import OrgSession
from accounts.models import Role
from core.errors import StowageError
from core.http import read_json_object
from transfers.folder_uploads import (
    folder_upload_abort,
    folder_upload_begin,
    folder_upload_commit,
    folder_upload_file,
)

router = Router(auth=OrgSession(Role.MEMBER))


@router.post("folders/", url_name="artifact-folder-begin", response={201: dict})
def folder_begin(request: HttpRequest):
    payload = read_json_object(request)
    transfer = folder_upload_begin(
        actor=request.auth,
        remote_path=payload.get("remote_path"),
        files=payload.get("files"),
        metadata=payload.get("metadata"),
    )
    return Status(
        201,
        {
            "upload_id": transfer.id,
            "file_url": reverse("artifact-folder-file", args=[transfer.id]),
            "commit_url": reverse("artifact-folder-commit", args=[transfer.id]),
            "abort_url": reverse("artifact-folder-abort", args=[transfer.id]),
            "max_bytes": settings.FOLDER_MAX_BYTES,
        },
    )


@router.put("folders/{upload_id}/file/", url_name="artifact-folder-file", response={201: dict})
def folder_file(request: HttpRequest, upload_id: str, path: str = ""):
    """One file of the folder as the raw body, streamed to storage (request.body is never read)."""
    length = request.META.get("CONTENT_LENGTH", "")
    if not length.isdigit():
        raise StowageError("The upload must say its length (Content-Length).", code="LENGTH_REQUIRED", status=411)
    entry = folder_upload_file(
        actor=request.auth, transfer_id=upload_id, path=path, stream=request, content_length=int(length)
    )
    return Status(201, {"path": entry.path, "size": entry.size, "checksum": f"sha256:{entry.sha256}"})


@router.post("folders/{upload_id}/commit/", url_name="artifact-folder-commit", response={201: dict})
def folder_commit(request: HttpRequest, upload_id: str):
    payload = read_json_object(request)
    artifact = folder_upload_commit(actor=request.auth, transfer_id=upload_id, entries=payload.get("entries"))
    return Status(
        201,
        {
            "id": artifact.id,
            "remote_path": artifact.remote_path,
            "version": artifact.version,
            "size": artifact.size,
            "entry_count": artifact.entry_count,
            "checksum": artifact.checksum,
            "url": reverse("artifact-detail", args=[artifact.id]),
        },
    )


@router.post("folders/{upload_id}/abort/", url_name="artifact-folder-abort")
def folder_abort(request: HttpRequest, upload_id: str):
    folder_upload_abort(actor=request.auth, transfer_id=upload_id)
    return {"success": True}
