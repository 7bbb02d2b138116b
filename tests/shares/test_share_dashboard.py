from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.actor import Actor
from shares.models import ShareLink
from shares.worker import share_link_activate
from tests.factories import put_artifact

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def artifact(owner, broker):
    return put_artifact(owner, "share/me.txt", b"shared bytes", "text/plain")


def create(client, artifact, **fields):
    body = {"expires_in": 86400, "max_downloads": "", "password": "", "label": "", "note": "", "expires_at": ""}
    return client.post(reverse("artifact-share-create", args=[artifact.id]), {**body, **fields}, **HTMX)


def test_a_member_makes_a_labelled_link_with_a_picked_date(dashboard, owner, artifact):
    when = (timezone.now() + timedelta(days=10)).replace(second=0, microsecond=0)
    response = create(
        dashboard.member, artifact, label="For Ana", note="Hi Ana", expires_at=when.strftime("%Y-%m-%dT%H:%M")
    )
    assert response.status_code == 200
    link = ShareLink.objects.get()
    assert (link.label, link.note, link.expires_at) == ("For Ana", "Hi Ana", when)
    assert link.created_by_user is not None


def test_the_new_links_copy_button_takes_the_focus(dashboard, owner, artifact):
    create(dashboard.member, artifact)
    link = ShareLink.objects.get()
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    ready = dashboard.member.get(reverse("artifact-share-status", args=[artifact.id, link.id]), **HTMX)
    assert f'id="share-copy-{link.id}"' in ready.content.decode()
    assert "autofocus" in ready.content.decode()


def test_members_can_copy_a_link_again_and_viewers_cannot(dashboard, owner, artifact):
    create(dashboard.member, artifact, label="again")
    link = ShareLink.objects.get()
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    detail = reverse("artifact-detail", args=[artifact.id])
    dashboard.member.get(detail)  # the new-link block shows it once
    member_page = dashboard.member.get(detail)
    assert f'id="share-row-url-{link.id}"' in member_page.content.decode()
    assert "no-store" in member_page["Cache-Control"]
    viewer_page = dashboard.viewer.get(detail).content.decode()
    assert "again" in viewer_page and f"share-row-url-{link.id}" not in viewer_page and "/s/" not in viewer_page


def test_an_older_link_says_it_cannot_be_copied_again(dashboard, owner, artifact):
    create(dashboard.member, artifact)
    link = ShareLink.objects.get()
    share_link_activate(share_id=link.id, actor=Actor.system(owner.org_id))
    ShareLink.objects.filter(id=link.id).update(token_encrypted="")
    page = dashboard.owner.get(reverse("artifact-detail", args=[artifact.id])).content.decode()
    assert "cannot be copied again" in page and f"share-row-url-{link.id}" not in page


@pytest.mark.parametrize(
    "fields",
    [
        {"label": "x" * 101},
        {"note": "y" * 1001},
        {"expires_at": "2001-01-01T00:00"},
        {"expires_at": "2999-01-01T00:00"},
        {"expires_at": "soon"},
        {"label": "bad\u0000"},
    ],
)
def test_bad_fields_are_shown_and_create_nothing(dashboard, artifact, fields):
    response = create(dashboard.member, artifact, **fields)
    assert response.status_code == 200
    assert 'class="error" role="alert"' in response.content.decode()
    assert not ShareLink.objects.exists()


def test_strangers_viewers_and_anonymous_cannot_make_links(dashboard, artifact):
    assert create(dashboard.stranger, artifact, label="x").status_code == 404
    assert create(dashboard.viewer, artifact, label="x").status_code in (403, 404)
    assert create(dashboard.anonymous, artifact, label="x").status_code in (302, 401)
    assert not ShareLink.objects.exists()
