from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.utils import timezone

from audit.models import Outcome

# Offered as suggestions in the action filter; any action name, or a prefix ending in a dot, may be typed.
KNOWN_ACTIONS = (
    "apikey.",
    "artifact.",
    "auth.",
    "file.",
    "member.",
    "sandbox.",
    "share.",
    "apikey.create",
    "apikey.revoke",
    "artifact.delete",
    "artifact.download",
    "artifact.upload",
    "artifact.url",
    "artifact.url_refused",
    "audit.export",
    "audit.refusals_throttled",
    "auth.api_key",
    "auth.foreign_id",
    "auth.scope",
    "auth.signin",
    "auth.signout",
    "command.execute",
    "file.delete",
    "file.list",
    "file.read",
    "file.write",
    "member.invite",
    "member.invite_revoke",
    "member.join",
    "member.leave",
    "member.remove",
    "member.role_change",
    "organization.create",
    "sandbox.create",
    "sandbox.delete",
    "sandbox.extend",
    "sandbox.path_refused",
    "sandbox.stop",
    "share.create",
    "share.download",
    "share.revoke",
    "share.wrong_password",
)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        label="Actor", max_length=200, required=False, help_text="Part of a user name or key prefix."
    )
    action = forms.CharField(label="Action", max_length=64, required=False)
    outcome = forms.ChoiceField(label="Outcome", choices=[("", "Any outcome"), *Outcome.choices], required=False)
    sandbox = forms.CharField(label="Sandbox ID", max_length=40, required=False)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.CharField(label="Page", max_length=40, required=False, widget=forms.HiddenInput)

    FILTER_FIELDS = ("actor", "action", "outcome", "sandbox", "start", "end")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end date is before the start date.")
        return data

    def query_params(self) -> dict[str, str]:
        """The filters in force, as they go back into a URL (the page cursor left out)."""
        data = getattr(self, "cleaned_data", {})
        return {name: str(data[name]) for name in self.FILTER_FIELDS if data.get(name)}

    def selector_filters(self) -> dict[str, Any]:
        """Keyword arguments for ``audit_event_list``; dates cover whole days in the site's time zone."""
        data = getattr(self, "cleaned_data", {})
        zone = timezone.get_current_timezone()
        start, end = data.get("start"), data.get("end")
        return {
            "actor": data.get("actor") or None,
            "action": data.get("action") or None,
            "outcome": data.get("outcome") or None,
            "sandbox_id": data.get("sandbox") or None,
            "start_time": datetime.combine(start, time.min, tzinfo=zone) if start else None,
            "end_time": datetime.combine(end, time.max, tzinfo=zone) if end else None,
        }
