from __future__ import annotations

from django.urls import path

from audit import views

urlpatterns = [
    path("", views.audit_list, name="audit-list"),
    path("export.csv", views.audit_export, name="audit-export"),
    path("export.jsonl", views.audit_export_jsonl, name="audit-export-jsonl"),
    path("verify/", views.audit_verify, name="audit-verify"),
    path("instance/", views.instance_list, name="audit-instance-list"),
    path("instance/export.csv", views.instance_export, name="audit-instance-export"),
    path("instance/export.jsonl", views.instance_export_jsonl, name="audit-instance-export-jsonl"),
]
