"""Every write to the inventory and the ledger goes through a function here."""

from __future__ import annotations

import copy
import ipaddress
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from consents import changes, checkpoints, ledger, personal_data
from consents.models import (
    ConsentEvent,
    ConsentState,
    DataCategory,
    Decision,
    LedgerCheckpoint,
    Method,
    NewsletterSignup,
    Purpose,
    PurposeNotice,
    ReconsentRequest,
)
from portal import events

_policy_version_provider = None

logger = logging.getLogger(__name__)


def set_policy_version_provider(provider) -> None:
    """The policies app tells the ledger which policy version is in force
    (a callable returning (its id, the hash of its text) or None), without
    consents importing it."""
    global _policy_version_provider
    _policy_version_provider = provider


def policy_version_in_force() -> tuple[int, str] | None:
    return _policy_version_provider() if _policy_version_provider else None


_policies_document_provider = None


def set_policies_document_provider(provider) -> None:
    """The policies app describes, for /privacy.json, each policy's version in
    force and those to come (a callable returning a list of dicts)."""
    global _policies_document_provider
    _policies_document_provider = provider


def policies_document() -> list[dict]:
    return _policies_document_provider() if _policies_document_provider else []


class ConsentError(ValueError):
    """A decision that cannot be recorded; its message is for the person, its
    code for a program (the API answers with it): "retired", "no_notice",
    "notice_changed", "not_optional", or "invalid"."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RequestFacts:
    """What the ledger may keep about the request: a truncated address and the
    browser family, nothing that identifies a device."""

    ip_truncated: str = ""
    user_agent_family: str = ""
    gpc_signal: bool = False

    @classmethod
    def from_request(cls, request) -> RequestFacts:
        if request is None:
            return cls()
        return cls(
            ip_truncated=truncate_ip(request.META.get("REMOTE_ADDR", "")),
            user_agent_family=user_agent_family(request.META.get("HTTP_USER_AGENT", "")),
            gpc_signal=bool(getattr(request, "gpc", False)),
        )


def truncate_ip(address: str) -> str:
    """IPv4 to its /24, IPv6 to its /48: enough to see a pattern, not a person."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


_BROWSERS = [
    (re.compile(r"\bEdg(e|A|iOS)?/"), "Edge"),
    (re.compile(r"\b(OPR|Opera)/"), "Opera"),
    (re.compile(r"\bSamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"\b(Firefox|FxiOS)/"), "Firefox"),
    (re.compile(r"\b(CriOS|Chrome|Chromium)/"), "Chrome"),
    (re.compile(r"\bSafari/"), "Safari"),
    (re.compile(r"(bot|crawler|spider|curl|python-requests|wget)", re.I), "Automated"),
]


def user_agent_family(user_agent: str) -> str:
    if not user_agent:
        return ""
    for pattern, family in _BROWSERS:
        if pattern.search(user_agent):
            return family
    return "Other"


# The inventory ----------------------------------------------------------------

NOTICE_FIELDS = ("name", "description", "benefit", "recipients", "transfers_abroad")


def _notice_content(purpose: Purpose, categories: Iterable[DataCategory] | None = None) -> dict:
    """What a customer reads about a purpose, in every language, as one document.
    `categories` stands for the purpose's data categories when they are not saved yet."""
    if categories is None:
        categories = list(purpose.data_categories.order_by("key"))
    else:
        categories = sorted(categories, key=lambda c: c.key)
    content: dict = {}
    for language, suffix in (("en", ""), ("pt-br", "_pt")):
        texts = {
            field: (getattr(purpose, f"{field}{suffix}") or getattr(purpose, field)).strip()
            for field in NOTICE_FIELDS
        }
        texts["data_categories"] = [
            (getattr(c, f"name{suffix}") or c.name).strip() for c in categories
        ]
        texts["sensitive_data_categories"] = [
            (getattr(c, f"name{suffix}") or c.name).strip() for c in categories if c.sensitive
        ]
        content[language] = texts
    content["legal_basis"] = purpose.legal_basis
    content["retention_days"] = purpose.retention_days
    content["sale_or_sharing"] = purpose.is_sale_or_sharing
    content["data_category_keys"] = [c.key for c in categories]
    content["dpv_code"] = purpose.dpv_code
    return content


def purpose_notice_refresh(*, purpose: Purpose) -> PurposeNotice:
    """Freeze the purpose's current texts as a notice, unless they are unchanged.

    Call after the purpose and its data categories are saved. An unchanged text
    returns the current notice; a changed one becomes the next version; going
    back to an old text reuses that old version rather than copying it."""
    content = _notice_content(purpose)
    digest = ledger.notice_content_hash(content)
    with transaction.atomic():
        Purpose.objects.select_for_update().filter(pk=purpose.pk).first()
        latest = purpose.notices.order_by("-version").first()
        if latest is not None and latest.content_hash == digest:
            return latest
        existing = purpose.notices.filter(content_hash=digest).first()
        if existing is not None:
            # A revert: the same text is the same notice, but it must become current.
            next_version = (purpose.notices.aggregate(v=Max("version"))["v"] or 0) + 1
            return PurposeNotice.objects.create(
                purpose=purpose,
                version=next_version,
                content=content,
                content_hash=ledger.notice_content_hash({"revert_of": existing.version, **content}),
            )
        next_version = (latest.version if latest else 0) + 1
        return PurposeNotice.objects.create(
            purpose=purpose, version=next_version, content=content, content_hash=digest
        )


def current_notices(purposes: Iterable[Purpose]) -> dict[int, PurposeNotice]:
    """The current (highest) notice version of each purpose, in one query."""
    ids = [p.pk for p in purposes]
    latest = PurposeNotice.objects.filter(purpose=OuterRef("purpose")).order_by("-version")
    query = PurposeNotice.objects.filter(
        purpose_id__in=ids, pk=Subquery(latest.values("pk")[:1])
    ).select_related("purpose")
    return {notice.purpose_id: notice for notice in query}


def _audit(acting_user, action: str, obj, **details) -> None:
    """A staff write's audit row, in the write's transaction (rights/audit.py).
    No acting_user: a command, the demo or a task did it, not a staff member."""
    if acting_user is None:
        return
    from rights import audit

    audit.record(
        acting_user=acting_user, action=action, target=audit.target_of(obj), details=details
    )


def purpose_create(
    *, purpose: Purpose, acting_user, data_categories: Iterable[DataCategory] = ()
) -> Purpose:
    """A new purpose (an unsaved instance with its fields set), its data
    categories and its first notice."""
    with transaction.atomic():
        purpose.save()
        purpose.data_categories.set(data_categories)
        notice = purpose_notice_refresh(purpose=purpose)
        _audit(acting_user, "purpose_create", purpose, notice_version=notice.version)
    return purpose


def purpose_delete(*, purpose: Purpose, acting_user) -> None:
    """Delete a purpose nobody ever decided on (one with decisions is retired)."""
    with transaction.atomic():
        purpose = Purpose.objects.select_for_update().get(pk=purpose.pk)
        if purpose.events.exists():
            raise ConsentError(_("A purpose with recorded decisions can be retired, not deleted."))
        _audit(acting_user, "purpose_delete", purpose, name=purpose.name)
        purpose.delete()


def data_category_save(*, category: DataCategory, acting_user) -> DataCategory:
    """Create or change a data category. The purposes that use it freeze new
    notices through purpose_update, each audited on its own."""
    with transaction.atomic():
        created = category.pk is None
        category.save()
        _audit(acting_user, "category_save", category, created=created)
    return category


def data_category_delete(*, category: DataCategory, acting_user) -> None:
    """Delete a data category no purpose uses."""
    with transaction.atomic():
        category = DataCategory.objects.select_for_update().get(pk=category.pk)
        if category.purposes.exists():
            raise ConsentError(_("A data category that a purpose uses cannot be deleted."))
        _audit(acting_user, "category_delete", category, name=category.name)
        category.delete()


def purpose_retire(*, purpose: Purpose, acting_user=None) -> Purpose:
    """Stop offering a purpose. Its notices and ledger stay forever; every grant
    still standing is withdrawn (method: expiry), because the processing ends."""
    with transaction.atomic():
        # The ledger lock first, exclusive: no grant can slip in between
        # retiring the purpose and withdrawing what stands.
        ledger.ledger_lock()
        purpose = Purpose.objects.select_for_update().get(pk=purpose.pk)
        if purpose.retired_at is not None:
            return purpose
        purpose.retired_at = timezone.now()
        purpose.save(update_fields=["retired_at"])
        granted = list(
            ConsentState.objects.filter(purpose=purpose, decision=Decision.GRANTED).values_list(
                "subject_id", flat=True
            )
        )
        for subject_id in granted:
            consent_record(
                subject_id=subject_id,
                purpose=purpose,
                decision=Decision.WITHDRAWN,
                method=Method.EXPIRY,
                allow_retired=True,
            )
        _audit(acting_user, "purpose_retire", purpose, grants_withdrawn=len(granted))
    return purpose


# The purpose's fields that its notice is made of (what a change can widen).
PURPOSE_NOTICE_INPUTS = (
    *NOTICE_FIELDS,
    *(f"{name}_pt" for name in NOTICE_FIELDS),
    "legal_basis",
    "retention_days",
    "is_sale_or_sharing",
    "dpv_code",
    "data_categories",
)


def reconsent_earliest_date() -> date:
    """The first day a widening change may take effect: people get the same
    notice period as for a material policy change."""
    return timezone.localdate() + timedelta(days=settings.POLICY_MATERIAL_NOTICE_DAYS)


def reconsent_date_check(*, effective_date: date) -> None:
    earliest = reconsent_earliest_date()
    if effective_date < earliest:
        raise ConsentError(
            _(
                "A change that widens what a purpose does takes effect at least %(days)s "
                "days after it is saved, so that people can decide first: choose %(date)s "
                "or later."
            )
            % {"days": settings.POLICY_MATERIAL_NOTICE_DAYS, "date": earliest.isoformat()}
        )


@dataclass(frozen=True)
class PurposeChangePreview:
    differences: list[dict]
    widening: list[dict]
    asked: int  # people whose grant would have to be given again


def purpose_update_preview(
    *,
    purpose: Purpose,
    values: Mapping[str, object],
    data_categories: Iterable[DataCategory] | None = None,
) -> PurposeChangePreview:
    """What saving these values would change for the people who granted the
    purpose, without saving anything (the admin shows it before staff confirm)."""
    from consents import selectors

    current = purpose.notices.order_by("-version").first()
    if current is None:
        return PurposeChangePreview([], [], 0)
    changed = copy.copy(purpose)
    for name, value in values.items():
        setattr(changed, name, value)
    if data_categories is None:
        data_categories = list(purpose.data_categories.all())
    differences = changes.compare(current.content, _notice_content(changed, data_categories))
    widening = changes.widening(differences) if purpose.is_optional else []
    asked = selectors.purpose_grantees_count(purpose=purpose) if widening else 0
    return PurposeChangePreview(differences, widening, asked)


@dataclass(frozen=True)
class PurposeUpdated:
    purpose: Purpose
    notice: PurposeNotice
    differences: list[dict]
    reconsent: ReconsentRequest | None  # set when the change widened processing
    asked: int  # people asked to decide again, each emailed


def purpose_update(
    *,
    purpose: Purpose,
    acting_user,
    values: Mapping[str, object] | None = None,
    data_categories: Iterable[DataCategory] | None = None,
    effective_date: date | None = None,
) -> PurposeUpdated:
    """Change what a purpose is and does, and freeze the text customers now read.

    A change that widens processing (consents.changes.WIDENING) is handled like
    a material policy change: everyone whose grant was given under the earlier
    notice is asked again, by email and in the portal, and their grant lapses
    on `effective_date` unless they confirm it under the new notice."""
    values = dict(values or {})
    with transaction.atomic():
        # Lock order as in purpose_retire: the ledger, then the purpose. No grant
        # can be recorded between freezing the new notice and reading the grantees.
        ledger.ledger_lock()
        purpose = Purpose.objects.select_for_update().get(pk=purpose.pk)
        previous = purpose.notices.order_by("-version").first()
        for name, value in values.items():
            setattr(purpose, name, value)
        if values:
            purpose.save(update_fields=list(values))
        if data_categories is not None:
            purpose.data_categories.set(data_categories)
        notice = purpose_notice_refresh(purpose=purpose)
        updated = _purpose_reconsent(purpose, previous, notice, acting_user, effective_date)
        if values or (previous is not None and notice.pk != previous.pk):
            _audit(
                acting_user,
                "purpose_update",
                purpose,
                fields=sorted(values),
                notice_version=notice.version,
                asked_again=updated.asked,
            )
    return updated


def _purpose_reconsent(
    purpose: Purpose, previous, notice: PurposeNotice, acting_user, effective_date
) -> PurposeUpdated:
    """purpose_update's second half, under its locks: who is asked again."""
    if previous is None or notice.pk == previous.pk:
        return PurposeUpdated(purpose, notice, [], None, 0)
    differences = changes.compare(previous.content, notice.content)
    widening = changes.widening(differences)
    if not widening or not purpose.is_optional or purpose.retired_at is not None:
        return PurposeUpdated(purpose, notice, differences, None, 0)
    effective_date = effective_date or reconsent_earliest_date()
    reconsent_date_check(effective_date=effective_date)
    request = ReconsentRequest.objects.create(
        purpose=purpose,
        reason=ReconsentRequest.Reason.NOTICE,
        notice=notice,
        previous_notice=previous,
        differences=widening,
        asked_at=timezone.now(),
        effective_date=effective_date,
        created_by=acting_user,
    )
    asked = _reconsent_notify(request=request)
    return PurposeUpdated(purpose, notice, differences, request, asked)


def _reconsent_notify(*, request: ReconsentRequest) -> int:
    """One email per person asked, in their language, through the outbox (the
    rows are part of this transaction; they leave once it commits)."""
    from django.contrib.auth import get_user_model

    from consents import emails

    subjects = ConsentState.objects.filter(
        purpose=request.purpose,
        decision=Decision.GRANTED,
        event__created_at__lt=request.asked_at,
    ).values("subject_id")
    recipients = [
        (email, language, subject_id, True)
        for email, language, subject_id in get_user_model()
        .objects.filter(subject_id__in=subjects, is_active=True)
        .values_list("email", "language", "subject_id")
    ] + [
        (email, language, subject_id, False)
        for email, language, subject_id in NewsletterSignup.objects.filter(
            subject_id__in=subjects, status=NewsletterSignup.Status.CONFIRMED
        ).values_list("email", "language", "subject_id")
    ]
    for email, language, subject_id, has_account in recipients:
        emails.reconsent_request(
            request=request,
            email=email,
            language=language or settings.LANGUAGE_CODE,
            subject_id=subject_id,
            has_account=has_account,
        )
    return len(recipients)


def reconsent_request_create(
    *,
    purpose: Purpose,
    policy_version_id: int,
    asked_at,
    effective_date: date,
    acting_user=None,
) -> ReconsentRequest:
    """A policy version changes this purpose: ask those who granted it before
    the version was published (the version's own emails tell them)."""
    request, _created = ReconsentRequest.objects.get_or_create(
        purpose=purpose,
        policy_version_id=policy_version_id,
        defaults={
            "reason": ReconsentRequest.Reason.POLICY,
            "asked_at": asked_at,
            "effective_date": effective_date,
            "created_by": acting_user,
        },
    )
    return request


def reconsent_lapse_due(*, today: date | None = None) -> int:
    """On a request's effective date, the grants it asked for that were not given
    again lapse (method: expiry). Returns how many lapsed."""
    today = today or timezone.localdate()
    lapsed = 0
    due = ReconsentRequest.objects.filter(lapsed_at__isnull=True, effective_date__lte=today)
    for request in due.select_related("purpose").order_by("effective_date", "pk"):
        stale = ConsentState.objects.filter(
            purpose=request.purpose,
            decision=Decision.GRANTED,
            event__created_at__lt=request.asked_at,
        ).values_list("subject_id", flat=True)
        for subject_id in list(stale):
            with transaction.atomic():
                ledger.decision_lock(subject_id)
                # Read again under the lock: the person may have confirmed meanwhile.
                still_stale = ConsentState.objects.filter(
                    subject_id=subject_id,
                    purpose=request.purpose,
                    decision=Decision.GRANTED,
                    event__created_at__lt=request.asked_at,
                ).exists()
                if still_stale and consent_record(
                    subject_id=subject_id,
                    purpose=request.purpose,
                    decision=Decision.WITHDRAWN,
                    method=Method.EXPIRY,
                    allow_retired=True,
                ):
                    lapsed += 1
        ReconsentRequest.objects.filter(pk=request.pk).update(lapsed_at=timezone.now())
    return lapsed


# The ledger -------------------------------------------------------------------


def _effective_decision(current: str | None, decision: str) -> str | None:
    """The decision to record, or None when it repeats the current choice."""
    if current == Decision.GRANTED and decision == Decision.REFUSED:
        return Decision.WITHDRAWN  # unticking a granted purpose withdraws it
    if current is None:
        return None if decision == Decision.WITHDRAWN else decision
    if (current == Decision.GRANTED) == (decision == Decision.GRANTED):
        return None
    return decision


_DECISIONS = frozenset(Decision.values)
_METHODS = frozenset(Method.values)


def consent_record(
    *,
    subject_id: uuid.UUID,
    purpose: Purpose,
    decision: str,
    method: str,
    notice: PurposeNotice | None = None,
    facts: RequestFacts | None = None,
    policy_version_id: int | None = None,
    allow_retired: bool = False,
    reconfirm: bool = False,
) -> ConsentEvent | None:
    """Record one decision: an event in the ledger and the current state, in one
    transaction. Returns None when it repeats the current choice (no event).

    On PostgreSQL the database applies the rules below in one call
    (consents_decide, migration 0010); elsewhere they run here, statement by
    statement. tests/consents/test_decide_in_sql.py holds both to the same
    events and hashes."""
    if decision not in _DECISIONS:
        raise ConsentError(_("Unknown decision."))
    if method not in _METHODS:
        raise ConsentError(_("Unknown collection method."))
    if not purpose.is_optional:
        raise ConsentError(
            _("“%(purpose)s” does not rest on consent, so there is nothing to grant or withdraw.")
            % {"purpose": purpose.display_name},
            "not_optional",
        )
    if purpose.retired_at is not None and not allow_retired:
        _decision_refused("retired", purpose)
    facts = facts or RequestFacts()
    record = _record_in_database if ledger.decides_in_database() else _record_in_python
    return record(
        subject_id=subject_id,
        purpose=purpose,
        decision=decision,
        method=method,
        notice=notice,
        facts=facts,
        policy_version_id=policy_version_id,
        allow_retired=allow_retired,
        reconfirm=reconfirm,
    )


def _decision_refused(status: str, purpose: Purpose) -> None:
    """Why a decision cannot be recorded, for the person (both paths)."""
    if status == "retired":
        message = _("“%(purpose)s” is no longer offered.")
    elif status == "no_notice":
        message = _("“%(purpose)s” has no published notice yet.")
    else:
        message = _(
            "The description of “%(purpose)s” changed while you were reading it. "
            "Please read it again and confirm your choice."
        )
    raise ConsentError(message % {"purpose": purpose.display_name}, status)


def _record_in_python(
    *,
    subject_id: uuid.UUID,
    purpose: Purpose,
    decision: str,
    method: str,
    notice: PurposeNotice | None,
    facts: RequestFacts,
    policy_version_id: int | None,
    allow_retired: bool,
    reconfirm: bool,
    created_at=None,
    event_uuid: uuid.UUID | None = None,
) -> ConsentEvent | None:
    """The rules, statement by statement (SQLite). `created_at` and
    `event_uuid` are for the tests that compare the two paths."""
    with transaction.atomic():
        # This person's decisions one at a time (the state read below is current);
        # other people's go on at once.
        ledger.decision_lock(subject_id)
        # Read again under the lock: the caller's copy may predate a retirement.
        current = ledger.decision_context(subject_id=subject_id, purpose_id=purpose.pk)
        if current.retired and not allow_retired:
            _decision_refused("retired", purpose)
        if current.notice_id is None:
            _decision_refused("no_notice", purpose)
        if notice is None:
            notice = ledger.notice_by_id(current.notice_id)
        elif notice.pk != current.notice_id:
            _decision_refused("notice_changed", purpose)
        repeated = decision
        decision = _effective_decision(current.decision, decision)
        if decision is None and reconfirm and repeated == Decision.GRANTED:
            state = ConsentState.objects.filter(subject_id=subject_id, purpose=purpose).first()
            if _reconsent_asked(state):
                # Given again under a new notice or policy version: a new event. Only
                # while it is asked: otherwise it would repeat the standing grant.
                decision = Decision.GRANTED
        if decision is None:
            return None
        now = created_at or timezone.now()
        policy_hash = ""
        if policy_version_id is None:
            policy_version_id, policy_hash = policy_version_in_force() or (None, "")
        else:
            policy_hash = ledger.policy_hashes([policy_version_id]).get(policy_version_id, "")
        event = ledger.append(
            policy_hash=policy_hash,
            uuid=event_uuid or ledger.event_uuid(),
            subject_id=subject_id,
            purpose=purpose,
            notice=notice,
            policy_version_id=policy_version_id,
            decision=decision,
            method=method,
            created_at=now,
            ip_truncated=facts.ip_truncated,
            user_agent_family=facts.user_agent_family,
            gpc_signal=facts.gpc_signal,
        )
        ledger.state_set(event)
        event._ledger_policy_hash = policy_hash  # what a receipt checks against, once
        ledger.mark_recorded(event)
        if decision == Decision.WITHDRAWN:
            # Processing ends now: data that only this purpose needed goes with it.
            personal_data.erase_unneeded(subject_id=subject_id)
        _decision_publish(event)
    return event


def _decision_publish(event: ConsentEvent) -> None:
    """The decision as a domain event (webhooks), in its transaction. Nothing
    that names the person: the subject id, the purpose, the notice's version."""
    events.publish(
        events.consent_kind(decision=event.decision, method=event.method),
        {
            "event_id": str(event.uuid),
            "subject_id": str(event.subject_id),
            "purpose": event.purpose.key,
            "notice_version": event.notice.version,
            "decision": event.decision,
            "method": event.method,
            "decided_at": event.created_at.isoformat(),
        },
        at=event.created_at,
    )


def _record_in_database(
    *,
    subject_id: uuid.UUID,
    purpose: Purpose,
    decision: str,
    method: str,
    notice: PurposeNotice | None,
    facts: RequestFacts,
    policy_version_id: int | None,
    allow_retired: bool,
    reconfirm: bool,
    created_at=None,
    event_uuid: uuid.UUID | None = None,
) -> ConsentEvent | None:
    """The same decision as _record_in_python, made by consents_decide in one
    call. A grant is complete with it: in autocommit it is its own transaction.
    A refusal or a withdrawal may end a grant, which erases the data only that
    purpose needed in the same transaction. `created_at` and `event_uuid` are
    for the tests that compare the two paths."""
    policy_hash = None
    if policy_version_id is not None:
        policy_hash = ledger.policy_hashes([policy_version_id]).get(policy_version_id, "")
    event_uuid = event_uuid or ledger.event_uuid()
    # A grant alone is one statement, its own transaction in autocommit; an event
    # published about it (webhooks) must commit with it, hence a transaction then.
    alone = decision == Decision.GRANTED and not events.wanted(events.CONSENT_GRANTED)
    block = nullcontext() if alone else transaction.atomic()
    with block:
        decided = ledger.decide(
            subject_id=subject_id,
            purpose_id=purpose.pk,
            decision=decision,
            method=method,
            notice_id=notice.pk if notice is not None else None,
            policy_version_id=policy_version_id,
            policy_hash=policy_hash,
            # Today in the portal's time zone (no request activates another one).
            day=timezone.localdate(timezone=timezone.get_default_timezone()),
            allow_retired=allow_retired,
            reconfirm=reconfirm,
            uuid=event_uuid,
            ip_truncated=facts.ip_truncated,
            user_agent_family=facts.user_agent_family,
            gpc_signal=facts.gpc_signal,
            created_at=created_at,
        )
        if decided.status == "repeated":
            return None
        if decided.status != "recorded":
            _decision_refused(decided.status, purpose)
        if decided.decision == Decision.WITHDRAWN:
            personal_data.erase_unneeded(subject_id=subject_id)
        event = ledger.event_as_read(
            id=decided.event_id,
            seq=None,
            uuid=event_uuid,
            subject_id=subject_id,
            purpose=purpose,
            notice=notice if notice is not None else ledger.notice_by_id(decided.notice_id),
            policy_version_id=decided.policy_version_id,
            decision=decided.decision,
            method=method,
            created_at=decided.created_at,
            ip_truncated=facts.ip_truncated,
            user_agent_family=facts.user_agent_family,
            gpc_signal=facts.gpc_signal,
            prev_hash="",
            hash=decided.hash,
        )
        event._ledger_policy_hash = decided.policy_hash or ""
        ledger.mark_recorded(event)
        if not alone:
            _decision_publish(event)
    return event


def _reconsent_asked(state: ConsentState | None) -> bool:
    """A change asks the holder of this grant to give it again (read under the
    lock that consent_record holds)."""
    if state is None:
        return False
    return ReconsentRequest.objects.filter(
        purpose_id=state.purpose_id,
        lapsed_at__isnull=True,
        asked_at__gt=state.event.created_at,
    ).exists()


def consent_record_choices(
    *,
    subject_id: uuid.UUID,
    choices: Mapping[Purpose, bool],
    notices: Mapping[int, PurposeNotice],
    method: str,
    facts: RequestFacts | None = None,
    refusal_method: Mapping[int, str] | None = None,
) -> list[ConsentEvent]:
    """A form's answers, all or nothing: a grant for each ticked purpose and a
    refusal for each one left unticked, against the notices that were shown."""
    events = []
    with transaction.atomic():
        for purpose, granted in choices.items():
            event = consent_record(
                subject_id=subject_id,
                purpose=purpose,
                decision=Decision.GRANTED if granted else Decision.REFUSED,
                method=(refusal_method or {}).get(purpose.pk, method),
                notice=notices[purpose.pk],
                facts=facts,
            )
            if event is not None:
                events.append(event)
    return events


def _withdraw_granted(
    *, subject_id: uuid.UUID, method: str, facts: RequestFacts | None, **purpose_filter
) -> list[Purpose]:
    """Withdraw the person's standing grants for the purposes matching the
    filter, in one transaction. Returns the purposes withdrawn."""
    withdrawn = []
    with transaction.atomic():
        granted = ConsentState.objects.filter(
            subject_id=subject_id,
            decision=Decision.GRANTED,
            **{f"purpose__{name}": value for name, value in purpose_filter.items()},
        ).select_related("purpose")
        for state in list(granted):
            if consent_record(
                subject_id=subject_id,
                purpose=state.purpose,
                decision=Decision.WITHDRAWN,
                method=method,
                facts=facts,
                allow_retired=True,
            ):
                withdrawn.append(state.purpose)
    return withdrawn


def consent_withdraw_all(
    *, subject_id: uuid.UUID, method: str, facts: RequestFacts | None = None
) -> list[Purpose]:
    """Withdraw every standing grant ("withdraw all optional consents")."""
    return _withdraw_granted(subject_id=subject_id, method=method, facts=facts)


def consent_withdraw_emailed(
    *, subject_id: uuid.UUID, method: str, facts: RequestFacts | None = None
) -> list[Purpose]:
    """Stop optional emails: withdraw every grant for a purpose we email about."""
    return _withdraw_granted(
        subject_id=subject_id, method=method, facts=facts, offered_in_newsletter=True
    )


def optional_email_stop(
    *, subject_id: uuid.UUID, facts: RequestFacts | None = None
) -> list[Purpose]:
    """The one-click stop in every optional email (RFC 8058): withdraw each grant
    for a purpose we email about (method "email link"), and void a newsletter
    request still waiting for confirmation, so that its link switches nothing
    on. Returns the purposes withdrawn."""
    with transaction.atomic():
        # The sign-up row before the chain head, as newsletter_signup_confirm
        # takes them: a stop and a confirmation of one person never deadlock.
        signup = NewsletterSignup.objects.select_for_update().filter(subject_id=subject_id).first()
        withdrawn = consent_withdraw_emailed(
            subject_id=subject_id, method=Method.EMAIL_LINK, facts=facts
        )
        if signup is not None and signup.pending_choices:
            if signup.status == NewsletterSignup.Status.PENDING:
                signup.delete()  # nothing was ever agreed: keep nothing
            else:
                signup.pending_choices = []
                signup.save(update_fields=["pending_choices"])
    return withdrawn


def gpc_apply(*, subject_id: uuid.UUID, facts: RequestFacts | None = None) -> list[Purpose]:
    """Global Privacy Control: withdraw grants for sale or sharing purposes.

    A grant the person gave while their browser sent the signal, or again after
    an earlier GPC withdrawal, is their own informed choice, and stands
    (shared/REQUIREMENTS.md: say so, and let them decide). Returns the purposes
    withdrawn now."""
    granted = list(
        ConsentState.objects.filter(
            subject_id=subject_id,
            decision=Decision.GRANTED,
            purpose__is_sale_or_sharing=True,
            purpose__retired_at__isnull=True,
        ).select_related("purpose", "event")
    )
    if not granted:
        return []
    overridden = set(
        ConsentEvent.objects.filter(
            subject_id=subject_id,
            method=Method.GPC,
            purpose_id__in=[s.purpose_id for s in granted],
        ).values_list("purpose_id", flat=True)
    )
    withdrawn = []
    for state in granted:
        if state.purpose_id in overridden or state.event.gpc_signal:
            continue
        if consent_record(
            subject_id=subject_id,
            purpose=state.purpose,
            decision=Decision.WITHDRAWN,
            method=Method.GPC,
            facts=facts,
        ):
            withdrawn.append(state.purpose)
    return withdrawn


# Newsletter double opt-in -----------------------------------------------------------

NEWSLETTER_CONFIRMATION_DAYS = NewsletterSignup.CONFIRMATION_DAYS


def newsletter_signup_start(
    *,
    email: str,
    choices: Mapping[Purpose, bool],
    notices: Mapping[int, PurposeNotice],
    language: str,
    request=None,
) -> NewsletterSignup | None:
    """Keep the choices and the notices shown until the address is confirmed,
    and email the confirmation link. Nothing reaches the ledger yet.

    One confirmation is pending per address at a time: while an earlier link
    still works, nothing is sent or changed and None is returned (the visitor
    is told the same thing either way, so the form reveals nothing about who
    subscribes). A confirmed subscriber may ask again, after stopping or to
    change their choices: that goes through the same double opt-in."""
    from consents import emails

    email = email.strip().lower()
    pending = [
        {"purpose": p.key, "notice": notices[p.pk].pk, "granted": bool(granted)}
        for p, granted in choices.items()
    ]
    with transaction.atomic():
        signup, created = NewsletterSignup.objects.select_for_update().get_or_create(
            email=email, defaults={"language": language, "pending_choices": pending}
        )
        if not created and signup.confirmation_pending:
            return None
        if not created:
            signup.language, signup.pending_choices = language, pending
            signup.created_at = timezone.now()
            signup.save(update_fields=["language", "pending_choices", "created_at"])
        emails.newsletter_confirmation(signup=signup, request=request)
    return signup


@dataclass(frozen=True)
class NewsletterConfirmation:
    events: list[ConsentEvent]
    changed: list[str]  # names of purposes whose text changed before confirming


def newsletter_signup_confirm(
    *, signup: NewsletterSignup, facts: RequestFacts | None = None
) -> NewsletterConfirmation:
    """The link was followed: record the choices, against the notices shown then,
    and email the subscriber a receipt (what is on, the signed receipts, the stop).

    A grant whose notice changed (or whose purpose was retired) since is not
    silently carried over: it is left out, and `changed` names it so that the
    person can be told and choose again on the new text."""
    from consents import emails

    with transaction.atomic():
        signup = NewsletterSignup.objects.select_for_update().get(pk=signup.pk)
        if not signup.pending_choices:  # confirmed already, or stopped before confirming
            return NewsletterConfirmation(events=[], changed=[])
        purposes = {
            p.key: p
            for p in Purpose.objects.filter(
                key__in=[c["purpose"] for c in signup.pending_choices], retired_at__isnull=True
            )
        }
        current = current_notices(purposes.values())
        events, changed = [], []
        for choice in signup.pending_choices:
            purpose = purposes.get(choice["purpose"])
            notice = current.get(purpose.pk) if purpose else None
            if notice is None or notice.pk != choice["notice"]:
                if choice["granted"]:
                    changed.append(purpose.display_name if purpose else choice["purpose"])
                continue
            event = consent_record(
                subject_id=signup.subject_id,
                purpose=purpose,
                decision=Decision.GRANTED if choice["granted"] else Decision.REFUSED,
                method=Method.NEWSLETTER,
                notice=current[purpose.pk],
                facts=facts,
            )
            if event:
                events.append(event)
        signup.status = NewsletterSignup.Status.CONFIRMED
        signup.confirmed_at = timezone.now()
        signup.pending_choices = []
        signup.save(update_fields=["status", "confirmed_at", "pending_choices"])
        granted = [e for e in events if e.decision == Decision.GRANTED]
        if granted:  # nothing switched on (every text changed): the page says why
            emails.newsletter_confirmed(signup=signup, granted=granted)
    return NewsletterConfirmation(events=events, changed=changed)


def newsletter_signups_purge_unconfirmed(*, now=None) -> int:
    """Delete sign-ups never confirmed within the week: nothing was agreed."""
    cutoff = (now or timezone.now()) - timedelta(days=NEWSLETTER_CONFIRMATION_DAYS)
    deleted, _details = NewsletterSignup.objects.filter(
        status=NewsletterSignup.Status.PENDING, created_at__lt=cutoff
    ).delete()
    return deleted


def ledger_checkpoint_make() -> LedgerCheckpoint | None:
    """Seal what is waiting, then publish the newest seal as a checkpoint and
    send it outside the database: one line appended to LEDGER_CHECKPOINT_FILE
    and an email to the DPO, both once the transaction commits. Returns the
    last checkpoint, unchanged, when nothing was sealed since it, and None
    while the ledger is empty.

    Publishes only a seal that verifies (ledger.seal checks it) and whose tree
    extends the last checkpoint: a ledger rolled back or rewritten behind it is
    refused (LedgerIntegrityError), never signed again."""
    from consents import emails

    newest = ledger.seal().seal
    with transaction.atomic():
        last = LedgerCheckpoint.objects.order_by("-size").first()
        if newest is None:
            if last is not None:
                raise ledger.LedgerIntegrityError(
                    f"the ledger has no seal but the checkpoint #{last.size} covers "
                    f"{last.size} events: the ledger was wiped"
                )
            return None
        if last is not None:
            if newest.size < last.size:
                raise ledger.LedgerIntegrityError(
                    f"the ledger has {newest.size} events but the checkpoint #{last.size} "
                    f"covers {last.size}: events were removed"
                )
            problem = ledger.extends_problem(last)
            if problem:
                raise ledger.LedgerIntegrityError(problem)
            if newest.size == last.size:
                return last
        checkpoint = LedgerCheckpoint.objects.create(
            size=newest.size,
            root=newest.root,
            created_at=newest.created_at,
            token=newest.token,
        )
        emails.ledger_checkpoint(checkpoint=checkpoint)
        line = checkpoints.checkpoint_line(checkpoint)
        # Exported only once committed: a rolled-back checkpoint never leaves.
        transaction.on_commit(lambda: checkpoints.export_append(line))
    return checkpoint
