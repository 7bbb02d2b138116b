from __future__ import annotations

from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, push_url, trigger_client_event

from accounts.access import org_json_view, org_view
from accounts.models import Role
from artifacts import preview as previews
from artifacts import shares
from artifacts.forms import SORT_CHOICES, ArtifactFilterForm, ShareLinkForm, UploadForm
from artifacts.http import artifact_delivery, artifact_response
from artifacts.models import Artifact, ShareLink, ShareLinkState, Transfer, TransferState
from artifacts.selectors import (
    artifact_browse,
    artifact_get,
    artifact_lineage,
    artifact_path_groups,
    artifact_versions,
    direct_upload_get,
    share_link_get,
    share_link_list,
)
from artifacts.services import (
    artifact_delete,
    artifact_put,
    artifact_record_read,
    direct_upload_abort,
    direct_upload_begin,
    direct_upload_complete,
    direct_upload_sign_parts,
    direct_uploads_available,
)
from artifacts.share_api import share_url
from artifacts.signing import verify
from artifacts.storage import BlobError, UploadGone
from artifacts.validation import check_content_type, check_metadata, check_metadata_header, check_remote_path
from config.auth import client_ip
from core.actor import Actor
from core.errors import InvalidInput, NotFound, PayloadTooLarge, StowageError
from core.htmx import wants_fragment
from core.http import error_response, read_json_object, stowage_error_response

PAGE_SIZE = 50
VERSIONS_SHOWN = 50
SHARES_SHOWN = 50
# Share-link tokens wait here, in the server-side session, until their page has shown them once.
SESSION_SHARE_TOKENS = "stowage_share_tokens"
SESSION_SHARE_TOKENS_MAX = 20
# A new share link's block stops polling after this long (the worker may be down); the token
# stays in the session, so the page shows the link once it is active after all.
SHARE_POLL_SECONDS = 60
# The no-JavaScript upload form posts multipart, which Django spools to a temporary file first.
FORM_UPLOAD_MAX_BYTES = 100 << 20
# Sent by the upload page with each file, so the name can be neither a form nor a query string.
METADATA_HEADER = "X-Artifact-Metadata"


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


# --- helpers ----------------------------------------------------------------------------------


def _artifact(request: HttpRequest, artifact_id: str) -> Artifact:
    """The current organization's visible artifact; the same 404 for another's, a deleted or a missing one."""
    try:
        return artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        raise Http404("not found") from None


def _share_link(artifact: Artifact, share_id: str) -> ShareLink:
    try:
        return share_link_get(artifact=artifact, share_id=share_id)
    except NotFound:
        raise Http404("not found") from None


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _query(params: dict[str, str], **changes: str | None) -> str:
    merged = {**params, **changes}
    return urlencode({key: value for key, value in merged.items() if value})


# --- the list ---------------------------------------------------------------------------------

_LIST_PARAMS = ("q", "path", "sandbox", "session", "content_type", "created_from", "created_to", "sort", "view")


@org_view()
@require_GET
def artifact_list(request: HttpRequest) -> HttpResponse:
    form = ArtifactFilterForm(request.GET)
    form.is_valid()
    data = form.cleaned_data
    sort = data.get("sort") or "newest"
    grouped = data.get("view") == "paths"
    cursor = data.get("cursor") or None
    defaults = {"sort": "newest", "view": "all"}
    kept = {
        name: request.GET[name]
        for name in _LIST_PARAMS
        if request.GET.get(name) and name in data and request.GET[name] != defaults.get(name)
    }
    filters, search = form.filters(), form.search()

    def fetch(cursor: str | None):
        if grouped:
            return artifact_path_groups(
                organization_id=request.organization.id, filters=filters, search=search, cursor=cursor, limit=PAGE_SIZE
            )
        return artifact_browse(
            organization_id=request.organization.id,
            filters=filters,
            search=search,
            sort=sort,
            cursor=cursor,
            limit=PAGE_SIZE,
        )

    stale_cursor = False
    try:
        page = fetch(cursor)
    except InvalidInput:
        # A page link made for another order, or a mangled URL: start over rather than fail.
        stale_cursor, cursor = True, None
        page = fetch(None)
    context = {
        "form": form,
        "grouped": grouped,
        "sort": sort,
        "sort_label": dict(SORT_CHOICES)[sort],
        "rows": page.groups if grouped else page.artifacts,
        "next_query": _query(kept, cursor=page.next_cursor) if page.next_cursor else "",
        "first_query": _query(kept),
        "is_later_page": bool(cursor),
        "searched_to": page.searched_to,
        "filtered": form.is_filtered(),
        "stale_cursor": stale_cursor,
    }
    if wants_fragment(request):
        # "Load more" asks for the next rows alone; the filter form for the whole result block.
        if request.htmx.target == "artifact-more":
            return _vary_on_htmx(render(request, "artifacts/partials/_artifact_rows.html", context))
        response = render(request, "artifacts/partials/_artifact_results.html", context)
        # The address bar gets the search without the form's empty fields.
        query = _query(kept, cursor=cursor)
        return _vary_on_htmx(push_url(response, reverse("artifact-list") + (f"?{query}" if query else "")))
    return _vary_on_htmx(render(request, "artifacts/artifact_list.html", context))


# --- one artifact -----------------------------------------------------------------------------


def _pending_tokens(request: HttpRequest) -> dict[str, str]:
    return dict(request.session.get(SESSION_SHARE_TOKENS, {}))


def _remember_token(request: HttpRequest, link: ShareLink, token: str) -> None:
    tokens = _pending_tokens(request)
    tokens[link.id] = token
    # Oldest first (dicts keep insertion order): a forgotten tab cannot grow the session forever.
    while len(tokens) > SESSION_SHARE_TOKENS_MAX:
        tokens.pop(next(iter(tokens)))
    request.session[SESSION_SHARE_TOKENS] = tokens


def _take_token(request: HttpRequest, link: ShareLink) -> str | None:
    """The link's plain token if this session still holds it, dropped from the session as it is read."""
    tokens = _pending_tokens(request)
    token = tokens.pop(link.id, None)
    if token is not None:
        request.session[SESSION_SHARE_TOKENS] = tokens
    return token


def _new_link_view(request: HttpRequest, link: ShareLink) -> dict[str, Any]:
    """What the "new link" block shows: still being made, made (with its URL, once), or failed."""
    if link.state == ShareLinkState.PENDING:
        slow = timezone.now() - link.created_at > timedelta(seconds=SHARE_POLL_SECONDS)
        return {"link": link, "status": "slow" if slow else "pending"}
    token = _take_token(request, link)
    if link.state == ShareLinkState.REVOKED:
        return {"link": link, "status": "failed"}
    if token is None:
        return {"link": link, "status": "shown"}
    return {"link": link, "status": "ready", "url": share_url(request, token)}


def _share_rows(artifact: Artifact) -> list[dict[str, Any]]:
    return [
        {
            "link": link,
            "state": shares.share_link_effective_state(link),
            "downloads_left": shares.share_link_downloads_left(link),
        }
        for link in share_link_list(artifact=artifact)[:SHARES_SHOWN]
    ]


def _share_context(
    request: HttpRequest, artifact: Artifact, *, form: ShareLinkForm | None = None, error: str = ""
) -> dict[str, Any]:
    rows = _share_rows(artifact)
    tokens = _pending_tokens(request)
    new_links = [_new_link_view(request, row["link"]) for row in rows if row["link"].id in tokens]
    return {
        "artifact": artifact,
        "share_rows": rows,
        "new_links": new_links,
        "share_form": form or ShareLinkForm(),
        "share_error": error,
    }


@org_view()
@require_GET
def artifact_detail(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    preview = previews.build_preview(artifact)
    if preview.read_bytes:
        artifact_record_read(
            actor=request.actor,
            artifact=artifact,
            action="artifact.preview",
            details={"via": "dashboard", "bytes": preview.shown_bytes},
        )
    versions = list(
        artifact_versions(organization_id=artifact.organization_id, remote_path=artifact.remote_path)[
            : VERSIONS_SHOWN + 1
        ]
    )
    context = {
        "artifact": artifact,
        "preview": preview,
        "versions": versions[:VERSIONS_SHOWN],
        "more_versions": len(versions) > VERSIONS_SHOWN,
        "lineage": artifact_lineage(artifact=artifact),
        **_share_context(request, artifact),
    }
    response = render(request, "artifacts/artifact_detail.html", context)
    if context["new_links"]:
        # It may hold a share link's URL, shown this once.
        add_never_cache_headers(response)
    return response


@org_view()
@require_GET
def artifact_download(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    artifact_record_read(
        actor=request.actor,
        artifact=artifact,
        action="artifact.download",
        details={"via": "dashboard", "range": request.headers.get("Range", "")},
    )
    return artifact_delivery(request, artifact)


@xframe_options_sameorigin
@org_view()
@require_GET
def artifact_content(request: HttpRequest, artifact_id: str) -> HttpResponse:
    """The bytes of an image or a PDF for the preview, inline, in a response that is its own
    sandbox: no script runs in it and it reaches nothing of ours, whatever it really holds."""
    artifact = _artifact(request, artifact_id)
    content_type = previews.inline_content_type(artifact)
    if content_type is None:
        raise Http404("no inline content for this artifact")
    range_header = request.headers.get("Range", "")
    if range_header in ("", "bytes=0-"):
        # A PDF viewer asks for many ranges of one file; the first is the read to record.
        artifact_record_read(
            actor=request.actor,
            artifact=artifact,
            action="artifact.preview",
            details={"via": "dashboard", "content_type": content_type},
        )
    response = artifact_response(request, artifact)
    if response.status_code in (200, 206):
        response["Content-Type"] = content_type
        response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@org_view(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def artifact_delete_view(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    if request.method == "POST":
        artifact_delete(actor=request.actor, artifact=artifact)
        messages.success(request, f"Deleted {artifact.remote_path} (version {artifact.version}).")
        return redirect("artifact-list")
    return render(request, "artifacts/artifact_delete.html", {"artifact": artifact})


# --- share links ------------------------------------------------------------------------------


@org_view(Role.MEMBER)
@require_POST
def artifact_share_create(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    form = ShareLinkForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            link, token = shares.share_link_create(
                actor=request.actor,
                artifact=artifact,
                expires_in=form.cleaned_data["expires_in"],
                max_downloads=form.cleaned_data["max_downloads"],
                password=form.cleaned_data["password"] or None,
                wait=False,
            )
        except StowageError as exc:
            error = exc.message
        else:
            _remember_token(request, link, token)
            form = None
    if wants_fragment(request):
        # 200 even with errors: htmx swaps only successful answers, and the errors are in the form.
        response = render(
            request, "artifacts/partials/_share_links.html", _share_context(request, artifact, form=form, error=error)
        )
        add_never_cache_headers(response)
        return response
    if form is not None:
        messages.error(
            request,
            error
            or "The share link was not created: " + " ".join(str(e) for errors in form.errors.values() for e in errors),
        )
    return redirect(reverse("artifact-detail", args=[artifact.id]) + "#share-links")


@org_view(Role.MEMBER)
@require_GET
def artifact_share_status(request: HttpRequest, artifact_id: str, share_id: str) -> HttpResponse:
    """Polled every second by a new link's block until the worker has made the link active."""
    artifact = _artifact(request, artifact_id)
    link = _share_link(artifact, share_id)
    if not wants_fragment(request):
        return redirect(reverse("artifact-detail", args=[artifact.id]) + "#share-links")
    view = _new_link_view(request, link)
    context = {"artifact": artifact, "new": view}
    if view["status"] == "pending":
        response = render(request, "artifacts/partials/_share_new.html", context)
    else:
        response = HttpResponseStopPolling(render(request, "artifacts/partials/_share_new.html", context).content)
        trigger_client_event(response, "share-links-changed")
    add_never_cache_headers(response)
    return response


@org_view()
@require_GET
def artifact_share_list(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    if not wants_fragment(request):
        return redirect(reverse("artifact-detail", args=[artifact.id]) + "#share-links")
    return _vary_on_htmx(
        render(
            request, "artifacts/partials/_share_list.html", {"artifact": artifact, "share_rows": _share_rows(artifact)}
        )
    )


@org_view(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def artifact_share_revoke(request: HttpRequest, artifact_id: str, share_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    link = _share_link(artifact, share_id)
    if request.method == "POST":
        shares.share_link_revoke(actor=request.actor, link=link)
        messages.success(request, "The share link is revoked; it no longer opens.")
        return redirect(reverse("artifact-detail", args=[artifact.id]) + "#share-links")
    return render(
        request,
        "artifacts/share_revoke.html",
        {"artifact": artifact, "link": link, "state": shares.share_link_effective_state(link)},
    )


# --- uploading --------------------------------------------------------------------------------


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is {filesizeformat(size)}, more than the {filesizeformat(limit)} an artifact may be.",
        code="FILE_TOO_LARGE",
        details={"field": "file"},
    )


def _upload_content_type(value: str) -> str | None:
    """The browser's idea of the type; None lets the server guess from the name and first bytes."""
    media = value.split(";", 1)[0].strip().lower()
    if media in ("", "application/octet-stream", "multipart/form-data", "application/x-www-form-urlencoded"):
        return None
    return value.strip()


def _metadata_rows(keys: list[str], values: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for key, value in zip(keys, values, strict=False):
        key = key.strip()
        if not key and not value:
            continue
        if not key:
            raise InvalidInput(
                "Every metadata value needs a key.", code="INVALID_METADATA", details={"field": "metadata"}
            )
        metadata[key] = value
    return check_metadata(metadata)


def _upload_page(request: HttpRequest, form: UploadForm, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "error": error,
        "max_bytes": settings.ARTIFACT_MAX_BYTES,
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
            raise _too_large(uploaded.size, limit)
        metadata = _metadata_rows(request.POST.getlist("meta_key"), request.POST.getlist("meta_value"))
        artifact = artifact_put(
            actor=request.actor,
            stream=uploaded,
            remote_path=form.cleaned_data["remote_path"] or uploaded.name,
            content_type=_upload_content_type(uploaded.content_type or ""),
            metadata=metadata,
            content_length=uploaded.size,
        )
    except StowageError as exc:
        return _upload_page(request, form, error=exc.message, status=exc.status)
    messages.success(request, f"Uploaded {artifact.remote_path} (version {artifact.version}).")
    return redirect("artifact-detail", artifact.id)


@org_json_view(Role.MEMBER, ["POST"])
def artifact_upload_check(request: HttpRequest) -> JsonResponse:
    """Checks one file of the upload page before its bytes are sent: a name or a size that will
    be refused is reported at once, with nothing sent and nothing stored."""
    try:
        payload = read_json_object(request)
        remote_path = check_remote_path(
            payload.get("remote_path") if isinstance(payload.get("remote_path"), str) else None
        )
        check_metadata(payload.get("metadata"))
        size = payload.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput("size must be the file's size in bytes", details={"field": "size"})
        if size > settings.ARTIFACT_MAX_BYTES:
            raise _too_large(size, settings.ARTIFACT_MAX_BYTES)
    except StowageError as exc:
        return stowage_error_response(request, exc)
    direct = direct_uploads_available() and size >= settings.DIRECT_UPLOAD_MIN_BYTES
    return JsonResponse({"remote_path": remote_path, "max_bytes": settings.ARTIFACT_MAX_BYTES, "direct": direct})


@org_json_view(Role.MEMBER, ["PUT"])
def artifact_upload_stream(request: HttpRequest) -> JsonResponse:
    """One file of the upload page, sent as the raw request body and streamed to storage a chunk
    at a time: the body is never read whole (request.body is never touched). PUT, so the CSRF
    check looks at the X-CSRFToken header alone and never parses the body for a token."""
    length = request.META.get("CONTENT_LENGTH", "")
    try:
        if not length.isdigit():
            raise StowageError("The upload must say its length (Content-Length).", code="LENGTH_REQUIRED")
        if int(length) > settings.ARTIFACT_MAX_BYTES:
            raise _too_large(int(length), settings.ARTIFACT_MAX_BYTES)
        metadata = check_metadata_header(request.headers.get(METADATA_HEADER))
        content_type = _upload_content_type(request.META.get("CONTENT_TYPE", ""))
        if content_type is not None and check_content_type(content_type) is None:
            content_type = None
        artifact = artifact_put(
            actor=request.actor,
            stream=request,
            remote_path=request.GET.get("remote_path", ""),
            content_type=content_type,
            metadata=metadata,
            content_length=int(length),
        )
    except StowageError as exc:
        response = stowage_error_response(request, exc)
        if exc.code == "LENGTH_REQUIRED":
            response.status_code = 411
        return response
    return JsonResponse(_uploaded(artifact), status=201)


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


# --- uploads straight from the browser to the object store ----------------------------------


def _storage_error(request: HttpRequest, exc: BlobError) -> JsonResponse:
    # The store's own words name buckets and keys; the page gets a sentence it can show.
    if isinstance(exc, UploadGone):
        message = "The upload is no longer open on the object store; start it again."
    elif exc.code == BlobError.code:
        message = "The object store did not answer as expected. Try again shortly."
    else:
        message = exc.message
    return error_response(request, status=exc.status, code=exc.code, message=message)


def _direct_status(transfer: Transfer) -> dict[str, Any]:
    if transfer.state == TransferState.SUCCEEDED:
        state = "succeeded"
    elif transfer.state == TransferState.FAILED:
        state = "failed"
    else:
        state = "uploading" if transfer.completed_at is None else "verifying"
    status: dict[str, Any] = {
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
    return status


def _direct_view(method: str):
    """A JSON endpoint on one of the caller's own direct uploads: errors as JSON, never a page."""

    def decorate(handler):
        @org_json_view(Role.MEMBER, [method])
        @wraps(handler)
        def view(request: HttpRequest, transfer_id: str) -> JsonResponse:
            try:
                transfer = direct_upload_get(
                    organization_id=request.organization.id, user_id=request.user.id, transfer_id=transfer_id
                )
                return handler(request, transfer)
            except BlobError as exc:
                return _storage_error(request, exc)
            except StowageError as exc:
                return stowage_error_response(request, exc)

        return view

    return decorate


@org_json_view(Role.MEMBER, ["POST"])
def artifact_upload_direct(request: HttpRequest) -> JsonResponse:
    """Begins an upload whose parts the browser sends to the object store itself."""
    try:
        payload = read_json_object(request)
        content_type = payload.get("content_type") if isinstance(payload.get("content_type"), str) else None
        transfer = direct_upload_begin(
            actor=request.actor,
            remote_path=payload.get("remote_path") if isinstance(payload.get("remote_path"), str) else "",
            size=payload.get("size"),
            content_type=_upload_content_type(content_type or ""),
            metadata=payload.get("metadata"),
        )
    except BlobError as exc:
        return _storage_error(request, exc)
    except StowageError as exc:
        return stowage_error_response(request, exc)
    return JsonResponse(_direct_status(transfer), status=201)


@_direct_view("GET")
def artifact_upload_direct_status(request: HttpRequest, transfer: Transfer) -> JsonResponse:
    response = JsonResponse(_direct_status(transfer))
    add_never_cache_headers(response)
    return response


@_direct_view("POST")
def artifact_upload_direct_part(request: HttpRequest, transfer: Transfer) -> JsonResponse:
    """``{"parts": [{"number", "sha256"}, ...]}`` (a few at a time), or one ``{"number", "sha256"}``."""
    payload = read_json_object(request)
    if "parts" in payload:
        return JsonResponse({"parts": direct_upload_sign_parts(transfer=transfer, parts=payload["parts"])})
    return JsonResponse(direct_upload_sign_parts(transfer=transfer, parts=[payload])[0])


@_direct_view("POST")
def artifact_upload_direct_complete(request: HttpRequest, transfer: Transfer) -> JsonResponse:
    transfer = direct_upload_complete(transfer=transfer)
    return JsonResponse(_direct_status(transfer), status=202)


@_direct_view("POST")
def artifact_upload_direct_abort(request: HttpRequest, transfer: Transfer) -> JsonResponse:
    direct_upload_abort(transfer=transfer)
    transfer.refresh_from_db()
    return JsonResponse(_direct_status(transfer))
