"""Quotas on browser uploads straight to S3 (moto's server): the declared size is checked before a
multipart upload is opened, and the finish checks again under the organization's lock."""

from __future__ import annotations

import os

from artifacts.models import Artifact, ArtifactState
from quotas.counters import usage_add
from quotas.models import OrganizationQuota
from tests.transfers.test_direct_upload import PART, begin, browser, direct  # noqa: F401 (fixtures)


def test_a_direct_upload_past_the_quota_opens_nothing(browser, direct, dashboard):  # noqa: F811
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, bytes=PART)
    response = browser.begin("big/data.bin", PART + 1)
    assert response.status_code == 507, response.content
    assert response.json()["error"]["details"] == {"quota": "bytes", "used": 0, "limit": PART, "requested": PART + 1}
    assert not Artifact.objects.exists()
    assert direct.uploads() == [] and direct.object_keys() == set()


def test_a_direct_upload_whose_room_was_taken_meanwhile_fails_and_leaves_nothing(browser, direct, dashboard):  # noqa: F811
    data = os.urandom(PART + 10)
    OrganizationQuota.objects.create(organization_id=dashboard.org_id, bytes=len(data))
    plan = begin(browser, "big/data.bin", len(data))
    browser.send_parts(plan, data)
    usage_add(organization_id=dashboard.org_id, stored_bytes=1)  # another upload took a byte
    # The finish runs within the request here (Celery's eager mode), so the answer may be its failure.
    completed = browser.complete(plan)
    assert completed.status_code in (202, 409), completed.content
    status = browser.status(plan)
    assert status["state"] == "failed" and status["error"]["code"] == "QUOTA_EXCEEDED", status
    assert not Artifact.objects.filter(state=ArtifactState.READY).exists()
    assert direct.uploads() == [] and direct.object_keys() == set()
