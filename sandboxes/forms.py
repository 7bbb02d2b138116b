from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from sandboxes.models import SandboxStatus


class SandboxFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *SandboxStatus.choices], required=False)
    session = forms.CharField(
        label="Agent session",
        max_length=128,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "ses_…", "class": "mono"}),
    )
    cursor = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)


class SaveArtifactForm(forms.Form):
    path = forms.CharField(label="Path", max_length=4096)
    remote_path = forms.CharField(label="Artifact name", max_length=1024, required=False)


class BringInForm(forms.Form):
    artifact = forms.CharField(
        label="Artifact", max_length=40, error_messages={"required": "Pick an artifact to bring in."}
    )
    target_path = forms.CharField(
        label="Target path",
        max_length=4096,
        required=False,
        help_text="A path in /workspace. Leave empty, or end it with /, to keep the artifact's file name.",
    )


class ExtendForm(forms.Form):
    seconds = forms.IntegerField(label="Extend by (seconds)", min_value=1, initial=3600)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, not at import, so a settings override applies.
        limit = settings.SANDBOX_MAX_TIMEOUT_SECONDS
        field = self.fields["seconds"]
        field.validators.append(MaxValueValidator(limit))
        field.widget.attrs["max"] = limit
