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
    expires_in = forms.TypedChoiceField(label="Expires after", choices=EXPIRY_CHOICES, coerce=int, initial=7 * 86400)
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
