from __future__ import annotations

from django.urls import path

from shares import landing, views

urlpatterns = [
    path("s/<str:token>", landing.share_landing, name="share-landing"),
    path("s/<str:token>/download", landing.share_download, name="share-download"),
    path("s/<str:token>/file/<str:grant>", landing.share_file, name="share-file"),
    path("s/<str:token>/preview", landing.share_preview, name="share-preview"),
    path("artifacts/<str:artifact_id>/shares/", views.artifact_share_list, name="artifact-share-list"),
    path("artifacts/<str:artifact_id>/shares/new/", views.artifact_share_create, name="artifact-share-create"),
    path(
        "artifacts/<str:artifact_id>/shares/<str:share_id>/status/",
        views.artifact_share_status,
        name="artifact-share-status",
    ),
    path(
        "artifacts/<str:artifact_id>/shares/<str:share_id>/revoke/",
        views.artifact_share_revoke,
        name="artifact-share-revoke",
    ),
]
