"""One file of a folder artifact over HTTP, served as artifacts.http serves an artifact: streamed
with Range as an attachment, or on S3 a redirect to a short-lived URL of its blob."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header

from artifacts.http import artifact_response, safe_filename
from artifacts.models import Artifact, ArtifactEntry
from artifacts.storage import is_s3, s3_presigned_get_url
from artifacts.validation import guess_content_type


@dataclass(frozen=True)
class EntryContent:
    """One file of a folder, shaped as artifacts.http serves an artifact."""

    id: str
    size: int
    content_key: str
    content_type: str
    checksum: str
    filename: str
    is_archive: bool = False
    is_folder: bool = False


def entry_content(artifact: Artifact, entry: ArtifactEntry) -> EntryContent:
    return EntryContent(
        id=artifact.id,
        size=entry.size,
        content_key=entry.blob.storage_key,
        content_type=guess_content_type(entry.name),
        checksum=f"sha256:{entry.sha256}",
        filename=entry.name,
    )


def entry_response(request: HttpRequest, artifact: Artifact, entry: ArtifactEntry) -> HttpResponse:
    """One file of the folder, streamed with Range, as an attachment (artifacts.http)."""
    return artifact_response(request, entry_content(artifact, entry))  # type: ignore[arg-type]


def entry_s3_url(artifact: Artifact, entry: ArtifactEntry, expires_in: int) -> str:
    content = entry_content(artifact, entry)
    return s3_presigned_get_url(
        content.content_key,
        expires_in=expires_in,
        content_disposition=content_disposition_header(True, safe_filename(content.filename)),
        content_type=content.content_type or "application/octet-stream",
    )


def entry_delivery(request: HttpRequest, artifact: Artifact, entry: ArtifactEntry) -> HttpResponse:
    """As artifacts.http.artifact_delivery: on S3 a redirect to a short-lived URL of the blob."""
    if is_s3():
        response = HttpResponseRedirect(entry_s3_url(artifact, entry, settings.SHARE_DOWNLOAD_URL_SECONDS))
        response["Cache-Control"] = "private, no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response
    return entry_response(request, artifact, entry)
