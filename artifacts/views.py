from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import push_url

from accounts.access import org_view
from accounts.models import Role
from artifacts import preview as previews
from artifacts.folder_views import folder_context
from artifacts.forms import SORT_CHOICES, ArtifactFilterForm
from artifacts.http import artifact_delivery, artifact_response
from artifacts.models import Artifact
from artifacts.prefix_selectors import FOLDER_SORTS, artifact_folder_page
from artifacts.selectors import (
    artifact_browse,
    artifact_get,
    artifact_lineage,
    artifact_path_groups,
)
from artifacts.services import (
    artifact_delete,
    artifact_record_read,
)
from artifacts.version_views import versions_context
from core.errors import Conflict, InvalidInput, NotFound
from core.htmx import wants_fragment
from shares.views import share_block_context

PAGE_SIZE = 50


def _artifact(request: HttpRequest, artifact_id: str) -> Artifact:
    """The current organization's visible artifact; the same 404 for another's, a deleted or a missing one."""
    try:
        return artifact_get(organization_id=request.organization.id, artifact_id=artifact_id)
    except NotFound:
        raise Http404("not found") from None


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _query(params: dict[str, str], **changes: str | None) -> str:
    merged = {**params, **changes}
    return urlencode({key: value for key, value in merged.items() if value})


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
    context = {
        **versions_context(request, artifact),
        "preview": preview,
        "lineage": artifact_lineage(artifact=artifact),
        **share_block_context(request, artifact),
        **(folder_context(request, artifact) if artifact.is_folder else {}),
    }
    response = render(request, "artifacts/artifact_detail.html", context)
    if context["holds_share_urls"]:
        # It holds share links' URLs.
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
        try:
            artifact_delete(actor=request.actor, artifact=artifact)
        except Conflict as exc:
            messages.error(request, exc.message)
            return redirect("artifact-detail", artifact_id=artifact.id)
        messages.success(request, f"Moved {artifact.remote_path} (version {artifact.version}) to the trash.")
        return redirect("artifact-list")
    return render(request, "artifacts/artifact_delete.html", {"artifact": artifact})


@org_view()
@require_GET
def artifact_folders(request: HttpRequest) -> HttpResponse:
    """Artifacts as folders of remote_path prefixes: breadcrumbs, subfolders with their totals,
    then one row per path at this level with its newest version."""
    path = request.GET.get("path", "")[:1024]
    sort = request.GET.get("sort", "name")
    sort = sort if sort in FOLDER_SORTS else "name"
    stale_cursor = False
    try:
        page = artifact_folder_page(
            organization_id=request.organization.id,
            path=path,
            sort=sort,
            cursor=request.GET.get("cursor") or None,
            limit=PAGE_SIZE,
        )
    except InvalidInput:
        stale_cursor = True
        page = artifact_folder_page(organization_id=request.organization.id, path=path, sort=sort, limit=PAGE_SIZE)
    kept = {"path": page.path, "sort": sort if sort != "name" else ""}
    context = {
        "page": page,
        "sort": sort,
        "sorts": [
            (name, label, _query(kept, sort=name if name != "name" else None))
            for name, label in (("name", "Name"), ("newest", "Newest"), ("size", "Largest"))
        ],
        "rows": [(head, head.remote_path[len(page.path) :]) for head in page.heads],
        "next_query": _query(kept, cursor=page.next_cursor) if page.next_cursor else "",
        "is_later_page": bool(request.GET.get("cursor")),
        "first_query": _query(kept),
        "stale_cursor": stale_cursor,
    }
    return render(request, "artifacts/artifact_folders.html", context)
