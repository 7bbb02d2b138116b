from __future__ import annotations

from django.urls import path

from retention import views

urlpatterns = [
    path("", views.retention_list_view, name="retention-list"),
    path("preview/", views.retention_preview_view, name="retention-preview"),
    path("new/", views.retention_create_view, name="retention-create"),
    path("<str:policy_id>/enabled/", views.retention_enable_view, name="retention-enable"),
    path("<str:policy_id>/delete/", views.retention_delete_view, name="retention-delete"),
]
