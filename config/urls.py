from __future__ import annotations

from django.contrib import admin
from django.urls import path, re_path

from config.api import api, api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<path>.*)$", api_not_found),
]
