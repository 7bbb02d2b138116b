"""Every dashboard page, in one list, for the tests that visit them all (tests/browser/
test_responsive.py): each with how to reach it from what ``Made`` holds. A new page is one more
line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass
class Made:
    """What the module's fixture made through the API, for the pages that show one thing."""

    artifact_id: str = ""
    older_version_id: str = ""
    folder_id: str = ""
    sandbox_id: str = ""
    session_id: str = ""
    share_id: str = ""
    share_url: str = ""
    folder_path: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    name: str
    path: Callable[[Made], str]
    # Opened by someone signed out (the sign-in page, a share link's recipient).
    anonymous: bool = False


PAGES: list[Page] = [
    Page("login", lambda m: "/login/", anonymous=True),
    Page("recipient", lambda m: m.share_url, anonymous=True),
    Page("home", lambda m: "/"),
    Page("artifacts", lambda m: "/artifacts/"),
    Page("artifacts-by-path", lambda m: "/artifacts/?view=paths"),
    Page("folders", lambda m: "/artifacts/folders/"),
    Page("folder", lambda m: "/artifacts/folders/?path=" + quote(m.folder_path)),
    Page("artifact", lambda m: f"/artifacts/{m.artifact_id}/"),
    Page("folder-browser", lambda m: f"/artifacts/{m.folder_id}/"),
    Page("folder-file", lambda m: f"/artifacts/{m.folder_id}/file/?path=notes.txt"),
    Page("compare", lambda m: f"/artifacts/{m.artifact_id}/compare/?against={m.older_version_id}"),
    Page("delete", lambda m: f"/artifacts/{m.artifact_id}/delete/"),
    Page("upload", lambda m: "/artifacts/upload/"),
    Page("sandboxes", lambda m: "/sandboxes/"),
    Page("sandbox", lambda m: f"/sandboxes/{m.sandbox_id}/"),
    Page("sessions", lambda m: "/sessions/"),
    Page("session", lambda m: f"/sessions/{m.session_id}/"),
    Page("audit", lambda m: "/audit/"),
    Page("api-keys", lambda m: "/keys/"),
    Page("members", lambda m: "/members/"),
    Page("leave", lambda m: "/members/leave/"),
    Page("organizations", lambda m: "/staff/organizations/"),
    Page("security-log", lambda m: "/audit/instance/"),
    Page("webhooks", lambda m: "/webhooks/"),
    Page("webhook", lambda m: f"/webhooks/{m.extra['webhook_id']}/"),
    Page("trash", lambda m: "/trash/"),
    Page("trash-empty", lambda m: "/trash/empty/"),
    Page("retention", lambda m: "/retention/"),
    Page("usage", lambda m: "/usage/"),
    Page("usage-all", lambda m: "/usage/all/"),
    Page("share-revoke", lambda m: f"/artifacts/{m.artifact_id}/shares/{m.share_id}/revoke/"),
]
