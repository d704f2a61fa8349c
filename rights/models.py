"""Data-subject requests, and what the rights app keeps about them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consents.models import Purpose


class Kind(models.TextChoices):
    ACCESS = "access", _("A copy of my data (access)")
    ERASURE = "erasure", _("Erase my data")
    OBJECTION = "objection", _("Object to a use of my data")
    RESTRICTION = "restriction", _("Restrict a use of my data")
    RECTIFICATION = "rectification", _("Correct my data")


# Kinds that name the purposes they concern, and take effect at once for them.
KINDS_WITH_PURPOSES = {Kind.OBJECTION, Kind.RESTRICTION}


class Jurisdiction(models.TextChoices):
    LGPD = "lgpd", _("Brazil (LGPD)")
    GDPR = "gdpr", _("European Union (GDPR)")


class Status(models.TextChoices):
    RECEIVED = "received", _("Received")
    IN_PROGRESS = "in_progress", _("In progress")
    EXTENDED = "extended", _("Extended")
    DONE = "done", _("Done")
    REFUSED = "refused", _("Refused")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_STATUSES = [Status.RECEIVED, Status.IN_PROGRESS, Status.EXTENDED]
CLOSED_STATUSES = [Status.DONE, Status.REFUSED, Status.CANCELLED]


class Channel(models.TextChoices):
    PORTAL = "portal", _("Control panel")
    LETTER = "letter", _("Letter")
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    # An account deleted by staff in the admin: erased at once, by rights.services.
    ADMIN = "admin", _("Account deleted in the admin")


class IdentityCheck(models.TextChoices):
    """How staff made sure that a request received outside the portal comes
    from the person it names (a logged-in person needs none)."""

    LETTER = "letter", _("By letter")
    PHONE = "phone", _("By phone")
    EMAIL = "email", _("By email")
    IN_PERSON = "in_person", _("In person")


class RightsRequest(models.Model):
    """One request of a person about their data (GDPR Art. 15-21, LGPD Art. 18).

    It names the person by the ledger's opaque subject id, as consents do; the
    account (when there is one) and an address to answer to (newsletter-only
    people) sit beside it. The deadline is computed once by the services from
    received_at and the jurisdiction (rights.deadlines) and moves only with an
    extension. Changed only through rights.services."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject_id = models.UUIDField(
        _("subject id"), help_text=_("Opaque id of the person; never an email or name.")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rights_requests",
        verbose_name=_("account"),
    )
    email = models.EmailField(
        _("email address"), blank=True, help_text=_("Where we answer when there is no account.")
    )
    language = models.CharField(_("language"), max_length=10, default="en")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    jurisdiction = models.CharField(_("jurisdiction"), max_length=8, choices=Jurisdiction.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.RECEIVED
    )
    received_at = models.DateTimeField(_("received at"))
    due_at = models.DateTimeField(_("due by"))
    details = models.TextField(_("details"), blank=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    identity_check = models.CharField(
        _("identity checked"), max_length=10, choices=IdentityCheck.choices, blank=True
    )
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("entered by"),
    )
    purposes = models.ManyToManyField(
        Purpose, blank=True, related_name="rights_requests", verbose_name=_("purposes affected")
    )
    extended_at = models.DateTimeField(_("extended at"), null=True, blank=True)
    extension_reason = models.TextField(_("reason for the extension"), blank=True)
    refusal_reason = models.TextField(_("reason for the refusal"), blank=True)
    answer = models.TextField(_("answer"), blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("closed by"),
    )
    # An erasure waits for its grace period to end (the person can cancel until
    # then); the beat task erases once this has passed (rights.erasure).
    erase_after = models.DateTimeField(_("erased after"), null=True, blank=True)
    # When the person's data was erased: the row stays as proof, with nothing
    # personal left in it, until the retention task deletes it.
    erased_at = models.DateTimeField(_("erased at"), null=True, blank=True)

    class Meta:
        verbose_name = _("rights request")
        verbose_name_plural = _("rights requests")
        constraints = [
            models.CheckConstraint(
                condition=Q(entered_by__isnull=True) | ~Q(identity_check=""),
                name="rights_staff_entry_checks_identity",
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.REFUSED) | ~Q(refusal_reason=""),
                name="rights_refusal_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(extended_at__isnull=True) | ~Q(extension_reason=""),
                name="rights_extension_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(status__in=OPEN_STATUSES, closed_at__isnull=True)
                | Q(status__in=CLOSED_STATUSES, closed_at__isnull=False),
                name="rights_closed_when_final",
            ),
            models.CheckConstraint(
                condition=Q(due_at__gt=models.F("received_at")), name="rights_due_after_received"
            ),
            models.CheckConstraint(
                condition=Q(kind=Kind.ERASURE)
                | Q(erase_after__isnull=True, erased_at__isnull=True),
                name="rights_erasure_fields_for_erasures",
            ),
        ]
        indexes = [
            # The staff queue and the DPO's daily list: open requests by due date.
            models.Index(
                fields=["due_at"],
                name="rights_open_due_idx",
                condition=Q(status__in=OPEN_STATUSES),
            ),
            # "Your requests" in the panel, and processing_allowed: one person's requests.
            models.Index(fields=["subject_id", "-received_at"], name="rights_subject_idx"),
            # The hourly erasure task: open erasures whose grace period has ended.
            models.Index(
                fields=["erase_after"],
                name="rights_erasure_due_idx",
                condition=Q(kind=Kind.ERASURE, status__in=OPEN_STATUSES),
            ),
            # The retention of finished requests: closed ones by age.
            models.Index(
                fields=["closed_at"],
                name="rights_closed_idx",
                condition=Q(status__in=CLOSED_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_pending_erasure(self) -> bool:
        """An erasure in its grace period: the person can still cancel it."""
        return (
            self.kind == Kind.ERASURE
            and self.is_open
            and self.erase_after is not None
            and self.erased_at is None
        )


class LimitLifted(models.Model):
    """An objection or a restriction that stopped having effect: refused or
    withdrawn, or a restriction answered (an objection upheld keeps having
    effect). The audience's changes feed follows these rows by id, as it
    follows the ledger's events and the requests themselves, so that a system
    in step takes the person back in (integrations.api.selectors.audience_changes).
    Written by rights.services only, under the lock a decision takes."""

    request = models.ForeignKey(RightsRequest, on_delete=models.CASCADE, related_name="+")
    lifted_at = models.DateTimeField()

    class Meta:
        verbose_name = _("objection or restriction lifted")
        verbose_name_plural = _("objections and restrictions lifted")

    def __str__(self) -> str:
        return f"{self.request} lifted {self.lifted_at:%Y-%m-%d}"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting to be prepared")
    BUILDING = "building", _("Being prepared")
    READY = "ready", _("Ready to download")
    FAILED = "failed", _("Could not be prepared")
    EXPIRED = "expired", _("Expired and deleted")


# A copy still on its way: one at a time per person.
OPEN_EXPORT_STATUSES = [ExportStatus.QUEUED, ExportStatus.BUILDING]


class DataExport(models.Model):
    """A copy of everything the portal holds about one person (GDPR Art. 15
    and 20, LGPD Art. 18 II and V): a ZIP built by a worker through the outbox
    (rights/exports.py), kept under RIGHTS_EXPORT_ROOT for RIGHTS_EXPORT_DAYS,
    then deleted by the retention task, the row staying as `expired`. It
    answers the person's access request. Changed only through rights.exports."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject_id = models.UUIDField(
        _("subject id"), help_text=_("Opaque id of the person; never an email or name.")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="data_exports",
        verbose_name=_("account"),
    )
    request = models.ForeignKey(
        RightsRequest,
        on_delete=models.CASCADE,
        related_name="exports",
        verbose_name=_("access request"),
    )
    language = models.CharField(_("language"), max_length=10, default="en")
    status = models.CharField(
        _("status"), max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    # 0-100, and the part being written, for the person's progress bar.
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    step = models.CharField(_("step"), max_length=40, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # For staff (the person reads a plain sentence); never personal data.
    last_error = models.TextField(_("last error"), blank=True)
    # The ZIP's name under RIGHTS_EXPORT_ROOT, while it exists.
    file_name = models.CharField(_("file"), max_length=100, blank=True)
    size = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("asked at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ready_at = models.DateTimeField(_("ready at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    downloaded_at = models.DateTimeField(_("last downloaded at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("failed or expired at"), null=True, blank=True)

    class Meta:
        verbose_name = _("copy of a person's data")
        verbose_name_plural = _("copies of people's data")
        constraints = [
            models.UniqueConstraint(
                fields=["subject_id"],
                condition=Q(status__in=OPEN_EXPORT_STATUSES),
                name="rights_one_open_export",
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="rights_export_progress_range"
            ),
            models.CheckConstraint(
                condition=~Q(status=ExportStatus.READY)
                | (
                    Q(ready_at__isnull=False, expires_at__isnull=False, size__isnull=False)
                    & ~Q(sha256="")
                    & ~Q(file_name="")
                ),
                name="rights_export_ready_has_file",
            ),
        ]
        indexes = [
            # "Your requests": one person's copies, newest first.
            models.Index(fields=["subject_id", "-created_at"], name="rights_export_subject_idx"),
            # The retention task: ready copies past their date.
            models.Index(
                fields=["expires_at"],
                name="rights_export_ready_idx",
                condition=Q(status=ExportStatus.READY),
            ),
        ]

    def __str__(self) -> str:
        return f"copy {self.uuid} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_EXPORT_STATUSES


# The staff audit trail -----------------------------------------------------------------


class AuditAction(models.TextChoices):
    """What a staff member did. Reads first (a look at one person's data),
    then writes (each made by a service, in the same transaction)."""

    # Reads of one person's data.
    VIEW_REQUEST = "view_request", _("Opened a rights request")
    VIEW_ACCOUNT = "view_account", _("Opened a person's account")
    VIEW_ACCOUNT_RECORD = "view_account_record", _("Opened a record of a person's account")
    VIEW_EMAIL = "view_email", _("Opened an email sent to a person")
    VIEW_DATA = "view_data", _("Viewed a person's data")
    DOWNLOAD_DATA = "download_data", _("Downloaded a person's data")
    VIEW_WEBHOOK = "view_webhook", _("Opened a message about a person sent to another system")
    # Rights requests.
    REQUEST_ENTER = "request_enter", _("Entered a request on a person's behalf")
    REQUEST_START = "request_start", _("Started a request")
    REQUEST_EXTEND = "request_extend", _("Extended a request's deadline")
    REQUEST_REFUSE = "request_refuse", _("Refused a request")
    REQUEST_COMPLETE = "request_complete", _("Completed a request")
    ERASURE_CARRY_OUT = "erasure_carry_out", _("Erased a person's data")
    # Accounts.
    ACCOUNT_CREATE = "account_create", _("Created an account")
    ACCOUNT_CHANGE = "account_change", _("Changed an account")
    ACCOUNT_PASSWORD = "account_password", _("Set an account's password")
    # The inventory and the notices.
    CATEGORY_SAVE = "category_save", _("Saved a data category")
    CATEGORY_DELETE = "category_delete", _("Deleted a data category")
    PURPOSE_CREATE = "purpose_create", _("Created a purpose")
    PURPOSE_UPDATE = "purpose_update", _("Edited a purpose and its notice")
    PURPOSE_RETIRE = "purpose_retire", _("Retired a purpose")
    PURPOSE_DELETE = "purpose_delete", _("Deleted a purpose")
    # Policies.
    POLICY_SAVE = "policy_save", _("Saved a policy")
    POLICY_DELETE = "policy_delete", _("Deleted a policy")
    POLICY_DRAFT_SAVE = "policy_draft_save", _("Saved a policy draft")
    POLICY_DRAFT_DELETE = "policy_draft_delete", _("Deleted a policy draft")
    POLICY_PUBLISH = "policy_publish", _("Published a policy version")
    # Outgoing work.
    OUTBOX_RETRY = "outbox_retry", _("Retried failed deliveries")
    # The auditor's evidence (insight/evidence.py).
    EVIDENCE_REQUEST = "evidence_request", _("Asked for an auditor's evidence export")
    EVIDENCE_DOWNLOAD = "evidence_download", _("Downloaded an auditor's evidence export")
    # Aggregate figures released with differential privacy.
    PRIVACY_BUDGET_SET = "privacy_budget_set", _("Set a month's privacy budget")
    FIGURES_RELEASE = "figures_release", _("Released figures with differential privacy")
    # Integrations.
    API_KEY_CREATE = "api_key_create", _("Created an API key")
    API_KEY_REVOKE = "api_key_revoke", _("Revoked an API key")
    # Webhooks (integrations.webhooks).
    WEBHOOK_ENDPOINT_SAVE = "webhook_endpoint_save", _("Saved a webhook endpoint")
    WEBHOOK_SECRET_ROTATE = "webhook_secret_rotate", _("Rotated a webhook endpoint's secret")
    WEBHOOK_ENDPOINT_ENABLE = "webhook_endpoint_enable", _("Re-enabled a webhook endpoint")
    WEBHOOK_REPLAY = "webhook_replay", _("Replayed a webhook delivery")
    # Connected systems (integrations.systems).
    SYSTEM_SAVE = "system_save", _("Saved a connected system")
    SYSTEM_TASK_COMPLETE = "system_task_complete", _("Recorded what a system did for a request")
    SYSTEM_TASK_FAIL = "system_task_fail", _("Reported that a system could not do a request")


READ_ACTIONS = [
    AuditAction.VIEW_REQUEST,
    AuditAction.VIEW_ACCOUNT,
    AuditAction.VIEW_ACCOUNT_RECORD,
    AuditAction.VIEW_EMAIL,
    AuditAction.VIEW_DATA,
    AuditAction.DOWNLOAD_DATA,
    AuditAction.VIEW_WEBHOOK,
]


class AuditEntry(models.Model):
    """One thing a staff member did: looked at one person's data, or changed
    something. Written by rights.audit only (reads: before the page is shown;
    writes: by the service, in its transaction). Append-only: the database
    refuses UPDATE, and DELETE of anything but rows past AUDIT_KEPT_DAYS that
    the retention task removes (migration 0004_audit says how).

    Rows outlive what they mention, and the database would have to UPDATE
    them (SET_NULL) or refuse the deletion (PROTECT) otherwise, neither of
    which an append-only table may do. So the staff member is a reference
    without a database constraint beside a snapshot of their name and address
    (what the company discloses), and the request a snapshot of its uuid and
    kind; a deleted account or a purged request leaves the row meaningful."""

    at = models.DateTimeField(_("when"), default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("staff member"),
    )
    actor_email = models.EmailField(_("staff member's email"))
    actor_name = models.CharField(_("staff member's name"), max_length=300, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    subject_id = models.UUIDField(
        _("person (subject id)"),
        null=True,
        blank=True,
        help_text=_("Opaque id of the person concerned; never an email or name."),
    )
    request_uuid = models.UUIDField(_("rights request"), null=True, blank=True)
    request_kind = models.CharField(
        _("kind of request"), max_length=16, choices=Kind.choices, blank=True
    )
    reason = models.TextField(_("reason"), blank=True)
    target = models.CharField(
        _("object"), max_length=200, blank=True, help_text=_("What was changed or opened.")
    )
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("staff audit trail")
        constraints = [
            # A look at one person's data always says why: the request it
            # served, or a reason the staff member gave. (A write says it too
            # when it has one: the request decided, the reason of the look.)
            models.CheckConstraint(
                condition=~Q(action__in=READ_ACTIONS)
                | Q(subject_id__isnull=True)
                | Q(request_uuid__isnull=False)
                | ~Q(reason=""),
                name="audit_look_has_why",
            ),
        ]
        indexes = [
            # accesses() and the admin's filter by person: one person's rows by time.
            models.Index(
                fields=["subject_id", "at"],
                name="audit_subject_idx",
                condition=Q(subject_id__isnull=False),
            ),
            # The admin's list (newest first) and retention (rows before a cutoff).
            models.Index(fields=["at"], name="audit_at_idx"),
            # The admin's filter by staff member.
            models.Index(fields=["actor_email", "at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} · {self.actor_email}"


class AuditPurge(models.Model):
    """The cutoff the retention task states, inside its own transaction, before
    it deletes audit rows: the trigger lets a row go only when it is older than
    this and than the fixed floor (0004_audit). The task removes its row again
    before committing, so none is ever seen outside that transaction."""

    cutoff = models.DateTimeField()

    class Meta:
        verbose_name = _("audit purge cutoff")

    def __str__(self) -> str:
        return self.cutoff.isoformat()
