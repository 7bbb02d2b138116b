"""Share links in the dashboard: the share block on an artifact's page (the recipient's side is
shares/landing.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts.access import has_role, org_view
from accounts.models import Role
from artifacts.models import Artifact
from artifacts.selectors import artifact_get
from core.errors import NotFound, StowageError
from core.htmx import fragment, wants_fragment
from shares import services
from shares.forms import ShareLinkForm
from shares.models import ShareLink, ShareLinkState
from shares.selectors import share_link_get, share_link_list

SHARES_SHOWN = 50
# Share-link tokens wait here, in the server-side session, until their page has shown them once.
SESSION_SHARE_TOKENS = "stowage_share_tokens"
SESSION_SHARE_TOKENS_MAX = 20
# A new share link's block stops polling after this long (the worker may be down); the token
# stays in the session, so the page shows the link once it is active after all.
SHARE_POLL_SECONDS = 60


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


def _back_to_shares(artifact: Artifact) -> HttpResponse:
    return redirect(reverse("artifact-detail", args=[artifact.id]) + "#share-links")


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
    return {"link": link, "status": "ready", "url": services.share_url(request, token)}


def _may_manage(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and has_role(membership, Role.MEMBER)


def _share_rows(request: HttpRequest, artifact: Artifact) -> list[dict[str, Any]]:
    manager = _may_manage(request)
    rows = []
    for link in share_link_list(artifact=artifact)[:SHARES_SHOWN]:
        state = services.share_link_effective_state(link)
        token = services.share_link_token(link) if manager and state == ShareLinkState.ACTIVE else None
        rows.append(
            {
                "link": link,
                "state": state,
                "downloads_left": services.share_link_downloads_left(link),
                "url": services.share_url(request, token) if token else "",
            }
        )
    return rows


def share_block_context(
    request: HttpRequest, artifact: Artifact, *, form: ShareLinkForm | None = None, error: str = ""
) -> dict[str, Any]:
    """What shares/partials/_share_links.html needs; the artifact's page includes it. A page that
    shows a ``new_links`` entry may hold a link's URL, shown this once: it must not be cached."""
    rows = _share_rows(request, artifact)
    tokens = _pending_tokens(request)
    new_links = [_new_link_view(request, row["link"]) for row in rows if row["link"].id in tokens]
    return {
        "artifact": artifact,
        "share_rows": rows,
        "new_links": new_links,
        "share_form": form or ShareLinkForm(),
        "share_error": error,
        "holds_share_urls": bool(new_links) or any(row["url"] for row in rows),
    }


@org_view(Role.MEMBER)
@require_POST
def artifact_share_create(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    form = ShareLinkForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            link, token = services.share_link_create(
                actor=request.actor,
                artifact=artifact,
                # A date picked replaces the preset.
                expires_in=None if form.cleaned_data["expires_at"] else form.cleaned_data["expires_in"],
                max_downloads=form.cleaned_data["max_downloads"],
                password=form.cleaned_data["password"] or None,
                expires_at=form.cleaned_data["expires_at"],
                label=form.cleaned_data["label"],
                note=form.cleaned_data["note"],
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
            request, "shares/partials/_share_links.html", share_block_context(request, artifact, form=form, error=error)
        )
        add_never_cache_headers(response)
        return response
    if form is not None:
        messages.error(
            request,
            error
            or "The share link was not created: " + " ".join(str(e) for errors in form.errors.values() for e in errors),
        )
    return _back_to_shares(artifact)


@org_view(Role.MEMBER)
@require_GET
def artifact_share_status(request: HttpRequest, artifact_id: str, share_id: str) -> HttpResponse:
    """Polled every second by a new link's block until the worker has made the link active."""
    artifact = _artifact(request, artifact_id)
    link = _share_link(artifact, share_id)
    if not wants_fragment(request):
        return _back_to_shares(artifact)
    view = _new_link_view(request, link)
    final = view["status"] != "pending"
    response = fragment(request, "shares/partials/_share_new.html", {"artifact": artifact, "new": view}, final=final)
    if final:
        trigger_client_event(response, "share-links-changed")
    add_never_cache_headers(response)
    return response


@org_view()
@require_GET
def artifact_share_list(request: HttpRequest, artifact_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    if not wants_fragment(request):
        return _back_to_shares(artifact)
    context = {"artifact": artifact, "share_rows": _share_rows(request, artifact)}
    response = render(request, "shares/partials/_share_list.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    # Rows of a manager's page carry the links themselves.
    add_never_cache_headers(response)
    return response


@org_view(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def artifact_share_revoke(request: HttpRequest, artifact_id: str, share_id: str) -> HttpResponse:
    artifact = _artifact(request, artifact_id)
    link = _share_link(artifact, share_id)
    if request.method == "POST":
        services.share_link_revoke(actor=request.actor, link=link)
        messages.success(request, "The share link is revoked; it no longer opens.")
        return _back_to_shares(artifact)
    return render(
        request,
        "shares/share_revoke.html",
        {"artifact": artifact, "link": link, "state": services.share_link_effective_state(link)},
    )
