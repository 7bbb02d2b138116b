"""Serving an artifact's bytes over HTTP: streamed, with Range, as an attachment that no
browser will render as a page of ours."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header

from artifacts.archives import FORMATS, check_format, folder_archive_chunks, folder_root
from artifacts.models import Artifact
from artifacts.storage import blob_iter_chunks, is_s3, s3_presigned_get_url
from core.errors import InvalidInput
from core.http import error_response

# At most 18 digits: an offset past any file, and never a number too long for int().
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")


def safe_filename(name: str) -> str:
    """The name without characters that could break or inject into a header."""
    cleaned = "".join("_" if unicodedata.category(ch).startswith("C") or ch in '"\\;/' else ch for ch in name)
    cleaned = cleaned.strip(" .") or "download"
    return cleaned[:200]


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive) for one satisfiable range; None to send everything; False if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match:
        return None  # several ranges or another unit: the whole body is a valid answer
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def artifact_response(request: HttpRequest, artifact: Artifact) -> HttpResponse:
    if getattr(artifact, "is_folder", False):
        return folder_archive_response(request, artifact)
    size = artifact.size
    status, start, length = 200, 0, size
    range_header = request.headers.get("Range")
    if range_header and size > 0:
        wanted = parse_range(range_header, size)
        if wanted is False:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return _harden(response)
        if wanted:
            start, end = wanted
            status, length = 206, end - start + 1
    response = StreamingHttpResponse(
        blob_iter_chunks(artifact.content_key, start=start, length=length),
        status=status,
        content_type=artifact.content_type or "application/octet-stream",
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{artifact.checksum.removeprefix("sha256:")}"'
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    response["Content-Disposition"] = attachment_header(artifact)
    return _harden(response)


def artifact_delivery(request: HttpRequest, artifact: Artifact) -> HttpResponse:
    """A download, decided in one place: streamed from here for local storage; a store that
    presigns its own URLs (S3) answers with a redirect to a fresh short-lived one, so the bytes
    never pass through the web process. A folder is an archive made here from its blobs."""
    if is_s3() and not artifact.is_folder:
        response = HttpResponseRedirect(s3_download_url(artifact, settings.SHARE_DOWNLOAD_URL_SECONDS))
        # The URL is a bearer credential for a minute: never cached, never sent on as a Referer.
        response["Cache-Control"] = "private, no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response
    return artifact_response(request, artifact)


def folder_archive_response(request: HttpRequest, artifact: Artifact) -> HttpResponse:
    """The whole folder as one streamed archive (``?format=zip``, else tar.gz), named ``<folder>.<format>``;
    InvalidInput (400) for another format."""
    try:
        fmt = check_format(request.GET.get("format"))
    except InvalidInput as exc:
        return error_response(request, status=400, code=exc.code, message=exc.message, details=exc.details)
    root = folder_root(artifact, safe_filename)
    response = StreamingHttpResponse(folder_archive_chunks(artifact, fmt, root), content_type=FORMATS[fmt])
    response["Content-Disposition"] = content_disposition_header(True, f"{root}.{fmt}")
    # Made anew each time: its bytes are not named by the folder's checksum, which is the manifest's.
    response["X-Stowage-Folder-Checksum"] = artifact.checksum
    return _harden(response)


def attachment_header(artifact: Artifact) -> str:
    """The Content-Disposition every download of the artifact carries: an attachment, safely named."""
    return content_disposition_header(True, safe_filename(artifact.filename))


def s3_download_url(artifact: Artifact, expires_in: int) -> str:
    """A presigned S3 GET of the artifact's object that answers as an attachment of its type."""
    return s3_presigned_get_url(
        artifact.content_key,
        expires_in=expires_in,
        content_disposition=attachment_header(artifact),
        content_type=artifact.content_type or "application/octet-stream",
    )


def _harden(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    # Even opened directly, user content runs no script and reaches nothing of our origin.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
