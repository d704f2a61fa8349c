"""The privacy analysts' group, the privacy budget and differential-privacy
releases, and the auditor's evidence export (asking for one and downloading
it; insight/evidence.py builds it): every write here, each staff one with its
audit row."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from insight import privacy, selectors
from insight.models import EvidenceExport, Period, PrivacyBudget, Release

ANALYSTS = "Privacy analysts"
ANALYST_PERMISSIONS = ["view_figures", "release_figures"]
EPSILON_MAX = Decimal(100)
EPSILON_STEP = Decimal("0.01")
# Event-level (pseudonymous) data: not for the analysts, who see counts only.
EVIDENCE_PERMISSION = "insight.export_evidence"


class EvidenceError(ValueError):
    """The export cannot be asked for as it stands; the message is for staff."""


def analyst_group_ensure() -> Group:
    """The group whose members see the dashboard and its exports and make
    differential-privacy releases, and hold no other permission: no admin list
    that names a person opens to them. Made by migrations 0001 and 0002; this
    makes it again if it was deleted, and takes back any permission added to
    it since."""
    group, _created = Group.objects.get_or_create(name=ANALYSTS)
    permissions = Permission.objects.filter(
        content_type__app_label="insight", codename__in=ANALYST_PERMISSIONS
    )
    group.permissions.set(permissions)
    return group


MAX_EVIDENCE_DAYS = 3660  # ten years in one export at most


def evidence_request(*, acting_user, date_from: date, date_to: date) -> EvidenceExport:
    """A staff member asks for the auditor's evidence of [date_from, date_to]
    (days in the portal's time zone, both included). One transaction: the
    export, its audit row and its outbox row; a worker builds it."""
    from insight import evidence
    from portal import outbox
    from rights import audit
    from rights.models import AuditAction

    if not (acting_user and acting_user.is_active and acting_user.has_perm(EVIDENCE_PERMISSION)):
        raise EvidenceError(_("You may not ask for the auditor's evidence."))
    if date_from > date_to:
        raise EvidenceError(_("The first day must come before the last one."))
    if (date_to - date_from).days >= MAX_EVIDENCE_DAYS:
        raise EvidenceError(
            _("Ask for at most %(days)s days at a time.") % {"days": MAX_EVIDENCE_DAYS}
        )
    if date_from > timezone.localdate():
        raise EvidenceError(_("The range starts in the future: there is nothing to export yet."))
    with transaction.atomic():
        export = EvidenceExport.objects.create(
            date_from=date_from,
            date_to=date_to,
            requested_by=acting_user,
            requested_by_email=acting_user.email,
            language=getattr(acting_user, "language", "") or settings.LANGUAGE_CODE,
        )
        audit.record(
            acting_user=acting_user,
            action=AuditAction.EVIDENCE_REQUEST,
            target=audit.target_of(export),
            details={"from": date_from.isoformat(), "to": date_to.isoformat()},
        )
        outbox.outbox_queue(
            kind=evidence.EVIDENCE_KIND,
            topic=evidence.EVIDENCE_KIND,
            payload={"evidence": str(export.uuid)},
            dedupe_key=str(export.uuid),
        )
    return export


def evidence_downloaded(*, export: EvidenceExport, acting_user) -> None:
    """A download, in the audit trail (written before the file is sent)."""
    from rights import audit
    from rights.models import AuditAction

    with transaction.atomic():
        EvidenceExport.objects.filter(pk=export.pk).update(downloaded_at=timezone.now())
        audit.record(
            acting_user=acting_user,
            action=AuditAction.EVIDENCE_DOWNLOAD,
            target=audit.target_of(export),
            details={
                "from": export.date_from.isoformat(),
                "to": export.date_to.isoformat(),
                "sha256": export.sha256,
                "events": export.events,
            },
        )


class PrivacyError(ValueError):
    """A budget or a release refused; its message is for staff, and nothing changed."""


def _epsilon(value, *, allow_zero: bool) -> Decimal:
    try:
        epsilon = Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise PrivacyError(_("Epsilon must be a number such as 0.5.")) from None
    low = Decimal(0) if allow_zero else EPSILON_STEP
    if not epsilon.is_finite() or not low <= epsilon <= EPSILON_MAX:
        raise PrivacyError(
            _("Epsilon must be between %(low)s and %(high)s.") % {"low": low, "high": EPSILON_MAX}
        )
    if epsilon != epsilon.quantize(EPSILON_STEP):
        raise PrivacyError(_("Epsilon takes at most two decimal places."))
    return epsilon.quantize(EPSILON_STEP)


def _spent(month: date) -> Decimal:
    spent = Release.objects.filter(budget_month=month).aggregate(n=Sum("epsilon"))["n"]
    return Decimal(spent or 0).quantize(EPSILON_STEP)


def _budget_locked(month: date) -> PrivacyBudget:
    """The month's row, written with the default on first use, and locked:
    releases of one month and changes to its budget take turns."""
    PrivacyBudget.objects.get_or_create(
        month=month, defaults={"epsilon": settings.INSIGHT_DP_EPSILON_PER_MONTH}
    )
    return PrivacyBudget.objects.select_for_update().get(month=month)


def privacy_budget_set(*, month: date, epsilon, acting_user) -> PrivacyBudget:
    """Set the epsilon the releases of `month` (any day of it) may add up to.
    Refused below what the month's releases already spent."""
    from rights import audit
    from rights.models import AuditAction

    month = month.replace(day=1)
    epsilon = _epsilon(epsilon, allow_zero=True)
    with transaction.atomic():
        budget = _budget_locked(month)
        spent = _spent(month)
        if epsilon < spent:
            raise PrivacyError(
                _(
                    "Releases of %(month)s already spent epsilon %(spent)s: the budget cannot "
                    "be set below it."
                )
                % {"month": f"{month:%Y-%m}", "spent": spent}
            )
        was = budget.epsilon
        budget.epsilon = epsilon
        budget.set_by_email = acting_user.email
        budget.set_at = timezone.now()
        budget.save(update_fields=["epsilon", "set_by_email", "set_at"])
        audit.record(
            acting_user=acting_user,
            action=AuditAction.PRIVACY_BUDGET_SET,
            target=f"insight.privacybudget:{month:%Y-%m}",
            details={"month": f"{month:%Y-%m}", "epsilon": str(epsilon), "was": str(was)},
        )
    return budget


def _refuse_overspend(month: date, epsilon: Decimal, budget: Decimal, spent: Decimal) -> None:
    if spent + epsilon > budget:
        raise PrivacyError(
            _(
                "This release would spend epsilon %(epsilon)s, but only %(left)s of the "
                "%(budget)s budgeted for %(month)s is left. Nothing was released or spent: "
                "ask for a smaller epsilon, or ask an administrator to raise the month's budget."
            )
            % {
                "epsilon": epsilon,
                "left": max(budget - spent, Decimal(0)),
                "budget": budget,
                "month": f"{month:%Y-%m}",
            }
        )


def release_make(*, period: str, epsilon, acting_user, today: date | None = None) -> Release:
    """Release the window's counting tables with differential privacy
    (insight.privacy), spending `epsilon` from this month's budget, and keep
    the noisy figures: every download of the release gives them again. A
    release that would overspend is refused before any noise is drawn."""
    from rights import audit
    from rights.models import AuditAction

    if not acting_user.has_perm("insight.release_figures"):
        raise PrivacyError(_("You may not release figures."))
    if period not in (Period.WEEK, Period.MONTH):
        raise PrivacyError(_("Unknown period: choose week or month."))
    epsilon = _epsilon(epsilon, allow_zero=False)
    month = selectors.budget_month(today)
    state = selectors.budget(month)
    _refuse_overspend(month, epsilon, state.epsilon, state.spent)  # before the long count
    starts = selectors.period_starts(period, today)
    purposes = selectors._consent_purposes()
    cells = privacy.cells_per_person()
    # Counted outside the transaction: the count takes the ledger's lock for a
    # moment (its committed barrier), which must not be held while we wait.
    grid = privacy.bounded_counts(period, starts, purposes, cells_per_person=cells)
    with transaction.atomic():
        budget = _budget_locked(month)
        spent = _spent(month)
        _refuse_overspend(month, epsilon, budget.epsilon, spent)  # again, under the lock
        released, scale = privacy.draw(grid, epsilon=epsilon, cells_per_person=cells)
        release = Release.objects.create(
            period=period,
            first_start=starts[0],
            last_start=starts[-1],
            epsilon=epsilon,
            budget_month=month,
            budget_epsilon=budget.epsilon,
            budget_spent=spent + epsilon,
            mechanism=privacy.MECHANISM,
            noise_scale=scale,
            cells_per_person=cells,
            min_cell=selectors.min_cell(),
            figures={
                "starts": [s.isoformat() for s in starts],
                "purposes": [[p.pk, p.key, str(p.display_name)] for p in purposes],
                "counts": released.counts,
            },
            made_by=acting_user,
            made_by_email=acting_user.email,
        )
        audit.record(
            acting_user=acting_user,
            action=AuditAction.FIGURES_RELEASE,
            target=f"insight.release:{release.uuid}",
            details={
                "period": period,
                "from": starts[0].isoformat(),
                "to": starts[-1].isoformat(),
                "epsilon": str(epsilon),
                "budget_month": f"{month:%Y-%m}",
            },
        )
    return release
