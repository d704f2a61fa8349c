from __future__ import annotations

import csv

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consents import selectors, services
from consents.models import LEGAL_BASIS_CODES, DataCategory, LegalBasis, Purpose, PurposeNotice


@admin.register(DataCategory)
class DataCategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "sensitive", "dpv_code"]
    list_filter = ["sensitive"]
    search_fields = ["name", "name_pt", "key"]
    prepopulated_fields = {"key": ["name"]}

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # A category's name is part of the notices of the purposes that use it.
        for purpose in form.instance.purposes.filter(retired_at__isnull=True):
            services.purpose_notice_refresh(purpose=purpose)

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.purposes.exists()


class PurposeNoticeInline(admin.StackedInline):
    # Stacked, not tabular: read-only rows with no control would make a table that
    # scrolls sideways on a phone with nothing a keyboard can focus.
    model = PurposeNotice
    fields = ["version", "created_at", "content_hash"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-version"]
    verbose_name_plural = _("notice versions (frozen each time the customer-facing text changes)")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "legal_basis", "retention_days", "is_sale_or_sharing", "status"]
    list_filter = ["legal_basis", "is_sale_or_sharing", "retired_at"]
    search_fields = ["name", "name_pt", "key"]
    # Checkboxes, not filter_horizontal: its widget names unfocusable icons with
    # aria-label, which assistive technology ignores (axe: aria-prohibited-attr).
    formfield_overrides = {models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}
    prepopulated_fields = {"key": ["name"]}
    inlines = [PurposeNoticeInline]
    actions = ["retire"]
    change_list_template = "admin/consents/purpose/change_list.html"
    fieldsets = [
        (None, {"fields": ["key", "legal_basis", "data_categories", "order", "dpv_code"]}),
        (
            _("What the customer reads"),
            {
                "fields": [
                    ("name", "name_pt"),
                    ("description", "description_pt"),
                    ("benefit", "benefit_pt"),
                ]
            },
        ),
        (
            _("Retention, recipients and transfers"),
            {
                "fields": [
                    "retention_days",
                    ("recipients", "recipients_pt"),
                    ("transfers_abroad", "transfers_abroad_pt"),
                    "is_sale_or_sharing",
                ]
            },
        ),
        (_("Forms"), {"fields": ["offered_in_newsletter"]}),
    ]

    @admin.display(description=_("status"))
    def status(self, obj: Purpose) -> str:
        return _("retired") if obj.retired_at else _("active")

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # After the categories are saved: freeze the text customers now read.
        before = form.instance.notices.order_by("-version").first()
        notice = services.purpose_notice_refresh(purpose=form.instance)
        if before is not None and notice.pk != before.pk:
            self.message_user(
                request,
                _(
                    "The customer-facing text changed: it is now notice version %(version)s. "
                    "Earlier decisions keep pointing at the version their authors read."
                )
                % {"version": notice.version},
                messages.INFO,
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        # A purpose with any recorded decision can be retired, never deleted.
        return obj is None or not obj.events.exists()

    @admin.action(description=_("Retire the selected purposes (withdraws standing grants)"))
    def retire(self, request: HttpRequest, queryset) -> None:
        for purpose in queryset:
            services.purpose_retire(purpose=purpose)
        self.message_user(request, _("Retired. Their history stays readable."), messages.SUCCESS)

    def get_urls(self):
        custom = [
            path(
                "record-of-processing.csv",
                self.admin_site.admin_view(self.record_of_processing),
                name="consents_purpose_ropa",
            )
        ]
        return custom + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "ropa_url": reverse("admin:consents_purpose_ropa"),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def record_of_processing(self, request: HttpRequest) -> HttpResponse:
        """GDPR Art. 30(1): the record of processing activities, from the inventory."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = f'attachment; filename="record-of-processing-{stamp}.csv"'
        response.write("\ufeff")  # so that spreadsheet programs read UTF-8
        writer = csv.writer(response)
        writer.writerow(
            [
                "controller",
                "controller contact",
                "data protection officer",
                "purpose",
                "purpose key",
                "description",
                "legal basis",
                "GDPR article",
                "LGPD article",
                "categories of data subjects",
                "categories of personal data",
                "special categories",
                "recipients",
                "transfers abroad",
                "erasure time limit (days)",
                "sale or sharing",
                "security measures",
                "DPV purpose",
            ]
        )
        for purpose in selectors.active_purposes():
            codes = LEGAL_BASIS_CODES[LegalBasis(purpose.legal_basis)]
            categories = list(purpose.data_categories.all())
            writer.writerow(
                [
                    settings.CONTROLLER_NAME,
                    settings.CONTROLLER_EMAIL,
                    f"{settings.DPO_NAME} <{settings.DPO_EMAIL}>",
                    purpose.name,
                    purpose.key,
                    purpose.description,
                    purpose.get_legal_basis_display(),
                    codes["gdpr"],
                    codes["lgpd"],
                    "customers; newsletter subscribers",
                    "; ".join(c.name for c in categories),
                    "; ".join(c.name for c in categories if c.sensitive),
                    purpose.recipients or "none",
                    purpose.transfers_abroad or "none",
                    purpose.retention_days,
                    "yes" if purpose.is_sale_or_sharing else "no",
                    SECURITY_MEASURES,
                    purpose.dpv_code,
                ]
            )
        return response


SECURITY_MEASURES = (
    "TLS in transit; Argon2 password hashing; optional TOTP/passkey MFA; pseudonymous "
    "subject ids in the consent ledger; append-only, hash-chained ledger; truncated IPs; "
    "strict CSP"
)
