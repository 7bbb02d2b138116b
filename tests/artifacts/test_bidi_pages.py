"""An artifact whose path and metadata hold characters that reorder text is shown with them
made visible on every page that names it, for its organization and for a share's recipient."""

from __future__ import annotations

import json

from django.test import Client
from django.urls import reverse

from core.actor import Actor
from shares.worker import share_link_activate
from tests.factories import put_artifact

RLO = "\u202e"
PATH = f"invoices/report{RLO}fdp.exe"
SHOWN = 'report<span class="bidi-control" title="A hidden control character, U+202E">&lt;U+202E&gt;</span>fdp.exe'


def test_the_dashboards_pages_show_the_control_not_obey_it(dashboard, owner):
    artifact = put_artifact(owner, PATH, b"MZ", metadata=json.dumps({"note": f"paid{RLO}"}))
    pages = {
        "list": dashboard.viewer.get(reverse("artifact-list")),
        "paths": dashboard.viewer.get(reverse("artifact-list"), {"view": "paths"}),
        "folder": dashboard.viewer.get(reverse("artifact-folders"), {"path": "invoices/"}),
        "detail": dashboard.viewer.get(reverse("artifact-detail", args=[artifact.id])),
        "home": dashboard.viewer.get(reverse("home")),
        "audit": dashboard.owner.get(reverse("audit-list")),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        assert RLO not in html, name
        assert SHOWN in html or "&lt;U+202E&gt;" in html, name
    # A title holds no markup: the marker is plain text there.
    assert "<title>report&lt;U+202E&gt;fdp.exe · Stowage</title>" in pages["detail"].content.decode()


def test_the_recipients_page_shows_the_control_too(owner, broker):
    artifact = put_artifact(owner, PATH, b"MZ")
    made = owner.post(f"/artifacts/{artifact.id}/shares?wait=false", {"note": f"from {RLO}us"})
    assert made.status_code == 202, made.content
    share_link_activate(share_id=made.json()["id"], actor=Actor.system(owner.org_id))
    landing = Client().get(made.json()["url"].split("testserver", 1)[1]).content.decode()
    assert RLO not in landing
    assert SHOWN in landing and 'from <span class="bidi-control"' in landing
