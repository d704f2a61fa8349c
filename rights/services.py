"""Every change to a rights request goes through here (house style): the
person's own actions take the person, staff actions a keyword-only
`acting_user`. Each opens the transaction, locks the request, checks under
the lock, and writes the email that announces it to the outbox in the same
transaction.

Objections and restrictions take effect the moment they are written:
rights.selectors.processing_allowed reads them, and consents asks it before
it uses data for a purpose. An objection to a purpose on consent (direct
marketing, GDPR Art. 21(2)) also withdraws the consent in the ledger, with the
method of whoever recorded it: the panel, or staff on the person's request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from consents import ledger
from consents import services as consent_services
from consents.models import ConsentState, Decision, LegalBasis, Method, NewsletterSignup, Purpose
from portal import events
from rights import audit, deadlines, emails, erasure, waiting
from rights.models import (
    KINDS_WITH_PURPOSES,
    OPEN_STATUSES,
    AuditAction,
    Channel,
    IdentityCheck,
    Jurisdiction,
    Kind,
    LimitLifted,
    RightsRequest,
    Status,
)

logger = logging.getLogger(__name__)

DETAILS_MAX = 5000
REASON_MAX = 5000
# What a person may object to: processing on legitimate interest (GDPR Art.
# 21(1)) and, for direct marketing, on consent (Art. 21(2)).
OBJECTABLE_BASES = {LegalBasis.LEGITIMATE_INTEREST, LegalBasis.CONSENT}


def _publish(kind: str, request: RightsRequest, *, at: datetime | None = None, **extra) -> None:
    """A request's domain event (webhooks), in the caller's transaction: the
    request's id, the person's opaque subject id, never their address."""
    events.publish(
        kind,
        {
            "request_id": str(request.uuid),
            "subject_id": str(request.subject_id),
            "kind": request.kind,
            "jurisdiction": request.jurisdiction,
            "status": request.status,
            "due_at": request.due_at.isoformat(),
            **extra,
        },
        at=at,
    )


class RightsError(ValueError):
    """A request or a decision the rules do not allow; its message is for a person."""


def _staff(acting_user) -> None:
    if acting_user is None or not acting_user.is_staff:
        raise RightsError(_("Only staff can do this."))


def _clean_text(text: str, *, limit: int) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        raise RightsError(_("Keep it under %(limit)s characters.") % {"limit": limit})
    return text


def _check_purposes(kind: str, purposes: list[Purpose]) -> None:
    if kind not in KINDS_WITH_PURPOSES:
        if purposes:
            raise RightsError(
                _("Choose purposes only when you object to a use or ask to restrict one.")
            )
        return
    if not purposes:
        raise RightsError(_("Choose the uses of your data that this concerns."))
    if any(p.retired_at is not None for p in purposes):
        raise RightsError(_("One of those purposes is no longer in use."))
    if kind == Kind.OBJECTION:
        wrong = [p for p in purposes if p.legal_basis not in OBJECTABLE_BASES]
        if wrong:
            raise RightsError(
                _(
                    "“%(purpose)s” is needed to serve you or required by law, so it cannot be "
                    "objected to; ask for a restriction if you dispute the data it uses."
                )
                % {"purpose": wrong[0].display_name}
            )


def _person(*, user, email: str) -> tuple[uuid.UUID, object, str, str]:
    """(subject_id, user, email, language) of the person a request is about:
    their account, else their newsletter subscription, else a new opaque id
    (someone we may hold nothing about still gets an answer)."""
    if user is not None:
        return user.subject_id, user, user.email, user.language
    email = (email or "").strip()
    if not email:
        raise RightsError(_("Give the person's account or email address."))
    account = get_user_model().objects.filter(email__iexact=email).first()
    if account is not None:
        return account.subject_id, account, account.email, account.language
    signup = NewsletterSignup.objects.filter(email__iexact=email).first()
    if signup is not None:
        return signup.subject_id, None, signup.email, signup.language
    return uuid.uuid4(), None, email, settings.LANGUAGE_CODE


def request_create(
    *,
    kind: str,
    details: str = "",
    jurisdiction: str = "",
    purposes: Iterable[Purpose] = (),
    user=None,
    email: str = "",
    acting_user=None,
    channel: str = Channel.PORTAL,
    identity_check: str = "",
    received_at: datetime | None = None,
) -> RightsRequest:
    """A request made by the person from the panel (user, no acting_user), or
    entered by staff for a request that came by letter, phone or email
    (acting_user, channel, identity_check required)."""
    if kind not in Kind.values:
        raise RightsError(_("Choose what you are asking for."))
    jurisdiction = jurisdiction or settings.RIGHTS_DEFAULT_JURISDICTION
    if jurisdiction not in Jurisdiction.values:
        raise RightsError(_("Choose the law that applies."))
    purposes = list(purposes)
    _check_purposes(kind, purposes)
    details = _clean_text(details, limit=DETAILS_MAX)
    if acting_user is not None:
        _staff(acting_user)
        if channel not in (Channel.LETTER, Channel.PHONE, Channel.EMAIL):
            raise RightsError(_("Say how the request reached us: letter, phone or email."))
        if identity_check not in IdentityCheck.values:
            raise RightsError(_("Say how the person's identity was checked."))
        method = Method.STAFF
    else:
        if user is None or not user.is_authenticated:
            raise RightsError(_("Log in to make a request."))
        channel, identity_check, method = Channel.PORTAL, "", Method.PANEL
        received_at = None  # the person's request is received now
    subject_id, account, address, language = _person(user=user, email=email)
    now = timezone.now()
    if received_at is not None and received_at > now:
        raise RightsError(_("A request cannot be received in the future."))
    received_at = received_at or now
    with transaction.atomic():
        if kind == Kind.ERASURE:
            _erasure_lock(subject_id=subject_id, account=account)
        if kind in (Kind.OBJECTION, Kind.RESTRICTION):
            # Taken as a decision takes it: the audience's changes feed reads
            # objections and restrictions up to a barrier taken under this lock
            # (integrations.api.selectors._barriers), so none is still being
            # written behind it.
            ledger.decision_lock(subject_id)
        request = RightsRequest.objects.create(
            subject_id=subject_id,
            user=account,
            email=address,
            language=language,
            kind=kind,
            jurisdiction=jurisdiction,
            received_at=received_at,
            due_at=deadlines.due_at(received_at, jurisdiction),
            details=details,
            channel=channel,
            identity_check=identity_check,
            entered_by=acting_user,
        )
        if purposes:
            request.purposes.set(purposes)
        if kind == Kind.OBJECTION:
            _withdraw_consents(subject_id=subject_id, purposes=purposes, method=method)
        if kind == Kind.ERASURE:
            _erasure_schedule(request, now=now)
        _publish(events.RIGHTS_REQUEST_OPENED, request, at=now)
        if kind != Kind.ERASURE:
            # An erasure reaches the other systems when it is carried out.
            waiting.reach(request, emails=[address], now=now)
        if acting_user is not None:
            audit.record(
                acting_user=acting_user,
                action=AuditAction.REQUEST_ENTER,
                request=request,
                target=audit.target_of(request),
                details={"channel": channel, "identity_check": identity_check},
            )
    return request


# Erasure ------------------------------------------------------------------------------
#
# Closing an account (or asking, from a newsletter email, for a subscription's
# erasure) writes an erasure request that waits RIGHTS_ERASURE_GRACE_DAYS: the
# person is emailed the date and a link to cancel. The hourly beat task
# (rights.tasks.erasures_due) then carries it out: every standing grant is
# withdrawn in the ledger, and every registered holder (rights.erasure) removes
# what it keeps. Deleting a user in the admin does the same at once.


def erasure_grace() -> timedelta:
    return timedelta(days=settings.RIGHTS_ERASURE_GRACE_DAYS)


def _erasure_lock(*, subject_id: uuid.UUID, account) -> None:
    """Closures of one person one at a time: lock the account row (or, for a
    newsletter subscriber, the subscription's), then check under the lock
    that no erasure is already waiting."""
    if account is not None:
        get_user_model().objects.select_for_update().filter(pk=account.pk).first()
    else:
        NewsletterSignup.objects.select_for_update().filter(subject_id=subject_id).first()
    if pending_erasure(subject_id=subject_id) is not None:
        raise RightsError(
            _("Your data is already due to be erased: cancel that first to change anything.")
        )


def pending_erasure(*, subject_id: uuid.UUID) -> RightsRequest | None:
    """The person's erasure still in its grace period, if any."""
    return (
        RightsRequest.objects.filter(
            subject_id=subject_id,
            kind=Kind.ERASURE,
            status__in=OPEN_STATUSES,
            erased_at__isnull=True,
        )
        .order_by("-received_at")
        .first()
    )


def _erasure_schedule(request: RightsRequest, *, now: datetime) -> None:
    """The grace period starts now (even for a letter that arrived earlier:
    the person is told today); the account is closed, and the person emailed."""
    request.erase_after = now + erasure_grace()
    fields = ["erase_after"]
    if request.due_at < request.erase_after:
        # A grace period longer than the legal deadline moves the deadline with it.
        request.due_at = request.erase_after + timedelta(minutes=1)
        fields.append("due_at")
    request.save(update_fields=fields)
    if request.user_id is not None:
        get_user_model().objects.filter(pk=request.user_id).update(closed_at=now)
        request.user.closed_at = now
    emails.erasure_scheduled(request=request)


def account_close(*, user, jurisdiction: str = "", now: datetime | None = None) -> RightsRequest:
    """The person closes their account from the control panel (after
    reauthenticating): their data is erased when the grace period ends."""
    if user is None or not user.is_authenticated:
        raise RightsError(_("Log in to close your account."))
    return _erasure_request(
        subject_id=user.subject_id,
        account=user,
        address=user.email,
        language=user.language,
        jurisdiction=jurisdiction,
        now=now,
    )


def newsletter_erasure_request(
    *, signup: NewsletterSignup, now: datetime | None = None
) -> RightsRequest:
    """A newsletter subscriber (no account) asks, from the signed link in
    their emails, for their subscription and data to be erased. Asking again
    while one waits answers the one waiting."""
    waiting = pending_erasure(subject_id=signup.subject_id)
    if waiting is not None:
        return waiting
    return _erasure_request(
        subject_id=signup.subject_id,
        account=None,
        address=signup.email,
        language=signup.language,
        jurisdiction="",
        now=now,
    )


def _erasure_request(
    *, subject_id, account, address: str, language: str, jurisdiction: str, now
) -> RightsRequest:
    jurisdiction = jurisdiction or settings.RIGHTS_DEFAULT_JURISDICTION
    if jurisdiction not in Jurisdiction.values:
        raise RightsError(_("Choose the law that applies."))
    now = now or timezone.now()
    with transaction.atomic():
        _erasure_lock(subject_id=subject_id, account=account)
        request = RightsRequest.objects.create(
            subject_id=subject_id,
            user=account,
            email=address,
            language=language,
            kind=Kind.ERASURE,
            jurisdiction=jurisdiction,
            received_at=now,
            due_at=deadlines.due_at(now, jurisdiction),
            channel=Channel.PORTAL,
        )
        _erasure_schedule(request, now=now)
        _publish(events.RIGHTS_REQUEST_OPENED, request, at=now)
    return request


def erasure_cancel(
    *, request: RightsRequest, user=None, now: datetime | None = None
) -> RightsRequest:
    """The person keeps their account after all: from the panel (`user`, who
    must own the request) or from the signed link in the email (no user).
    Only during the grace period."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(request)
        if user is not None and locked.subject_id != user.subject_id:
            raise RightsError(_("This request is not yours."))
        if locked.kind != Kind.ERASURE:
            raise RightsError(_("This is not an erasure."))
        _open(locked)
        if locked.erase_after is not None and locked.erase_after <= now:
            raise RightsError(_("The time to cancel has passed: your data is being erased."))
        if locked.user_id is not None:
            get_user_model().objects.filter(pk=locked.user_id).update(closed_at=None)
        locked.status = Status.CANCELLED
        locked.closed_at = now
        locked.closed_by = None
        locked.save(update_fields=["status", "closed_at", "closed_by"])
        waiting.closed([locked.pk], now=now, reason=waiting.CANCELLED)
    if user is not None:
        user.closed_at = None
    return locked


def _erasure_method(request: RightsRequest, acting_user) -> str:
    """How the withdrawals that an erasure writes to the ledger were decided."""
    if acting_user is not None or request.channel not in (Channel.PORTAL,):
        return Method.STAFF
    return Method.PANEL if request.user_id else Method.EMAIL_LINK


def _withdraw_all(*, subject_id: uuid.UUID, method: str) -> int:
    granted = ConsentState.objects.filter(
        subject_id=subject_id, decision=Decision.GRANTED
    ).select_related("purpose")
    count = 0
    for state in list(granted):
        if consent_services.consent_record(
            subject_id=subject_id,
            purpose=state.purpose,
            decision=Decision.WITHDRAWN,
            method=method,
            allow_retired=True,
        ):
            count += 1
    return count


def erasure_carry_out(
    *, request: RightsRequest, acting_user=None, now: datetime | None = None
) -> RightsRequest:
    """Erase the person an erasure request names, in one transaction: the
    ledger gets a withdrawal for every standing grant (it is never edited),
    every registered holder removes what it keeps, the person's other open
    requests end, and this request stays as the proof, with nothing personal.
    Without acting_user (the beat task) only once the grace period is over.

    The erasure then reaches the company's connected systems (rights.waiting;
    integrations.systems sends it), with the addresses the person was known by
    for a person doing a manual task: when some must still confirm, the
    request stays open, in progress, and completes when the last of them
    does (request_systems_answered)."""
    if acting_user is not None:
        _staff(acting_user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(request)
        if locked.kind != Kind.ERASURE:
            raise RightsError(_("This is not an erasure."))
        _open(locked)
        if locked.erased_at is not None:
            raise RightsError(_("This person's data was already erased."))
        if acting_user is None and (locked.erase_after is None or locked.erase_after > now):
            raise RightsError(_("The grace period has not ended yet."))
        person = erasure.person_for(
            subject_id=locked.subject_id, user_id=locked.user_id, email=locked.email
        )
        method = _erasure_method(locked, acting_user)
        withdrawn = sum(_withdraw_all(subject_id=s, method=method) for s in person.subject_ids)
        others = RightsRequest.objects.filter(
            subject_id__in=person.subject_ids, status__in=OPEN_STATUSES
        ).exclude(pk=locked.pk)
        ended = list(others.values_list("pk", flat=True))
        others.update(status=Status.CANCELLED, closed_at=now)
        waiting.closed(ended, now=now, reason=waiting.ENDED_BY_ERASURE)
        counts = erasure.erase(person)
        locked.email = ""
        locked.user = None
        locked.details = ""
        locked.answer = ""
        locked.erased_at = now
        locked.save(update_fields=["email", "user", "details", "answer", "erased_at"])
        for subject_id in person.subject_ids:
            events.publish(
                events.ACCOUNT_ERASED,
                {"subject_id": str(subject_id), "request_id": str(locked.uuid)},
                at=now,
            )
        waiting.reach(locked, emails=person.emails, now=now)
        systems = waiting.waiting_on(locked.pk)
        if systems:
            # Erased here; the request waits for the company's other systems.
            locked.status = Status.IN_PROGRESS
            locked.save(update_fields=["status"])
        else:
            _done(locked, acting_user=acting_user, now=now)
        if acting_user is not None:
            _audit(locked, AuditAction.ERASURE_CARRY_OUT, acting_user=acting_user)
    logger.info(
        "erasure %s carried out: %d grants withdrawn; %s; waiting for %s",
        locked.uuid,
        withdrawn,
        ", ".join(f"{key}={count}" for key, count in counts.items()),
        ", ".join(systems) or "no other system",
    )
    return locked


def erasures_due(*, now: datetime | None = None) -> int:
    """The beat task: carry out every erasure whose grace period is over, each
    in its own transaction. Returns how many were carried out."""
    now = now or timezone.now()
    due = list(
        RightsRequest.objects.filter(
            kind=Kind.ERASURE,
            status__in=OPEN_STATUSES,
            erase_after__lte=now,
            erased_at__isnull=True,
        )
        .order_by("erase_after", "pk")
        .values_list("pk", flat=True)
    )
    done = 0
    for pk in due:
        try:
            erasure_carry_out(request=RightsRequest(pk=pk), now=now)
        except RightsError:
            continue  # cancelled or carried out meanwhile
        except Exception:
            # One erasure that fails (a holder's bug) must not hold up the others;
            # it is tried again at the next run, and the log says which.
            logger.exception("erasure request %s could not be carried out", pk)
            continue
        done += 1
    return done


def user_erase(*, user, acting_user, now: datetime | None = None) -> RightsRequest:
    """Staff delete an account in the admin: the same erasure, at once, with
    no grace period, recorded as a request done by that staff member."""
    _staff(acting_user)
    if user.pk == acting_user.pk:
        raise RightsError(
            _("You cannot erase your own account here: close it from your control panel.")
        )
    now = now or timezone.now()
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        request = pending_erasure(subject_id=user.subject_id)
        if request is None:
            jurisdiction = settings.RIGHTS_DEFAULT_JURISDICTION
            request = RightsRequest.objects.create(
                subject_id=user.subject_id,
                user=user,
                email=user.email,
                language=user.language,
                kind=Kind.ERASURE,
                jurisdiction=jurisdiction,
                received_at=now,
                due_at=deadlines.due_at(now, jurisdiction),
                channel=Channel.ADMIN,
                erase_after=now,
            )
            _publish(events.RIGHTS_REQUEST_OPENED, request, at=now)
        return erasure_carry_out(request=request, acting_user=acting_user, now=now)


def _withdraw_consents(*, subject_id: uuid.UUID, purposes: list[Purpose], method: str) -> None:
    """An objection to a purpose on consent withdraws the standing grant, in
    the ledger, as the person would from the panel."""
    consent_ids = [p.pk for p in purposes if p.legal_basis == LegalBasis.CONSENT]
    granted = ConsentState.objects.filter(
        subject_id=subject_id, purpose_id__in=consent_ids, decision=Decision.GRANTED
    ).select_related("purpose")
    for state in list(granted):
        consent_services.consent_record(
            subject_id=subject_id,
            purpose=state.purpose,
            decision=Decision.WITHDRAWN,
            method=method,
            allow_retired=True,
        )


def _locked(request: RightsRequest) -> RightsRequest:
    """The request read again under its row lock: check after locking."""
    return RightsRequest.objects.select_for_update().get(pk=request.pk)


def _open(request: RightsRequest) -> None:
    if request.status not in OPEN_STATUSES:
        raise RightsError(_("This request is already closed."))


def _done(request: RightsRequest, *, acting_user, now: datetime) -> None:
    """A request whose every part is done (the portal's and every connected
    system's) is completed, and says so to the webhooks."""
    request.status = Status.DONE
    request.closed_at = now
    request.closed_by = acting_user
    request.save(update_fields=["status", "closed_at", "closed_by"])
    _publish(events.RIGHTS_REQUEST_COMPLETED, request, at=now)


def _close(request: RightsRequest, status: str, *, acting_user, fields: list[str]) -> None:
    lifted = _lifts(request, status)
    if lifted:
        # As request_create takes it: the changes feed reads the lifts up to a
        # barrier taken under this lock, so none is still being written behind it.
        ledger.decision_lock(request.subject_id)
    request.status = status
    request.closed_at = timezone.now()
    request.closed_by = acting_user
    request.save(update_fields=["status", "closed_at", "closed_by", *fields])
    if lifted:
        LimitLifted.objects.create(request=request, lifted_at=request.closed_at)


def _lifts(request: RightsRequest, status: str) -> bool:
    """Whether closing the request with `status` ends an objection or a
    restriction in effect (rights.selectors: an objection upheld stays)."""
    if request.kind == Kind.RESTRICTION:
        return True
    return request.kind == Kind.OBJECTION and status != Status.DONE


def _audit(request: RightsRequest, action: str, *, acting_user) -> None:
    """The decision's audit row, in the decision's transaction."""
    audit.record(
        acting_user=acting_user,
        action=action,
        request=request,
        target=audit.target_of(request),
        details={"status": request.status, "due_at": request.due_at.isoformat()},
    )


def request_start(*, request: RightsRequest, acting_user) -> RightsRequest:
    """Staff take the request in hand."""
    _staff(acting_user)
    with transaction.atomic():
        locked = _locked(request)
        if locked.status != Status.RECEIVED:
            raise RightsError(_("Only a request just received can be started."))
        locked.status = Status.IN_PROGRESS
        locked.save(update_fields=["status"])
        _audit(locked, AuditAction.REQUEST_START, acting_user=acting_user)
    return locked


def request_extend(
    *, request: RightsRequest, reason: str, acting_user, now: datetime | None = None
) -> RightsRequest:
    """GDPR Art. 12(3): two further months, once, with the reason emailed to the
    person before the first month ends."""
    _staff(acting_user)
    reason = _clean_text(reason, limit=REASON_MAX)
    if not reason:
        raise RightsError(_("Give the reason for the extension: it is sent to the person."))
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(request)
        _open(locked)
        if not deadlines.can_extend(locked.jurisdiction):
            raise RightsError(
                _("Under %(law)s the deadline cannot be extended.")
                % {"law": locked.get_jurisdiction_display()}
            )
        if locked.extended_at is not None:
            raise RightsError(_("This request was already extended once."))
        if now >= locked.due_at:
            raise RightsError(
                _("The first deadline has passed: an extension had to be sent before it.")
            )
        locked.status = Status.EXTENDED
        locked.extended_at = now
        locked.extension_reason = reason
        locked.due_at = deadlines.extended_due_at(locked.received_at, locked.jurisdiction)
        locked.save(update_fields=["status", "extended_at", "extension_reason", "due_at"])
        emails.request_extended(request=locked)
        _audit(locked, AuditAction.REQUEST_EXTEND, acting_user=acting_user)
    return locked


def request_refuse(*, request: RightsRequest, reason: str, acting_user) -> RightsRequest:
    """Refused, with the reason sent to the person (and their right to complain)."""
    _staff(acting_user)
    reason = _clean_text(reason, limit=REASON_MAX)
    if not reason:
        raise RightsError(_("Give the reason for the refusal: it is sent to the person."))
    with transaction.atomic():
        locked = _locked(request)
        _open(locked)
        locked.refusal_reason = reason
        _close(locked, Status.REFUSED, acting_user=acting_user, fields=["refusal_reason"])
        if locked.kind == Kind.ERASURE and locked.user_id is not None:
            # A refused erasure (a legal reason to keep the data) leaves the account open.
            get_user_model().objects.filter(pk=locked.user_id).update(closed_at=None)
        waiting.closed([locked.pk], now=locked.closed_at, reason=waiting.REFUSED)
        emails.request_refused(request=locked)
        _audit(locked, AuditAction.REQUEST_REFUSE, acting_user=acting_user)
    return locked


def request_complete(*, request: RightsRequest, acting_user, answer: str = "") -> RightsRequest:
    """Done: the person is told, with staff's answer when there is one."""
    _staff(acting_user)
    answer = _clean_text(answer, limit=REASON_MAX)
    with transaction.atomic():
        locked = _locked(request)
        _open(locked)
        _systems_confirmed(locked)
        if locked.kind == Kind.ERASURE:
            raise RightsError(
                _(
                    "An erasure is carried out by itself when its grace period ends; "
                    "the person can cancel it until then."
                )
            )
        locked.answer = answer
        _close(locked, Status.DONE, acting_user=acting_user, fields=["answer"])
        emails.request_done(request=locked)
        _publish(events.RIGHTS_REQUEST_COMPLETED, locked, at=locked.closed_at)
        _audit(locked, AuditAction.REQUEST_COMPLETE, acting_user=acting_user)
    return locked


def _systems_confirmed(request: RightsRequest) -> None:
    """A request is complete only when every connected system it reached has
    confirmed (rights.waiting)."""
    systems = waiting.waiting_on(request.pk)
    if systems:
        raise RightsError(
            _(
                "Not every system has confirmed yet. Still waiting for: %(systems)s. "
                "The request can be completed when they have."
            )
            % {"systems": ", ".join(systems)}
        )


def request_systems_answered(
    *, request: RightsRequest, acting_user=None, now: datetime | None = None
) -> RightsRequest:
    """The last connected system a request reached has confirmed (called by
    integrations.systems, in its transaction, with the staff member who
    recorded it, or none for a system's own API call). The request completes
    when the portal's own part is done too: an erasure already carried out
    here is done now; a copy gets a fresh ZIP with every system's answer, and
    completes when that is ready (rights.exports). An objection, a restriction
    or a request staff entered waits for staff's answer (request_complete)."""
    if acting_user is not None:
        _staff(acting_user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(request)
        if locked.status not in OPEN_STATUSES or waiting.waiting_on(locked.pk):
            return locked
        if locked.kind == Kind.ERASURE and locked.erased_at is not None:
            _done(locked, acting_user=acting_user, now=now)
            if acting_user is not None:
                _audit(locked, AuditAction.REQUEST_COMPLETE, acting_user=acting_user)
        elif locked.kind == Kind.ACCESS:
            from rights import exports

            exports.export_refresh(request=locked)
    return locked


def request_cancel(*, request: RightsRequest, user) -> RightsRequest:
    """The person withdraws their own open request (an objection or a
    restriction stops having effect; an erasure, only in its grace period,
    and the account opens again)."""
    if request.kind == Kind.ERASURE:
        return erasure_cancel(request=request, user=user)
    with transaction.atomic():
        locked = _locked(request)
        if user is None or locked.subject_id != user.subject_id:
            raise RightsError(_("This request is not yours."))
        _open(locked)
        _close(locked, Status.CANCELLED, acting_user=None, fields=[])
        waiting.closed([locked.pk], now=locked.closed_at, reason=waiting.CANCELLED)
    return locked


def requests_due_notify(*, now: datetime | None = None) -> int:
    """The DPO's daily list of open requests overdue or due soon, through the
    outbox; nothing is sent when there are none. Returns how many were listed."""
    from rights.selectors import requests_needing_attention

    now = now or timezone.now()
    with transaction.atomic():
        requests = requests_needing_attention(now=now)
        if requests:
            emails.requests_due(requests=requests, now=now)
        for request in requests:
            _publish(events.RIGHTS_REQUEST_DUE, request, at=now, overdue=request.due_at <= now)
    return len(requests)
