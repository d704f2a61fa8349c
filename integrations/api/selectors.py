"""What the API reads: a person's consents, the audience of a purpose (who may
be contacted or processed for it now) and its changes since a cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import (
    CharField,
    Exists,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Lower

from consents import ledger
from consents.models import ConsentEvent, ConsentState, Decision, NewsletterSignup, Purpose
from integrations.api.compiled import Compiled
from integrations.api.problems import ApiProblem
from rights.models import Kind, LimitLifted, RightsRequest
from rights.selectors import limited_pairs, limiting_requests

# The DPV term (and the demo's key) of the data category that is an email address.
EMAIL_CATEGORY = Q(dpv_code="pd:EmailAddress") | Q(key="email")


def subject_known(subject_id: uuid.UUID) -> bool:
    """A person the portal knows: an account, a newsletter subscriber, or
    someone with decisions in the ledger."""
    return (
        get_user_model().objects.filter(subject_id=subject_id).exists()
        or NewsletterSignup.objects.filter(subject_id=subject_id).exists()
        or ConsentState.objects.filter(subject_id=subject_id).exists()
    )


def subject_by_email(email: str) -> uuid.UUID | None:
    """The person with this address (an account first, else a newsletter
    subscriber), compared case-insensitively through the LOWER(email) index."""
    address = email.strip().lower()
    if not address:
        return None
    subject = (
        get_user_model()
        .objects.annotate(address=Lower("email"))
        .filter(address=address)
        .values_list("subject_id", flat=True)
        .first()
    )
    if subject is None:
        subject = (
            NewsletterSignup.objects.annotate(address=Lower("email"))
            .filter(address=address)
            .values_list("subject_id", flat=True)
            .first()
        )
    return subject


def _consents_query(subject_id) -> QuerySet:
    # The rule is rights' (limiting_requests); as one EXISTS on the request and
    # its purposes, which PostgreSQL plans in a fraction of the IN form's time.
    limited = limiting_requests().filter(subject_id=subject_id, purposes=OuterRef("purpose_id"))
    return (
        ConsentState.objects.filter(subject_id=subject_id)
        .annotate(limited=Exists(limited))
        .order_by("purpose__order", "purpose__key")
        .values_list(
            "purpose__key",
            "purpose__retired_at",
            "decision",
            "event__uuid",
            "event__method",
            "event__created_at",
            "event__notice__version",
            "event__notice__content_hash",
            "limited",
        )
    )


_consents = Compiled(_consents_query, uuid.UUID(int=0))


def person_consents(subject_id: uuid.UUID) -> list[dict] | None:
    """The current decision for each purpose the person decided on, with the
    notice version behind it; None for someone the portal does not know.
    One query: the states, each with whether an objection or a restriction
    in effect stops it (rights.selectors)."""
    rows = _consents.rows(subject_id)
    if not rows and not subject_known(subject_id):
        return None
    consents = []
    for key, retired_at, decision, event, method, at, version, sha, stopped in rows:
        granted = decision == Decision.GRANTED
        consents.append(
            {
                "purpose": key,
                "decision": decision,
                "granted": granted,
                "processing_allowed": granted and retired_at is None and not stopped,
                "purpose_retired": retired_at is not None,
                "objection_or_restriction": bool(stopped),
                "notice_version": version,
                "notice_sha256": sha,
                "method": method,
                "decided_at": at,
                "receipt": event,
            }
        )
    return consents


# The audience ----------------------------------------------------------------------


def audience_purpose(key: str) -> tuple[Purpose, bool]:
    """The purpose and whether its audience may carry email addresses."""
    purpose = Purpose.objects.filter(key=key).first()
    if purpose is None:
        raise ApiProblem("unknown-purpose", f"There is no purpose “{key}”.")
    if purpose.retired_at is not None:
        raise ApiProblem(
            "purpose-retired",
            "The purpose is retired: nobody may be contacted or processed for it.",
        )
    if not purpose.is_optional:
        raise ApiProblem(
            "not-on-consent",
            "The audience is kept for purposes that rest on consent; "
            "this one rests on another legal basis.",
        )
    uses_email = purpose.data_categories.filter(EMAIL_CATEGORY).exists()
    return purpose, uses_email


def _encode(kind: str, *parts: int) -> str:
    raw = ".".join([kind, *(str(p) for p in parts)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str, *sizes: int) -> list[int]:
    """The numbers of a cursor this API gave, or a 400 problem. A kind may
    have had fewer numbers once (`sizes`): cursors given then still work."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        head, *numbers = raw.split(".")
        values = [int(n) for n in numbers]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        values, head = [], ""
    if head != kind or len(values) not in sizes or any(v < 0 or v > 2**62 for v in values):
        raise ApiProblem("invalid-cursor")
    return values


# Objections and restrictions: a person in one that covers a purpose leaves its
# audience without a decision in the ledger (a restriction never withdraws).
LIMITING_KINDS = (Kind.OBJECTION, Kind.RESTRICTION)


def _barriers() -> tuple[int, int, int]:
    """Where the changes feed may read up to: the ledger's committed barrier
    and, under the same exclusive lock, the highest rights request id and the
    highest lift's. An objection or a restriction is written, and lifted,
    holding the ledger lock shared (rights.services.request_create and
    _close), so none with a lower id is still being written once the lock is
    ours: the feed cannot pass one unseen."""
    with transaction.atomic():
        events = ledger.committed_barrier()
        requests = RightsRequest.objects.aggregate(m=Max("pk"))["m"] or 0
        lifts = LimitLifted.objects.aggregate(m=Max("pk"))["m"] or 0
    return events, requests, lifts


@dataclass(frozen=True)
class AudiencePage:
    rows: list[tuple]  # (subject id as text, email or None)
    next_cursor: str | None
    changes_cursor: str | None


def _in_audience(purpose: Purpose, with_email: bool):
    """Granted, not stopped by an objection or a restriction (rights.selectors);
    GPC is already in the ledger (consents.services.gpc_apply withdraws)."""
    limited = limited_pairs().filter(
        rightsrequest__subject_id=OuterRef("subject_id"), purpose_id=purpose.pk
    )
    states = ConsentState.objects.filter(purpose_id=purpose.pk, decision=Decision.GRANTED).exclude(
        Exists(limited)
    )
    if with_email:
        accounts = get_user_model().objects.filter(subject_id=OuterRef("subject_id"))
        subscribers = NewsletterSignup.objects.filter(subject_id=OuterRef("subject_id"))
        states = states.annotate(
            email=Coalesce(
                Subquery(accounts.values("email")[:1]), Subquery(subscribers.values("email")[:1])
            )
        )
    else:
        states = states.annotate(email=Value(None, output_field=CharField()))
    return states


def audience_page(
    purpose: Purpose, *, cursor: str | None, limit: int, with_email: bool
) -> AudiencePage:
    """One page of the audience, in the order of the state rows' ids (a keyset:
    stable under concurrent writes). The first page fixes the ledger point
    that the changes feed starts from, so that nothing decided during the walk
    is missed: the last page hands it over as `changes_cursor`."""
    if cursor:
        pid, after, since, *rest = _decode(cursor, "a", 5, 4, 3)
        # A cursor given before requests, or their lifts, were followed: from the start.
        since_requests, since_lifts = (*rest, 0, 0)[:2]
        if pid != purpose.pk:
            raise ApiProblem("invalid-cursor", "The cursor belongs to another purpose.")
    else:
        after, (since, since_requests, since_lifts) = 0, _barriers()
    page = _in_audience(purpose, with_email).filter(pk__gt=after).order_by("pk")
    if connection.vendor == "postgresql":
        # Thousands of rows a page: the subject id comes as text from the
        # database and the rows in one fetch, without the ORM's per-row work.
        page = page.annotate(subject=Cast("subject_id", output_field=TextField()))
        sql, params = page.values_list("pk", "subject", "email")[:limit].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
    else:
        rows = page.values_list("pk", "subject_id", "email")[:limit]
        fetched = [(pk, str(subject), email) for pk, subject, email in rows]
    rows = [(subject, address) for _pk, subject, address in fetched]
    if len(fetched) == limit:
        cursor = _encode("a", purpose.pk, fetched[-1][0], since, since_requests, since_lifts)
        return AudiencePage(rows, cursor, None)
    return AudiencePage(rows, None, _encode("c", purpose.pk, since, since_requests, since_lifts))


@dataclass(frozen=True)
class ChangesPage:
    rows: list[tuple]  # (subject_id, in audience now, email or None)
    next_cursor: str
    more: bool


def audience_changes(purpose: Purpose, *, cursor: str, limit: int, with_email: bool) -> ChangesPage:
    """The people whose decision on the purpose changed since the cursor, who
    made an objection or a restriction covering it since, or whose objection
    or restriction covering it was lifted since, each once, with whether they
    are in the audience now. Each is read only up to its barrier (_barriers):
    one still being written cannot appear behind the cursor once it has
    passed. A page holds at most `limit` events, `limit` requests and `limit`
    lifts."""
    pid, since, *rest = _decode(cursor, "c", 4, 3, 2)
    # A cursor given before requests, or their lifts, were followed: from the start.
    since_requests, since_lifts = (*rest, 0, 0)[:2]
    if pid != purpose.pk:
        raise ApiProblem("invalid-cursor", "The cursor belongs to another purpose.")
    barrier, requests_barrier, lifts_barrier = _barriers()
    events = list(
        ConsentEvent.objects.filter(purpose_id=purpose.pk, pk__gt=since, pk__lte=barrier)
        .order_by("pk")
        .values_list("pk", "subject_id")[:limit]
    )
    requests = list(
        RightsRequest.objects.filter(
            kind__in=LIMITING_KINDS,
            purposes=purpose.pk,
            pk__gt=since_requests,
            pk__lte=requests_barrier,
        )
        .order_by("pk")
        .values_list("pk", "subject_id")[:limit]
    )
    # Lifting one (a restriction answered, an objection refused or withdrawn)
    # may bring the person back: they are a change too.
    lifts = list(
        LimitLifted.objects.filter(
            request__purposes=purpose.pk, pk__gt=since_lifts, pk__lte=lifts_barrier
        )
        .order_by("pk")
        .values_list("pk", "request__subject_id")[:limit]
    )
    more_events, more_requests, more_lifts = (
        len(events) == limit,
        len(requests) == limit,
        len(lifts) == limit,
    )
    next_since = events[-1][0] if more_events else max(since, barrier)
    next_requests = requests[-1][0] if more_requests else max(since_requests, requests_barrier)
    next_lifts = lifts[-1][0] if more_lifts else max(since_lifts, lifts_barrier)
    subjects = list(dict.fromkeys(subject for _pk, subject in [*events, *requests, *lifts]))
    present = {}
    if subjects:
        present = dict(
            _in_audience(purpose, with_email)
            .filter(subject_id__in=subjects)
            .values_list("subject_id", "email")
        )
    rows = [(s, s in present, present.get(s)) for s in subjects]
    return ChangesPage(
        rows,
        _encode("c", purpose.pk, next_since, next_requests, next_lifts),
        more_events or more_requests or more_lifts,
    )


# The call log, for the person it concerned ----------------------------------------------


def calls_about(subject_id: uuid.UUID) -> QuerySet:
    """The calls that concerned one person (apicall_subject_idx)."""
    from integrations.models import ApiCall

    return ApiCall.objects.filter(subject_id=subject_id)


def calls_about_rows(subject_id: uuid.UUID, labels: dict) -> Iterator[dict]:
    """Those calls oldest first, as plain values, read in chunks: when, which
    system (its key's name), which operation (code and `labels`' words for
    it), the answer's status and the purpose concerned."""
    rows = calls_about(subject_id).order_by("at", "pk")
    fields = ("at", "key__name", "operation", "status", "purpose")
    for at, system, operation, status, purpose in rows.values_list(*fields).iterator(500):
        yield {
            "at": at,
            "system": system,
            "operation": operation,
            "operation_label": str(labels.get(operation, operation)),
            "status": status,
            "purpose": purpose or None,
        }
