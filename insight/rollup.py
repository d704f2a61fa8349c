"""The fold of the ledger into counts of people (insight.models.Tally).

Each run reads only the events after the cursor (RollupCursor "ledger"), in
batches, and adds what they change to the rows of their week, month and
policy version. A person is counted once per row: before a batch is added,
the earlier events of the batch's people are read (the ledger's index by
person), so a second grant in the same week, or a second unsubscribe under
the same version, is not counted again. The cost of a run follows the number
of new events and of their people's past decisions, never the ledger's size.

On PostgreSQL a batch is one statement (FOLD_SQL): the batch's events and
their people's earlier ones are read once, each (person, row) pair keeps its
first event, window functions follow each person's state, and the deltas are
added with INSERT ... ON CONFLICT. Elsewhere (SQLite) the same counting runs
in Python (_fold); tests/insight/test_rollup.py checks that both give the same
rows.

Figures (insight.models.Figure) are the current state's counts, taken again
by each run: cheap GROUP BYs over the state, the interests, the outbox's
progress index and the rights requests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from consents.models import ConsentEvent, Decision, Method
from insight.models import NO_DATE, Figure, Period, RollupCursor, Tally

LEDGER_CURSOR = "ledger"
BATCH = 5000
BATCH_SQL = 50000  # a batch per statement on PostgreSQL
FOLD_WORK_MEM = "64MB"  # a batch of 50,000 and its people's past, sorted in memory
SUBJECTS_PER_QUERY = 500  # under SQLite's limit of bound parameters

# Measures folded from the ledger (Tally.measure).
GRANT_SIGNUP = "grant_signup"  # granted when signing up (sign-up or newsletter form)
GRANT_LATER = "grant_later"  # granted later: panel, email link, staff
WITHDRAW = "withdraw"  # withdrawn by the person (panel, email link, staff at their request)
LAPSE = "lapse"  # a grant that lapsed: not given again after a change (method expiry)
GPC_OPT_OUT = "gpc_opt_out"  # refused or withdrawn by Global Privacy Control
UNSUBSCRIBE = "unsubscribe"  # one-click stop from an email, per policy version in force
NEW_PEOPLE = "new_people"  # people whose first decision it was
NET_GRANTED = "net_granted"  # people whose state became granted, minus those whose state left it

AT_SIGNUP = {Method.SIGNUP, Method.NEWSLETTER}
DATED = (Period.WEEK, Period.MONTH)


def period_start(period: str, moment: datetime) -> date:
    return _starts(moment)[0 if period == Period.WEEK else 1]


def _starts(moment: datetime) -> tuple[date, date]:
    """The Monday of the moment's week and the first of its month, in the
    portal's time zone (read once per run: timezone.localtime per event was
    half of the fold's time)."""
    day = moment.astimezone(_zone()).date()
    return day - timedelta(days=day.weekday()), day.replace(day=1)


_zone_of_run: list = []


def _zone():
    # Set by each run (ledger_rollup): settings are not read once per event.
    return _zone_of_run[0] if _zone_of_run else timezone.get_default_timezone()


def _measures(decision: str, method: str, gpc: bool) -> list[str]:
    if decision == Decision.GRANTED:
        return [GRANT_SIGNUP if method in AT_SIGNUP else GRANT_LATER]
    if method == Method.GPC:
        return [GPC_OPT_OUT]
    if decision != Decision.WITHDRAWN:
        return []
    if method == Method.EXPIRY:
        return [LAPSE]
    return [WITHDRAW]


def _cells(event: tuple) -> list[tuple]:
    """The rows an event counts its person in, as (period, start, measure,
    purpose, version) keys (NEW_PEOPLE and NET_GRANTED are decided apart)."""
    _id, _subject, purpose, decision, method, created, version, gpc = event
    cells = []
    measures = _measures(decision, method, gpc)
    if measures:
        week, month = _starts(created)
    for measure in measures:
        cells.append((Period.WEEK, week, measure, purpose, 0))
        cells.append((Period.MONTH, month, measure, purpose, 0))
        if measure == LAPSE:
            cells.append((Period.VERSION, NO_DATE, LAPSE, purpose, version or 0))
    if decision == Decision.WITHDRAWN and method == Method.EMAIL_LINK:
        cells.append((Period.VERSION, NO_DATE, UNSUBSCRIBE, 0, version or 0))
    return cells


_COLUMNS = (
    "id",
    "subject_id",
    "purpose_id",
    "decision",
    "method",
    "created_at",
    "policy_version_id",
    "gpc_signal",
)


@dataclass
class _Past:
    """What the ledger said about a batch's people before the batch."""

    decision: dict  # (subject, purpose) -> last decision
    known: set  # subjects with any decision
    counted: set  # (cell, subject) already counted


def _past(subjects: list, before: int) -> _Past:
    past = _Past({}, set(), set())
    for i in range(0, len(subjects), SUBJECTS_PER_QUERY):
        rows = (
            ConsentEvent.objects.filter(
                subject_id__in=subjects[i : i + SUBJECTS_PER_QUERY], id__lte=before
            )
            .order_by("id")
            .values_list(*_COLUMNS)
        )
        for event in rows:
            subject, purpose = event[1], event[2]
            past.decision[subject, purpose] = event[3]
            past.known.add(subject)
            for cell in _cells(event):
                past.counted.add((cell, subject))
    return past


def _fold(events: list[tuple], past: _Past) -> dict[tuple, int]:
    deltas: dict[tuple, int] = defaultdict(int)
    for event in events:
        subject, purpose, decision, created = event[1], event[2], event[3], event[5]
        for cell in _cells(event):
            if (cell, subject) not in past.counted:
                past.counted.add((cell, subject))
                deltas[cell] += 1
        if subject not in past.known:
            past.known.add(subject)
            week, month = _starts(created)
            deltas[Period.WEEK, week, NEW_PEOPLE, 0, 0] += 1
            deltas[Period.MONTH, month, NEW_PEOPLE, 0, 0] += 1
        was = past.decision.get((subject, purpose)) == Decision.GRANTED
        now = decision == Decision.GRANTED
        if was != now:
            week, month = _starts(created)
            deltas[Period.WEEK, week, NET_GRANTED, purpose, 0] += 1 if now else -1
            deltas[Period.MONTH, month, NET_GRANTED, purpose, 0] += 1 if now else -1
        past.decision[subject, purpose] = decision
    return deltas


def _add(deltas: dict[tuple, int]) -> None:
    """Add the deltas to their rows: the few rows they touch are read, the
    missing ones created (the cursor's lock keeps runs from racing)."""
    if not deltas:
        return
    starts = {key[1] for key in deltas}
    measures = {key[2] for key in deltas}
    existing = {
        (t.period, t.start, t.measure, t.purpose_id, t.policy_version_id): t
        for t in Tally.objects.filter(start__in=starts, measure__in=measures)
    }
    changed, new = [], []
    for key, delta in deltas.items():
        if not delta:
            continue
        row = existing.get(key)
        if row is None:
            period, start, measure, purpose, version = key
            new.append(
                Tally(
                    period=period,
                    start=start,
                    measure=measure,
                    purpose_id=purpose,
                    policy_version_id=version,
                    count=delta,
                )
            )
        else:
            row.count += delta
            changed.append(row)
    Tally.objects.bulk_create(new, batch_size=1000)
    Tally.objects.bulk_update(changed, ["count"], batch_size=1000)


def _cursor() -> RollupCursor:
    RollupCursor.objects.get_or_create(name=LEDGER_CURSOR)
    return RollupCursor.objects.select_for_update().get(name=LEDGER_CURSOR)


def ledger_rollup(*, batch: int | None = None, in_sql: bool | None = None) -> int:
    """Fold the events recorded since the last run; returns how many. Only
    events below the ledger's committed barrier are read: a decision still
    under way gets a higher id than any folded, so none is skipped. `in_sql`:
    one statement per batch (PostgreSQL's default) or the Python fold."""
    from consents.ledger import committed_barrier

    if in_sql is None:
        in_sql = connection.vendor == "postgresql"
    if batch is None:
        batch = BATCH_SQL if in_sql else BATCH
    barrier = committed_barrier()
    folded = 0
    _zone_of_run[:] = [timezone.get_default_timezone()]
    while True:
        with transaction.atomic():
            cursor = _cursor()
            if in_sql:
                n, top = _fold_in_sql(cursor.last_id, barrier, batch)
            else:
                n, top = _fold_in_python(cursor.last_id, barrier, batch)
            if not n:
                return folded
            cursor.last_id = top
            cursor.updated_at = timezone.now()
            cursor.save(update_fields=["last_id", "updated_at"])
            folded += n
            if n < batch:
                return folded


def _fold_in_python(last: int, barrier: int, batch: int) -> tuple[int, int]:
    events = list(
        ConsentEvent.objects.filter(id__gt=last, id__lte=barrier)
        .order_by("id")
        .values_list(*_COLUMNS)[:batch]
    )
    if not events:
        return 0, last
    subjects = list({event[1] for event in events})
    _add(_fold(events, _past(subjects, last)))
    return len(events), events[-1][0]


BATCH_BOUNDS_SQL = """
SELECT count(*), max(id) FROM (
    SELECT id FROM consents_consentevent
    WHERE id > %(last)s AND id <= %(barrier)s ORDER BY id LIMIT %(batch)s
) AS batch
"""

# The events (last, top] and their people's earlier events, each with its
# local day; every (person, row) pair counts once, at its first event, and
# only if that event is new. The same rules as _cells and _fold.
FOLD_SQL = """
WITH ev AS MATERIALIZED (
    SELECT e.*,
           e.day - (extract(isodow FROM e.day)::int - 1) AS week,
           e.day - (extract(day FROM e.day)::int - 1) AS month
    FROM (
        SELECT h.id, h.subject_id, h.purpose_id, h.decision, h.method,
               COALESCE(h.policy_version_id, 0) AS version,
               (h.created_at AT TIME ZONE %(zone)s)::date AS day,
               h.id > %(last)s AS new,
               CASE
                   WHEN h.decision = 'granted' THEN
                       CASE WHEN h.method IN ('signup', 'newsletter')
                            THEN 'grant_signup' ELSE 'grant_later' END
                   WHEN h.method = 'gpc' THEN 'gpc_opt_out'
                   WHEN h.decision <> 'withdrawn' THEN NULL
                   WHEN h.method = 'expiry' THEN 'lapse'
                   ELSE 'withdraw'
               END AS measure
        FROM (
            SELECT DISTINCT subject_id FROM consents_consentevent
            WHERE id > %(last)s AND id <= %(top)s
        ) AS people
        CROSS JOIN LATERAL (
            -- OFFSET 0 keeps this a look-up per person in the ledger's index by
            -- person: joined, the planner scans the whole ledger once the
            -- batch's people are many (4.3 s of a batch at 5,000,000 events,
            -- against 1.8 s for the look-ups).
            SELECT * FROM consents_consentevent AS x
            WHERE x.subject_id = people.subject_id AND x.id <= %(top)s OFFSET 0
        ) AS h
    ) AS e
),
cells AS (
    SELECT c.period, c.start, c.measure, c.purpose_id, c.version, bool_and(ev.new) AS new
    FROM ev CROSS JOIN LATERAL (VALUES
        ('week', ev.week, ev.measure, ev.purpose_id, 0::bigint),
        ('month', ev.month, ev.measure, ev.purpose_id, 0::bigint),
        ('version', DATE '1970-01-01',
            CASE WHEN ev.measure = 'lapse' THEN 'lapse' END, ev.purpose_id, ev.version),
        ('version', DATE '1970-01-01',
            CASE WHEN ev.decision = 'withdrawn' AND ev.method = 'email_link'
                 THEN 'unsubscribe' END, 0::bigint, ev.version)
    ) AS c (period, start, measure, purpose_id, version)
    WHERE c.measure IS NOT NULL
    GROUP BY ev.subject_id, c.period, c.start, c.measure, c.purpose_id, c.version
),
firsts AS (
    SELECT DISTINCT ON (subject_id) week, month, new FROM ev ORDER BY subject_id, id
),
changes AS (
    SELECT week, month, purpose_id, new,
           (decision = 'granted')::int - COALESCE((lag(decision) OVER (
               PARTITION BY subject_id, purpose_id ORDER BY id) = 'granted')::int, 0) AS change
    FROM ev
),
deltas AS (
    SELECT period, start, measure, purpose_id, version, count(*) AS n
    FROM cells WHERE new GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT p.period, CASE WHEN p.period = 'week' THEN f.week ELSE f.month END,
           'new_people', 0, 0, count(*)
    FROM firsts AS f CROSS JOIN (VALUES ('week'), ('month')) AS p (period)
    WHERE f.new GROUP BY 1, 2
    UNION ALL
    SELECT p.period, CASE WHEN p.period = 'week' THEN c.week ELSE c.month END,
           'net_granted', c.purpose_id, 0, sum(c.change)
    FROM changes AS c CROSS JOIN (VALUES ('week'), ('month')) AS p (period)
    WHERE c.new AND c.change <> 0 GROUP BY 1, 2, 4
)
INSERT INTO insight_tally (period, start, measure, purpose_id, policy_version_id, count)
SELECT period, start, measure, purpose_id, version, n FROM deltas WHERE n <> 0
ON CONFLICT (period, start, measure, purpose_id, policy_version_id)
DO UPDATE SET count = insight_tally.count + EXCLUDED.count
"""


def _fold_in_sql(last: int, barrier: int, batch: int) -> tuple[int, int]:
    """One batch in two statements: its bounds, then the fold and the write."""
    with connection.cursor() as db:
        db.execute(BATCH_BOUNDS_SQL, {"last": last, "barrier": barrier, "batch": batch})
        n, top = db.fetchone()
        if not n:
            return 0, last
        zone = str(_zone())
        # The fold's sorts and hashes in memory (SET LOCAL: this transaction only).
        db.execute(f"SET LOCAL work_mem = '{FOLD_WORK_MEM}'")
        db.execute(FOLD_SQL, {"last": last, "top": top, "zone": zone})
    return n, top


# Figures from the current state --------------------------------------------------

GRANTED_NOW = "granted_now"  # key: purpose id
RECOMMENDATIONS_IN_USE = "recommendations_in_use"  # granted and at least one interest
OFFERS_IN_USE = "offers_in_use"  # granted tailored offers (they see their code)
DIETARY_FILTER_IN_USE = "dietary_filter_in_use"  # granted and a diet stated
INTEREST = "interest"  # key: product category
EMAIL_SENT = "email_sent"  # key: policy version id
EMAIL_FAILED = "email_failed"
EMAIL_WAITING = "email_waiting"
RIGHTS_OPENED = "rights_opened"  # key: "<period>:<start>"
RIGHTS_ANSWERED = "rights_answered"
RIGHTS_LATE = "rights_late"  # answered after the deadline
RIGHTS_MEDIAN_DAYS = "rights_median_days"
RIGHTS_WORST_DAYS = "rights_worst_days"
EMAIL_MEASURES = (EMAIL_SENT, EMAIL_FAILED, EMAIL_WAITING)


def _value_exchange() -> dict[tuple[str, str], int]:
    # The demo shop's benefits (shop/), counted for the staff dashboard.
    from consents.models import ConsentState, PersonalDatum
    from shop.benefits import DIETARY, DIETARY_FIELD, RECOMMENDATIONS, TAILORED_OFFERS
    from shop.models import Interest

    granted = ConsentState.objects.filter(decision=Decision.GRANTED)
    figures = {
        (GRANTED_NOW, str(row["purpose_id"])): row["n"]
        for row in granted.values("purpose_id").annotate(n=Count("id")).order_by()
    }
    subjects = granted.filter(purpose__key=RECOMMENDATIONS).values("subject_id")
    figures[RECOMMENDATIONS_IN_USE, ""] = (
        Interest.objects.filter(subject_id__in=subjects).values("subject_id").distinct().count()
    )
    figures[OFFERS_IN_USE, ""] = granted.filter(purpose__key=TAILORED_OFFERS).count()
    figures[DIETARY_FILTER_IN_USE, ""] = (
        PersonalDatum.objects.filter(
            field=DIETARY_FIELD,
            subject_id__in=granted.filter(purpose__key=DIETARY).values("subject_id"),
        )
        .exclude(value="")
        .count()
    )
    for row in Interest.objects.values("category_id").annotate(n=Count("id")).order_by():
        figures[INTEREST, row["category_id"]] = row["n"]
    return figures


def _emails() -> dict[tuple[str, str], int]:
    """Policy notices per version, by outcome (the outbox's progress index).
    Retention deletes sent rows after OUTBOX_SENT_KEPT: a version's figures are
    replaced only while its rows are all still there, so they stay as they
    were last seen whole."""
    from policies import notices
    from portal.models import OutboxItem

    current: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EMAIL_MEASURES, 0))
    rows = (
        OutboxItem.objects.filter(kind=notices.NOTICE)
        .values("topic", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    outcome = {
        OutboxItem.Status.SENT: EMAIL_SENT,
        OutboxItem.Status.FAILED: EMAIL_FAILED,
        OutboxItem.Status.PENDING: EMAIL_WAITING,
        OutboxItem.Status.SENDING: EMAIL_WAITING,
    }
    for row in rows:
        version = row["topic"].rpartition(":")[2]
        if version.isdigit():
            current[version][outcome[row["status"]]] += row["n"]
    kept: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EMAIL_MEASURES, 0))
    for figure in Figure.objects.filter(measure__in=EMAIL_MEASURES):
        kept[figure.key][figure.measure] = figure.count
    figures = {}
    for version in set(current) | set(kept):
        seen = current.get(version)
        if seen is None or sum(seen.values()) < sum(kept[version].values()):
            seen = kept[version]
        for measure, n in seen.items():
            figures[measure, version] = n
    return figures


def _rights() -> dict[tuple[str, str], int]:
    from rights.models import RightsRequest, Status

    figures: dict[tuple[str, str], int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    rows = RightsRequest.objects.values_list("received_at", "closed_at", "due_at", "status")
    for received, closed, due, status in rows.iterator(chunk_size=2000):
        for period in DATED:
            figures[RIGHTS_OPENED, f"{period}:{period_start(period, received)}"] += 1
            if closed is None or status == Status.CANCELLED:
                continue
            key = f"{period}:{period_start(period, closed)}"
            figures[RIGHTS_ANSWERED, key] += 1
            if closed > due:
                figures[RIGHTS_LATE, key] += 1
            durations[key].append((closed - received).total_seconds() / 86400)
    for key, days in durations.items():
        figures[RIGHTS_MEDIAN_DAYS, key] = round(median(days))
        figures[RIGHTS_WORST_DAYS, key] = round(max(days))
    return figures


def figures_take() -> int:
    """Take the current state's figures again; returns how many rows."""
    figures = _value_exchange() | _emails() | _rights()
    now = timezone.now()
    with transaction.atomic():
        Figure.objects.all().delete()
        Figure.objects.bulk_create(
            [
                Figure(measure=measure, key=key, count=n, taken_at=now)
                for (measure, key), n in figures.items()
            ],
            batch_size=1000,
        )
    return len(figures)


def insight_refresh() -> tuple[int, int]:
    """The beat task's work: fold new events, take the figures."""
    return ledger_rollup(), figures_take()
