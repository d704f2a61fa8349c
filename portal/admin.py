from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from portal.models import OutboxItem, User


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


@admin.register(OutboxItem)
class OutboxItemAdmin(admin.ModelAdmin):
    """Delivery metadata only: staff see whether work leaves, to whom and which
    email it was, and why it failed, never what it says (payloads hold working
    password-reset links). A policy version's page shows its notices' progress."""

    list_display = [
        "created_at",
        "recipient",
        "kind",
        "topic",
        "status",
        "attempts",
        "sent_at",
        "short_error",
    ]
    list_filter = ["status", "kind", "topic"]
    search_fields = ["recipient"]
    fields = [
        "uuid",
        "message_id",
        "kind",
        "topic",
        "recipient",
        "title",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "next_attempt_at",
        "leased_until",
        "last_error",
    ]
    readonly_fields = fields
    date_hierarchy = "created_at"

    @admin.display(description=_("Message-ID"))
    def message_id(self, obj: OutboxItem) -> str:
        return obj.message_id

    @admin.display(description=_("last error"))
    def short_error(self, obj: OutboxItem) -> str:
        return obj.last_error[:80]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
