"""The JSON endpoints of the dashboard's upload page (static/js/upload.js), under
/artifacts/upload/: checking a file, streaming it through Stowage, or sending it straight to the
object store. Mounted on config.api.browser_api: the dashboard's session and CSRF token, a member
of the current organization, errors in the API's shape."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from ninja import Router, Status

from accounts.access import OrgSession
from accounts.models import Role
from artifacts.models import Artifact
from artifacts.storage import BlobError, UploadGone
from artifacts.validation import check_content_type, check_metadata, check_metadata_header, check_remote_path
from core.errors import InvalidInput, StowageError
from core.http import error_response, read_json_object
from quotas.enforcement import quota_check_upload
from transfers.forms import browser_content_type, file_too_large
from transfers.models import Transfer, TransferState
from transfers.put import artifact_put
from transfers.selectors import direct_upload_get
from transfers.services import (
    direct_upload_abort,
    direct_upload_begin,
    direct_upload_complete,
    direct_upload_sign_parts,
    direct_uploads_available,
)

router = Router(auth=OrgSession(Role.MEMBER))

# Sent by the upload page with each file, so the name can be neither a form nor a query string.
METADATA_HEADER = "X-Artifact-Metadata"

# What the page is told of a direct upload: it only tells sending from checking.
_PAGE_STATE = {
    TransferState.RECEIVING: "uploading",
    TransferState.UNQUEUED: "verifying",
    TransferState.QUEUED: "verifying",
    TransferState.RUNNING: "verifying",
    TransferState.SUCCEEDED: "succeeded",
    TransferState.FAILED: "failed",
}

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _endpoint(method: str, path: str, *, name: str, **options: Any):
    """An endpoint answering ``method`` alone: any other method gets a JSON 405 the page can show,
    whoever asks. Both answers share the dashboard's URL name."""

    def refuse(request: HttpRequest) -> HttpResponse:
        return error_response(
            request, status=405, code="METHOD_NOT_ALLOWED", message=f"Use {method}.", headers={"Allow": method}
        )

    def refuse_on_upload(request: HttpRequest, transfer_id: str) -> HttpResponse:
        return refuse(request)

    others = [other for other in _METHODS if other != method]
    refusal = refuse_on_upload if "{transfer_id}" in path else refuse
    router.api_operation(others, path, auth=None, include_in_schema=False, url_name=name)(refusal)
    return router.api_operation([method], path, url_name=name, **options)


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) else None


@contextmanager
def _readable_storage_errors() -> Iterator[None]:
    # The store's own words name buckets and keys; the page gets a sentence it can show.
    try:
        yield
    except BlobError as exc:
        if isinstance(exc, UploadGone):
            message = "The upload is no longer open on the object store; start it again."
        elif exc.code == BlobError.code:
            message = "The object store did not answer as expected. Try again shortly."
        else:
            message = exc.message
        raise StowageError(message, code=exc.code, status=exc.status) from None


def _uploaded(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "remote_path": artifact.remote_path,
        "version": artifact.version,
        "size": artifact.size,
        "checksum": artifact.checksum,
        "content_type": artifact.content_type,
        "url": reverse("artifact-detail", args=[artifact.id]),
    }


@_endpoint("POST", "check/", name="artifact-upload-check")
def artifact_upload_check(request: HttpRequest):
    """Checks one file of the upload page before its bytes are sent: a name or a size that will
    be refused is reported at once, with nothing sent and nothing stored."""
    payload = read_json_object(request)
    remote_path = check_remote_path(_text(payload, "remote_path"))
    check_metadata(payload.get("metadata"))
    size = payload.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput("size must be the file's size in bytes", details={"field": "size"})
    if size > settings.ARTIFACT_MAX_BYTES:
        raise file_too_large(size, settings.ARTIFACT_MAX_BYTES)
    quota_check_upload(organization_id=request.auth.organization_id, size=size)
    direct = direct_uploads_available() and size >= settings.DIRECT_UPLOAD_MIN_BYTES
    return {"remote_path": remote_path, "max_bytes": settings.ARTIFACT_MAX_BYTES, "direct": direct}


@_endpoint("PUT", "stream/", name="artifact-upload-stream", response={201: dict})
def artifact_upload_stream(request: HttpRequest, remote_path: str = ""):
    """One file of the upload page, sent as the raw request body and streamed to storage a chunk
    at a time: the body is never read whole (request.body is never touched). PUT, so the CSRF
    check looks at the X-CSRFToken header alone and never parses the body for a token."""
    length = request.META.get("CONTENT_LENGTH", "")
    if not length.isdigit():
        raise StowageError("The upload must say its length (Content-Length).", code="LENGTH_REQUIRED", status=411)
    if int(length) > settings.ARTIFACT_MAX_BYTES:
        raise file_too_large(int(length), settings.ARTIFACT_MAX_BYTES)
    metadata = check_metadata_header(request.headers.get(METADATA_HEADER))
    content_type = browser_content_type(request.META.get("CONTENT_TYPE", ""))
    if content_type is not None and check_content_type(content_type) is None:
        content_type = None
    artifact = artifact_put(
        actor=request.auth,
        stream=request,
        remote_path=remote_path,
        content_type=content_type,
        metadata=metadata,
        content_length=int(length),
    )
    return Status(201, _uploaded(artifact))


def _direct_status(transfer: Transfer) -> dict[str, Any]:
    state = _PAGE_STATE[transfer.state]
    return {
        "id": transfer.id,
        "state": state,
        "remote_path": transfer.artifact.remote_path,
        "size": transfer.bytes_total,
        "part_size": transfer.part_size,
        "part_count": transfer.part_count,
        "urls": {
            "part": reverse("artifact-upload-direct-part", args=[transfer.id]),
            "complete": reverse("artifact-upload-direct-complete", args=[transfer.id]),
            "abort": reverse("artifact-upload-direct-abort", args=[transfer.id]),
            "status": reverse("artifact-upload-direct-status", args=[transfer.id]),
        },
        "error": {"code": transfer.error_code, "message": transfer.error_message} if state == "failed" else None,
        "artifact": _uploaded(transfer.artifact) if state == "succeeded" else None,
    }


def _mine(request: HttpRequest, transfer_id: str) -> Transfer:
    return direct_upload_get(organization_id=request.organization.id, user_id=request.user.id, transfer_id=transfer_id)


@_endpoint("POST", "direct/", name="artifact-upload-direct", response={201: dict})
def artifact_upload_direct(request: HttpRequest):
    """Begins an upload whose parts the browser sends to the object store itself."""
    payload = read_json_object(request)
    with _readable_storage_errors():
        transfer = direct_upload_begin(
            actor=request.auth,
            remote_path=_text(payload, "remote_path") or "",
            size=payload.get("size"),
            content_type=browser_content_type(_text(payload, "content_type") or ""),
            metadata=payload.get("metadata"),
        )
    return Status(201, _direct_status(transfer))


@_endpoint("GET", "direct/{transfer_id}/", name="artifact-upload-direct-status")
def artifact_upload_direct_status(request: HttpRequest, transfer_id: str, response: HttpResponse):
    add_never_cache_headers(response)
    with _readable_storage_errors():
        return _direct_status(_mine(request, transfer_id))


@_endpoint("POST", "direct/{transfer_id}/parts/", name="artifact-upload-direct-part")
def artifact_upload_direct_part(request: HttpRequest, transfer_id: str):
    """``{"parts": [{"number", "sha256"}, ...]}`` (a few at a time), or one ``{"number", "sha256"}``."""
    with _readable_storage_errors():
        transfer = _mine(request, transfer_id)
        payload = read_json_object(request)
        if "parts" in payload:
            return {"parts": direct_upload_sign_parts(transfer=transfer, parts=payload["parts"])}
        return direct_upload_sign_parts(transfer=transfer, parts=[payload])[0]


@_endpoint("POST", "direct/{transfer_id}/complete/", name="artifact-upload-direct-complete", response={202: dict})
def artifact_upload_direct_complete(request: HttpRequest, transfer_id: str):
    with _readable_storage_errors():
        transfer = direct_upload_complete(transfer=_mine(request, transfer_id))
    return Status(202, _direct_status(transfer))


@_endpoint("POST", "direct/{transfer_id}/abort/", name="artifact-upload-direct-abort")
def artifact_upload_direct_abort(request: HttpRequest, transfer_id: str):
    with _readable_storage_errors():
        transfer = _mine(request, transfer_id)
        direct_upload_abort(transfer=transfer)
    transfer.refresh_from_db()
    return _direct_status(transfer)
