from __future__ import annotations

from django import forms

from core.errors import StowageError
from retention.models import PolicyKind, RetentionPolicy
from retention.services import MAX_NAME, MAX_PREFIX_BYTES, policy_build

FIELDS = ("name", "prefix", "kind", "value")


class PolicyForm(forms.Form):
    """A policy as the dashboard's form gives it; checked by the same rules as the API's
    (retention.services), each refusal shown beside its field. ``name`` may be left empty for a
    preview, never for a save."""

    name = forms.CharField(label="Name", max_length=MAX_NAME, required=False)
    kind = forms.ChoiceField(label="Rule", choices=PolicyKind.choices, initial=PolicyKind.KEEP_LAST)
    value = forms.IntegerField(label="N", help_text="Versions to keep, or days.")
    prefix = forms.CharField(
        label="Only under this remote_path prefix",
        max_length=MAX_PREFIX_BYTES,
        required=False,
        help_text="e.g. reports/ — leave empty for every artifact of the organization.",
    )

    def __init__(self, *args, organization_id: str, require_name: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.organization_id = organization_id
        self.require_name = require_name
        self.policy: RetentionPolicy | None = None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if self.require_name and not data.get("name", "").strip():
            self.add_error("name", "Give the policy a name.")
            return data
        try:
            self.policy = policy_build(
                organization_id=self.organization_id,
                name=data.get("name") or None,
                prefix=data.get("prefix") or None,
                kind=data["kind"],
                value=data["value"],
            )
        except StowageError as exc:
            field = exc.details.get("field")
            self.add_error(field if field in FIELDS else None, exc.message[:1].upper() + exc.message[1:] + ".")
        return data
