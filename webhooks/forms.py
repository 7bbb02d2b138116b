from __future__ import annotations

from django import forms

from webhooks.events import EVENT_TYPES
from webhooks.services import MAX_RETRY_COUNT, TIMEOUT_MS


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="Receiver URL",
        max_length=2048,
        help_text="Where each event is POSTed, e.g. https://ci.example.com/hooks/stowage.",
    )
    all_events = forms.BooleanField(label="Every event, including those added later", required=False, initial=True)
    events = forms.MultipleChoiceField(
        label="Events", required=False, widget=forms.CheckboxSelectMultiple, choices=list(EVENT_TYPES.items())
    )
    retry_count = forms.IntegerField(label="Retries", min_value=0, max_value=MAX_RETRY_COUNT, initial=3)
    timeout_ms = forms.IntegerField(
        label="Timeout (ms)", min_value=TIMEOUT_MS[0], max_value=TIMEOUT_MS[1], initial=10000
    )

    def clean(self):
        data = super().clean()
        if not data.get("all_events") and not data.get("events"):
            raise forms.ValidationError("Pick the events to send, or every event.")
        return data

    def chosen_events(self) -> list[str] | str:
        return "*" if self.cleaned_data["all_events"] else self.cleaned_data["events"]
