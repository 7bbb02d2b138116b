from __future__ import annotations

from django.urls import path

from agents import views

urlpatterns = [
    path("", views.session_list_view, name="session-list"),
    path("<str:session_id>/", views.session_detail, name="session-detail"),
    path("<str:session_id>/<str:action>/", views.session_action, name="session-action"),
]
