from __future__ import annotations

from django.urls import include, path

from config.api import browser_api
from transfers import views

urlpatterns = [
    path("", views.artifact_upload, name="artifact-upload"),
    # The page's JSON endpoints keep the dashboard's un-namespaced URL names. django-ninja also
    # puts its API root at "", which the page above answers first.
    path("", include(browser_api.urls[0])),
]
