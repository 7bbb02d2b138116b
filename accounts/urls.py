from __future__ import annotations

from django.urls import path

from accounts import views
from accounts.oidc import SingleSignOnCallback, SingleSignOnStart

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("sso/start/", SingleSignOnStart.as_view(), name="sso-start"),
    path("sso/callback/", SingleSignOnCallback.as_view(), name="sso-callback"),
    path("orgs/switch/", views.switch_organization, name="switch-organization"),
    path("keys/", views.apikey_list, name="apikey-list"),
    path("keys/new/", views.apikey_create, name="apikey-create"),
    path("keys/<str:key_id>/revoke/", views.apikey_revoke, name="apikey-revoke"),
    path("keys/<str:key_id>/token/", views.apikey_token, name="apikey-token"),
]
