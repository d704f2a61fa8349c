"""The staff side: a queue of requests by due date, overdue and due-soon ones
highlighted; requests entered on a person's behalf; every decision through
rights.services, with the staff member as acting_user. And the staff audit
trail: AuditedPersonAdmin, which any admin showing one person's data mixes in
(nothing is shown before its audit row is written), and the trail itself, for
superusers, read-only."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from consents.models import NewsletterSignup
from portal.admin import UserAdmin as PortalUserAdmin
from portal.models import User
from rights import audit, selectors, services, waiting
from rights.forms import ReasonForm, StaffRequestForm
from rights.models import AuditAction, AuditEntry, RightsRequest


@admin.register(RightsRequest)
class RightsRequestAdmin(admin.ModelAdmin):
    list_display = [
        "due_at",
        "deadline",
        "kind",
        "status",
        "jurisdiction",
        "channel",
        "received_at",
        "waiting_for",
    ]
    list_display_links = ["due_at"]
    list_filter = ["status", "kind", "jurisdiction", "channel"]
    search_fields = ["email", "user__email"]
    # The queue: open requests first, the earliest deadline on top.
    ordering = [F("closed_at").asc(nulls_first=True), "due_at", "pk"]
    list_select_related = ["user"]

    @admin.display(description=gettext_lazy("Deadline"))
    def deadline(self, obj: RightsRequest) -> str:
        # A template, so that every value in the marker is escaped.
        return render_to_string(
            "admin/rights/_deadline.html",
            {"urgency": selectors.urgency(obj), "request": obj},
        )

    def get_changelist_instance(self, request: HttpRequest):
        """The page's requests, each with the systems it still waits for, read
        for the whole page at once (rights.waiting, one query), not per row."""
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)  # evaluated once: the template reuses these rows
        found = waiting.waiting_on_many(row.pk for row in rows)
        for row in rows:
            row.waiting_for_names = found.get(row.pk, [])
        return changelist

    @admin.display(description=gettext_lazy("Waiting for"))
    def waiting_for(self, obj: RightsRequest) -> str | None:
        names = getattr(obj, "waiting_for_names", None)
        if names is None:  # a row not from the page's list
            names = waiting.waiting_on(obj.pk)
        return ", ".join(names) or None  # None: the admin's empty value

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # requests are proof that the rights were answered

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # Entering a request received by letter, phone or email -----------------------

    def add_view(self, request: HttpRequest, form_url="", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise Http404
        form = StaffRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                made = services.request_create(
                    acting_user=request.user,
                    email=data["email"],
                    kind=data["kind"],
                    jurisdiction=data["jurisdiction"],
                    channel=data["channel"],
                    identity_check=data["identity_check"],
                    received_at=data["received_at"],
                    purposes=data["purposes"],
                    details=data["details"],
                )
            except services.RightsError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    _("Request entered. It is due by %(due)s.")
                    % {"due": timezone.localtime(made.due_at).strftime("%Y-%m-%d %H:%M")},
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:rights_rightsrequest_change", args=[made.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Enter a request received outside the portal"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request,
            "admin/rights/rightsrequest/enter.html",
            context,
            status=400 if request.method == "POST" else 200,
        )

    # Answering ----------------------------------------------------------------------

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        """The request, and the decisions staff can take on it (each a service)."""
        if not self.has_view_permission(request):
            raise Http404
        rights_request = get_object_or_404(
            RightsRequest.objects.select_related("user", "entered_by", "closed_by"),
            pk=object_id,
        )
        # The screen shows the person's request and account: its look is
        # recorded, served by the request itself, before anything is built.
        audit.record_read(
            acting_user=request.user,
            action=AuditAction.VIEW_REQUEST,
            subject_id=rights_request.subject_id,
            reason=audit.Why(request=rights_request),
            target=audit.target_of(rights_request),
        )
        can_change = self.has_change_permission(request, rights_request)
        form = ReasonForm(request.POST or None)
        if request.method == "POST":
            if not can_change:
                raise Http404
            if form.is_valid():
                try:
                    self._decide(request, rights_request, form.cleaned_data)
                except services.RightsError as exc:
                    form.add_error(None, str(exc))
                else:
                    return redirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": str(rights_request),
            "item": rights_request,
            "urgency": selectors.urgency(rights_request),
            "purposes": list(rights_request.purposes.all()),
            "systems": waiting.listed(rights_request.pk),
            "waiting_on": waiting.waiting_on(rights_request.pk),
            "form": form,
            "can_change": can_change,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request,
            "admin/rights/rightsrequest/answer.html",
            context,
            status=400 if request.method == "POST" else 200,
        )

    def _decide(self, request: HttpRequest, rights_request: RightsRequest, data: dict) -> None:
        action, reason = data["action"], data["reason"]
        if action == "start":
            services.request_start(request=rights_request, acting_user=request.user)
            message = _("Started.")
        elif action == "extend":
            services.request_extend(request=rights_request, reason=reason, acting_user=request.user)
            message = _("Extended; the person was told why.")
        elif action == "refuse":
            services.request_refuse(request=rights_request, reason=reason, acting_user=request.user)
            message = _("Refused; the person was told why.")
        else:
            services.request_complete(
                request=rights_request, answer=reason, acting_user=request.user
            )
            message = _("Done; the person was told.")
        self.message_user(request, message, messages.SUCCESS)


# Deleting an account in the admin is an erasure ----------------------------------------


class ErasingUserAdmin(PortalUserAdmin):
    """Deleting a user here (the delete view and the bulk action) is the
    erasure service at once (rights.services.user_erase, the staff member as
    acting_user): everything registered in rights.erasure goes, the ledger
    gets withdrawals, and an erasure request remains as proof. The
    confirmation page lists what goes, counted now. Django's own "delete
    selected" action calls the same hooks below."""

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.pk == request.user.pk:
            return False  # staff close their own account from the panel
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        from rights import erasure

        listed, protected = [], []
        for user in objs:
            if user.pk == request.user.pk:
                protected.append(
                    _("%(user)s: your own account (close it from your control panel)")
                    % {"user": user}
                )
                continue
            person = erasure.person_for(subject_id=user.subject_id, user_id=user.pk)
            goes = [
                _("%(what)s: %(count)s") % {"what": label, "count": count}
                for label, count in erasure.plan(person)
            ]
            goes.append(
                _(
                    "Kept: the consent ledger's events under the opaque subject id (with a "
                    "withdrawal of every standing grant), and an erasure request as proof, "
                    "with nothing personal."
                )
            )
            listed.extend([str(user), goes])
        return listed, {}, set(), protected

    def log_deletions(self, request, queryset):
        """No admin history entry: it would keep the address (its object's name)
        of the person just erased. The erasure request records who did it."""

    def delete_model(self, request, obj) -> None:
        services.user_erase(user=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for user in list(queryset):
            services.user_erase(user=user, acting_user=request.user)

    def response_delete(self, request, obj_display, obj_id):
        # Django's message would name the account (the address) it just erased.
        self.message_user(request, _("The account was erased."), messages.SUCCESS)
        return redirect(reverse("admin:portal_user_changelist"))


admin.site.unregister(User)
admin.site.register(User, ErasingUserAdmin)
# The trail, for superusers ---------------------------------------------------------------


class StaffMemberFilter(admin.SimpleListFilter):
    """By staff member, as the rows name them (their account may be gone)."""

    title = gettext_lazy("staff member")
    parameter_name = "staff"

    def lookups(self, request, model_admin):
        emails = (
            AuditEntry.objects.order_by("actor_email")
            .values_list("actor_email", flat=True)
            .distinct()
        )
        return [(email, email) for email in emails]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(actor_email=self.value())
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only, for superusers only: nobody adds, changes or deletes a row
    (the database refuses the last two anyway). Search takes a subject id, or
    a person's email address, which is looked up to their subject id and
    never stored; filters by staff member, action and date."""

    list_display = ["at", "actor_email", "action", "subject_id", "why", "target"]
    list_display_links = ["at"]
    list_filter = [StaffMemberFilter, "action", ("at", admin.DateFieldListFilter)]
    date_hierarchy = "at"
    search_fields = ["actor_email"]  # replaced by get_search_results; shows the box
    search_help_text = gettext_lazy(
        "A person's subject id or email address (looked up, not stored), "
        "or a staff member's address."
    )
    ordering = ["-at", "-pk"]
    readonly_fields = [
        "at",
        "actor_email",
        "actor_name",
        "action",
        "subject_id",
        "request_uuid",
        "request_kind",
        "reason",
        "target",
        "details",
    ]
    fields = readonly_fields
    show_full_result_count = False  # the trail grows: no second COUNT(*) per page

    @admin.display(description=gettext_lazy("why"))
    def why(self, obj: AuditEntry) -> str:
        if obj.request_uuid:
            return _("request %(uuid)s") % {"uuid": str(obj.request_uuid)[:8]}
        return obj.reason[:80]

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(subject_id=uuid.UUID(term)), False
        except ValueError:
            pass
        if "@" in term:
            subjects = list(
                get_user_model()
                .objects.filter(email__iexact=term)
                .values_list("subject_id", flat=True)
            ) + list(
                NewsletterSignup.objects.filter(email__iexact=term).values_list(
                    "subject_id", flat=True
                )
            )
            return queryset.filter(subject_id__in=subjects) | queryset.filter(
                actor_email__iexact=term
            ), False
        return queryset.filter(actor_email__icontains=term), False

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request) -> bool:
        return self._superuser(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._superuser(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
