from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from artifacts.search import ArtifactSearch, parse_search
from artifacts.selectors import ARTIFACT_SORTS, ArtifactFilters

SORT_CHOICES = [
    ("newest", "Newest first"),
    ("oldest", "Oldest first"),
    ("name", "Name (A–Z)"),
    ("size", "Largest first"),
    ("downloads", "Most downloaded"),
    ("last_downloaded", "Recently downloaded"),
]
# The "not downloaded in 30 days" filter.
STALE_DOWNLOAD_DAYS = 30
VIEW_CHOICES = [("all", "Every version"), ("paths", "One row per path")]
assert {key for key, _ in SORT_CHOICES} == set(ARTIFACT_SORTS)


class ArtifactFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        max_length=200,
        required=False,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "report model:claude",
                "aria-describedby": "search-help",
                "autocomplete": "off",
            }
        ),
    )
    path = forms.CharField(
        label="Path starts with",
        max_length=1024,
        required=False,
        strip=False,
        widget=forms.TextInput(attrs={"placeholder": "reports/2025/", "class": "mono"}),
    )
    sandbox = forms.CharField(
        label="Sandbox",
        max_length=40,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "sbx_…", "class": "mono"}),
    )
    session = forms.CharField(
        label="Agent session",
        max_length=128,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"class": "mono"}),
    )
    content_type = forms.CharField(
        label="Content type",
        max_length=255,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"list": "content-types", "placeholder": "application/pdf"}),
    )
    created_from = forms.DateField(label="Created from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(label="Created until", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    stale = forms.BooleanField(label=f"Not downloaded in {STALE_DOWNLOAD_DAYS} days", required=False)
    sort = forms.ChoiceField(label="Sort", choices=SORT_CHOICES, required=False)
    view = forms.ChoiceField(label="Show", choices=VIEW_CHOICES, required=False)
    cursor = forms.CharField(max_length=400, required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and end < start:
            self.add_error("created_to", "The end date is before the start date.")
        return data

    def value(self, name: str, default: str = "") -> str:
        return (self.cleaned_data.get(name) if self.is_valid() else None) or default

    def filters(self) -> ArtifactFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return ArtifactFilters(
            sandbox_id=data.get("sandbox", ""),
            session_id=data.get("session", ""),
            path_prefix=data.get("path", ""),
            content_type=data.get("content_type", ""),
            created_from=_day_start(data.get("created_from")),
            created_before=_day_start(data["created_to"] + timedelta(days=1)) if data.get("created_to") else None,
            not_downloaded_since=timezone.now() - timedelta(days=STALE_DOWNLOAD_DAYS) if data.get("stale") else None,
        )

    def search(self) -> ArtifactSearch:
        return parse_search(self.value("q"))

    def is_filtered(self) -> bool:
        if not self.is_valid():
            return False
        return any(
            self.cleaned_data.get(name)
            for name in ("q", "path", "sandbox", "session", "content_type", "created_from", "created_to", "stale")
        )


def _day_start(day) -> datetime | None:
    if day is None:
        return None
    return timezone.make_aware(datetime.combine(day, time.min))
