from __future__ import annotations

from django.urls import path

from shares import views

urlpatterns = [
    path("s/<str:token>", views.share_landing, name="share-landing"),
    path("s/<str:token>/download", views.share_download, name="share-download"),
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
