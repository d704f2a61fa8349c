from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from consents import changes, ropa, selectors, services
from consents.models import (
    DataCategory,
    LegalBasis,
    Purpose,
    PurposeNotice,
    ReconsentRequest,
)


class DataCategoryAdminForm(forms.ModelForm):
    """A category that becomes sensitive widens every purpose that uses it:
    staff are told how many people will be asked again before it is saved."""

    confirm_reconsent = forms.BooleanField(
        label=_("I confirm: ask these people again"), required=False
    )

    class Meta:
        model = DataCategory
        fields = [
            "key",
            "name",
            "name_pt",
            "description",
            "description_pt",
            "sensitive",
            "dpv_code",
        ]

    def clean(self):
        cleaned = super().clean()
        category = self.instance
        if category.pk is None or category.sensitive or not cleaned.get("sensitive"):
            return cleaned
        purposes = category.purposes.filter(retired_at__isnull=True, legal_basis=LegalBasis.CONSENT)
        asked = sum(selectors.purpose_grantees_count(purpose=p) for p in purposes)
        if asked and not cleaned.get("confirm_reconsent"):
            self.add_error(
                "confirm_reconsent",
                ngettext(
                    "Sensitive data widens what %(purposes)s does: %(count)s person who "
                    "granted it will be emailed and asked again; their grant lapses on "
                    "%(date)s unless they confirm it. Tick the box to save.",
                    "Sensitive data widens what %(purposes)s does: %(count)s people who "
                    "granted it will be emailed and asked again; their grant lapses on "
                    "%(date)s unless they confirm it. Tick the box to save.",
                    asked,
                )
                % {
                    "purposes": ", ".join(p.name for p in purposes),
                    "count": asked,
                    "date": services.reconsent_earliest_date().isoformat(),
                },
            )
        return cleaned


@admin.register(DataCategory)
class DataCategoryAdmin(admin.ModelAdmin):
    form = DataCategoryAdminForm
    list_display = ["name", "key", "sensitive", "dpv_code"]
    list_filter = ["sensitive"]
    search_fields = ["name", "name_pt", "key"]
    prepopulated_fields = {"key": ["name"]}

    def save_model(self, request, obj, form, change) -> None:
        services.data_category_save(category=obj, acting_user=request.user)

    def delete_model(self, request, obj) -> None:
        services.data_category_delete(category=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for category in queryset:
            services.data_category_delete(category=category, acting_user=request.user)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # A category's name and sensitivity are part of the notices of the purposes
        # that use it: a category that turns sensitive asks their grantees again.
        for purpose in form.instance.purposes.filter(retired_at__isnull=True):
            updated = services.purpose_update(purpose=purpose, acting_user=request.user)
            if updated.reconsent is not None:
                _tell_asked(self, request, updated)

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.purposes.exists()


def _tell_asked(model_admin, request, updated) -> None:
    model_admin.message_user(
        request,
        ngettext(
            "The change widens what %(purpose)s does: %(count)s person was asked again "
            "by email; their grant lapses on %(date)s unless they confirm it.",
            "The change widens what %(purpose)s does: %(count)s people were asked again "
            "by email; their grant lapses on %(date)s unless they confirm it.",
            updated.asked,
        )
        % {
            "purpose": updated.purpose.name,
            "count": updated.asked,
            "date": updated.reconsent.effective_date.isoformat(),
        },
        messages.WARNING,
    )


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


class PurposeAdminForm(forms.ModelForm):
    """Before a change that widens processing is saved, staff are told what
    widens and how many people will be asked again, and confirm it."""

    reconsent_effective_date = forms.DateField(
        label=_("grants lapse on, unless given again"),
        required=False,
        help_text=_(
            "Only for a change that widens what the purpose does. Empty: the notice "
            "period after today (POLICY_MATERIAL_NOTICE_DAYS)."
        ),
    )
    confirm_reconsent = forms.BooleanField(
        label=_("I confirm: ask these people again"),
        required=False,
    )

    class Meta:
        model = Purpose
        fields = [
            "key",
            "legal_basis",
            "data_categories",
            "order",
            "dpv_code",
            "name",
            "name_pt",
            "description",
            "description_pt",
            "benefit",
            "benefit_pt",
            "retention_days",
            "recipients",
            "recipients_pt",
            "transfers_abroad",
            "transfers_abroad_pt",
            "is_sale_or_sharing",
            "offered_in_newsletter",
        ]

    def clean(self):
        cleaned = super().clean()
        self.widening_preview = None
        if self.instance.pk is None or self.errors:
            return cleaned
        values = {
            name: cleaned[name]
            for name in services.PURPOSE_NOTICE_INPUTS
            if name in cleaned and name != "data_categories"
        }
        preview = services.purpose_update_preview(
            purpose=self.instance,
            values=values,
            data_categories=cleaned.get("data_categories"),
        )
        if not preview.widening:
            return cleaned
        self.widening_preview = preview
        effective_date = cleaned.get("reconsent_effective_date")
        if effective_date is not None:
            try:
                services.reconsent_date_check(effective_date=effective_date)
            except services.ConsentError as exc:
                self.add_error("reconsent_effective_date", str(exc))
        if not cleaned.get("confirm_reconsent"):
            changes_text = " ".join(changes.describe(preview.widening))
            self.add_error(
                "confirm_reconsent",
                ngettext(
                    "This change widens what the purpose does: %(changes)s %(count)s person "
                    "who granted it will be emailed and asked again; their grant lapses on "
                    "%(date)s unless they confirm it. Tick the box to save.",
                    "This change widens what the purpose does: %(changes)s %(count)s people "
                    "who granted it will be emailed and asked again; their grant lapses on "
                    "%(date)s unless they confirm it. Tick the box to save.",
                    preview.asked,
                )
                % {
                    "changes": changes_text,
                    "count": preview.asked,
                    "date": (effective_date or services.reconsent_earliest_date()).isoformat(),
                },
            )
        return cleaned


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    form = PurposeAdminForm
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
        (
            _("When the change widens what the purpose does"),
            {"fields": ["reconsent_effective_date", "confirm_reconsent"]},
        ),
    ]

    @admin.display(description=_("status"))
    def status(self, obj: Purpose) -> str:
        return _("retired") if obj.retired_at else _("active")

    def save_model(self, request, obj, form, change) -> None:
        # Saved in save_related, with its categories, by services.purpose_create
        # or services.purpose_update (each writes its audit row).
        pass

    def delete_model(self, request, obj) -> None:
        services.purpose_delete(purpose=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for purpose in queryset:
            services.purpose_delete(purpose=purpose, acting_user=request.user)

    def save_related(self, request, form, formsets, change) -> None:
        if not change:
            services.purpose_create(
                purpose=form.instance,
                data_categories=form.cleaned_data.get("data_categories") or [],
                acting_user=request.user,
            )
            for formset in formsets:
                self.save_formset(request, form, formset, change=change)
            return
        values = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in {f.name for f in Purpose._meta.concrete_fields}
        }
        before = form.instance.notices.order_by("-version").first()
        updated = services.purpose_update(
            purpose=form.instance,
            acting_user=request.user,
            values=values,
            data_categories=form.cleaned_data.get("data_categories"),
            effective_date=form.cleaned_data.get("reconsent_effective_date"),
        )
        form.instance.refresh_from_db()
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
        if updated.reconsent is not None:
            _tell_asked(self, request, updated)
        elif before is not None and updated.notice.pk != before.pk:
            self.message_user(
                request,
                _(
                    "The customer-facing text is notice version %(version)s. "
                    "Earlier decisions keep pointing at the version their authors read."
                )
                % {"version": updated.notice.version},
                messages.INFO,
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        # A purpose with any recorded decision can be retired, never deleted.
        return obj is None or not obj.events.exists()

    @admin.action(description=_("Retire the selected purposes (withdraws standing grants)"))
    def retire(self, request: HttpRequest, queryset) -> None:
        for purpose in queryset:
            services.purpose_retire(purpose=purpose, acting_user=request.user)
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
        """GDPR Art. 30(1): the record of processing activities, from the inventory,
        with the erasure rules that the retention task enforces (one row per
        purpose, then one per record the portal keeps to run itself)."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = f'attachment; filename="record-of-processing-{stamp}.csv"'
        response.write("\ufeff")  # so that spreadsheet programs read UTF-8
        ropa.record_of_processing_write(response)
        return response


@admin.register(ReconsentRequest)
class ReconsentRequestAdmin(admin.ModelAdmin):
    """Read-only: requests are written by purpose_update and by publishing a policy."""

    list_display = ["purpose", "reason", "asked_at", "effective_date", "lapsed_at", "created_by"]
    list_filter = ["reason"]
    readonly_fields = [f.name for f in ReconsentRequest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
