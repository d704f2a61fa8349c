"""The privacy analysts' group, and the auditor's evidence export: asking for
one and downloading it (insight/evidence.py builds it)."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from insight.models import EvidenceExport

ANALYSTS = "Privacy analysts"
# Event-level (pseudonymous) data: not for the analysts, who see counts only.
EVIDENCE_PERMISSION = "insight.export_evidence"


class EvidenceError(ValueError):
    """The export cannot be asked for as it stands; the message is for staff."""


def analyst_group_ensure() -> Group:
    """The group whose members see the dashboard and its exports, and hold no
    other permission: no admin list that names a person opens to them. Made by
    migration 0001; this makes it again if it was deleted, and takes back any
    permission added to it since."""
    group, _created = Group.objects.get_or_create(name=ANALYSTS)
    permission = Permission.objects.get(content_type__app_label="insight", codename="view_figures")
    group.permissions.set([permission])
    return group


MAX_EVIDENCE_DAYS = 3660  # ten years in one export at most


def evidence_request(*, acting_user, date_from: date, date_to: date) -> EvidenceExport:
    """A staff member asks for the auditor's evidence of [date_from, date_to]
    (days in the portal's time zone, both included). One transaction: the
    export, its audit row and its outbox row; a worker builds it."""
    from django.conf import settings

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
