"""The retention page: admins and owners only; the form's preview (count, bytes, the oldest few)
before anything is saved; refusals shown beside the field, nothing saved; pause and delete."""

from __future__ import annotations

import pytest

from artifacts.models import Artifact, ArtifactState
from audit.models import AuditEvent
from retention.models import RetentionPolicy
from tests.retention.conftest import hold

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_only_admins_and_owners_see_the_page(dashboard):
    assert dashboard.owner.get("/retention/").status_code == 200
    assert dashboard.admin.get("/retention/").status_code == 200
    assert dashboard.member.get("/retention/").status_code == 404
    assert dashboard.viewer.get("/retention/").status_code == 404
    assert dashboard.anonymous.get("/retention/").status_code == 302
    assert dashboard.member.post("/retention/preview/", {"kind": "keep_last", "value": 1}).status_code == 404
    assert dashboard.member.post("/retention/new/", {"name": "x", "kind": "keep_last", "value": 1}).status_code == 404
    assert not RetentionPolicy.objects.exists()


def test_the_preview_fragment_shows_count_bytes_and_a_sample(dashboard, owner, versions):
    made = versions(owner.org_id, "reports/a.csv", 4, size=1024)
    hold(made[0])
    response = dashboard.owner.post(
        "/retention/preview/", {"kind": "keep_last", "value": "1", "prefix": "reports/"}, headers=HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="retention-preview"')
    assert "would remove 2 versions (5.0\xa0KB)" in body
    assert body.count('data-label="Remote path"') == 2 and "reports/a.csv" in body
    assert not RetentionPolicy.objects.exists()
    assert Artifact.objects.filter(state=ArtifactState.READY).count() == 4


def test_without_javascript_the_preview_button_renders_the_whole_page(dashboard, owner, versions):
    versions(owner.org_id, "a.txt", 3)
    response = dashboard.owner.post("/retention/preview/", {"name": "", "kind": "keep_last", "value": "1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Retention</h1>" in body and "would remove 2 versions" in body


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "keep_last", "value": "-3"}, "from 1 to 10000"),
        ({"kind": "max_age", "value": "99999999999999999999"}, "from 1 to 36500"),
        ({"kind": "keep_last", "value": "many"}, "Enter a whole number"),
        ({"kind": "forever", "value": "1"}, "Select a valid choice"),
        ({"kind": "keep_last", "value": "1", "prefix": "reports/../x"}, "&#x27;..&#x27; segments"),
    ],
)
def test_bad_input_gets_a_readable_message_and_nothing_is_saved(dashboard, form, message):
    preview = dashboard.owner.post("/retention/preview/", form, headers=HTMX)
    assert preview.status_code == 200 and 'id="preview-refused"' in preview.content.decode()
    assert message in preview.content.decode()
    saved = dashboard.owner.post("/retention/new/", {"name": "tidy", **form})
    assert saved.status_code == 400 and message in saved.content.decode()
    assert not RetentionPolicy.objects.exists() and not AuditEvent.objects.filter(action__startswith="retention")


def test_a_policy_needs_a_name_to_be_saved(dashboard):
    response = dashboard.owner.post("/retention/new/", {"name": " ", "kind": "keep_last", "value": "2"})
    assert response.status_code == 400 and "Give the policy a name." in response.content.decode()
    assert not RetentionPolicy.objects.exists()


def test_save_pause_enable_and_delete(dashboard, owner):
    response = dashboard.admin.post(
        "/retention/new/", {"name": "keep five", "kind": "keep_last", "value": "5", "prefix": "builds/"}
    )
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get()
    assert (policy.kind, policy.value, policy.prefix, policy.enabled) == ("keep_last", 5, "builds/", True)
    assert policy.created_by_label == "admin-user"
    page = dashboard.owner.get("/retention/").content.decode()
    assert "keep the last 5 versions of each path under builds/" in page and 'data-label="Rule"' in page
    again = dashboard.owner.post("/retention/new/", {"name": "keep five", "kind": "max_age", "value": "5"})
    assert again.status_code == 400 and "already exists" in again.content.decode()
    dashboard.owner.post(f"/retention/{policy.id}/enabled/", {"enabled": "0"})
    policy.refresh_from_db()
    assert not policy.enabled
    assert dashboard.stranger.post(f"/retention/{policy.id}/delete/").status_code == 404
    assert dashboard.owner.post(f"/retention/{policy.id}/delete/").status_code == 302
    assert not RetentionPolicy.objects.exists()
    actions = set(AuditEvent.objects.filter(action__startswith="retention").values_list("action", flat=True))
    assert actions == {"retention_policy.create", "retention_policy.update", "retention_policy.delete"}


def test_the_page_reads_a_constant_number_of_queries(dashboard, owner, django_assert_max_num_queries):
    from core.actor import Actor
    from retention.services import policy_create

    for n in range(15):
        policy_create(
            actor=Actor.system(owner.org_id), organization_id=owner.org_id, name=f"p{n}", kind="max_age", value=n + 1
        )
    dashboard.owner.get("/retention/")
    with django_assert_max_num_queries(12):
        assert dashboard.owner.get("/retention/").status_code == 200
