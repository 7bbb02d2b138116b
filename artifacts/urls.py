from __future__ import annotations

from django.urls import path

from artifacts import views

urlpatterns = [
    path("", views.artifact_list, name="artifact-list"),
    path("folders/", views.artifact_folders, name="artifact-folders"),
    path("<str:artifact_id>/", views.artifact_detail, name="artifact-detail"),
    path("<str:artifact_id>/download/", views.artifact_download, name="artifact-download"),
    path("<str:artifact_id>/content/", views.artifact_content, name="artifact-content"),
    path("<str:artifact_id>/delete/", views.artifact_delete_view, name="artifact-delete"),
]
