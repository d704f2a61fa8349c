"""What erasing a person removes (GDPR Art. 17, LGPD Art. 16 and 18 VI), and
the registry through which every app says what it holds about a person.

A person is named by the ledger's opaque subject id, their account (when
there is one) and every email address we know them by. Erasing them removes
everything that links that subject id to the person; what stays is:

- the consent ledger's events, never edited (proof of consent for as long as
  a claim is possible, GDPR Art. 17(3)(e), LGPD Art. 16 I), and the current
  state derived from them, which verify_ledger checks against the events: both
  hold only the opaque subject id, a purpose and a decision. The erasure first
  withdraws every standing grant in the ledger, so the state ends "withdrawn";
- the erasure request itself, as proof that the erasure was done, emptied of
  the address, the account link and every text (rights.services).

Each holder below is one kind of record: `rows(person)` is the queryset of
the person's rows (counted on the pages that say what goes), and `erase`
(by default, deleting those rows) removes them. Apps with records of their
own add a holder from their AppConfig.ready():

    from rights import erasure
    erasure.register(erasure.Holder("exports", _("Copies of your data"), rows=my_rows,
                                    erase=my_erase), after="personal-data")

`erase(person, rows)` runs inside the erasure's transaction and returns the
rows it removed; files outside the database must be deleted on commit
(transaction.on_commit), so that a rolled-back erasure leaves them.
The account row goes last: deleting it cascades to allauth's rows.
"""

from __future__ import annotations

import binascii
import json
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import models
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consents.models import NewsletterSignup, PersonalDatum
from portal.models import OutboxItem


@dataclass(frozen=True)
class Person:
    """Whom an erasure is about: their subject ids (the account's or the
    subscription's first, then a newsletter subscription under one of their
    addresses, which has a subject id of its own), the account (if any) and
    every address they are known by (lower-cased)."""

    subject_ids: tuple[uuid.UUID, ...]
    user_id: int | None = None
    emails: tuple[str, ...] = field(default_factory=tuple)

    @property
    def subject_id(self) -> uuid.UUID:
        return self.subject_ids[0]


def person_for(*, subject_id: uuid.UUID, user_id: int | None = None, email: str = "") -> Person:
    """Every address known for the person: the account's (all of allauth's
    addresses), the newsletter subscription's and the one given."""
    from allauth.account.models import EmailAddress

    addresses = {email.strip().lower()} if email and email.strip() else set()
    User = get_user_model()
    if user_id is None:
        user_id = User.objects.filter(subject_id=subject_id).values_list("pk", flat=True).first()
    if user_id is not None:
        addresses.update(
            e.lower() for e in User.objects.filter(pk=user_id).values_list("email", flat=True)
        )
        addresses.update(
            e.lower() for e in EmailAddress.objects.filter(user_id=user_id).values_list(
                "email", flat=True
            )
        )  # fmt: skip
    subject_ids = [subject_id]
    signups = NewsletterSignup.objects.filter(
        Q(subject_id=subject_id) | _addressed("email", addresses)
    ).values_list("subject_id", "email")
    for signup_subject, signup_email in signups:
        addresses.add(signup_email.lower())
        if signup_subject not in subject_ids:
            subject_ids.append(signup_subject)
    return Person(subject_ids=tuple(subject_ids), user_id=user_id, emails=tuple(sorted(addresses)))


def _addressed(field_name: str, emails: Iterable[str]) -> Q:
    """Rows whose address is one of `emails`, whatever its case. Never an
    empty Q (which would match every row)."""
    q = Q(pk__in=[])
    for email in emails:
        q |= Q(**{f"{field_name}__iexact": email})
    return q


@dataclass(frozen=True)
class Holder:
    """One kind of record that may hold something about a person."""

    key: str
    label: Promise  # what a person or staff read: "Your interests"
    rows: Callable[[Person], models.QuerySet]
    erase: Callable[[Person, models.QuerySet], int] | None = None

    def remove(self, person: Person) -> int:
        rows = self.rows(person)
        if self.erase is not None:
            return self.erase(person, rows)
        _total, per_model = rows.delete()
        return per_model.get(rows.model._meta.label, 0)


_holders: dict[str, Holder] = {}


def register(holder: Holder, *, after: str | None = None) -> None:
    """Add what an app holds about a person to every erasure (and to the
    pages that list what goes), at the end or after the holder `after`
    (replacing one with the same key in its place). From the app's
    AppConfig.ready()."""
    if holder.key in _holders or after not in _holders:
        _holders[holder.key] = holder
        return
    placed: dict[str, Holder] = {}
    for key, existing in _holders.items():
        placed[key] = existing
        if key == after:
            placed[holder.key] = holder
    _holders.clear()
    _holders.update(placed)


def holders() -> list[Holder]:
    """Registered holders, the account last (its deletion cascades)."""
    return sorted(_holders.values(), key=lambda h: h.key == "account")


def plan(person: Person) -> list[tuple[str, int]]:
    """(label, rows) of every holder that holds something about the person:
    what an erasure would remove now."""
    found = []
    for holder in holders():
        count = holder.rows(person).count()
        if count:
            found.append((str(holder.label), count))
    return found


def erase(person: Person) -> dict[str, int]:
    """Remove what every holder keeps about the person; in the caller's
    transaction (rights.services.erasure_carry_out). Rows removed, per holder."""
    return {holder.key: holder.remove(person) for holder in holders()}


# What the portal's own apps hold ---------------------------------------------------


def _personal_data(person: Person) -> models.QuerySet:
    return PersonalDatum.objects.filter(subject_id__in=person.subject_ids)


def _newsletter(person: Person) -> models.QuerySet:
    return NewsletterSignup.objects.filter(
        Q(subject_id__in=person.subject_ids) | _addressed("email", person.emails)
    )


def _acknowledgements(person: Person) -> models.QuerySet:
    Acknowledgement = apps.get_model("policies", "Acknowledgement")
    q = Q(subject_id__in=person.subject_ids)
    if person.user_id is not None:
        q |= Q(user_id=person.user_id)
    return Acknowledgement.objects.filter(q)


def _outbox(person: Person) -> models.QuerySet:
    """Every email and notice for the person, sent or waiting: a waiting one
    is never sent (its recipient is gone), a sent one's address goes."""
    return OutboxItem.objects.filter(
        Q(subject_id__in=person.subject_ids) | _addressed("recipient", person.emails)
    )


def _user_sessions(person: Person) -> models.QuerySet:
    from allauth.usersessions.models import UserSession

    if person.user_id is None:
        return UserSession.objects.none()
    return UserSession.objects.filter(user_id=person.user_id)


def _sessions(person: Person) -> models.QuerySet:
    """The person's login sessions that allauth lists (it records every
    session a login starts). Only the database engine keeps sessions in rows;
    another engine's sessions end with the account (no user, no login)."""
    if person.user_id is None or settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return Session.objects.none()
    return Session.objects.filter(
        session_key__in=list(_user_sessions(person).values_list("session_key", flat=True))
    )


def _session_user_id(data: str) -> str | None:
    """The account a stored session names, read without checking its
    signature (Django's check costs ~0.2 ms a session, which made an erasure
    over 100,000 sessions take 21 s; bench/erasure.py). Reading our own table
    to find what to delete needs no proof of who wrote it. None when the data
    is not in the signed format Django writes."""
    payload = data.rsplit(":", 2)[0]
    try:
        compressed = payload.startswith(".")
        raw = signing.b64_decode((payload[1:] if compressed else payload).encode())
        if compressed:
            raw = zlib.decompress(raw)
        value = json.loads(raw).get(SESSION_KEY)
    except (ValueError, zlib.error, AttributeError, binascii.Error):
        return None
    return None if value is None else str(value)


def _sessions_erase(person: Person, rows: models.QuerySet) -> int:
    """The listed sessions, and any other whose data names the account (a
    login allauth did not see, a session older than its list): that means
    reading every session once, which is why only the erasure does it, not
    the pages that count what goes."""
    if person.user_id is None or settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return 0
    keys = set(rows.values_list("session_key", flat=True))
    user_id = str(person.user_id)
    for key, data in Session.objects.values_list("session_key", "session_data").iterator(
        chunk_size=5000
    ):
        if key not in keys and _session_user_id(data) == user_id:
            keys.add(key)
    return Session.objects.filter(session_key__in=keys).delete()[0]


def _authenticators(person: Person) -> models.QuerySet:
    from allauth.mfa.models import Authenticator

    if person.user_id is None:
        return Authenticator.objects.none()
    return Authenticator.objects.filter(user_id=person.user_id)


def _email_addresses(person: Person) -> models.QuerySet:
    from allauth.account.models import EmailAddress

    if person.user_id is None:
        return EmailAddress.objects.none()
    return EmailAddress.objects.filter(user_id=person.user_id)


def _admin_history(person: Person) -> models.QuerySet:
    """The admin's history of changes to the account or the subscription
    (each entry names its object: the address), and of the person's own
    actions if they were staff."""
    if person.user_id is None and not person.emails:
        return LogEntry.objects.none()
    q = Q(pk__in=[])
    if person.user_id is not None:
        q |= Q(user_id=person.user_id) | Q(
            content_type=ContentType.objects.get_for_model(get_user_model()),
            object_id=str(person.user_id),
        )
    signups = [str(pk) for pk in _newsletter(person).values_list("pk", flat=True)]
    if signups:
        q |= Q(
            content_type=ContentType.objects.get_for_model(NewsletterSignup), object_id__in=signups
        )
    return LogEntry.objects.filter(q)


def _requests(person: Person) -> models.QuerySet:
    from rights.models import RightsRequest

    q = Q(subject_id__in=person.subject_ids)
    if person.user_id is not None:
        q |= Q(user_id=person.user_id)
    return RightsRequest.objects.filter(q).filter(
        ~Q(email="") | Q(user__isnull=False) | ~Q(details="") | ~Q(answer="")
        | ~Q(extension_reason="") | ~Q(refusal_reason="")
    )  # fmt: skip


# What replaces a staff reason that a request must keep (a refusal and an
# extension carry one, by constraint) once the person is erased.
ERASED_TEXT = "[erased with the person's data]"


def _requests_empty(person: Person, rows: models.QuerySet) -> int:
    """Requests stay as proof that they were answered, with nothing personal
    in them: no address, no account, none of the texts (which may quote the
    person; a reason the request must have is replaced by a marker)."""
    from django.db.models import Case, Value, When

    def marked(field_name: str):
        return Case(When(**{field_name: ""}, then=Value("")), default=Value(ERASED_TEXT))

    return rows.update(
        email="",
        user=None,
        details="",
        answer="",
        extension_reason=marked("extension_reason"),
        refusal_reason=marked("refusal_reason"),
    )


def _copies(person: Person) -> models.QuerySet:
    from rights.models import DataExport

    return DataExport.objects.filter(subject_id__in=person.subject_ids)


def _copies_erase(person: Person, rows: models.QuerySet) -> int:
    """Files (on commit), rows and their outbox rows (rights.exports)."""
    from rights import exports

    return sum(exports.erase_for(subject_id) for subject_id in person.subject_ids)


def _account(person: Person) -> models.QuerySet:
    if person.user_id is None:
        return get_user_model().objects.none()
    return get_user_model().objects.filter(pk=person.user_id)


for _holder in (
    Holder("personal-data", _("Your personal data (address, phone, allergies…)"), _personal_data),
    Holder("newsletter", _("Your newsletter subscription"), _newsletter),
    Holder("acknowledgements", _("Which policy versions you acknowledged"), _acknowledgements),
    Holder("data-copies", _("The copies of your data you asked for"), _copies, _copies_erase),
    Holder("outbox", _("The emails we sent you, and those waiting"), _outbox),
    Holder("sessions", _("Your login sessions"), _sessions, _sessions_erase),
    Holder("user-sessions", _("The list of your sessions"), _user_sessions),
    Holder("authenticators", _("Your two-factor authenticators and passkeys"), _authenticators),
    Holder("email-addresses", _("Your email addresses"), _email_addresses),
    Holder("admin-history", _("Staff's change history of your account"), _admin_history),
    Holder(
        "rights-requests",
        _("Your requests' texts and address (each request stays as proof, without them)"),
        _requests,
        _requests_empty,
    ),
    Holder("account", _("Your account: email, name, password, language"), _account),
):
    register(_holder)
