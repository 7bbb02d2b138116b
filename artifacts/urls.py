from __future__ import annotations

from django.urls import path

from artifacts import folder_views, trash_views, version_views, views

urlpatterns = [
    path("", views.artifact_list, name="artifact-list"),
    path("folders/", views.artifact_folders, name="artifact-folders"),
    path("<str:artifact_id>/", views.artifact_detail, name="artifact-detail"),
    path("<str:artifact_id>/download/", views.artifact_download, name="artifact-download"),
    path("<str:artifact_id>/content/", views.artifact_content, name="artifact-content"),
    path("<str:artifact_id>/file/", folder_views.artifact_file, name="artifact-file"),
    path("<str:artifact_id>/file/download/", folder_views.artifact_file_download, name="artifact-file-download"),
    path("<str:artifact_id>/file/content/", folder_views.artifact_file_content, name="artifact-file-content"),
    path("<str:artifact_id>/delete/", views.artifact_delete_view, name="artifact-delete"),
    path("<str:artifact_id>/legal-hold/", trash_views.artifact_legal_hold, name="artifact-legal-hold"),
    path("<str:artifact_id>/legal-hold/lift/", trash_views.artifact_legal_hold_lift, name="artifact-legal-hold-lift"),
    path("<str:artifact_id>/compare/", version_views.artifact_compare, name="artifact-compare"),
    path("<str:artifact_id>/aliases/", version_views.artifact_alias_set, name="artifact-alias-set"),
    path(
        "<str:artifact_id>/aliases/<str:name>/remove/",
        version_views.artifact_alias_remove,
        name="artifact-alias-remove",
    ),
]
