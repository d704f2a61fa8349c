"""The dashboard, a page of its own in the admin (the Insight entry of the
admin index), and its exports. Open to staff with the permission
insight.view_figures: superusers, and the "Privacy analysts" group, whose
members see these figures and nothing that names a person (insight.services).
The auditor's evidence export has pages of its own (EvidenceExportAdmin)."""

from __future__ import annotations

import json

from allauth.account.decorators import reauthentication_required
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _

from insight import evidence, exports, selectors, services
from insight.models import (
    OPEN_EVIDENCE_STATUSES,
    EvidenceExport,
    EvidenceStatus,
    Period,
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
        ]

    def _check(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        period = _period(request)
        if period is None:
            return _bad_period()
        board = selectors.dashboard(period)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Insight: consent in figures"),
            "board": board,
            "periods": [(p, Period(p).label) for p in PERIODS],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/insight/dashboard.html", context)

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


class EvidenceForm(forms.Form):
    date_from = forms.DateField(
        label=_("First day"), widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Last day (included)"), widget=forms.DateInput(attrs={"type": "date"})
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
