"""The recipient's side of a share link: the public landing page, its download and preview.

Every way a token can fail (unknown, pending, revoked, expired, used up) gets the same 404
page, byte for byte, so the answer tells a guesser nothing; guesses are throttled per IP.

The page's download button is a form: the POST counts the download and redirects back to the
page with a grant (shares/grants.py), so the page shows the new downloads-left and no stale
error, and a refresh hands the counted file over once. A POST without the page's marker (a
script's) is answered with the file itself, as it always was.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from artifacts import preview as previews
from artifacts.http import artifact_delivery, artifact_response
from artifacts.services import artifact_record_read
from config.auth import client_ip
from core.actor import Actor
from shares import grants, services
from shares.models import ShareLink

# No script, nothing from elsewhere, forms only to ourselves, never framed but by ourselves for a
# PDF preview; the token is in the URL, so no Referer may carry it away.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}
# The page's own download form sends this; scripts that POST a password do not.
FROM_PAGE_FIELD = "from_page"


def _with_page_headers(response: HttpResponse) -> HttpResponse:
    for name, value in _PAGE_HEADERS.items():
        response[name] = value
    return response


def _missing() -> HttpResponse:
    # Rendered without the request or any detail of the token, so every case reads the same.
    return _with_page_headers(
        HttpResponse(render_to_string("shares/share_missing.html", {"throttled": False}), status=404)
    )


def _throttled() -> HttpResponse:
    response = HttpResponse(render_to_string("shares/share_missing.html", {"throttled": True}), status=429)
    response["Retry-After"] = str(services.GUESS_WINDOW_SECONDS)
    return _with_page_headers(response)


def _recipient_actor(request: HttpRequest, link: ShareLink) -> Actor:
    return Actor(
        organization_id=link.organization_id,
        label=f"share link {link.id}",
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", ""),
    )


def _preview(request: HttpRequest, link: ShareLink) -> previews.Preview:
    preview = previews.build_preview(link.artifact)
    if preview.read_bytes:
        artifact_record_read(
            actor=_recipient_actor(request, link),
            artifact=link.artifact,
            action="share.preview",
            details={"share_id": link.id, "bytes": preview.shown_bytes},
        )
    return preview


def _landing(
    request: HttpRequest,
    token: str,
    link: ShareLink,
    *,
    status: int = 200,
    wrong_password: bool = False,
    grant: str | None = None,
) -> HttpResponse:
    # Behind a password, nothing about the file shows until a right one has been given.
    unlocked = not link.has_password or grant is not None
    downloads_left = services.share_link_downloads_left(link)
    context = {
        "artifact": link.artifact,
        "link": link,
        "organization": link.organization,
        "shared_by": link.created_by_label,
        "unlocked": unlocked,
        "preview": _preview(request, link) if unlocked else None,
        "preview_url": reverse("share-preview", args=[token]) + (f"?grant={grant}" if grant else ""),
        "downloads_left": downloads_left,
        "can_download": services.share_link_effective_state(link) == "active",
        "download_url": reverse("share-download", args=[token]),
        "from_page_field": FROM_PAGE_FIELD,
        "wrong_password": wrong_password,
        "file_url": reverse("share-file", args=[token, grant])
        if grant and grants.grant_file_waiting(link=link, grant=grant)
        else "",
        "downloaded": grant is not None,
    }
    return _with_page_headers(render(request, "shares/share_landing.html", context, status=status))


def _refused(request: HttpRequest) -> HttpResponse | None:
    if services.share_guesses_exceeded(ip=client_ip(request)):
        return _throttled()
    return None


def _not_found(request: HttpRequest) -> HttpResponse:
    services.share_guess_record(ip=client_ip(request))
    return _missing()


def _granted_link(request: HttpRequest, token: str) -> tuple[ShareLink | None, str | None]:
    """The link and the grant in the address, when the grant is one of this link's."""
    grant = request.GET.get("grant")
    if not grant:
        return None, None
    link = services.share_link_find(token=token)
    if link is None or not grants.grant_opens_page(link=link, grant=grant):
        return None, None
    return link, grant


@require_http_methods(["GET", "HEAD"])
def share_landing(request: HttpRequest, token: str) -> HttpResponse:
    if (refusal := _refused(request)) is not None:
        return refusal
    link, grant = _granted_link(request, token)
    if link is not None:
        return _landing(request, token, link, grant=grant)
    link = services.share_link_resolve(token=token)
    if link is None:
        return _not_found(request)
    return _landing(request, token, link)


# The form carries no ambient authority (no session, no cookie): whoever can post it already
# holds the token and the password, so a CSRF token would protect nothing.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def share_download(request: HttpRequest, token: str) -> HttpResponse:
    if (refusal := _refused(request)) is not None:
        return refusal
    link = services.share_link_resolve(token=token)
    if link is None:
        return _not_found(request)
    if link.has_password and request.method != "POST":
        return HttpResponseRedirect(reverse("share-landing", args=[token]))
    recipient = services.Recipient(
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        request_id=getattr(request, "request_id", ""),
    )
    try:
        artifact = services.share_link_download(
            link=link, password=request.POST.get("password") if link.has_password else None, recipient=recipient
        )
    except services.WrongPassword:
        services.share_guess_record(ip=recipient.ip)
        return _landing(request, token, link, status=403, wrong_password=True)
    except services.ShareUnavailable:
        return _missing()
    if request.method == "POST" and request.POST.get(FROM_PAGE_FIELD):
        grant = grants.grant_issue(link=link)
        # 303: the page is fetched again with GET, so a reload never posts the password again.
        response = HttpResponseRedirect(reverse("share-landing", args=[token]) + f"?grant={grant}")
        response.status_code = 303
        return _with_page_headers(response)
    return artifact_delivery(request, artifact)


@require_GET
def share_file(request: HttpRequest, token: str, grant: str) -> HttpResponse:
    """The file of a download the page has counted, handed over once."""
    if (refusal := _refused(request)) is not None:
        return refusal
    link = services.share_link_find(token=token)
    if link is None or not grants.grant_take_file(link=link, grant=grant):
        if link is not None and grants.grant_opens_page(link=link, grant=grant):
            return HttpResponseRedirect(reverse("share-landing", args=[token]) + f"?grant={grant}")
        return _not_found(request)
    return artifact_delivery(request, link.artifact)


@xframe_options_sameorigin
@require_GET
def share_preview(request: HttpRequest, token: str) -> HttpResponse:
    """An image's or a PDF's bytes for the page's preview, inline, in a response that is its own
    sandbox; behind a password only with a grant."""
    if (refusal := _refused(request)) is not None:
        return refusal
    link, _ = _granted_link(request, token)
    if link is None:
        link = services.share_link_resolve(token=token)
        if link is None or link.has_password:
            return _not_found(request)
    content_type = previews.inline_content_type(link.artifact)
    if content_type is None:
        return _missing()
    if request.headers.get("Range", "") in ("", "bytes=0-"):
        artifact_record_read(
            actor=_recipient_actor(request, link),
            artifact=link.artifact,
            action="share.preview",
            details={"share_id": link.id, "content_type": content_type},
        )
    response = artifact_response(request, link.artifact)
    if response.status_code in (200, 206):
        response["Content-Type"] = content_type
        response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
