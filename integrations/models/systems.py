"""The company's connected systems, and the tasks that rights requests give
them (integrations.systems).

A connected system is one of the company's other places where personal data
lives (the shop, a CRM, an email platform), with the data categories it holds
and the kinds of request it handles. A rights request that concerns it becomes
one SystemTask: sent by webhook to a system with an endpoint (the system
answers through the API with its own key), or left in the admin for a person
to carry out and record when the system has none."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

__all__ = ["ConnectedSystem", "SystemTask", "TaskKind", "TaskStatus"]


class TaskKind(models.TextChoices):
    """The kinds of request a system handles, named as the system reads them
    (a rights request of kind "access" is a "copy" to the system)."""

    COPY = "copy", _("Copy of the person's data")
    ERASURE = "erasure", _("Erasure")
    OBJECTION = "objection", _("Objection to a use")
    RESTRICTION = "restriction", _("Restriction of a use")


class ConnectedSystem(models.Model):
    name = models.CharField(_("name"), max_length=100)
    key = models.SlugField(
        _("key"), max_length=50, unique=True, help_text=_("How webhooks and the API name it.")
    )
    description = models.TextField(_("description"), blank=True)
    contact_email = models.EmailField(
        _("contact email"), blank=True, help_text=_("Who at the company looks after it.")
    )
    data_categories = models.ManyToManyField(
        "consents.DataCategory",
        blank=True,
        related_name="connected_systems",
        verbose_name=_("data categories it holds"),
    )
    webhook_endpoint = models.ForeignKey(
        "integrations.WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="connected_systems",
        verbose_name=_("webhook endpoint"),
        help_text=_(
            "Where its tasks are sent. Without one, its tasks wait in the admin for a "
            "person to carry out and record."
        ),
    )
    api_key = models.ForeignKey(
        "integrations.ApiKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="connected_systems",
        verbose_name=_("API key it answers with"),
        help_text=_("The key (with the scope rights:handle) whose calls speak for this system."),
    )
    # TaskKind values.
    kinds = models.JSONField(_("kinds of request it handles"), default=list)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("connected system")
        verbose_name_plural = _("connected systems")
        ordering = ["name", "pk"]
        constraints = [
            # A key speaks for one system: the API finds the system by its key.
            models.UniqueConstraint(
                fields=["api_key"],
                condition=Q(api_key__isnull=False),
                name="system_one_per_api_key",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_manual(self) -> bool:
        return self.webhook_endpoint_id is None

    def kind_labels(self) -> list[str]:
        labels = dict(TaskKind.choices)
        return [str(labels.get(kind, kind)) for kind in self.kinds]


class TaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    # Its own context: a task (pt-BR "tarefa") is feminine, a request's status is not.
    CANCELLED = "cancelled", pgettext_lazy("system task status", "Cancelled")


# Not yet confirmed: the request waits for these (a failure too, until the
# system or a person records what was done after all).
WAITING_STATUSES = [TaskStatus.OPEN, TaskStatus.ACKNOWLEDGED, TaskStatus.FAILED]
FINAL_STATUSES = [TaskStatus.COMPLETED, TaskStatus.CANCELLED]


class SystemTask(models.Model):
    """What one system must do for one rights request. Its deadline is the
    request's. Changed only through integrations.systems."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    request = models.ForeignKey(
        "rights.RightsRequest",
        on_delete=models.CASCADE,
        related_name="system_tasks",
        verbose_name=_("rights request"),
    )
    system = models.ForeignKey(
        ConnectedSystem, on_delete=models.PROTECT, related_name="tasks", verbose_name=_("system")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=TaskKind.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    # For a person doing a manual task: the addresses the person is known by
    # (for an erasure, gone from the portal by then). Cleared when the task ends.
    person_emails = models.TextField(_("the person's addresses"), blank=True)
    done = models.TextField(_("what was done"), blank=True)
    # What the system holds about the person, for their copy (kind "copy").
    data = models.JSONField(_("data returned"), default=dict, blank=True)
    failure = models.TextField(_("reason for the failure"), blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("recorded by (staff)"),
    )
    completed_by_key = models.ForeignKey(
        "integrations.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("recorded by (API key)"),
    )

    class Meta:
        verbose_name = _("system task")
        verbose_name_plural = _("system tasks")
        constraints = [
            models.UniqueConstraint(fields=["request", "system"], name="system_task_once"),
            models.CheckConstraint(
                condition=~Q(status=TaskStatus.COMPLETED) | Q(completed_at__isnull=False),
                name="system_task_completed_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=TaskStatus.FAILED) | ~Q(failure=""),
                name="system_task_failure_has_reason",
            ),
        ]
        indexes = [
            # The API's list: one system's tasks still waiting.
            models.Index(
                fields=["system", "created_at"],
                name="system_task_waiting_idx",
                condition=Q(status__in=WAITING_STATUSES),
            ),
            # The staff list of tasks still waiting, oldest first.
            models.Index(
                fields=["created_at"],
                name="system_task_open_idx",
                condition=Q(status__in=WAITING_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.system} · {self.get_kind_display()} ({self.get_status_display()})"

    @property
    def is_waiting(self) -> bool:
        return self.status in WAITING_STATUSES
