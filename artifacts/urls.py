from __future__ import annotations

from django.urls import path

from artifacts import views

urlpatterns = [
    path("", views.artifact_list, name="artifact-list"),
    path("upload/", views.artifact_upload, name="artifact-upload"),
    path("upload/check/", views.artifact_upload_check, name="artifact-upload-check"),
    path("upload/stream/", views.artifact_upload_stream, name="artifact-upload-stream"),
    path("upload/direct/", views.artifact_upload_direct, name="artifact-upload-direct"),
    path("upload/direct/<str:transfer_id>/", views.artifact_upload_direct_status, name="artifact-upload-direct-status"),
    path(
        "upload/direct/<str:transfer_id>/parts/", views.artifact_upload_direct_part, name="artifact-upload-direct-part"
    ),
    path(
        "upload/direct/<str:transfer_id>/complete/",
        views.artifact_upload_direct_complete,
        name="artifact-upload-direct-complete",
    ),
    path(
        "upload/direct/<str:transfer_id>/abort/",
        views.artifact_upload_direct_abort,
        name="artifact-upload-direct-abort",
    ),
    path("<str:artifact_id>/", views.artifact_detail, name="artifact-detail"),
    path("<str:artifact_id>/download/", views.artifact_download, name="artifact-download"),
    path("<str:artifact_id>/content/", views.artifact_content, name="artifact-content"),
    path("<str:artifact_id>/delete/", views.artifact_delete_view, name="artifact-delete"),
]
