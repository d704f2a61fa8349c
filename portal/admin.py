from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from portal.models import OutboundEmail, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "language", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", "language"]
    search_fields = ["email"]
    # Plain multiple selects, not Django's filter_horizontal widget: it names
    # unfocusable icons with aria-label (axe: aria-prohibited-attr).
    filter_horizontal = ()
    readonly_fields = ["subject_id", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ["email", "password", "subject_id"]}),
        (_("Personal info"), {"fields": ["first_name", "last_name", "language"]}),
        (
            _("Permissions"),
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        (_("Important dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "language", "password1", "password2"]}),
    ]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    """Delivery metadata only: staff see whether mail leaves, to whom and which
    email it was, never what it says (bodies hold working password-reset links)."""

    list_display = ["created_at", "to", "kind", "status", "attempts", "sent_at", "short_error"]
    list_filter = ["status", "kind"]
    search_fields = ["to"]
    fields = [
        "uuid",
        "message_id",
        "to",
        "subject",
        "kind",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "lease_until",
        "last_error",
    ]
    readonly_fields = fields
    date_hierarchy = "created_at"

    @admin.display(description=_("Message-ID"))
    def message_id(self, obj: OutboundEmail) -> str:
        return obj.message_id

    @admin.display(description=_("last error"))
    def short_error(self, obj: OutboundEmail) -> str:
        return obj.last_error[:80]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
