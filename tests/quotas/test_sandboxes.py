"""The running sandboxes quota, checked when a sandbox is created."""

from __future__ import annotations

from audit.models import AuditEvent
from quotas.enforcement import quota_check_sandbox
from sandboxes.models import Sandbox, SandboxStatus
from tests.factories import make_sandbox


def test_a_sandbox_past_the_running_quota_is_refused_with_507(owner, settings):
    settings.STOWAGE_QUOTA_RUNNING_SANDBOXES = "2"
    make_sandbox(owner.org_id)
    make_sandbox(owner.org_id, status=SandboxStatus.CREATING)
    response = owner.post("/sandbox/create", {})
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert error["details"] == {"quota": "sandboxes", "used": 2, "limit": 2, "requested": 1}
    assert "stop a running sandbox" in error["message"]
    assert Sandbox.objects.filter(organization_id=owner.org_id).count() == 2
    assert AuditEvent.objects.filter(action="sandbox.create", outcome="failure").exists()


def test_stopped_sandboxes_and_other_organizations_do_not_count(owner, stranger, settings):
    settings.STOWAGE_QUOTA_RUNNING_SANDBOXES = "1"
    make_sandbox(owner.org_id, status=SandboxStatus.TERMINATED)
    make_sandbox(owner.org_id, status=SandboxStatus.ERROR)
    make_sandbox(stranger.org_id)
    quota_check_sandbox(organization_id=owner.org_id)
