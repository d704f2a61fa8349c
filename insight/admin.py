"""The dashboard, a page of its own in the admin (the Insight entry of the
admin index), and its exports. Open to staff with the permission
insight.view_figures: superusers, and the "Privacy analysts" group, whose
members see these figures and nothing that names a person (insight.services)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

from insight import exports, selectors
from insight.models import Period, Tally

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
