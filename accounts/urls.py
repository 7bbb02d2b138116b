from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="accounts/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("orgs/switch/", views.switch_organization, name="switch-organization"),
    path("keys/", views.apikey_list, name="apikey-list"),
    path("keys/new/", views.apikey_create, name="apikey-create"),
    path("keys/<str:key_id>/revoke/", views.apikey_revoke, name="apikey-revoke"),
]
