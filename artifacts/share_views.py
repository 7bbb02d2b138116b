"""The public side of share links: a landing page for the recipient and the download itself.

Every way a token can fail (unknown, pending, revoked, expired, used up) gets the same 404
page, byte for byte, so the answer tells a guesser nothing; guesses are throttled per IP.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from artifacts import shares
from artifacts.http import artifact_delivery
from artifacts.models import ShareLink
from config.auth import client_ip

# No script, nothing from elsewhere, forms only to ourselves, never framed; the token is in
# the URL, so no Referer may carry it away.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}


def _with_page_headers(response: HttpResponse) -> HttpResponse:
    for name, value in _PAGE_HEADERS.items():
        response[name] = value
    return response


def _missing() -> HttpResponse:
    # Rendered without the request or any detail of the token, so every case reads the same.
    return _with_page_headers(
        HttpResponse(render_to_string("artifacts/share_missing.html", {"throttled": False}), status=404)
    )


def _throttled() -> HttpResponse:
    response = HttpResponse(render_to_string("artifacts/share_missing.html", {"throttled": True}), status=429)
    response["Retry-After"] = str(shares.GUESS_WINDOW_SECONDS)
    return _with_page_headers(response)


def _landing(
    request: HttpRequest, token: str, link: ShareLink, *, status: int = 200, wrong_password: bool = False
) -> HttpResponse:
    context = {
        "artifact": link.artifact,
        "link": link,
        "downloads_left": shares.share_link_downloads_left(link),
        "download_url": reverse("share-download", args=[token]),
        "wrong_password": wrong_password,
    }
    return _with_page_headers(render(request, "artifacts/share_landing.html", context, status=status))


def _resolve(request: HttpRequest, token: str) -> tuple[ShareLink | None, HttpResponse | None]:
    ip = client_ip(request)
    if shares.share_guesses_exceeded(ip=ip):
        return None, _throttled()
    link = shares.share_link_resolve(token=token)
    if link is None:
        shares.share_guess_record(ip=ip)
        return None, _missing()
    return link, None


@require_http_methods(["GET", "HEAD"])
def share_landing(request: HttpRequest, token: str) -> HttpResponse:
    link, refusal = _resolve(request, token)
    if refusal is not None:
        return refusal
    return _landing(request, token, link)


# The form carries no ambient authority (no session, no cookie): whoever can post it already
# holds the token and the password, so a CSRF token would protect nothing.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def share_download(request: HttpRequest, token: str) -> HttpResponse:
    link, refusal = _resolve(request, token)
    if refusal is not None:
        return refusal
    if link.has_password and request.method != "POST":
        return HttpResponseRedirect(reverse("share-landing", args=[token]))
    recipient = shares.Recipient(
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        request_id=getattr(request, "request_id", ""),
    )
    try:
        artifact = shares.share_link_download(
            link=link, password=request.POST.get("password") if link.has_password else None, recipient=recipient
        )
    except shares.WrongPassword:
        shares.share_guess_record(ip=recipient.ip)
        return _landing(request, token, link, status=403, wrong_password=True)
    except shares.ShareUnavailable:
        return _missing()
    return artifact_delivery(request, artifact)
