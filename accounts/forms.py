from __future__ import annotations

from django import forms
from django.conf import settings

from accounts.services import MAX_KEY_DAYS, READ_SCOPES

SCOPE_LABELS = {
    "sandboxes:read": "Read sandboxes and their files",
    "sandboxes:write": "Create, run commands in, write to and stop sandboxes",
    "artifacts:read": "List and download artifacts",
    "artifacts:write": "Upload, share and delete artifacts",
    "artifacts:admin": "Restore and purge the trash, set and lift legal holds",
    "audit:read": "Read the audit log",
    "keys:manage": "Create and revoke API keys",
    "webhooks:manage": "Create, test and delete webhooks",
}


def scope_choices() -> list[tuple[str, str]]:
    return [(scope, SCOPE_LABELS.get(scope, scope)) for scope in settings.API_KEY_SCOPES]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=200, help_text="What uses this key, e.g. “nightly CI” or “research agent”."
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_KEY_DAYS,
        required=False,
        help_text="Leave empty for a key that does not expire.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one scope."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = scope_choices()
        # Read scopes ticked, not all: a new key starts with as little as it can do.
        self.fields["scopes"].initial = list(READ_SCOPES)
