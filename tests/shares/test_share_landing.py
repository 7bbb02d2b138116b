from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from core.actor import Actor
from shares.models import ShareLink
from shares.services import _guess_key
from shares.worker import share_link_activate
from tests.factories import put_artifact

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NOTE = "Here are the <numbers> we spoke of."


@pytest.fixture(autouse=True)
def clean_guess_counters():
    cache.delete_many([_guess_key("127.0.0.1")])
    yield
    cache.delete_many([_guess_key("127.0.0.1")])


def make_link(user, artifact, **body) -> str:
    response = user.post(f"/artifacts/{artifact.id}/shares?wait=false", body)
    assert response.status_code == 202, response.content
    share_link_activate(share_id=response.json()["id"], actor=Actor.system(user.org_id))
    return response.json()["url"].split("testserver", 1)[1]


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def report(owner, broker):
    return put_artifact(owner, "reports/q3 summary.txt", b"revenue went up\n", "text/plain")


def test_the_page_shows_organization_sender_note_checksum_and_a_preview(owner, report):
    path = make_link(owner, report, note=NOTE, max_downloads=3)
    page = Client().get(path).content.decode()
    assert "API key" in page
    assert "Here are the &lt;numbers&gt; we spoke of." in page and "<numbers>" not in page
    assert report.checksum in page
    assert "revenue went up" in page
    assert re.search(r'id="downloads-left">3<', page)


def test_the_organization_name_is_on_the_page(owner, report):
    from accounts.models import Organization

    path = make_link(owner, report)
    name = Organization.objects.get(id=owner.org_id).name
    assert name in Client().get(path).content.decode()


def test_downloading_from_the_page_shows_the_downloads_left_and_hands_the_file_over_once(owner, report):
    path = make_link(owner, report, max_downloads=2)
    recipient = Client()
    posted = recipient.post(path + "/download", {"from_page": "1"})
    assert posted.status_code == 303
    page = recipient.get(posted["Location"])
    text = page.content.decode()
    assert re.search(r'id="downloads-left">1<', text)
    file_url = re.search(r'url=(/s/[^"]+/file/[^"]+)"', text).group(1)
    assert content(recipient.get(file_url)) == b"revenue went up\n"
    # Handed over once: the page no longer starts it, and the file address leads back to the page.
    again = recipient.get(posted["Location"]).content.decode()
    assert "/file/" not in again and re.search(r'id="downloads-left">1<', again)
    assert recipient.get(file_url).status_code == 302
    assert ShareLink.objects.get().download_count == 1
    assert AuditEvent.objects.filter(action="share.download").count() == 1


def test_after_the_last_download_the_page_says_so(owner, report):
    path = make_link(owner, report, max_downloads=1)
    recipient = Client()
    posted = recipient.post(path + "/download", {"from_page": "1"})
    text = recipient.get(posted["Location"]).content.decode()
    assert re.search(r'id="downloads-left">0<', text) and "last download" in text
    assert "/file/" in text
    assert recipient.get(path).status_code == 404


def test_a_password_protected_link_shows_nothing_about_the_file_before_the_password(owner, report):
    path = make_link(owner, report, password="open sesame", note=NOTE)
    page = Client().get(path).content.decode()
    for secret in ("q3 summary", "revenue went up", "numbers", report.checksum, "text/plain", "Downloads left"):
        assert secret not in page
    assert 'name="password"' in page
    assert Client().get(path + "/preview").status_code == 404


def test_after_a_wrong_then_a_right_password_the_error_is_gone(owner, report):
    path = make_link(owner, report, password="open sesame", note=NOTE, max_downloads=5)
    recipient = Client()
    wrong = recipient.post(path + "/download", {"password": "nope nope", "from_page": "1"})
    assert wrong.status_code == 403 and "not right" in wrong.content.decode()
    assert "revenue went up" not in wrong.content.decode()
    right = recipient.post(path + "/download", {"password": "open sesame", "from_page": "1"})
    assert right.status_code == 303
    page = recipient.get(right["Location"]).content.decode()
    assert "not right" not in page and 'role="alert"' not in page
    assert "q3 summary.txt" in page and "revenue went up" in page and "&lt;numbers&gt;" in page
    assert re.search(r'id="downloads-left">4<', page)


def test_a_made_up_grant_opens_nothing(owner, report):
    path = make_link(owner, report, password="open sesame")
    recipient = Client()
    page = recipient.get(path, {"grant": "x" * 32}).content.decode()
    assert "q3 summary" not in page
    assert recipient.get(path + "/file/" + "x" * 32).status_code == 404
    assert recipient.get(path + "/preview", {"grant": "x" * 32}).status_code == 404


def test_an_image_is_previewed_from_a_sandboxed_response(owner, broker):
    image = put_artifact(owner, "plots/loss.png", PNG, "image/png")
    path = make_link(owner, image)
    page = Client().get(path).content.decode()
    assert f'src="{path}/preview"' in page
    preview = Client().get(path + "/preview")
    assert preview.status_code == 200 and content(preview) == PNG
    assert preview["Content-Type"] == "image/png" and preview["Content-Security-Policy"].startswith("sandbox")


def test_html_is_never_previewed(owner, broker):
    html = put_artifact(owner, "site/index.html", b"<script>alert(1)</script>", "text/html")
    path = make_link(owner, html)
    page = Client().get(path).content.decode()
    assert "<script>alert(1)</script>" not in page and "never shown" in page
    assert Client().get(path + "/preview").status_code == 404


def test_a_script_posting_the_password_still_gets_the_file(owner, report):
    path = make_link(owner, report, password="open sesame")
    response = Client().post(path + "/download", {"password": "open sesame"})
    assert response.status_code == 200 and content(response) == b"revenue went up\n"


def test_the_list_records_the_last_download(dashboard, owner, report):
    path = make_link(owner, report, label="For Ana")
    Client().get(path + "/download")
    link = ShareLink.objects.get()
    assert link.last_download_at is not None
    page = dashboard.member.get(reverse("artifact-detail", args=[report.id])).content.decode()
    assert "For Ana" in page and "API key" in page and "Last download" in page
