from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from accounts.views import admin_sign_in
from artifacts.presigned import presigned_download, presigned_file_download
from config.api import api, api_not_found
from members.views import member_join, organization_list

# Every sign-in goes through one page, throttled and audited; the admin's own form would bypass it.
admin.site.login = admin_sign_in  # type: ignore[method-assign]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("dl/<str:artifact_id>", presigned_download, name="presigned-download"),
    path("dl/<str:artifact_id>/file", presigned_file_download, name="presigned-file-download"),
    path("", include("shares.urls")),
    re_path(r"^api/v1/(?P<path>.*)$", api_not_found),
    path("", include("ops.urls")),
    path("", include("accounts.urls")),
    path("artifacts/upload/", include("transfers.urls")),
    path("artifacts/", include("artifacts.urls")),
    path("trash/", include("artifacts.trash_urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("sessions/", include("agents.urls")),
    path("audit/", include("audit.urls")),
    path("members/", include("members.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("usage/", include("usage.urls")),
    path("retention/", include("retention.urls")),
    path("join/<str:organization_id>/<str:token>/", member_join, name="members-join"),
    path("staff/organizations/", organization_list, name="staff-organizations"),
]

handler403 = "config.error_pages.forbidden"
handler404 = "config.error_pages.not_found"
handler500 = "config.error_pages.server_error"
