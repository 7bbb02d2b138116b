"""The API inside a folder artifact: its entries, one file's bytes, a presigned URL of one file.
The whole folder as one archive is ``GET /artifacts/{id}/content`` (artifacts.api)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema

from artifacts import services
from artifacts.folder_http import entry_response, entry_s3_url
from artifacts.folder_selectors import entry_file, entry_list
from artifacts.models import ArtifactEntry
from artifacts.presigned import file_subject
from artifacts.selectors import artifact_get
from artifacts.signing import sign
from artifacts.storage import is_s3
from config.auth import require_scope
from config.schemas import STORAGE, errors
from core.errors import InvalidInput

router = Router(tags=["folders"])


class EntryOut(Schema):
    path: str
    name: str
    type: str = Field(description="file, directory or symlink")
    mode: int
    size: int
    checksum: str = Field(description="sha256:<hex> for a file, empty otherwise")
    modified_at: datetime | None
    link_target: str


def entry_out(entry: ArtifactEntry) -> dict:
    return {
        "path": entry.path,
        "name": entry.name,
        "type": entry.type,
        "mode": entry.mode,
        "size": entry.size,
        "checksum": f"sha256:{entry.sha256}" if entry.sha256 else "",
        "modified_at": entry.mtime,
        "link_target": entry.link_target,
    }


class EntryFilters(Schema):
    prefix: str = Field("", max_length=2048, description="entries whose path starts with this")
    dir: str | None = Field(None, max_length=2048, description="only the entries of this directory ('' the top)")
    cursor: str | None = Field(None, max_length=4000)
    limit: int = Field(500, ge=1, le=1000)


class EntryListOut(Schema):
    artifact_id: str
    checksum: str
    entries: list[EntryOut]
    next_cursor: str | None


@router.get("/artifacts/{artifact_id}/files", response={200: EntryListOut, **errors(404, 409)})
def list_files(request: HttpRequest, artifact_id: str, filters: Query[EntryFilters]):
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    page = entry_list(
        artifact=artifact, prefix=filters.prefix, directory=filters.dir, cursor=filters.cursor, limit=filters.limit
    )
    return {
        "artifact_id": artifact.id,
        "checksum": artifact.checksum,
        "entries": [entry_out(entry) for entry in page.entries],
        "next_cursor": page.next_cursor,
    }


_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}


@router.get(
    "/artifacts/{artifact_id}/files/content",
    response=errors(404, 409, STORAGE),
    openapi_extra={"responses": {200: {"description": "the file's bytes", **_BYTES}, 206: {"description": "a range"}}},
)
def file_content(request: HttpRequest, artifact_id: str, path: str = Query(..., max_length=2048)):
    require_scope(request.auth, "artifacts:read")
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    entry = entry_file(artifact=artifact, path=path)
    services.artifact_record_read(
        actor=request.auth,
        artifact=artifact,
        action="artifact.download",
        details={"via": "api", "path": entry.path, "range": request.headers.get("Range", "")},
    )
    return entry_response(request, artifact, entry)


class FileUrlOut(Schema):
    url: str
    path: str
    expires_in: int
    expires_at: datetime


@router.get("/artifacts/{artifact_id}/files/url", response={200: FileUrlOut, **errors(404, 409, STORAGE)})
def file_url(request: HttpRequest, artifact_id: str, path: str = Query(..., max_length=2048), expires_in: int = 3600):
    require_scope(request.auth, "artifacts:read")
    if not 1 <= expires_in <= settings.PRESIGNED_URL_MAX_SECONDS:
        raise InvalidInput(
            f"expires_in must be between 1 and {settings.PRESIGNED_URL_MAX_SECONDS} seconds (7 days)",
            details={"field": "expires_in"},
        )
    artifact = artifact_get(organization_id=request.auth.organization_id, artifact_id=artifact_id)
    entry = entry_file(artifact=artifact, path=path)
    if is_s3():
        url = entry_s3_url(artifact, entry, expires_in)
        expires_at = datetime.fromtimestamp(int(time.time()) + expires_in, tz=UTC)
    else:
        params = sign(file_subject(artifact.id, entry.path), expires_in)
        query = urlencode({"path": entry.path, **params})
        relative = reverse("presigned-file-download", args=[artifact.id]) + "?" + query
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        url = f"{base}{relative}" if base else request.build_absolute_uri(relative)
        expires_at = datetime.fromtimestamp(int(params["expires"]), tz=UTC)
    services.artifact_record_read(
        actor=request.auth,
        artifact=artifact,
        action="artifact.url",
        details={"expires_in": expires_in, "path": entry.path},
    )
    return {"url": url, "path": entry.path, "expires_in": expires_in, "expires_at": expires_at}
