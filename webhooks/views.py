"""The dashboard's webhooks pages, for the organization's admins and owners."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.access import org_view
from accounts.models import Role
from core.errors import NotFound, StowageError
from core.htmx import page_or_fragment
from webhooks import services
from webhooks.events import EVENT_TYPES
from webhooks.forms import WebhookForm
from webhooks.selectors import delivery_get, delivery_list, webhook_get, webhook_list


def _list_page(request: HttpRequest, form: WebhookForm, *, status: int = 200) -> HttpResponse:
    webhooks = list(webhook_list(organization_id=request.organization.id))
    return render(
        request,
        "webhooks/webhook_list.html",
        {"webhooks": webhooks, "form": form, "event_types": EVENT_TYPES},
        status=status,
    )


@org_view(Role.ADMIN)
def webhook_list_view(request: HttpRequest) -> HttpResponse:
    return _list_page(request, WebhookForm())


@org_view(Role.ADMIN)
@require_POST
@never_cache
def webhook_create_view(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        webhook, secret = services.webhook_create(
            actor=request.actor,
            organization_id=request.organization.id,
            url=form.cleaned_data["url"],
            events=form.chosen_events(),
            retry_count=form.cleaned_data["retry_count"],
            timeout_ms=form.cleaned_data["timeout_ms"],
        )
    except StowageError as exc:
        form.add_error("url" if exc.details.get("field") == "url" else None, exc.message)
        return _list_page(request, form, status=400)
    # Rendered, not redirected: the secret must never sit in a URL, a session or a cache.
    return render(request, "webhooks/webhook_created.html", {"webhook": webhook, "secret": secret})


def _webhook(request: HttpRequest, webhook_id: str):
    try:
        return webhook_get(organization_id=request.organization.id, webhook_id=webhook_id)
    except NotFound:
        raise Http404("not found") from None


@org_view(Role.ADMIN)
def webhook_detail_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = _webhook(request, webhook_id)
    context = {"webhook": webhook, "deliveries": list(delivery_list(webhook=webhook, limit=100))}
    return page_or_fragment(request, "webhooks/webhook_detail.html", "webhooks/partials/_deliveries.html", context)


def _refused(request: HttpRequest, exc: StowageError) -> None:
    messages.error(request, exc.message[:1].upper() + exc.message[1:] + ".")


@org_view(Role.ADMIN)
@require_POST
def webhook_test_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = _webhook(request, webhook_id)
    try:
        answer = services.webhook_test(actor=request.actor, webhook=webhook)
    except StowageError as exc:
        _refused(request, exc)
    else:
        if answer["success"]:
            messages.success(request, f"The test event was delivered: HTTP {answer['response_status']}.")
        else:
            messages.error(request, f"The test event was not delivered: {answer['error'] or 'no answer'}.")
    return redirect("webhook-detail", webhook.id)


@org_view(Role.ADMIN)
@require_POST
def webhook_enable_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = _webhook(request, webhook_id)
    enable = request.POST.get("enabled") == "1"
    services.webhook_set_enabled(actor=request.actor, webhook=webhook, enabled=enable)
    messages.success(
        request, "The webhook is enabled." if enable else "The webhook is disabled: no events are sent to it."
    )
    return redirect("webhook-detail", webhook.id)


@org_view(Role.ADMIN)
@require_POST
def webhook_delete_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook = _webhook(request, webhook_id)
    services.webhook_delete(actor=request.actor, webhook=webhook)
    messages.success(request, f"The webhook to {webhook.url} is deleted.")
    return redirect("webhook-list")


@org_view(Role.ADMIN)
@require_POST
def delivery_redeliver_view(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    webhook = _webhook(request, webhook_id)
    try:
        delivery = delivery_get(webhook=webhook, delivery_id=delivery_id)
    except NotFound:
        raise Http404("not found") from None
    try:
        services.delivery_redeliver(actor=request.actor, delivery=delivery)
    except StowageError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"The {delivery.event.type} event is being sent again, with the same webhook-id.")
    return redirect("webhook-detail", webhook.id)
