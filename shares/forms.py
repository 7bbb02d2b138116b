from __future__ import annotations

from django import forms

from shares import services

EXPIRY_CHOICES = [
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (30 * 86400, "30 days"),
    (90 * 86400, "90 days"),
]


class ShareLinkForm(forms.Form):
    label = forms.CharField(
        label="Label",
        required=False,
        max_length=services.MAX_LABEL_LENGTH,
        help_text="Yours, to tell links apart (for example who it is for).",
    )
    note = forms.CharField(
        label="Note to the recipient",
        required=False,
        max_length=services.MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown on the download page, after the password if there is one.",
    )
    expires_in = forms.TypedChoiceField(label="Expires after", choices=EXPIRY_CHOICES, coerce=int, initial=7 * 86400)
    expires_at = forms.DateTimeField(
        label="Or expires on (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="A date instead of the choice above, at most 90 days ahead.",
    )
    max_downloads = forms.IntegerField(
        label="Download limit",
        required=False,
        min_value=1,
        max_value=services.MAX_DOWNLOADS,
        help_text="Leave empty for no limit.",
    )
    password = forms.CharField(
        label="Password",
        required=False,
        min_length=services.MIN_PASSWORD_LENGTH,
        max_length=services.MAX_PASSWORD_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"Optional; at least {services.MIN_PASSWORD_LENGTH} characters. The recipient needs it to download.",
    )
