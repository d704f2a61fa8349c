"""The admin of webhook endpoints and deliveries.

Every write goes through integrations.webhooks.services (with its audit row).
A new secret is shown once, on the page that answers its creation or
rotation, and never again (the endpoint's page shows its first characters).
Deliveries are read-only, with their attempts and a replay button."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.webhooks import net, services
from portal.events import KINDS
from rights.admin_audit import AuditedPersonAdmin
from rights.models import AuditAction


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(kind, label) for kind, label in KINDS.items()],
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Each consent decision is one event; a withdrawal, a lapse and a GPC "
            "opt-out all carry the decision “withdrawn”: a system that must stop "
            "processing on withdrawal wants all three."
        ),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "events", "is_active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            net.check_url(url)
        except net.UnsafeURL as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label=_("Hours the old secret still signs"),
        min_value=0,
        max_value=24 * 30,
        help_text=_(
            "Meanwhile every delivery carries both signatures, so the receiver can switch."
        ),
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "state", "failing_since_display", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    # The model's uuid, previous_secret_until, failing_since and created_by have
    # no verbose names (their labels would stay English): shown through methods.
    readonly_fields = [
        "uuid_display",
        "secret_hint",
        "previous_secret_until_display",
        "disabled_at",
        "failing_since_display",
        "created_at",
        "created_by_display",
    ]
    change_form_template = "admin/integrations/webhookendpoint/change_form.html"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "url", "events"]
        return ["name", "url", "events", "is_active", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description=_("identifier"))
    def uuid_display(self, obj: WebhookEndpoint):
        return obj.uuid

    @admin.display(description=_("previous secret valid until"))
    def previous_secret_until_display(self, obj: WebhookEndpoint):
        return obj.previous_secret_until

    @admin.display(description=_("failing since"), ordering="failing_since")
    def failing_since_display(self, obj: WebhookEndpoint):
        return obj.failing_since

    @admin.display(description=_("created by"))
    def created_by_display(self, obj: WebhookEndpoint):
        return obj.created_by

    @admin.display(description=_("state"))
    def state(self, obj: WebhookEndpoint) -> str:
        if obj.is_active:
            return _("Active")
        if obj.disabled_at:
            return _("Disabled: it kept failing")
        return _("Turned off")

    def has_delete_permission(self, request, obj=None) -> bool:
        # An endpoint's deliveries are its record: turn it off instead.
        return False

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            services.endpoint_update(
                endpoint=obj,
                name=data["name"],
                url=data["url"],
                events=data["events"],
                is_active=data["is_active"],
                acting_user=request.user,
            )
            return
        created = services.endpoint_create(
            name=data["name"], url=data["url"], events=data["events"], acting_user=request.user
        )
        obj.pk, obj.uuid = created.endpoint.pk, created.endpoint.uuid
        request._webhook_secret = created.secret

    def save_related(self, request, form, formsets, change) -> None:
        pass  # no relations; the service saved everything

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, request._webhook_secret, created=True)

    def _secret_page(self, request, endpoint, secret: str, *, created: bool) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("The endpoint's secret"),
            "opts": self.model._meta,
            "endpoint": endpoint,
            "secret": secret,
            "created": created,
            "change_url": reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]),
        }
        response = TemplateResponse(request, "admin/integrations/webhook_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/rotate/", wrap(self.rotate_view), name="integrations_webhook_rotate"),
            path(
                "<int:pk>/enable/",
                wrap(require_POST(self.enable_view)),
                name="integrations_webhook_enable",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        endpoint = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if endpoint is not None:
            extra["rotate_url"] = reverse("admin:integrations_webhook_rotate", args=[endpoint.pk])
            extra["enable_url"] = reverse("admin:integrations_webhook_enable", args=[endpoint.pk])
            extra["endpoint"] = endpoint
            extra["deliveries"] = (
                WebhookDelivery.objects.filter(endpoint=endpoint)
                .select_related("message")
                .order_by("-created_at", "-pk")[:20]
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _endpoint(self, request: HttpRequest, pk: int) -> WebhookEndpoint:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        return endpoint

    def rotate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        endpoint = self._endpoint(request, pk)
        from django.conf import settings

        form = RotateForm(
            request.POST or None,
            initial={"overlap_hours": settings.WEBHOOK_SECRET_OVERLAP_HOURS},
        )
        if request.method == "POST" and form.is_valid():
            rotated = services.endpoint_secret_rotate(
                endpoint=endpoint,
                acting_user=request.user,
                overlap_hours=form.cleaned_data["overlap_hours"],
            )
            return self._secret_page(request, rotated.endpoint, rotated.secret, created=False)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rotate the secret of %(name)s") % {"name": endpoint.name},
            "opts": self.model._meta,
            "endpoint": endpoint,
            "form": form,
            "change_url": reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]),
        }
        return TemplateResponse(request, "admin/integrations/webhook_rotate.html", context)

    def enable_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        endpoint = self._endpoint(request, pk)
        try:
            services.endpoint_enable(endpoint=endpoint, acting_user=request.user)
        except services.WebhookError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, _("The endpoint is active again."), messages.SUCCESS)
        return redirect(reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]))


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["at", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedPersonAdmin, admin.ModelAdmin):
    """A delivery's page shows its message's body (a person's subject id and
    what they decided or asked) and its attempts (a receiver's answer may echo
    it): opened, like every page of one person's data, with a why, and its
    audit row written before the page is built (rights/admin_audit.py). The
    list shows no body. A message about no one (a policy published) opens
    at once."""

    audit_action = AuditAction.VIEW_WEBHOOK

    list_display = ["created_at", "event", "endpoint", "status", "attempts", "finished_at"]
    list_filter = ["status", "endpoint", "message__event_type"]
    list_select_related = ["message", "endpoint"]
    fields = [
        "delivery_id",
        "webhook_id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "created_at",
        "finished_at",
        "replay",
        "body",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    date_hierarchy = "created_at"
    change_form_template = "admin/integrations/webhookdelivery/change_form.html"

    @admin.display(description=_("event"), ordering="message__event_type")
    def event(self, obj: WebhookDelivery) -> str:
        return obj.message.event_type

    @admin.display(description=_("delivery id"))
    def delivery_id(self, obj: WebhookDelivery) -> str:
        return str(obj.uuid)

    @admin.display(description=_("replay of"))
    def replay(self, obj: WebhookDelivery):
        return obj.replay_of or "-"

    @admin.display(description=_("webhook-id"))
    def webhook_id(self, obj: WebhookDelivery) -> str:
        return obj.message.webhook_id

    @admin.display(description=_("body"))
    def body(self, obj: WebhookDelivery) -> str:
        return obj.message.body

    def audit_subject(self, obj: WebhookDelivery):
        return obj.message.subject_id

    def get_object(self, request, object_id, from_field=None):
        # The gate reads the message's body, the page again: one query for both.
        queryset = self.get_queryset(request).select_related("message", "endpoint")
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, TypeError, WebhookDelivery.DoesNotExist):
            return None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _may_replay(self, request) -> bool:
        return request.user.has_perm("integrations.change_webhookendpoint")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/replay/",
                wrap(require_POST(self.replay_view)),
                name="integrations_webhook_replay",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        delivery = self.get_object(request, object_id)
        if delivery is not None and self._may_replay(request):
            extra["replay_url"] = reverse("admin:integrations_webhook_replay", args=[delivery.pk])
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        delivery = get_object_or_404(WebhookDelivery.objects.select_related("message"), pk=pk)
        if not self._may_replay(request):
            raise PermissionDenied
        try:
            replay = services.delivery_replay(delivery=delivery, acting_user=request.user)
        except services.WebhookError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect(reverse("admin:integrations_webhookdelivery_change", args=[pk]))
        self.message_user(
            request,
            _("Replayed: the same message (same webhook-id) is on its way again."),
            messages.SUCCESS,
        )
        return redirect(reverse("admin:integrations_webhookdelivery_change", args=[replay.pk]))
