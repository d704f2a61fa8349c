"""A year of synthetic history for the demo's dashboard: a few thousand
people who signed up over the year, chose purpose by purpose, and changed
their minds; five months ago the recommendations purpose widened, and a
month later the grants not given again lapsed. Events are made as the ledger
makes them (consents.ledger.event_hash under the policy version in force) and
inserted in bulk, in the order of their time, with the current state they
lead to, so that verify_ledger finds the demo's ledger intact."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from consents.ledger import event_hash
from consents.models import (
    ConsentEvent,
    Decision,
    LegalBasis,
    Method,
    PersonalDatum,
    Purpose,
    PurposeNotice,
)
from shop.models import Interest, ProductCategory

# The history's events carry this truncated address (a documentation range):
# a second run of seed_demo finds them and adds nothing.
HISTORY_IP = "198.51.100.0"
HISTORY_AGENT = "Demo history"
BATCH = 2000

# Chance of a grant at sign-up, per purpose; purposes not named get 0.2.
SIGNUP_RATE = {
    "newsletter": 0.55,
    "recommendations": 0.5,
    "tailored-offers": 0.4,
    "product-research": 0.25,
    "ad-partners": 0.15,
    "dietary-suggestions": 0.012,  # a small purpose: its weekly cells are suppressed
}


def history_seeded(marker: str = HISTORY_IP) -> bool:
    return ConsentEvent.objects.filter(ip_truncated=marker).exists()


def _events_of_one(rng: random.Random, now: datetime, purposes, change_at, lapse_at):
    """(moment, purpose key, decision, method) of one person, in time order."""
    joined = now - timedelta(days=365 * (1 - rng.random() ** 0.7), minutes=rng.randrange(1440))
    events = []
    granted = {}
    for key in purposes:
        yes = rng.random() < SIGNUP_RATE.get(key, 0.2)
        granted[key] = yes
        decision = Decision.GRANTED if yes else Decision.REFUSED
        events.append((joined, key, decision, Method.SIGNUP))
    # Later decisions, each at a random moment after joining.
    for key in purposes:
        moment = joined + timedelta(days=rng.random() * (now - joined).days)
        if moment >= now:
            continue
        after_change = moment > change_at
        if granted[key]:
            leave = 0.08 + (0.12 if key == "recommendations" and after_change else 0)
            if rng.random() < leave:
                method = (
                    Method.EMAIL_LINK
                    if key == "newsletter" and rng.random() < 0.5
                    else Method.PANEL
                )
                events.append((moment, key, Decision.WITHDRAWN, method))
                granted[key] = False
            elif key == "ad-partners" and rng.random() < 0.3:
                events.append((moment, key, Decision.WITHDRAWN, Method.GPC))
                granted[key] = False
        elif rng.random() < (0.12 if not after_change else 0.07):
            events.append((moment, key, Decision.GRANTED, Method.PANEL))
            granted[key] = True
    # The recommendations change: grants from before it, not given again, lapse.
    if "recommendations" in purposes and joined < change_at:
        holds = [e for e in events if e[1] == "recommendations" and e[0] <= change_at]
        if holds and holds[-1][2] == Decision.GRANTED:
            later = [e for e in events if e[1] == "recommendations" and e[0] > change_at]
            if not later and rng.random() < 0.35:
                events.append((lapse_at, "recommendations", Decision.WITHDRAWN, Method.EXPIRY))
            elif not later and rng.random() < 0.6:
                moment = change_at + timedelta(days=rng.random() * 29)
                events.append((moment, "recommendations", Decision.GRANTED, Method.EMAIL_LINK))
    events.sort(key=lambda e: e[0])
    return events, granted


@transaction.atomic
def seed_history(*, people: int = 3000, seed: int = 11, marker: str = HISTORY_IP) -> int:
    """Insert the history once; returns the events inserted (0 when it is there).
    `marker` is the truncated address its events carry (tests add a second one)."""
    from consents.services import policy_version_in_force

    if history_seeded(marker):
        return 0
    rng = random.Random(seed)  # noqa: S311 (synthetic data, repeatable on purpose)
    purposes = {
        p.key: p
        for p in Purpose.objects.filter(legal_basis=LegalBasis.CONSENT, retired_at__isnull=True)
    }
    notices = {
        key: PurposeNotice.objects.filter(purpose=p).order_by("-version").first()
        for key, p in purposes.items()
    }
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    now = timezone.now() - timedelta(hours=1)
    change_at = now - timedelta(days=150)
    lapse_at = change_at + timedelta(days=30)
    rows = []
    final: dict[tuple[uuid.UUID, str], str] = {}
    wants_interests, diets = [], []
    for _n in range(people):
        subject = uuid.UUID(int=rng.getrandbits(128), version=4)
        events, granted = _events_of_one(rng, now, list(purposes), change_at, lapse_at)
        for moment, key, decision, method in events:
            rows.append((moment, subject, key, decision, method))
            final[subject, key] = decision
        if granted.get("recommendations"):
            wants_interests.append(subject)
        if granted.get("dietary-suggestions"):
            diets.append(subject)
    rows.sort(key=lambda r: r[0])
    events = []
    for moment, subject, key, decision, method in rows:
        notice = notices[key]
        event = ConsentEvent(
            uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
            subject_id=subject,
            purpose_id=purposes[key].pk,
            notice_id=notice.pk,
            policy_version_id=policy_id,
            decision=decision,
            method=method,
            created_at=moment,
            ip_truncated=marker,
            user_agent_family=HISTORY_AGENT,
            gpc_signal=method == Method.GPC,
        )
        event.hash = event_hash(
            uuid=event.uuid,
            subject_id=subject,
            purpose_id=event.purpose_id,
            notice_hash=notice.content_hash,
            policy_version_id=policy_id,
            policy_hash=policy_hash,
            decision=decision,
            method=method,
            created_at=moment,
            ip_truncated=marker,
            user_agent_family=HISTORY_AGENT,
            gpc_signal=event.gpc_signal,
        )
        events.append(event)
    _insert(
        "consents_consentevent",
        ["uuid", "subject_id", "purpose_id", "notice_id", "policy_version_id", "decision",
         "method", "created_at", "ip_truncated", "user_agent_family", "gpc_signal", "prev_hash",
         "hash"],
        [(e.uuid, e.subject_id, e.purpose_id, e.notice_id, e.policy_version_id, e.decision,
          e.method, e.created_at, e.ip_truncated, e.user_agent_family, e.gpc_signal, "", e.hash)
         for e in events],
    )  # fmt: skip
    # The current state: each pair's last event (the ledger's order is the ids').
    last = {}
    for pk, subject, purpose_id, decision, moment in (
        ConsentEvent.objects.filter(ip_truncated=marker)
        .order_by("id")
        .values_list("id", "subject_id", "purpose_id", "decision", "created_at")
        .iterator(chunk_size=BATCH)
    ):
        last[subject, purpose_id] = (pk, decision, moment)
    _insert(
        "consents_consentstate",
        ["subject_id", "purpose_id", "decision", "event_id", "updated_at"],
        [
            (subject, purpose_id, decision, pk, moment)
            for (subject, purpose_id), (pk, decision, moment) in last.items()
        ],
    )
    # What the value exchange uses: interests (zero-party data), stated diets.
    categories = list(ProductCategory.objects.values_list("key", flat=True))
    popularity = [len(categories) - i for i in range(len(categories))]
    interests = []
    for subject in wants_interests:
        if not categories:
            break
        chosen = set(rng.choices(categories, weights=popularity, k=rng.randint(1, 3)))
        interests += [Interest(subject_id=subject, category_id=key) for key in chosen]
    Interest.objects.bulk_create(interests, batch_size=BATCH)
    PersonalDatum.objects.bulk_create(
        [
            PersonalDatum(subject_id=s, field="dietary", value=rng.choice(["gluten", "lactose"]))
            for s in diets
        ],
        batch_size=BATCH,
    )
    _rights_history(rng, now)
    return len(events)


def _insert(table: str, columns: list[str], rows: list[tuple]) -> None:
    """Plain INSERTs of many rows (the ORM's bulk_create spent two thirds of
    the history's time preparing values). UUIDs and times are given as each
    database stores them: SQLite keeps UUIDs as 32 hex digits and times as
    naive UTC text."""
    if connection.vendor == "sqlite":
        adapt = connection.ops.adapt_datetimefield_value

        def prepared(value):
            if isinstance(value, uuid.UUID):
                return value.hex
            if isinstance(value, datetime):
                return adapt(value)
            return value

        rows = [tuple(prepared(v) for v in row) for row in rows]
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        for i in range(0, len(rows), BATCH):
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - our own names
                rows[i : i + BATCH],
            )


def _rights_history(rng: random.Random, now: datetime) -> None:
    """A year of answered requests, a dozen or so a month, a few answered late."""
    from rights.deadlines import due_at
    from rights.models import Channel, Kind, RightsRequest, Status

    requests = []
    for _n in range(160):
        received = now - timedelta(days=20 + rng.random() * 340)
        due = due_at(received, "lgpd")
        taken = timedelta(days=rng.choice([1, 2, 3, 5, 8, 10, 12, 14, 16]), hours=rng.randrange(24))
        requests.append(
            RightsRequest(
                subject_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                kind=rng.choice([Kind.ACCESS, Kind.ACCESS, Kind.ERASURE, Kind.OBJECTION]),
                jurisdiction="lgpd",
                status=Status.DONE,
                received_at=received,
                due_at=due,
                channel=Channel.PORTAL,
                closed_at=received + taken,
                answer="Demo history.",
            )
        )
    RightsRequest.objects.bulk_create(requests)


def seed_privacy_budget(*, acting_user) -> str:
    """This month's privacy budget, written (and audited) once by the demo's
    staff member, so that the demo's analyst can make a release at once."""
    from django.conf import settings

    from insight.models import PrivacyBudget
    from insight.selectors import budget, budget_month
    from insight.services import privacy_budget_set

    month = budget_month()
    if not PrivacyBudget.objects.filter(month=month).exists():
        privacy_budget_set(
            month=month, epsilon=settings.INSIGHT_DP_EPSILON_PER_MONTH, acting_user=acting_user
        )
    state = budget(month)
    return f"epsilon {state.left} left of {state.epsilon} for {month:%Y-%m}"
