"""manage.py org_quota: show, set, clear, recount; bad values change nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from quotas.counters import usage_read
from quotas.models import OrganizationQuota, OrganizationUsage
from quotas.selectors import quota_limits
from tests.factories import put_artifact


def org_quota(*args: str) -> str:
    out = StringIO()
    call_command("org_quota", *args, stdout=out)
    return out.getvalue()


def test_it_sets_quotas_by_organization_name_with_sizes_in_binary_units(owner):
    org_quota("Acme", "--bytes", "50GiB", "--artifacts", "1000", "--largest", "5Gi", "--sandboxes", "3")
    limits = quota_limits(organization_id=owner.org_id)
    assert (limits.bytes, limits.artifacts, limits.largest, limits.sandboxes) == (50 << 30, 1000, 5 << 30, 3)
    event = AuditEvent.objects.get(action="quota.set")
    assert event.organization_id == owner.org_id and event.details["after"]["bytes"] == 50 << 30


def test_it_finds_the_organization_by_id_and_shows_use_and_limits(owner, settings):
    settings.STOWAGE_QUOTA_ARTIFACTS = "10"
    put_artifact(owner, "a.bin", b"a" * 123)
    shown = org_quota(owner.org_id)
    assert owner.org_id in shown
    assert "bytes" in shown and "123" in shown and "unlimited" in shown
    assert "artifacts" in shown and "10" in shown


def test_clear_returns_a_quota_to_the_default(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "1Mi"
    org_quota("Acme", "--bytes", "1Gi", "--artifacts", "5")
    org_quota("Acme", "--clear", "bytes")
    limits = quota_limits(organization_id=owner.org_id)
    assert (limits.bytes, limits.artifacts) == (1 << 20, 5)
    org_quota("Acme", "--clear", "all")
    assert quota_limits(organization_id=owner.org_id).artifacts is None


def test_zero_is_unlimited_even_over_a_default(owner, settings):
    settings.STOWAGE_QUOTA_BYTES = "1Mi"
    org_quota("Acme", "--bytes", "0")
    assert quota_limits(organization_id=owner.org_id).bytes is None


def test_recount_repairs_the_counters(owner):
    put_artifact(owner, "a.bin", b"a" * 50)
    OrganizationUsage.objects.filter(organization_id=owner.org_id).update(stored_bytes=999, artifact_count=9)
    org_quota("Acme", "--recount")
    usage = usage_read(organization_id=owner.org_id)
    assert (usage.stored_bytes, usage.artifact_count) == (50, 1)


@pytest.mark.parametrize(
    "args",
    [
        ("--bytes", "-5"),
        ("--bytes=-1GiB",),
        ("--bytes", "2EiB"),
        ("--bytes", "lots"),
        ("--bytes", "9" * 30),
        ("--largest", "1Pi", "--artifacts", "-1"),
        ("--artifacts", "1.5"),
        ("--artifacts", "10000000000000"),
        ("--sandboxes", "-3"),
        ("--sandboxes", "99999999"),
        ("--bytes", "1Gi", "--clear", "bytes"),
    ],
)
def test_negative_malformed_or_absurd_quotas_are_refused_and_change_nothing(owner, args):
    org_quota("Acme", "--bytes", "1Gi")
    before = list(OrganizationQuota.objects.values())
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError) as refused:
        org_quota("Acme", *args)
    assert "quota" in str(refused.value)
    assert list(OrganizationQuota.objects.values()) == before
    assert AuditEvent.objects.count() == events


def test_an_unknown_organization_is_a_clear_error(owner):
    with pytest.raises(CommandError, match="no organization"):
        org_quota("Nobody Inc", "--bytes", "1Gi")
    assert not OrganizationQuota.objects.exists()
