"""Quotas on the dashboard's uploads: the upload page's check before a file is sent, and the
folder upload (its plan, each file, its commit); a refusal is a readable JSON error, nothing kept."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from artifacts.models import Artifact, ArtifactState
from quotas.counters import usage_add
from quotas.models import OrganizationQuota
from quotas.selectors import quota_usage
from tests.factories import make_sandbox, put_artifact
from tests.transfers.test_browser_folders import begin, send
from transfers.models import Transfer, TransferState


def refusal(response, quota: str) -> dict:
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED" and error["details"]["quota"] == quota
    assert "ask the instance's staff" in error["message"]
    return error


def test_the_upload_page_hears_of_a_full_quota_before_sending_a_byte(dashboard):
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, bytes=100)
    check = {"remote_path": "a.bin", "size": 101, "metadata": {}}
    refusal(dashboard.member.post("/artifacts/upload/check/", check, content_type="application/json"), "bytes")
    check["size"] = 100
    assert dashboard.member.post("/artifacts/upload/check/", check, content_type="application/json").status_code == 200


def test_a_folder_plan_past_the_quota_is_refused_with_nothing_saved(dashboard):
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, largest=10)
    refusal(begin(dashboard.member, files={"a.txt": b"x" * 6, "b.txt": b"y" * 5}), "largest")
    assert not Artifact.objects.exists() and not Transfer.objects.exists()


def test_a_folder_refused_at_commit_ends_its_upload_and_keeps_nothing(dashboard):
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, artifacts=1)
    files = {"a.txt": b"x" * 6}
    plan = begin(dashboard.member, files=files).json()
    assert send(dashboard.member, plan, "a.txt", files["a.txt"]).status_code == 201
    # Another upload takes the last artifact meanwhile.
    usage_add(organization_id=dashboard.org_id, artifacts=1)
    error = refusal(dashboard.member.post(plan["commit_url"], {}, content_type="application/json"), "artifacts")
    assert error["details"] == {"quota": "artifacts", "used": 1, "limit": 1, "requested": 1}
    assert Transfer.objects.get(id=plan["upload_id"]).state == TransferState.FAILED
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    assert not Artifact.objects.get().entries.exists()


def test_quota_usage_lists_each_quota_with_its_use_and_limit(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "1Ki"
    OrganizationQuota.objects.create(organization_id=owner.org_id, sandboxes=3)
    put_artifact(owner, "a.bin", b"a" * 300)
    put_artifact(owner, "b.bin", b"b" * 200)
    make_sandbox(owner.org_id)
    assert quota_usage(owner.org_id) == [
        ("bytes", 500, 1024),
        ("artifacts", 2, None),
        ("largest", 300, None),
        ("sandboxes", 1, 3),
    ]


@pytest.mark.parametrize("value", ["-1", "lots", "2EiB"])
def test_a_bad_default_stops_the_process_at_start(settings, value):
    settings.STOWAGE_QUOTA_BYTES = value
    with pytest.raises(SystemCheckError, match=r"quotas\.E001"):
        call_command("check")


def test_organization_pages_render_for_owner_stranger_and_anonymous(dashboard):
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, bytes=10)
    usage_add(organization_id=dashboard.org_id, stored_bytes=10)
    assert 'id="quota-banner-bytes"' in dashboard.owner.get(reverse("home")).content.decode()
    assert 'id="quota-banner-' not in dashboard.stranger.get(reverse("home")).content.decode()
    assert dashboard.anonymous.get(reverse("home")).status_code in (200, 302)
