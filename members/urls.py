from __future__ import annotations

from django.urls import path

from members import views

urlpatterns = [
    path("", views.member_list_view, name="members-list"),
    path("invite/", views.member_invite, name="members-invite"),
    path("leave/", views.member_leave, name="members-leave"),
    path("invitations/<str:invitation_id>/revoke/", views.invitation_revoke_view, name="members-invitation-revoke"),
    path("<int:membership_id>/role/", views.member_role, name="members-role"),
    path("<int:membership_id>/remove/", views.member_remove, name="members-remove"),
]
