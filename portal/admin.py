from __future__ import annotations

from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.admin import AuthenticatorAdmin
from allauth.mfa.models import Authenticator
from allauth.usersessions.admin import UserSessionAdmin
from allauth.usersessions.models import UserSession
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from portal import services
from portal.models import OutboxItem, User
from rights.admin_audit import AuditedPersonAdmin
from rights.models import AuditAction


@admin.register(User)
class UserAdmin(AuditedPersonAdmin, DjangoUserAdmin):
    """A person's account: opening it is audited (rights.admin.AuditedPersonAdmin),
    and so is every change, through portal.services."""

    audit_action = AuditAction.VIEW_ACCOUNT

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

    def save_model(self, request, obj, form, change) -> None:
        services.account_save(
            user=obj,
            acting_user=request.user,
            changed=list(form.changed_data),
            why=getattr(request, "audit_why", None),
        )

    def user_change_password(self, request, id, form_url=""):
        """The password page names the person: opened with a reason like the
        account's page; the new password is set by Django's form and its audit
        row written in the same transaction (rolled back together)."""
        user = self.get_object(request, unquote(id))
        if user is None or not self.has_change_permission(request, user):
            return super().user_change_password(request, id, form_url)
        gate = self.audit_gate(request, user)
        if gate is not None:
            return gate
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                why = request.audit_why
                from rights import audit

                audit.record(
                    acting_user=request.user,
                    action=AuditAction.ACCOUNT_PASSWORD,
                    subject_id=user.subject_id,
                    request=why.request,
                    reason=why.reason,
                    target=audit.target_of(user),
                )
        return response


@admin.register(OutboxItem)
class OutboxItemAdmin(AuditedPersonAdmin, admin.ModelAdmin):
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
    actions = ["retry"]
    # A row about one person (its subject id) is one person's data: opened with a why.
    audit_action = AuditAction.VIEW_EMAIL

    @admin.action(description=_("Try the selected failed deliveries again"))
    def retry(self, request, queryset) -> None:
        count = services.outbox_items_retry(items=queryset, acting_user=request.user)
        self.message_user(
            request,
            ngettext(
                "%(count)s failed delivery will be tried again.",
                "%(count)s failed deliveries will be tried again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

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


# allauth's own admins show one person's addresses, second factors and sessions
# (with IP addresses): the same, opened with a why and read-only. A person
# changes them on their own pages; staff writes there would bypass the audit.


class _ReadOnlyAccountRecord(AuditedPersonAdmin):
    audit_action = AuditAction.VIEW_ACCOUNT_RECORD
    actions = None

    def audit_subject(self, obj):
        return obj.user.subject_id

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


for _model, _base in (
    (EmailAddress, EmailAddressAdmin),
    (Authenticator, AuthenticatorAdmin),
    (UserSession, UserSessionAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_ReadOnlyAccountRecord, _base), {}))
