from __future__ import annotations

from django.urls import path

from usage import views

urlpatterns = [
    path("", views.usage_page, name="usage-page"),
    path("all/", views.usage_all, name="usage-all"),
]
