from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from artifacts.views import presigned_download
from config.api import api, api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("dl/<str:artifact_id>", presigned_download, name="presigned-download"),
    path("", include("shares.urls")),
    re_path(r"^api/v1/(?P<path>.*)$", api_not_found),
    path("", include("ops.urls")),
    path("", include("accounts.urls")),
    path("artifacts/upload/", include("transfers.urls")),
    path("artifacts/", include("artifacts.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("audit/", include("audit.urls")),
]
