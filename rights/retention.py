"""Retention, enforced (GDPR Art. 5(1)(e), LGPD Art. 15 and 16).

Two kinds of rule, run by one daily beat task (rights.tasks.retention_enforce)
and by `manage.py enforce_retention`:

- Personal data (the fields declared to consents.personal_data, stored as
  PersonalDatum rows or in their app's own rows, as the shop's interests)
  is erased when no purpose that uses its data category still holds it for
  that person. A purpose holds a person's data:
    consent: while it is granted (a withdrawal erases at once, in
      consent_record through personal_data.erase_unneeded; the task finds
      anything left behind), and for at most `retention_days` after the
      person was last active;
    contract and legal obligation: while the account is open, then for
      `retention_days` after it closed;
    legitimate interest: for `retention_days` after the person was last
      active.
  Retired purposes hold nothing, as in personal_data.needed_categories.
  Data whose person has no account any more (deleted in the admin) falls
  under the contract rule as a closed account.
- Housekeeping: everything else that grows has a stated period (settings)
  and a rule here: sent and failed outbox rows, expired sessions, unconfirmed
  newsletter sign-ups, finished rights requests after their proof period
  (RIGHTS_REQUESTS_KEPT_DAYS). Apps with records of their own register theirs
  (`register`), and every registered rule is stated on the privacy page and
  in the record of processing: what is shown is what is enforced.

"Last active" is the latest of the last login, the date the account was
made, and the person's last consent decision (ConsentState.updated_at). An
account is closed from User.closed_at (set when the person closes it,
rights.services.account_close; cleared if they cancel): "contract: the period
after the account closes" counts from that date. An account made inactive by
staff without a closure date counts from its last activity, the latest moment
we know it was still in use (which can only start the clock early).

Every rule works in batches of RETENTION_BATCH rows, one short transaction
each (only the rows being deleted are locked), walks the table once in
primary-key order, keeps memory flat, and re-checks its condition in the
DELETE itself, so a person who logs in or grants a purpose between the read
and the delete keeps their data. Running it twice deletes nothing the second
time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection, models, transaction
from django.db.models import Case, Exists, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from consents import personal_data
from consents.models import (
    ConsentState,
    Decision,
    LegalBasis,
    NewsletterSignup,
    PersonalDatum,
    Purpose,
)
from portal.models import OutboxItem
from rights import audit

logger = logging.getLogger(__name__)


# Personal data, by purpose ----------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Where one field of personal data is kept: its rows and its category."""

    key: str  # the DataField key
    category: str  # DataCategory.key
    model: type[models.Model]
    rows: Q


def data_stores() -> list[Store]:
    """Every field that personal_data keeps in rows of its own. Fields on the
    account itself (email, name) go with the account, which the rights app's
    erasure removes."""
    stores = []
    for data_field in personal_data.fields():
        if data_field.store == "datum":
            stores.append(
                Store(data_field.key, data_field.category, PersonalDatum, Q(field=data_field.key))
            )
        elif data_field.rows is not None:
            stores.append(Store(data_field.key, data_field.category, data_field.rows.model, Q()))
    return stores


# Each row's facts are scalar subqueries on the person's id, never EXISTS: in an
# OR, PostgreSQL may turn an EXISTS into a hashed subplan that reads the whole
# user or state table for every batch (the benchmark found one costing 120 ms a
# batch); a scalar subquery is one index lookup per row. None is ever NULL, so
# that NOT(held) is plain true or false on SQLite and PostgreSQL alike.
_EPOCH = Value(datetime(1970, 1, 1, tzinfo=UTC), output_field=models.DateTimeField())
_NO_ACCOUNT, _CLOSED, _OPEN = 0, 1, 2


def _facts(rows: models.QuerySet, purposes: list[Purpose]) -> models.QuerySet:
    """Alias on each row: `last_active` (see the module's docstring), `account`
    (none, closed, open) and `decision_<purpose id>` for consent purposes."""
    users = get_user_model().objects.filter(subject_id=OuterRef("subject_id"))
    last_login = users.values(t=Greatest(Coalesce("last_login", "date_joined"), "date_joined"))
    last_decision = (
        ConsentState.objects.filter(subject_id=OuterRef("subject_id"))
        .order_by("-updated_at")
        .values("updated_at")
    )
    account = users.values(
        s=Case(
            When(is_active=True, closed_at__isnull=True, then=Value(_OPEN)),
            default=Value(_CLOSED),
        )
    )
    closed_at = users.values("closed_at")
    last_active = Greatest(
        Coalesce(Subquery(last_login[:1]), _EPOCH),
        Coalesce(Subquery(last_decision[:1]), _EPOCH),
    )
    aliases = {
        "last_active": last_active,
        "account": Coalesce(Subquery(account[:1]), Value(_NO_ACCOUNT)),
        # When a closed account closed: its closure date, or (an account made
        # inactive by staff, which has none) the last moment it was in use.
        "closed_since": Coalesce(Subquery(closed_at[:1]), last_active),
    }
    for purpose in purposes:
        if purpose.legal_basis == LegalBasis.CONSENT:
            decision = ConsentState.objects.filter(
                subject_id=OuterRef("subject_id"), purpose=purpose
            ).values("decision")
            aliases[f"decision_{purpose.pk}"] = Coalesce(Subquery(decision[:1]), Value(""))
    return rows.alias(**aliases)


def _holds(purpose: Purpose, now: datetime) -> Q:
    """Rows (aliased by _facts) that this purpose still holds."""
    recent = Q(last_active__gte=now - timedelta(days=purpose.retention_days))
    if purpose.legal_basis == LegalBasis.CONSENT:
        return Q(**{f"decision_{purpose.pk}": Decision.GRANTED}) & recent
    if purpose.legal_basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        since_closure = Q(closed_since__gte=now - timedelta(days=purpose.retention_days))
        return Q(account=_OPEN) | (Q(account=_CLOSED) & since_closure)
    return recent  # legitimate interest


def expired_rows(store: Store, *, now: datetime) -> models.QuerySet:
    """Rows of a store that no purpose using its category holds any more."""
    purposes = list(
        Purpose.objects.filter(data_categories__key=store.category, retired_at__isnull=True)
    )
    rows = store.model.objects.filter(store.rows)
    if not purposes:
        return rows
    held = Q()
    for purpose in purposes:
        held |= _holds(purpose, now)
    return _facts(rows, purposes).filter(~held)


def purpose_rule(purpose: Purpose) -> str:
    """How long this purpose keeps data, as enforced: the sentence the privacy
    page and the record of processing print."""
    days = purpose.retention_days
    if purpose.legal_basis == LegalBasis.CONSENT:
        return ngettext(
            "Until you withdraw, and at most %(days)s day after you were last active",
            "Until you withdraw, and at most %(days)s days after you were last active",
            days,
        ) % {"days": days}
    if purpose.legal_basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        return ngettext(
            "While your account is open, then %(days)s day after it closes",
            "While your account is open, then %(days)s days after it closes",
            days,
        ) % {"days": days}
    return ngettext(
        "%(days)s day after you were last active, unless you object sooner",
        "%(days)s days after you were last active, unless you object sooner",
        days,
    ) % {"days": days}


# Housekeeping ------------------------------------------------------------------------


@dataclass(frozen=True)
class Housekeeping:
    """A kind of record that grows, with its stated period and its enforcement.

    `expired(now)` is a queryset of the rows past their period; it is
    evaluated again inside each batch's DELETE. `period()` reads the setting
    each time, so that the pages and the task always agree with it."""

    key: str
    label: Promise  # "Sent emails"
    statement: Promise  # "kept %(days)s days, then deleted" (days: the period's)
    period: Callable[[], timedelta]
    expired: Callable[[datetime], models.QuerySet]
    # What is done with a batch of expired rows (a queryset, in the batch's
    # transaction, with `now`), returning how many: by default they are
    # deleted. A record whose row must stay (a copy of someone's data: its
    # file goes, the row says "expired") or that goes only with the cutoff
    # stated to its trigger (the audit trail) does its own.
    apply: Callable[[models.QuerySet, datetime], int] | None = None

    def stated(self) -> str:
        days = self.period().days
        return f"{self.label}: {self.statement % {'days': days}}"


_housekeeping: dict[str, Housekeeping] = {}


def register(rule: Housekeeping) -> None:
    """Add a housekeeping rule; from the owning app's AppConfig.ready().

    Every record that grows joins the task, the privacy page and the record
    of processing at once this way (finished requests, copies of a person's
    data, the staff audit trail)."""
    _housekeeping[rule.key] = rule


def housekeeping_rules() -> list[Housekeeping]:
    return list(_housekeeping.values())


def stated_periods() -> list[str]:
    """ "Sent emails: kept 90 days, then deleted", for every enforced rule."""
    return [rule.stated() for rule in housekeeping_rules()]


def _outbox_sent(now: datetime) -> models.QuerySet:
    return OutboxItem.objects.filter(
        status=OutboxItem.Status.SENT, sent_at__lt=now - settings.OUTBOX_SENT_KEPT
    )


def _outbox_failed(now: datetime) -> models.QuerySet:
    return OutboxItem.objects.filter(
        status=OutboxItem.Status.FAILED, created_at__lt=now - settings.OUTBOX_FAILED_KEPT
    )


def _sessions(now: datetime) -> models.QuerySet:
    return Session.objects.filter(expire_date__lt=now)


def _user_sessions(now: datetime) -> models.QuerySet:
    """allauth's list of a person's sessions: rows whose session is gone
    (expired and deleted, or ended). Only the database session engine can be
    asked in SQL; another engine's rows are left to allauth's own purge."""
    from allauth.usersessions.models import UserSession

    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return UserSession.objects.none()
    live = Session.objects.filter(session_key=OuterRef("session_key"), expire_date__gte=now)
    return UserSession.objects.exclude(Exists(live))


def _newsletter_unconfirmed(now: datetime) -> models.QuerySet:
    return NewsletterSignup.objects.filter(
        status=NewsletterSignup.Status.PENDING,
        created_at__lt=now - timedelta(days=NewsletterSignup.CONFIRMATION_DAYS),
    )


def _requests_finished(now: datetime) -> models.QuerySet:
    from rights.models import CLOSED_STATUSES, RightsRequest

    return RightsRequest.objects.filter(
        status__in=CLOSED_STATUSES,
        closed_at__lt=now - timedelta(days=settings.RIGHTS_REQUESTS_KEPT_DAYS),
    )


def _session_age() -> timedelta:
    return timedelta(seconds=settings.SESSION_COOKIE_AGE)


for _rule in (
    Housekeeping(
        "outbox-sent",
        _("Sent emails"),
        _("kept %(days)s days, then deleted"),
        lambda: settings.OUTBOX_SENT_KEPT,
        _outbox_sent,
    ),
    Housekeeping(
        "outbox-failed",
        _("Emails that could not be delivered"),
        _("kept %(days)s days, then deleted"),
        lambda: settings.OUTBOX_FAILED_KEPT,
        _outbox_failed,
    ),
    Housekeeping(
        "sessions",
        _("Login sessions"),
        _("deleted once they expire (after %(days)s days)"),
        _session_age,
        _sessions,
    ),
    Housekeeping(
        "user-sessions",
        _("The list of your sessions"),
        _("an entry is deleted when its session ends or expires (after %(days)s days)"),
        _session_age,
        _user_sessions,
    ),
    Housekeeping(
        "audit-trail",
        audit.LABEL,
        audit.STATEMENT,
        audit.kept,
        audit.expired,
        apply=audit.purge,
    ),
    Housekeeping(
        "newsletter-unconfirmed",
        _("Unconfirmed newsletter sign-ups"),
        _("deleted after %(days)s days"),
        lambda: timedelta(days=NewsletterSignup.CONFIRMATION_DAYS),
        _newsletter_unconfirmed,
    ),
    Housekeeping(
        "rights-requests-finished",
        _("Answered, refused and cancelled rights requests (proof that we answered)"),
        _("kept %(days)s days after they are closed, then deleted"),
        lambda: timedelta(days=settings.RIGHTS_REQUESTS_KEPT_DAYS),
        _requests_finished,
    ),
):
    register(_rule)


def _exports_expired(now: datetime) -> models.QuerySet:
    from rights.exports import expired_exports

    return expired_exports(now)


def _exports_expire(rows: models.QuerySet, now: datetime) -> int:
    from rights.exports import expire_batch

    return expire_batch(rows, now=now)


# A copy of a person's data (rights/exports.py): the ZIP is deleted when its
# download link stops working; the row stays, marked expired.
register(
    Housekeeping(
        "data-exports",
        _("Copies of your data that you asked for"),
        _("deleted %(days)s days after they are ready"),
        lambda: timedelta(days=settings.RIGHTS_EXPORT_DAYS),
        _exports_expired,
        apply=_exports_expire,
    )
)


# Enforcement --------------------------------------------------------------------------


def _no_jit() -> None:
    """PostgreSQL compiles a query whose estimated cost is high (a batch's
    is: the planner cannot know that it stops after `batch` rows) to machine
    code first, about 35 ms each time here, for a query that then runs in a
    few. Off for this transaction only."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _batches(
    expired: models.QuerySet,
    *,
    batch: int,
    dry_run: bool,
    apply: Callable[[models.QuerySet, datetime], int] | None = None,
    now: datetime | None = None,
) -> Iterator[int]:
    """Delete `expired` (or `apply` to it) in primary-key order, `batch` rows a
    transaction; yield each batch's count. The condition is evaluated again in
    the DELETE, so a row that stopped being expired meanwhile stays."""
    after = None
    while True:
        window = expired.order_by("pk")
        if after is not None:
            window = window.filter(pk__gt=after)
        with transaction.atomic():
            _no_jit()
            keys = list(window.values_list("pk", flat=True)[:batch])
            if not keys:
                return
            if dry_run:
                count = len(keys)
            elif apply is not None:
                count = apply(expired.filter(pk__gte=keys[0], pk__lte=keys[-1]), now)
            else:
                count, _details = expired.filter(pk__gte=keys[0], pk__lte=keys[-1]).delete()
                # A deletion can cascade (a session's rows elsewhere): count this table's.
                count = _details.get(expired.model._meta.label, 0)
        after = keys[-1]
        yield count


@dataclass
class RetentionReport:
    """Rows erased (or, in a dry run, that would be) per rule."""

    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def retention_enforce(
    *, now: datetime | None = None, batch: int | None = None, dry_run: bool = False
) -> RetentionReport:
    """Apply every retention rule once: personal data by purpose, then every
    housekeeping rule. Safe to run at any time and as often as wanted."""
    now = now or timezone.now()
    batch = batch or settings.RETENTION_BATCH
    report = RetentionReport(dry_run=dry_run)
    for store in data_stores():
        report.counts[f"data:{store.key}"] = sum(
            _batches(expired_rows(store, now=now), batch=batch, dry_run=dry_run)
        )
    for rule in housekeeping_rules():
        report.counts[rule.key] = sum(
            _batches(rule.expired(now), batch=batch, dry_run=dry_run, apply=rule.apply, now=now)
        )
    verb = "would erase" if dry_run else "erased"
    logger.info(
        "retention %s %d rows: %s",
        verb,
        report.total,
        ", ".join(f"{key}={count}" for key, count in report.counts.items()),
    )
    return report
