from __future__ import annotations

from django.urls import path

from artifacts import trash_views

urlpatterns = [
    path("", trash_views.trash_list, name="trash-list"),
    path("empty/", trash_views.trash_empty_view, name="trash-empty"),
    path("<str:artifact_id>/restore/", trash_views.trash_restore, name="trash-restore"),
    path("<str:artifact_id>/purge/", trash_views.trash_purge, name="trash-purge"),
]
