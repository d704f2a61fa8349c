"""AuditedPersonAdmin: mixed into every ModelAdmin whose change page shows one
person's data, so that nothing is shown before its audit row is written. Kept
apart from rights/admin.py, which imports portal's UserAdmin, so that
portal/admin.py can use it without a circular import."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from rights import audit
from rights.forms import AuditReasonForm
from rights.models import AuditAction

# The reason form posts to the page it guards, marked by this field.
AUDIT_REASON_FIELD = "_audit_reason"


class AuditedPersonAdmin:
    """Mixed into a ModelAdmin whose change page shows one person's data.

    Before the page is built, the look is tied to the person's open request
    (the one due first), or to the reason this staff member stated for this
    person in this session (AUDIT_REASON_MINUTES); without either, a small
    form asks for the reason (a plain POST, no JavaScript) and nothing else is
    shown. Then the audit row is written, and only then is the page built: a
    failed write is a failed page. The reason travels on request.audit_why to
    the writes the page makes (save_model)."""

    audit_action: str = AuditAction.VIEW_DATA

    def audit_subject(self, obj) -> uuid.UUID | None:
        """The opaque id of the person whose data the page shows."""
        return getattr(obj, "subject_id", None)

    def audit_gate(self, request: HttpRequest, obj) -> HttpResponse | None:
        """None once the look's row is written; else the page to show instead."""
        subject_id = self.audit_subject(obj)
        if subject_id is None:
            return None
        if request.method == "POST" and AUDIT_REASON_FIELD in request.POST:
            form = AuditReasonForm(request.POST)
            if form.is_valid():
                audit.reason_state(
                    request, subject_id=subject_id, reason=form.cleaned_data["reason"]
                )
                return redirect(request.get_full_path())
            return self._audit_reason_page(request, form, status=400)
        why = audit.why(request, subject_id=subject_id)
        if why is None:
            # A save posted after the reason expired is not applied: say why again first.
            status = 200 if request.method in ("GET", "HEAD") else 403
            return self._audit_reason_page(request, AuditReasonForm(), status=status)
        audit.record_read(
            acting_user=request.user,
            action=self.audit_action,
            subject_id=subject_id,
            reason=why,
            target=audit.target_of(obj),
            details={"page": request.path},
        )
        request.audit_why = why
        return None

    def _audit_reason_page(self, request: HttpRequest, form, *, status: int) -> HttpResponse:
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": _("Why do you need to see this person's data?"),
            "form": form,
            "opts": opts,
            "changelist_url": f"admin:{opts.app_label}_{opts.model_name}_changelist",
            "field_marker": AUDIT_REASON_FIELD,
            "minutes": settings.AUDIT_REASON_MINUTES,
        }
        return TemplateResponse(request, "admin/rights/audit_reason.html", context, status=status)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            gate = self.audit_gate(request, obj)
            if gate is not None:
                return gate
        return super().change_view(request, object_id, form_url, extra_context)
