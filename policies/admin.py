from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from policies import emails, notices, selectors, services, text
from policies.models import Policy, PolicyVersion
from portal import outbox
from portal.models import OutboxItem


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "order"]
    prepopulated_fields = {"slug": ["title"]}

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.versions.exists()

    def get_actions(self, request):
        # A policy with versions is never deleted; one without is deleted from its page.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        services.policy_save(policy=obj, acting_user=request.user)

    def delete_model(self, request, obj) -> None:
        services.policy_delete(policy=obj, acting_user=request.user)

    def delete_view(self, request, object_id, extra_context=None):
        policy = self.get_object(request, object_id)
        if policy is not None and policy.versions.exists():
            # Say why on the policy's page rather than answer a bare 403.
            self.message_user(
                request,
                _("A policy with versions cannot be deleted: its versions are the record."),
                messages.ERROR,
            )
            return redirect(reverse("admin:policies_policy_change", args=[policy.pk]))
        return super().delete_view(request, object_id, extra_context)


def delivery(version: PolicyVersion) -> dict:
    """Counts by state, the send rate over the last minute, and an ETA."""
    rows = notices.notices_of(version)
    progress = outbox.outbox_progress(kind=notices.NOTICE, topic=notices.topic(version.pk))
    left = progress["pending"]
    minute_ago = timezone.now() - timedelta(minutes=1)
    last_minute = rows.filter(sent_at__gte=minute_ago).count()
    rate = last_minute / 60
    eta = timedelta(seconds=round(left / rate)) if rate and left else None
    return {
        "version": version,
        **progress,
        "rate": rate,
        "rate_per_minute": last_minute,
        "eta": eta,
        "done": left == 0,  # nothing waiting (nor anyone to tell): stop polling
        "failures": [
            {"email": email, "attempts": attempts, "last_error": error}
            for email, attempts, error in rows.filter(status=OutboxItem.Status.FAILED)
            .order_by("pk")
            .values_list("recipient", "attempts", "last_error")[:50]
        ],
    }


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "material", "effective_date", "published_at", "sent"]
    list_filter = ["policy", "status", "material"]
    # Checkboxes, not filter_horizontal (see consents/admin.py PurposeAdmin).
    formfield_overrides = {models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}
    change_form_template = "admin/policies/policyversion/change_form.html"
    fields = [
        "policy",
        "material",
        "effective_date",
        ("summary", "summary_pt"),
        ("body", "body_pt"),
        "changed_purposes",
    ]

    @admin.display(description=_("emails sent"))
    def sent(self, obj: PolicyVersion) -> str:
        if not obj.is_published:
            return "-"
        progress = outbox.outbox_progress(kind=notices.NOTICE, topic=notices.topic(obj.pk))
        return f"{progress['sent']} / {progress['total']}"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_published:
            return [
                *self.fields[:3],
                "summary",
                "summary_pt",
                "body",
                "body_pt",
                "changed_purposes",
            ]
        return []

    def get_fields(self, request, obj=None):
        if obj is not None and obj.is_published:
            return ["policy", "material", "effective_date", "summary", "summary_pt", "body",
                    "body_pt", "changed_purposes"]  # fmt: skip
        return self.fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.is_published

    def get_actions(self, request):
        # The bulk delete would offer published versions too; a draft is deleted
        # from its own page, where Delete shows only for drafts.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        version = self.get_object(request, object_id)
        if version is not None and version.is_published:
            # Say why on the version's page rather than answer a bare 403.
            self.message_user(
                request,
                _("A published version cannot be deleted; publish a new version."),
                messages.ERROR,
            )
            return redirect(reverse("admin:policies_policyversion_change", args=[version.pk]))
        return super().delete_view(request, object_id, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        services.policy_version_draft_save(version=obj, acting_user=request.user)

    def delete_model(self, request, obj) -> None:
        services.policy_version_draft_delete(version=obj, acting_user=request.user)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        retry = wrap(require_POST(self.retry_view))
        return [
            path("<int:pk>/publish/", wrap(self.publish_view), name="policies_version_publish"),
            path("<int:pk>/delivery/", wrap(self.delivery_view), name="policies_version_delivery"),
            path("<int:pk>/retry/", retry, name="policies_version_retry"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if version is not None and version.is_published:
            if request.method == "POST":
                # Every field is read-only and save_model would refuse: say so, change nothing.
                self.message_user(
                    request,
                    _("A published version cannot be changed; publish a new version."),
                    messages.ERROR,
                )
                return redirect(request.path)
            extra["delivery"] = delivery(version)
            extra.update(show_save=False, show_save_and_continue=False)
        elif version is not None:
            extra["publish_url"] = reverse("admin:policies_version_publish", args=[version.pk])
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _version(self, request: HttpRequest, pk: int) -> PolicyVersion:
        version = get_object_or_404(PolicyVersion.objects.select_related("policy"), pk=pk)
        if not self.has_change_permission(request, version):
            raise Http404
        return version

    def publish_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Preview the email and the differences, then publish on confirmation."""
        version = self._version(request, pk)
        change_url = reverse("admin:policies_policyversion_change", args=[version.pk])
        if version.is_published:
            return redirect(change_url)
        problem = ""
        try:
            services.policy_version_check(version=version)
        except services.PolicyError as exc:
            problem = str(exc)
        if request.method == "POST" and not problem:
            try:
                result = services.policy_version_publish(version=version, acting_user=request.user)
            except services.PolicyError as exc:
                problem = str(exc)
            else:
                self.message_user(
                    request,
                    ngettext(
                        "Published %(version)s. %(count)s person is being told by email.",
                        "Published %(version)s. %(count)s people are being told by email.",
                        result.notifications,
                    )
                    % {"version": result.version, "count": result.notifications},
                    messages.SUCCESS,
                )
                return redirect(change_url)
        previous = selectors.published(version.policy).first()
        blocks = text.diff(previous.body, version.body) if previous else []
        language = translation.get_language() or "en"
        sample = notices.Notice(
            item=notices.notice_item(
                version_id=version.pk, email="customer@example.com", language=language,
                subject_id=request.user.subject_id, user_id=None,
            ),
            version=version,
        )  # fmt: skip
        sample.item.pk = 0
        version.number = version.number or ((previous.number if previous else 0) + 1)
        preview = emails.policy_update(sample)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Publish %(version)s") % {"version": version.policy},
            "version": version,
            "previous": previous,
            "blocks": blocks,
            "counts": text.counts(blocks),
            "problem": problem,
            "recipients": services.recipients_count(version=version) if previous else 0,
            "preview": preview,
            "preview_html": dict(preview.alternatives).get("text/html", ""),
            "opts": self.model._meta,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/policies/policyversion/publish.html", context)

    def delivery_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._version(request, pk)
        return TemplateResponse(
            request, "admin/policies/policyversion/_delivery.html", {"delivery": delivery(version)}
        )

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._version(request, pk)
        count = services.notifications_retry_failed(version=version, acting_user=request.user)
        self.message_user(
            request,
            ngettext(
                "%(count)s failed email will be tried again.",
                "%(count)s failed emails will be tried again.",
                count,
            )
            % {"count": count},
        )
        return redirect(reverse("admin:policies_policyversion_change", args=[version.pk]))
