"""What a recipient holds for a while after a counted download from the landing page.

The page's download form counts the download, then redirects back to the page with a grant in
its address: the page shows the new downloads-left (and, behind a password, the file's details)
without asking again, and hands out the counted file once. Grants live in the cache, never in a
cookie: the landing page keeps no session.
"""

from __future__ import annotations

import secrets

from django.core.cache import cache

from shares.models import ShareLink

GRANT_SECONDS = 15 * 60
GRANT_BYTES = 24
MAX_GRANT_LENGTH = 64


def _page_key(grant: str) -> str:
    return f"share-grant:{grant}"


def _file_key(grant: str) -> str:
    return f"share-grant-file:{grant}"


def grant_issue(*, link: ShareLink) -> str:
    grant = secrets.token_urlsafe(GRANT_BYTES)
    cache.set_many({_page_key(grant): link.id, _file_key(grant): link.id}, timeout=GRANT_SECONDS)
    return grant


def _valid(grant: str | None) -> bool:
    return bool(grant) and len(grant) <= MAX_GRANT_LENGTH


def grant_opens_page(*, link: ShareLink, grant: str | None) -> bool:
    return _valid(grant) and cache.get(_page_key(grant)) == link.id


def grant_file_waiting(*, link: ShareLink, grant: str | None) -> bool:
    return _valid(grant) and cache.get(_file_key(grant)) == link.id


def grant_take_file(*, link: ShareLink, grant: str | None) -> bool:
    """True once per grant: the counted download may be sent. Deleting is the claim, so two
    concurrent requests cannot both have it."""
    if not grant_file_waiting(link=link, grant=grant):
        return False
    return bool(cache.delete(_file_key(grant)))
