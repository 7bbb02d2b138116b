from __future__ import annotations

from django.urls import path

from webhooks import views

urlpatterns = [
    path("", views.webhook_list_view, name="webhook-list"),
    path("new/", views.webhook_create_view, name="webhook-create"),
    path("<str:webhook_id>/", views.webhook_detail_view, name="webhook-detail"),
    path("<str:webhook_id>/test/", views.webhook_test_view, name="webhook-test"),
    path("<str:webhook_id>/enabled/", views.webhook_enable_view, name="webhook-enable"),
    path("<str:webhook_id>/delete/", views.webhook_delete_view, name="webhook-delete"),
    path(
        "<str:webhook_id>/deliveries/<str:delivery_id>/redeliver/",
        views.delivery_redeliver_view,
        name="webhook-redeliver",
    ),
]
