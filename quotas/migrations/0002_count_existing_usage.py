"""Count what each organization already holds, so the counters start exact."""

from __future__ import annotations

from django.db import migrations
from django.db.models import Sum

HELD = ("ready", "trashed")


def count_usage(apps, schema_editor):
    Organization = apps.get_model("accounts", "Organization")
    Blob = apps.get_model("artifacts", "Blob")
    Artifact = apps.get_model("artifacts", "Artifact")
    OrganizationUsage = apps.get_model("quotas", "OrganizationUsage")
    for organization_id in Organization.objects.values_list("id", flat=True).iterator():
        blobs = Blob.objects.filter(organization_id=organization_id).aggregate(b=Sum("size"))["b"] or 0
        legacy = Artifact.objects.filter(
            organization_id=organization_id, state__in=HELD, blob__isnull=True, is_folder=False
        ).aggregate(b=Sum("size"))["b"]
        count = Artifact.objects.filter(organization_id=organization_id, state__in=HELD).count()
        OrganizationUsage.objects.update_or_create(
            organization_id=organization_id, defaults={"stored_bytes": blobs + (legacy or 0), "artifact_count": count}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("quotas", "0001_quota_and_usage"),
        ("artifacts", "0010_trash_hold_download_stats"),
    ]

    operations = [migrations.RunPython(count_usage, migrations.RunPython.noop)]
