"""The admin of API keys: created with their scopes and expiry (the secret is
shown once, on the page that follows), revoked by an action, never edited or
deleted; and the log of calls, read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from integrations.api import services
from integrations.models import ApiCall, ApiKey, ApiScope


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=ApiScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Only what the system needs."),
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        expires_at = cleaned.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            self.add_error("expires_at", _("The expiry must be in the future."))
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope_list", "expires_at", "last_used_at", "state"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    change_list_template = "integrations/admin/apikey_change_list.html"
    fields = [
        "name",
        "prefix",
        "scope_list",
        "expires_at",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description=_("state"))
    def state(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return _("revoked")
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return _("expired")
        return _("active")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
            kwargs["fields"] = [*ApiKeyCreateForm.Meta.fields]
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyCreateForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return  # a key is never edited: revoke it and make another
        new = services.api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data.get("expires_at"),
            acting_user=request.user,
        )
        obj.__dict__.update({k: v for k, v in new.key.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._secret = new.secret

    def response_add(self, request, obj, post_url_continue=None):
        """The secret, once: it is not stored, so it cannot be shown again."""
        response = TemplateResponse(
            request,
            "integrations/admin/apikey_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "key": obj,
                "secret": obj._secret,
                "title": _("API key created"),
                "docs_url": reverse("api_docs"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset) -> None:
        revoked = sum(
            services.api_key_revoke(key=key, acting_user=request.user) for key in queryset
        )
        self.message_user(
            request,
            ngettext("%(count)d key revoked.", "%(count)d keys revoked.", revoked)
            % {"count": revoked},
            messages.SUCCESS,
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "docs_url": reverse("api_docs")}
        return super().changelist_view(request, extra_context)


@admin.register(ApiCall)
class ApiCallAdmin(admin.ModelAdmin):
    """Calls by key, operation and answer. The person a call concerned is kept
    for their own copy and for answering their requests, not shown here: a
    list of who was read or decided what, per purpose, is the kind of staff
    screen the portal does not have (shared/DESIGN.md, principle 5)."""

    list_display = ["at", "key", "method", "operation", "status", "purpose"]
    exclude = ["subject_id"]
    list_filter = ["status", "operation", "key"]
    list_select_related = ["key"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
