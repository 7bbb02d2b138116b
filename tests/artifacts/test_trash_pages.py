"""The dashboard's trash page and legal-hold buttons, tried as each role, a stranger and anonymous."""

from __future__ import annotations

from itertools import count

from django.urls import reverse

from artifacts.models import Artifact, ArtifactState
from artifacts.services import artifact_delete
from core.actor import Actor
from tests.factories import make_artifacts

_batch = count()


def _trashed(org_id: str, number: int = 1) -> list[Artifact]:
    batch = next(_batch)
    rows = make_artifacts(org_id, number, remote_path=lambda i: f"batch{batch}/file-{i}.txt")
    for row in rows:
        artifact_delete(actor=Actor.system(org_id), artifact=row)
    return rows


def test_the_trash_page_lists_deleted_artifacts_for_admins_only(dashboard):
    (artifact,) = _trashed(dashboard.org_id)
    for client in (dashboard.owner, dashboard.admin):
        page = client.get(reverse("trash-list"))
        assert page.status_code == 200
        html = page.content.decode()
        assert artifact.remote_path in html and 'class="stack"' in html and 'data-label="Deleted"' in html
        assert reverse("trash-list") in client.get(reverse("artifact-list")).content.decode()
    for client in (dashboard.member, dashboard.viewer):
        assert client.get(reverse("trash-list")).status_code == 404
    assert artifact.remote_path not in dashboard.stranger.get(reverse("trash-list")).content.decode()
    assert reverse("trash-list") not in dashboard.member.get(reverse("artifact-list")).content.decode()
    assert dashboard.anonymous.get(reverse("trash-list")).status_code == 302


def test_the_trash_page_runs_the_same_queries_for_many_rows_as_for_few(dashboard, django_assert_max_num_queries):
    _trashed(dashboard.org_id, 2)
    with django_assert_max_num_queries(12) as few:
        dashboard.owner.get(reverse("trash-list"))
    _trashed(dashboard.org_id, 30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        dashboard.owner.get(reverse("trash-list"))


def test_restore_and_purge_from_the_page(dashboard):
    kept, gone = _trashed(dashboard.org_id, 2)
    assert dashboard.member.post(reverse("trash-restore", args=[kept.id])).status_code == 404
    assert dashboard.stranger.post(reverse("trash-purge", args=[gone.id])).status_code == 404
    response = dashboard.admin.post(reverse("trash-restore", args=[kept.id]), follow=True)
    assert "Restored the artifact" in response.content.decode()
    dashboard.admin.post(reverse("trash-purge", args=[gone.id]))
    assert Artifact.objects.get(id=kept.id).state == ArtifactState.READY
    assert Artifact.objects.get(id=gone.id).state == ArtifactState.DELETED
    again = dashboard.admin.post(reverse("trash-restore", args=[gone.id]), follow=True).content.decode()
    assert "can no longer be restored" in again


def test_emptying_the_trash_asks_first(dashboard):
    rows = _trashed(dashboard.org_id, 3)
    confirm = dashboard.owner.get(reverse("trash-empty"))
    assert "3 artifacts in the trash will be purged" in confirm.content.decode()
    assert Artifact.objects.filter(state=ArtifactState.TRASHED).count() == 3
    assert dashboard.member.post(reverse("trash-empty")).status_code == 404
    dashboard.owner.post(reverse("trash-empty"))
    assert set(Artifact.objects.filter(state=ArtifactState.DELETED).values_list("id", flat=True)) == {
        r.id for r in rows
    }


def test_admins_hold_and_lift_from_the_artifact_page_and_a_held_artifact_cannot_be_deleted(dashboard):
    (artifact,) = make_artifacts(dashboard.org_id, 1)
    detail = reverse("artifact-detail", args=[artifact.id])
    assert dashboard.member.post(reverse("artifact-legal-hold", args=[artifact.id]), {"reason": "x"}).status_code == 404
    assert "Place a hold" not in dashboard.member.get(detail).content.decode()
    empty = dashboard.admin.post(reverse("artifact-legal-hold", args=[artifact.id]), {"reason": ""}, follow=True)
    assert "reason is required" in empty.content.decode()
    dashboard.admin.post(reverse("artifact-legal-hold", args=[artifact.id]), {"reason": "audit 2026"})
    page = dashboard.admin.get(detail).content.decode()
    assert "audit 2026" in page and "Lift the hold" in page and "Delete…" not in page
    refused = dashboard.admin.post(reverse("artifact-delete", args=[artifact.id]), follow=True).content.decode()
    assert "legal hold" in refused
    assert Artifact.objects.get(id=artifact.id).state == ArtifactState.READY
    assert dashboard.member.post(reverse("artifact-legal-hold-lift", args=[artifact.id])).status_code == 404
    dashboard.admin.post(reverse("artifact-legal-hold-lift", args=[artifact.id]))
    assert not Artifact.objects.get(id=artifact.id).legal_hold


def test_a_trashed_artifacts_page_says_it_is_in_the_trash(dashboard):
    (artifact,) = _trashed(dashboard.org_id)
    page = dashboard.admin.get(reverse("artifact-detail", args=[artifact.id]))
    assert page.status_code == 404 and "It is in the trash until" in page.content.decode()
