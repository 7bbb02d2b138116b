from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from artifacts import services
from artifacts.alias_selectors import alias_names, with_aliases
from artifacts.http import artifact_response, s3_download_url
from artifacts.models import Artifact
from artifacts.search import parse_search
from artifacts.selectors import ArtifactFilters as Narrowing
from artifacts.selectors import artifact_browse, artifact_get, artifact_list, artifact_versions
from artifacts.signing import sign
from artifacts.storage import is_s3
from artifacts.validation import check_metadata_header
from config.api_errors import async_endpoint
from config.auth import WAITING_AUTH, require_scope
from config.schemas import BODY, STORAGE, WORKER, errors, strict_int
from core.errors import InvalidInput
from core.pagination import newest_first_page
from core.threads import in_thread
from sandboxes.selectors import sandbox_get
from transfers import services as transfer_services
from transfers.api import TransferOut, transfer_out
from transfers.put import DIGEST_HEADER, artifact_put_checked, declared_sha256, repr_digest

router = Router(tags=["artifacts"])

ExpiresIn = strict_int(1, settings.ARTIFACT_MAX_EXPIRES_IN)


class ArtifactOut(Schema):
    id: str
    sandbox_id: str
    session_id: str
    org_id: str
    path: str
    remote_path: str
    version: int
    size: int
    checksum: str
    content_type: str
    is_archive: bool
    is_folder: bool
    entry_count: int
    skipped: list[dict[str, str]]
    created_at: datetime
    expires_at: datetime | None
    created_by: str
    metadata: dict[str, str]
    aliases: list[str]


def artifact_out(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "sandbox_id": artifact.sandbox_id,
        "session_id": artifact.session_id,
        "org_id": artifact.organization_id,
        "path": artifact.source_path,
        "remote_path": artifact.remote_path,
        "version": artifact.version or 0,
        "size": artifact.size,
        "checksum": artifact.checksum,
        "content_type": artifact.content_type,
        "is_archive": artifact.is_archive,
        "is_folder": artifact.is_folder,
        "entry_count": artifact.entry_count,
        "skipped": artifact.skipped,
        "created_at": artifact.created_at,
        "expires_at": artifact.expires_at,
        "created_by": artifact.created_by_label,
        "metadata": artifact.metadata,
        "aliases": alias_names(artifact),
    }


class UploadIn(Schema):
    path: str
    remote_path: str | None = None
    content_type: str | None = None
    expires_in: ExpiresIn | None = None
    metadata: dict[str, Any] | None = None


class DownloadIn(Schema):
    artifact_id: str
    target_path: str


class SuccessOut(Schema):
    success: bool


class DownloadOut(Schema):
    success: bool
    transfer_id: str
    artifact_id: str
    target_path: str
    size: int
    checksum: str


def _upload_begin(request: HttpRequest, sandbox, payload: UploadIn, *, session_id: str | None, wait: bool):
    return transfer_services.artifact_upload_from_sandbox(
        actor=request.auth,
        sandbox=sandbox,
        path=payload.path,
        remote_path=payload.remote_path,
        content_type=payload.content_type,
        metadata=payload.metadata,
        expires_in=payload.expires_in,
        session_id=session_id,
        wait=wait,
    )


# A transfer that fails answers with its error: the file is missing (404), too large (413),
# changed while read (409) or did not arrive intact (422), and the worker's and storage's own.
TRANSFER_ERRORS = errors(404, 409, 413, 422, BODY, WORKER, STORAGE)


@router.post(
    "/sandbox/{sandbox_id}/artifacts/upload",
    response={200: ArtifactOut, 202: TransferOut, **TRANSFER_ERRORS},
    auth=WAITING_AUTH,
)
@async_endpoint
async def upload_artifact(request: HttpRequest, sandbox_id: str, payload: UploadIn, wait: bool = True):
    def begin():
        require_scope(request.auth, "artifacts:write")
        sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
        return _upload_begin(request, sandbox, payload, session_id=None, wait=False)

    transfer = await in_thread(begin)()
    if not wait:
        return Status(202, transfer_out(transfer))
    transfer = await transfer_services.transfer_wait_async(transfer)
    # Rendering reads the artifact's aliases: a query, so not on the event loop.
    return Status(200, await in_thread(artifact_out)(transfer.artifact))


@router.post(
    "/sandbox/{sandbox_id}/artifacts/download",
    response={200: DownloadOut, 202: TransferOut, **TRANSFER_ERRORS},
    auth=WAITING_AUTH,
)
@async_endpoint
async def download_artifact(request: HttpRequest, sandbox_id: str, payload: DownloadIn, wait: bool = True):
    def begin():
        require_scope(request.auth, "artifacts:read")
        sandbox = sandbox_get(organization_id=request.auth.organization_id, sandbox_id=sandbox_id)
        artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=payload.artifact_id)
        transfer = transfer_services.artifact_download_to_sandbox(
            actor=request.auth, sandbox=sandbox, artifact=artifact, target_path=payload.target_path, wait=False
        )
        return artifact, transfer

    artifact, transfer = await in_thread(begin)()
    if not wait:
        return Status(202, transfer_out(transfer))
    transfer = await transfer_services.transfer_wait_async(transfer)
    return {
        "success": True,
        "transfer_id": transfer.id,
        "artifact_id": artifact.id,
        "target_path": transfer.path,
        "size": artifact.size,
        "checksum": artifact.checksum,
    }


class ArtifactFilters(Schema):
    sandbox_id: str | None = Field(None, max_length=40)
    session_id: str | None = Field(None, max_length=128)
    prefix: str | None = Field(None, max_length=1024, description="remote_path prefix")
    content_type: str | None = Field(None, max_length=255)
    q: str | None = Field(
        None,
        max_length=200,
        description="search: words or their beginnings in the remote_path, metadata, sandbox or session id; "
        "key=value for one metadata entry exactly; key:value for one whose value starts so",
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=400)


class ArtifactListOut(Schema):
    artifacts: list[ArtifactOut]
    next_cursor: str | None


@router.get("/artifacts", response={200: ArtifactListOut, **errors()})
def list_artifacts(request: HttpRequest, filters: Query[ArtifactFilters]):
    require_scope(request.auth, "artifacts:read")
    search = parse_search(filters.q or "")
    if search:
        found = artifact_browse(
            organization_id=request.auth.organization_id,
            filters=Narrowing(
                sandbox_id=filters.sandbox_id or "",
                session_id=filters.session_id or "",
                path_prefix=filters.prefix or "",
                content_type=filters.content_type or "",
            ),
            search=search,
            cursor=filters.cursor,
            limit=filters.limit,
        )
        return {"artifacts": [artifact_out(a) for a in found.artifacts], "next_cursor": found.next_cursor}
    artifacts = artifact_list(
        organization_id=request.auth.organization_id,
        sandbox_id=filters.sandbox_id,
        session_id=filters.session_id,
        prefix=filters.prefix,
        content_type=filters.content_type,
    )
    artifacts = with_aliases(artifacts)
    page = newest_first_page(artifacts, limit=filters.limit, cursor=filters.cursor)
    return {"artifacts": [artifact_out(a) for a in page.rows], "next_cursor": page.next_cursor}


_RAW_BODY = {
    "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    "parameters": [
        {
            "in": "header",
            "name": "X-Artifact-Metadata",
            "required": False,
            "description": "the artifact's metadata: a JSON object of strings",
            "schema": {"type": "string"},
        },
        {
            "in": "header",
            "name": "Repr-Digest",
            "required": False,
            "description": "the body's SHA-256 as in RFC 9530: sha-256=:<base64>:",
            "schema": {"type": "string"},
        },
        {
            "in": "header",
            "name": "X-Stowage-Sha256",
            "required": False,
            "description": "the body's SHA-256 in hex (the same as Repr-Digest, for clients that find hex easier)",
            "schema": {"type": "string"},
        },
    ],
}


class PutArtifactOut(ArtifactOut):
    deduplicated: bool = Field(
        description="the organization already had these bytes: none were stored again (and, when the body "
        "was not read, none were sent)"
    )
    body_read: bool = Field(description="false when the declared digest named bytes the organization has")


@router.put("/artifacts", response={201: PutArtifactOut, **errors(413, 422, STORAGE)}, openapi_extra=_RAW_BODY)
def put_artifact(
    request: HttpRequest,
    response: HttpResponse,
    remote_path: str,
    expires_in: int | None = None,
    session_id: str | None = None,
):
    """Stream the raw request body into a new artifact. Metadata: the `X-Artifact-Metadata` header, a JSON object.
    Declare the body's SHA-256 (`Repr-Digest: sha-256=:<base64>:` or `X-Stowage-Sha256: <hex>`) to skip sending
    bytes the organization already has, and to have the body checked against it."""
    require_scope(request.auth, "artifacts:write")
    metadata = check_metadata_header(request.headers.get("X-Artifact-Metadata"))
    sha256 = declared_sha256(
        repr_digest=request.headers.get("Repr-Digest"), stowage_sha256=request.headers.get(DIGEST_HEADER)
    )
    length = request.headers.get("Content-Length")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    result = artifact_put_checked(
        actor=request.auth,
        stream=request,
        remote_path=remote_path,
        content_type=None
        if content_type in ("", "application/x-www-form-urlencoded")
        else request.headers.get("Content-Type"),
        metadata=metadata,
        expires_in=expires_in,
        content_length=int(length) if length and length.isdigit() else None,
        session_id=session_id,
        sha256=sha256,
    )
    response["Repr-Digest"] = repr_digest(result.artifact.checksum.removeprefix("sha256:"))
    return Status(
        201, {**artifact_out(result.artifact), "deduplicated": result.deduplicated, "body_read": result.body_read}
    )


@router.get("/artifacts/{artifact_id}", response={200: ArtifactOut, **errors(404)})
def get_artifact(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, "artifacts:read")
    return artifact_out(artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id))


class VersionsOut(Schema):
    remote_path: str
    versions: list[ArtifactOut]


@router.get("/artifacts/{artifact_id}/versions", response={200: VersionsOut, **errors(404)})
def list_versions(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    versions = with_aliases(
        artifact_versions(organization_id=artifact.organization_id, remote_path=artifact.remote_path)
    )[:1000]
    return {"remote_path": artifact.remote_path, "versions": [artifact_out(a) for a in versions]}


@router.delete("/artifacts/{artifact_id}", response={200: SuccessOut, **errors(404, 409, STORAGE)})
def delete_artifact(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, "artifacts:write")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    services.artifact_delete(actor=request.auth, artifact=artifact)
    return {"success": True}


class UrlOut(Schema):
    url: str
    expires_in: int
    expires_at: datetime


@router.get("/artifacts/{artifact_id}/url", response={200: UrlOut, **errors(404, STORAGE)})
def artifact_url(request: HttpRequest, artifact_id: str, expires_in: int = 3600):
    require_scope(request.auth, "artifacts:read")
    if not 1 <= expires_in <= settings.PRESIGNED_URL_MAX_SECONDS:
        raise InvalidInput(
            f"expires_in must be between 1 and {settings.PRESIGNED_URL_MAX_SECONDS} seconds (7 days)",
            details={"field": "expires_in"},
        )
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    url, expires_at = presigned_url(request, artifact, expires_in)
    services.artifact_record_read(
        actor=request.auth, artifact=artifact, action="artifact.url", details={"expires_in": expires_in}
    )
    return {"url": url, "expires_in": expires_in, "expires_at": expires_at}


def presigned_url(request: HttpRequest, artifact: Artifact, expires_in: int) -> tuple[str, datetime]:
    # A folder has no object of its own to presign: its archive is made here, from our own URL.
    if is_s3() and not artifact.is_folder:
        # Presigned by S3 itself: the download goes straight from the store, not through us.
        expires_at = datetime.fromtimestamp(int(time.time()) + expires_in, tz=UTC)
        return s3_download_url(artifact, expires_in), expires_at
    params = sign(artifact.id, expires_in)
    path = reverse("presigned-download", args=[artifact.id]) + "?" + urlencode(params)
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    url = f"{base}{path}" if base else request.build_absolute_uri(path)
    return url, datetime.fromtimestamp(int(params["expires"]), tz=UTC)


_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
_CONTENT_RESPONSES = {
    200: {"description": "the artifact's bytes, as its content type", **_BYTES},
    206: {"description": "the bytes of the one range asked for", **_BYTES},
    416: {"description": "the range asked for is outside the artifact"},
}


@router.get(
    "/artifacts/{artifact_id}/content",
    response=errors(404, STORAGE),
    openapi_extra={"responses": _CONTENT_RESPONSES},
)
def artifact_content(request: HttpRequest, artifact_id: str):
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    services.artifact_record_read(
        actor=request.auth,
        artifact=artifact,
        action="artifact.download",
        details={"via": "api", "range": request.headers.get("Range", "")},
    )
    return artifact_response(request, artifact)
