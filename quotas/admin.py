from __future__ import annotations

from django import forms
from django.contrib import admin

from core.actor import Actor
from core.errors import InvalidInput
from quotas.limits import parse_quota
from quotas.models import QUOTA_NAMES, OrganizationQuota, OrganizationUsage
from quotas.services import quota_set


class QuotaForm(forms.ModelForm):
    """Sizes may be typed as quantities (50GiB, 512Mi); empty follows the default, 0 is unlimited."""

    bytes = forms.CharField(required=False, help_text="Stored (unique) bytes, e.g. 50GiB. Empty: the default.")
    artifacts = forms.CharField(required=False, help_text="Artifacts, the trashed included. Empty: the default.")
    largest = forms.CharField(required=False, help_text="Bytes of the largest artifact, e.g. 5GiB.")
    sandboxes = forms.CharField(required=False, help_text="Sandboxes creating or running at once.")

    class Meta:
        model = OrganizationQuota
        fields = ["organization", *QUOTA_NAMES]

    def clean(self):
        cleaned = super().clean()
        for name in QUOTA_NAMES:
            value = (cleaned.get(name) or "").strip()
            try:
                cleaned[name] = parse_quota(name, value) if value else None
            except InvalidInput as exc:
                self.add_error(name, exc.message)
        return cleaned


@admin.register(OrganizationQuota)
class OrganizationQuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    list_display = ("organization", *QUOTA_NAMES, "updated_at")
    search_fields = ("organization__id", "organization__name")
    autocomplete_fields = ()

    def save_model(self, request, obj, form, change):
        # Through the service, so a change made here is audited like one made by the command.
        values = {name: form.cleaned_data[name] for name in QUOTA_NAMES if form.cleaned_data[name] is not None}
        clear = tuple(name for name in QUOTA_NAMES if form.cleaned_data[name] is None)
        saved = quota_set(
            actor=Actor(organization_id=obj.organization_id, user_id=request.user.pk, label="admin"),
            organization=obj.organization,
            values=values,
            clear=clear,
        )
        obj.pk, obj.updated_at = saved.pk, saved.updated_at


@admin.register(OrganizationUsage)
class OrganizationUsageAdmin(admin.ModelAdmin):
    list_display = ("organization", "stored_bytes", "artifact_count", "recounted_at")
    readonly_fields = ("organization", "stored_bytes", "artifact_count", "recounted_at")

    def has_add_permission(self, request):
        return False
