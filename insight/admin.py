"""The dashboard, a page of its own in the admin (the Insight entry of the
admin index), and its exports. Open to staff with the permission
insight.view_figures: superusers, and the "Privacy analysts" group, whose
members see these figures and nothing that names a person (insight.services).
The auditor's evidence export has pages of its own (EvidenceExportAdmin)."""

from __future__ import annotations

import json
from decimal import Decimal

from allauth.account.decorators import reauthentication_required
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from insight import evidence, exports, privacy, selectors, services
from insight.forms import PrivacyBudgetForm, ReleaseForm
from insight.models import (
    OPEN_EVIDENCE_STATUSES,
    EvidenceExport,
    EvidenceStatus,
    Period,
    PrivacyBudget,
    Release,
    Tally,
)

PERIODS = (Period.WEEK, Period.MONTH)


def _period(request: HttpRequest) -> str | None:
    period = request.GET.get("period", Period.MONTH)
    return period if period in PERIODS else None


def _bad_period() -> HttpResponse:
    return HttpResponseBadRequest(
        _("Unknown period: choose week or month."), content_type="text/plain; charset=utf-8"
    )


@admin.register(Tally)
class FiguresAdmin(admin.ModelAdmin):
    """No list of rows: the entry opens the dashboard."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm("insight.view_figures")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.dashboard_view), name="insight_tally_changelist"),
            path("export.csv", wrap(self.export_csv), name="insight_export_csv"),
            path("export.json", wrap(self.export_json), name="insight_export_json"),
            path("release/", wrap(require_POST(self.release_view)), name="insight_release_make"),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return self._dashboard(request)

    def _dashboard(self, request: HttpRequest, release_form=None, status=200) -> HttpResponse:
        self._check(request)
        period = _period(request) if release_form is None else release_form.data.get("period")
        if period not in PERIODS:
            if release_form is None:
                return _bad_period()
            period = Period.MONTH
        board = selectors.dashboard(period)
        may_release = request.user.has_perm("insight.release_figures")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Insight: consent in figures"),
            "board": board,
            "periods": [(p, Period(p).label) for p in PERIODS],
            "opts": self.model._meta,
            "may_release": may_release,
            "release_form": release_form or ReleaseForm(initial={"period": period}),
            "budget": selectors.budget() if may_release else None,
            "release_cells": privacy.cells_per_person(),
        }
        return TemplateResponse(request, "admin/insight/dashboard.html", context, status=status)

    def release_view(self, request: HttpRequest) -> HttpResponse:
        """The dashboard's "Release with differential privacy" form: spends
        epsilon from this month's budget and stores the noisy figures, or says
        why not and changes nothing."""
        self._check(request)
        if not request.user.has_perm("insight.release_figures"):
            raise PermissionDenied
        form = ReleaseForm(request.POST)
        if form.is_valid():
            try:
                release = services.release_make(
                    period=form.cleaned_data["period"],
                    epsilon=form.cleaned_data["epsilon"],
                    acting_user=request.user,
                )
            except services.PrivacyError as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(
                    request,
                    _(
                        "Released with epsilon %(epsilon)s. Download it below as often as you "
                        "need: it keeps the same figures and spends nothing more."
                    )
                    % {"epsilon": release.epsilon},
                )
                return redirect(reverse("admin:insight_release_change", args=[release.pk]))
        return self._dashboard(request, release_form=form, status=400)

    changelist_view = dashboard_view

    def export_csv(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        period = _period(request)
        if period is None:
            return _bad_period()
        response = HttpResponse(
            exports.as_csv(selectors.dashboard(period)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="clareza-insight-{period}.csv"'
        return response

    def export_json(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        period = _period(request)
        if period is None:
            return _bad_period()
        body = json.dumps(exports.as_json(selectors.dashboard(period)), ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="clareza-insight-{period}.json"'
        return response


CENTS = Decimal("0.01")


def _with_budget(queryset, month_field: str):
    """Each row with its month's budget and what that month's releases spent,
    in the list's one query (not two per row)."""
    spent = (
        Release.objects.filter(budget_month=OuterRef(month_field))
        .order_by()
        .values("budget_month")
        .annotate(total=Sum("epsilon"))
        .values("total")
    )
    budget = PrivacyBudget.objects.filter(month=OuterRef(month_field)).values("epsilon")[:1]
    return queryset.annotate(month_spent=Subquery(spent), month_budget=Subquery(budget))


def _left(row) -> Decimal:
    budget = row.month_budget
    if budget is None:
        budget = settings.INSIGHT_DP_EPSILON_PER_MONTH
    return max(Decimal(budget) - Decimal(row.month_spent or 0), Decimal(0)).quantize(CENTS)


class _FiguresOnly(admin.ModelAdmin):
    """Seen by whoever sees the figures; never names a person."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm("insight.view_figures")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Release)
class ReleaseAdmin(_FiguresOnly):
    """Releases are made from the dashboard's form (insight.services.release_make)
    and never changed: each download gives the stored figures again."""

    list_display = ["made_at", "period", "window", "epsilon", "budget_left", "made_by_email"]
    list_filter = ["period", "budget_month"]
    fields = [
        "uuid",
        "period",
        "first_start",
        "last_start",
        "epsilon",
        "budget_month",
        "budget_epsilon",
        "budget_spent",
        "mechanism",
        "noise_scale",
        "cells_per_person",
        "min_cell",
        "made_by_email",
        "made_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("periods"))
    def window(self, release: Release) -> str:
        return f"{release.first_start} - {release.last_start}"

    def get_queryset(self, request: HttpRequest):
        return _with_budget(super().get_queryset(request), "budget_month")

    @admin.display(description=gettext_lazy("budget left that month"))
    def budget_left(self, release: Release) -> str:
        budget = release.month_budget
        if budget is None:
            budget = settings.INSIGHT_DP_EPSILON_PER_MONTH
        return _("%(left)s of %(epsilon)s") % {
            "left": _left(release),
            "epsilon": Decimal(budget).quantize(CENTS),
        }

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:uuid>/export.csv", wrap(self.export_csv), name="insight_release_csv"),
            path("<uuid:uuid>/export.json", wrap(self.export_json), name="insight_release_json"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        context = {"budget": selectors.budget(), **(extra_context or {})}
        return super().changelist_view(request, context)

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        """The release's page: what it is, its files, and its noisy figures."""
        release = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if release is not None and self.has_view_permission(request, release):
            context["board"] = selectors.release_board(release)
            context["margin"] = privacy.margin(release.noise_scale)
        return super().change_view(request, object_id, form_url, context)

    def _release(self, request: HttpRequest, uuid) -> Release:
        if not self.has_view_permission(request):
            raise PermissionDenied
        release = Release.objects.filter(uuid=uuid).first()
        if release is None:
            raise Http404
        return release

    def export_csv(self, request: HttpRequest, uuid) -> HttpResponse:
        release = self._release(request, uuid)
        body = exports.release_as_csv(release, selectors.release_board(release))
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="clareza-insight-dp-{release.uuid}.csv"'
        )
        return response

    def export_json(self, request: HttpRequest, uuid) -> HttpResponse:
        release = self._release(request, uuid)
        data = exports.release_as_json(release, selectors.release_board(release))
        response = HttpResponse(
            json.dumps(data, ensure_ascii=False), content_type="application/json"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="clareza-insight-dp-{release.uuid}.json"'
        )
        return response


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(_FiguresOnly):
    """The epsilon per calendar month. Analysts see it; staff with
    insight.change_privacybudget (superusers) set it, through
    insight.services.privacy_budget_set. A month with no row has the default,
    INSIGHT_DP_EPSILON_PER_MONTH."""

    form = PrivacyBudgetForm
    list_display = ["month_label", "epsilon", "spent", "left", "set_by_email", "set_at"]

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm(
            "insight.view_privacybudget"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("insight.add_privacybudget")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("insight.change_privacybudget")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["month"] if obj is not None else []

    @admin.display(description=gettext_lazy("month"), ordering="month")
    def month_label(self, budget: PrivacyBudget) -> str:
        return f"{budget.month:%Y-%m}"

    def get_queryset(self, request: HttpRequest):
        return _with_budget(super().get_queryset(request), "month")

    @admin.display(description=gettext_lazy("spent"))
    def spent(self, budget: PrivacyBudget) -> str:
        return str(Decimal(budget.month_spent or 0).quantize(CENTS))

    @admin.display(description=gettext_lazy("left"))
    def left(self, budget: PrivacyBudget) -> str:
        return str(_left(budget))

    def save_model(self, request: HttpRequest, obj: PrivacyBudget, form, change: bool) -> None:
        saved = services.privacy_budget_set(
            month=obj.month, epsilon=obj.epsilon, acting_user=request.user
        )
        obj.pk, obj.month, obj.set_by_email, obj.set_at = (
            saved.pk,
            saved.month,
            saved.set_by_email,
            saved.set_at,
        )


class EvidenceForm(forms.Form):
    date_from = forms.DateField(
        label=gettext_lazy("First day"), widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("Last day (included)"), widget=forms.DateInput(attrs={"type": "date"})
    )


@admin.register(EvidenceExport)
class EvidenceExportAdmin(admin.ModelAdmin):
    """The auditor's evidence: a page that lists the exports and asks for one,
    a page per export with its progress, and the download (after a fresh
    reauthentication; each one audited). Superusers and staff given the
    permission insight.export_evidence; not the Privacy analysts, who see
    counts and no event."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(services.EVIDENCE_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.list_view), name="insight_evidenceexport_changelist"),
            path("add/", wrap(self.ask_view), name="insight_evidenceexport_add"),
            path("<uuid:uuid>/", wrap(self.status_view), name="insight_evidenceexport_status"),
            path(
                "<uuid:uuid>/download/<str:token>/",
                wrap(self.download_view),
                name="insight_evidenceexport_download",
            ),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not self.has_module_permission(request):
            raise PermissionDenied

    def _context(self, request: HttpRequest, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "evidence_days": settings.INSIGHT_EVIDENCE_DAYS,
            **extra,
        }

    def _page(self, request: HttpRequest, form: EvidenceForm, status: int = 200) -> HttpResponse:
        exports = list(EvidenceExport.objects.order_by("-created_at")[:50])
        context = self._context(
            request, title=_("Evidence for an auditor"), form=form, exports=exports
        )
        return TemplateResponse(request, "admin/insight/evidence_list.html", context, status=status)

    def list_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        return self._page(request, EvidenceForm())

    changelist_view = list_view

    def ask_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        if request.method != "POST":
            return self._page(request, EvidenceForm())
        form = EvidenceForm(request.POST)
        if not form.is_valid():
            return self._page(request, form, status=400)
        try:
            export = services.evidence_request(
                acting_user=request.user,
                date_from=form.cleaned_data["date_from"],
                date_to=form.cleaned_data["date_to"],
            )
        except services.EvidenceError as exc:
            form.add_error(None, str(exc))
            return self._page(request, form, status=400)
        messages.success(request, _("Asked. A worker prepares it; this page shows how far it is."))
        return redirect("admin:insight_evidenceexport_status", uuid=export.uuid)

    def status_view(self, request: HttpRequest, uuid) -> HttpResponse:
        """One export: its progress (htmx polls the part while it is being
        built; without JavaScript, "Check again"), then its download link."""
        self._check(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        export = get_object_or_404(EvidenceExport, uuid=uuid)
        download_url = ""
        if export.status == EvidenceStatus.READY:
            download_url = reverse(
                "admin:insight_evidenceexport_download",
                args=[export.uuid, evidence.download_token(export)],
            )
        context = self._context(
            request,
            title=_("Evidence for an auditor: %(start)s to %(end)s")
            % {"start": export.date_from, "end": export.date_to},
            export=export,
            is_open=export.status in OPEN_EVIDENCE_STATUSES,
            download_url=download_url,
        )
        template = "admin/insight/evidence_status.html"
        if request.htmx:
            template += "#evidence"
        return TemplateResponse(request, template, context)

    def download_view(self, request: HttpRequest, uuid, token: str) -> HttpResponse:
        self._check(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        export = get_object_or_404(EvidenceExport, uuid=uuid)
        return _evidence_download(request, export, token)


@reauthentication_required
def _evidence_download(request: HttpRequest, export: EvidenceExport, token: str) -> HttpResponse:
    if not evidence.downloadable(export=export, token=token):
        return HttpResponse(
            _("This download link no longer works: the export expired or was replaced."),
            status=410,
            content_type="text/plain; charset=utf-8",
        )
    services.evidence_downloaded(export=export, acting_user=request.user)
    response = FileResponse(
        evidence.evidence_path(export).open("rb"),
        as_attachment=True,
        filename=f"clareza-evidence-{export.date_from}-{export.date_to}.zip",
        content_type="application/zip",
    )
    response["Cache-Control"] = "no-store, private"
    return response
