"""The admin of connected systems and their tasks.

Systems are declared and changed through integrations.systems.system_save
(with its audit row), never deleted (their tasks are proof): turned off
instead. Tasks are listed for staff with filters (still waiting, overdue),
and a task's page shows what the system must do, with the person's addresses
for a manual task (the look is audited first), and two forms: "Record what
was done" and "Report a failure", each a service with the staff member as
acting_user."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from integrations import systems
from integrations.models import ConnectedSystem, SystemTask, TaskKind
from integrations.models.systems import WAITING_STATUSES
from rights import audit
from rights.models import AuditAction


class ConnectedSystemForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(
        label=_("Kinds of request it handles"),
        choices=TaskKind.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_(
            "A copy or an erasure reaches every active system that handles it; an objection "
            "or a restriction only those that hold a data category its purposes use."
        ),
    )

    class Meta:
        model = ConnectedSystem
        fields = [
            "name",
            "key",
            "description",
            "contact_email",
            "data_categories",
            "kinds",
            "webhook_endpoint",
            "api_key",
            "is_active",
        ]
        widgets = {"data_categories": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # In the staff member's language (name_pt in Portuguese), not always English.
        self.fields["data_categories"].label_from_instance = lambda category: category.display_name


@admin.register(ConnectedSystem)
class ConnectedSystemAdmin(admin.ModelAdmin):
    form = ConnectedSystemForm
    list_display = ["name", "key", "how", "kind_list", "waiting", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "key"]
    list_select_related = ["webhook_endpoint"]

    @admin.display(description=_("reached by"))
    def how(self, obj: ConnectedSystem) -> str:
        if obj.webhook_endpoint is None:
            return _("Manual: tasks in the admin")
        return _("Webhook: %(endpoint)s") % {"endpoint": obj.webhook_endpoint}

    @admin.display(description=_("kinds"))
    def kind_list(self, obj: ConnectedSystem) -> str:
        return ", ".join(obj.kind_labels())

    @admin.display(description=_("tasks waiting"))
    def waiting(self, obj: ConnectedSystem) -> int:
        return obj.tasks.filter(status__in=WAITING_STATUSES).count()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its tasks are proof of what was asked: turn it off instead

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        saved = systems.system_save(
            system=obj if change else None,
            name=data["name"],
            key=data["key"],
            kinds=data["kinds"],
            description=data.get("description", ""),
            contact_email=data.get("contact_email", ""),
            data_categories=data.get("data_categories") or [],
            webhook_endpoint=data.get("webhook_endpoint"),
            api_key=data.get("api_key"),
            is_active=data.get("is_active", True),
            acting_user=request.user,
        )
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change) -> None:
        pass  # the service set the categories

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except systems.SystemsError as exc:
            # A rule checked under the lock (a key taken meanwhile): say it, change nothing.
            self.message_user(request, str(exc), messages.ERROR)
            return redirect(request.path)


class WaitingFilter(admin.SimpleListFilter):
    title = _("progress")
    parameter_name = "progress"

    def lookups(self, request, model_admin):
        return [
            ("waiting", _("Still waiting (open, acknowledged or failed)")),
            ("overdue", _("Overdue: still waiting past the request's deadline")),
            ("manual", _("Waiting for a person (manual systems)")),
            ("failed", _("Failed")),
        ]

    def queryset(self, request, queryset):
        waiting = Q(status__in=WAITING_STATUSES)
        if self.value() == "waiting":
            return queryset.filter(waiting)
        if self.value() == "overdue":
            return queryset.filter(waiting, request__due_at__lte=timezone.now())
        if self.value() == "manual":
            return queryset.filter(waiting, system__webhook_endpoint__isnull=True)
        if self.value() == "failed":
            return queryset.filter(status="failed")
        return queryset


class RecordForm(forms.Form):
    done = forms.CharField(
        label=_("What was done"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=systems.DONE_MAX,
        help_text=_("In words the person can read: it goes into their copy of their data."),
    )
    data = forms.CharField(
        label=_("What the system holds (for a copy), as JSON"),
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text=_('A JSON object, e.g. {"tickets": [{"id": "T-1", "subject": "Refund"}]}'),
    )

    def clean_data(self):
        text = (self.cleaned_data.get("data") or "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(_("This is not valid JSON.")) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The data must be a JSON object."))
        return value


class FailForm(forms.Form):
    reason = forms.CharField(
        label=_("Why it could not be done"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=systems.REASON_MAX,
    )


@admin.register(SystemTask)
class SystemTaskAdmin(admin.ModelAdmin):
    list_display = ["created_at", "system", "kind", "status", "due", "completed_at"]
    list_display_links = ["created_at"]
    list_filter = [WaitingFilter, "status", "system", "kind"]
    list_select_related = ["system", "request"]
    ordering = ["request__due_at", "pk"]
    date_hierarchy = "created_at"

    @admin.display(description=_("due by"), ordering="request__due_at")
    def due(self, obj: SystemTask):
        return obj.request.due_at

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/change/", wrap(self.task_view), name="integrations_systemtask_change"),
            *super().get_urls(),
        ]

    def task_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The task, and (for staff who may change tasks) the two forms."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        task = get_object_or_404(
            SystemTask.objects.select_related(
                "system", "request", "completed_by", "completed_by_key"
            ),
            pk=pk,
        )
        # The page shows the person's subject id and, for a manual task, their
        # addresses: the look is recorded first, served by the request.
        audit.record_read(
            acting_user=request.user,
            action=AuditAction.VIEW_REQUEST,
            subject_id=task.request.subject_id,
            reason=audit.Why(request=task.request),
            target=audit.target_of(task),
        )
        can_change = self.has_change_permission(request, task)
        record = RecordForm(request.POST if request.POST.get("action") == "record" else None)
        fail = FailForm(request.POST if request.POST.get("action") == "fail" else None)
        status = 200
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            form = record if request.POST.get("action") == "record" else fail
            if form.is_valid():
                try:
                    if form is record:
                        systems.task_complete(
                            task=task,
                            done=form.cleaned_data["done"],
                            data=form.cleaned_data["data"],
                            acting_user=request.user,
                        )
                        message = _("Recorded. The request no longer waits for this system.")
                    else:
                        systems.task_fail(
                            task=task, reason=form.cleaned_data["reason"], acting_user=request.user
                        )
                        message = _("Failure reported. The request still waits for this system.")
                except systems.SystemsError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, message, messages.SUCCESS)
                    return redirect(request.path)
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "title": str(task),
            "opts": self.model._meta,
            "task": task,
            # As JSON, the way the system sent it (not Python's repr: True, None, 'quotes')
            "data_json": json.dumps(task.data, ensure_ascii=False, indent=2, sort_keys=True),
            "purposes": list(task.request.purposes.all()),
            "request_url": reverse("admin:rights_rightsrequest_change", args=[task.request.pk]),
            "overdue": task.is_waiting and task.request.due_at <= timezone.now(),
            "can_change": can_change and task.status not in ("completed", "cancelled"),
            "can_fail": can_change and task.status in ("open", "acknowledged"),
            "record_form": record,
            "fail_form": fail,
        }
        return TemplateResponse(
            request, "admin/integrations/systemtask/task.html", context, status=status
        )
