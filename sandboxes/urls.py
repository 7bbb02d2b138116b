from __future__ import annotations

from django.urls import path

from sandboxes import views

urlpatterns = [
    path("", views.sandbox_list, name="sandbox-list"),
    path("<str:sandbox_id>/", views.sandbox_detail, name="sandbox-detail"),
    path("<str:sandbox_id>/save/", views.sandbox_save, name="sandbox-save"),
    path("<str:sandbox_id>/bring-in/", views.sandbox_bring_in, name="sandbox-bring-in"),
    path("<str:sandbox_id>/transfers/<str:transfer_id>/", views.sandbox_transfer, name="sandbox-transfer"),
    path("<str:sandbox_id>/stop/", views.sandbox_stop, name="sandbox-stop"),
    path("<str:sandbox_id>/extend/", views.sandbox_extend, name="sandbox-extend"),
]
