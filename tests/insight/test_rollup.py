"""The fold of the ledger into counts of people: each person once per row,
incremental, and the same whatever the batches."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from django.db import connection

from consents.models import ConsentEvent, Decision, Method
from consents.services import consent_record
from insight import rollup
from insight.models import Period, RollupCursor, Tally
from tests.insight.conftest import local


def decide(subject, purpose, decision, method=Method.PANEL, **extra):
    return consent_record(
        subject_id=subject, purpose=purpose, decision=decision, method=method, **extra
    )


def cells(period=Period.WEEK) -> dict:
    return {
        (t.start, t.measure, t.purpose_id, t.policy_version_id): t.count
        for t in Tally.objects.filter(period=period).exclude(count=0)
    }


@pytest.fixture
def history(purposes, at):
    """Three people over two weeks: Monday 2 and Monday 9 March 2026."""
    news, recs = purposes["newsletter"], purposes["recommendations"]
    ana, bia, caio = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at(local(2026, 3, 2, 10))
    decide(ana, news, Decision.GRANTED, Method.SIGNUP)
    decide(bia, news, Decision.GRANTED, Method.SIGNUP)
    decide(caio, news, Decision.REFUSED, Method.SIGNUP)
    at(local(2026, 3, 3, 10))
    decide(ana, news, Decision.WITHDRAWN)  # changes her mind twice in one week:
    at(local(2026, 3, 4, 10))
    decide(ana, news, Decision.GRANTED)
    at(local(2026, 3, 5, 10))
    decide(ana, news, Decision.WITHDRAWN)  # counted once per row, not per event
    at(local(2026, 3, 10, 10))
    decide(ana, news, Decision.GRANTED)
    decide(caio, recs, Decision.GRANTED)
    decide(bia, news, Decision.WITHDRAWN, Method.EXPIRY)
    return news, recs


def test_it_counts_people_once_per_period_and_purpose(history, sealed):
    news, recs = history
    sealed()
    assert rollup.ledger_rollup() == 9
    week1, week2 = date(2026, 3, 2), date(2026, 3, 9)
    assert cells() == {
        (week1, rollup.GRANT_SIGNUP, news.pk, 0): 2,
        (week1, rollup.GRANT_LATER, news.pk, 0): 1,  # Ana, once though she granted twice
        (week1, rollup.WITHDRAW, news.pk, 0): 1,  # Ana, once though she withdrew twice
        (week1, rollup.NEW_PEOPLE, 0, 0): 3,
        (week1, rollup.NET_GRANTED, news.pk, 0): 1,  # Bia holds the grant; Ana ended without
        (week2, rollup.GRANT_LATER, news.pk, 0): 1,
        (week2, rollup.GRANT_LATER, recs.pk, 0): 1,
        (week2, rollup.LAPSE, news.pk, 0): 1,
        # Newsletter, week 2: Ana in, Bia out; a net change of 0 writes no row.
        (week2, rollup.NET_GRANTED, recs.pk, 0): 1,
    }
    month = cells(Period.MONTH)
    assert month[date(2026, 3, 1), rollup.GRANT_LATER, news.pk, 0] == 1  # Ana, once in March
    assert month[date(2026, 3, 1), rollup.NEW_PEOPLE, 0, 0] == 3


def test_small_batches_give_the_same_counts_as_one(history, sealed):
    sealed()
    rollup.ledger_rollup(batch=2)
    in_small_batches = cells()
    Tally.objects.all().delete()
    RollupCursor.objects.all().delete()
    rollup.ledger_rollup()
    assert cells() == in_small_batches


def test_a_second_run_reads_only_the_new_events(
    history, sealed, purposes, at, django_assert_max_num_queries
):
    sealed()
    rollup.ledger_rollup()
    before = cells()
    with django_assert_max_num_queries(10):  # the barrier, the cursor, one empty read
        assert rollup.ledger_rollup() == 0
    assert cells() == before
    # Caio grants the newsletter later the same week: one more person there.
    at(local(2026, 3, 11, 10))
    caio_subject = uuid.uuid4()
    decide(caio_subject, purposes["newsletter"], Decision.GRANTED, Method.SIGNUP)
    sealed()
    assert rollup.ledger_rollup() == 1
    after = cells()
    key = (date(2026, 3, 9), rollup.GRANT_SIGNUP, purposes["newsletter"].pk, 0)
    assert after[key] == before.get(key, 0) + 1
    assert RollupCursor.objects.get().last_id == ConsentEvent.objects.order_by("-id")[0].pk


def test_unsubscribes_and_lapses_count_per_policy_version(purposes, at, sealed):
    from policies.demo import seed_policies

    seed_policies()
    from consents.services import policy_version_in_force

    version, _hash = policy_version_in_force()
    news = purposes["newsletter"]
    people = [uuid.uuid4() for _ in range(3)]
    # Now, while version 1 is in force.
    for person in people:
        decide(person, news, Decision.GRANTED, Method.SIGNUP)
    decide(people[0], news, Decision.WITHDRAWN, Method.EMAIL_LINK)
    decide(people[1], news, Decision.WITHDRAWN, Method.EXPIRY)
    sealed()
    rollup.ledger_rollup()
    by_version = {
        (t.measure, t.purpose_id): t.count
        for t in Tally.objects.filter(period=Period.VERSION, policy_version_id=version)
    }
    assert by_version == {(rollup.UNSUBSCRIBE, 0): 1, (rollup.LAPSE, news.pk): 1}


def test_the_beat_task_folds_and_takes_the_figures(purposes, settings):
    from insight.models import Figure
    from insight.tasks import insight_refresh

    assert settings.CELERY_BEAT_SCHEDULE["insight-refresh"]["task"] == insight_refresh.name
    decide(uuid.uuid4(), purposes["newsletter"], Decision.GRANTED, Method.SIGNUP)
    insight_refresh.delay()
    assert [t.count for t in Tally.objects.filter(measure=rollup.GRANT_SIGNUP)] == [
        1,
        1,
    ]  # week, month
    granted = Figure.objects.get(measure=rollup.GRANTED_NOW, key=str(purposes["newsletter"].pk))
    assert granted.count == 1
    assert insight_refresh.delay().get() == 0  # nothing new


# The fold in SQL (PostgreSQL) against the fold in Python ---------------------------

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the fold in SQL runs on PostgreSQL"
)

# Moments at the edges of the portal's weeks and months (São Paulo, UTC-3): a
# Sunday night is a Monday in UTC, the last evening of a month the next month.
EDGES = [
    local(2026, 2, 28, 23, 30),  # February here, March in UTC
    local(2026, 3, 1, 23, 59, 59),  # Sunday, the last second of February's week
    local(2026, 3, 2, 0, 0, 0),  # Monday, the first second of the week
    local(2026, 3, 2, 0, 0, 1),
    local(2026, 3, 8, 22, 30),  # Sunday night: Monday 01:30 in UTC
    local(2026, 3, 9, 0, 0),
    local(2026, 3, 31, 21, 30),  # April the 1st in UTC, still March here
    local(2026, 3, 31, 23, 59, 59),
    local(2026, 4, 1, 0, 0),
    local(2026, 4, 5, 12, 0),
]


def synthetic_history(purposes, n: int, seed: int) -> None:
    """n events of 12 people over the edges, written as rows (the fold reads
    nothing else): the same person twice in a week, withdrawals then grants,
    three policy versions and none, GPC refusals and withdrawals, unsubscribes,
    lapses, and moments out of id order."""
    import random

    from consents.models import PurposeNotice

    rng = random.Random(seed)  # noqa: S311 (a reproducible history, not a secret)
    keys = ["newsletter", "recommendations", "tailored-offers"]
    notices = {
        key: PurposeNotice.objects.filter(purpose=purposes[key]).order_by("-version")[0]
        for key in keys
    }
    people = [uuid.uuid4() for _ in range(12)]
    kinds = [
        (Decision.GRANTED, Method.SIGNUP),
        (Decision.GRANTED, Method.NEWSLETTER),
        (Decision.REFUSED, Method.SIGNUP),
        (Decision.GRANTED, Method.PANEL),
        (Decision.WITHDRAWN, Method.PANEL),
        (Decision.WITHDRAWN, Method.EMAIL_LINK),
        (Decision.WITHDRAWN, Method.EXPIRY),
        (Decision.WITHDRAWN, Method.GPC),
        (Decision.REFUSED, Method.GPC),
        (Decision.GRANTED, Method.EMAIL_LINK),
        (Decision.WITHDRAWN, Method.STAFF),
    ]
    events = []
    for _ in range(n):
        key = rng.choice(keys)
        decision, method = rng.choice(kinds)
        events.append(
            ConsentEvent(
                subject_id=rng.choice(people),
                purpose=purposes[key],
                notice=notices[key],
                policy_version_id=rng.choice([None, 1, 2, 3]),
                decision=decision,
                method=method,
                created_at=rng.choice(EDGES),
                gpc_signal=method == Method.GPC,
                hash=uuid.uuid4().hex * 2,
            )
        )
    ConsentEvent.objects.bulk_create(events)


def all_rows() -> dict:
    return {
        (t.period, t.start, t.measure, t.purpose_id, t.policy_version_id): t.count
        for t in Tally.objects.all()
    }


def folded(**kwargs) -> dict:
    Tally.objects.all().delete()
    RollupCursor.objects.all().delete()
    total = rollup.ledger_rollup(**kwargs)
    assert total == ConsentEvent.objects.count()
    return all_rows()


@needs_postgres
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fold_in_sql_gives_the_rows_of_the_fold_in_python(purposes, seed):
    synthetic_history(purposes, 300, seed)
    by_python = folded(in_sql=False, batch=7)
    assert folded(in_sql=True, batch=7) == by_python  # the same batch boundaries
    whole = folded(in_sql=False, batch=1000)
    assert folded(in_sql=True, batch=1000) == whole
    # Batches change only the rows whose net change came to 0.
    assert {k: v for k, v in by_python.items() if v} == {k: v for k, v in whole.items() if v}
    measures = {key[2] for key, n in whole.items() if n}
    assert measures >= {
        rollup.GRANT_SIGNUP,
        rollup.GRANT_LATER,
        rollup.WITHDRAW,
        rollup.LAPSE,
        rollup.GPC_OPT_OUT,
        rollup.UNSUBSCRIBE,
        rollup.NEW_PEOPLE,
        rollup.NET_GRANTED,
    }
    weeks = {key[1] for key in whole if key[0] == Period.WEEK}
    assert weeks == {date(2026, 2, 23), date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 30)}
    months = {key[1] for key in whole if key[0] == Period.MONTH}
    assert months == {date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)}


@needs_postgres
def test_the_fold_in_sql_is_incremental(purposes):
    synthetic_history(purposes, 150, 4)
    Tally.objects.all().delete()
    rollup.ledger_rollup(in_sql=True, batch=11)
    synthetic_history(purposes, 150, 5)  # the same people's later decisions
    assert rollup.ledger_rollup(in_sql=True, batch=11) == 150
    in_two_runs = all_rows()
    assert folded(in_sql=False, batch=11) == in_two_runs


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_sql", [True, False], ids=["in SQL", "in Python"])
def test_a_decision_committed_late_is_not_skipped(in_sql):
    """A decision under way holds a lower id than one committed after it: the
    fold waits for it (the ledger's committed barrier) instead of passing it."""
    import threading
    import time

    from django.db import transaction

    from consents.demo import seed_inventory

    news = {p.key: p for p in seed_inventory()}["newsletter"]
    inserted, errors = threading.Event(), []

    def slow_decision() -> None:
        try:
            with transaction.atomic():
                decide(uuid.uuid4(), news, Decision.GRANTED, Method.SIGNUP)
                inserted.set()
                time.sleep(0.5)  # the other decision and the fold start meanwhile
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_decision)
    slow.start()
    try:
        assert inserted.wait(10)
        decide(uuid.uuid4(), news, Decision.GRANTED, Method.SIGNUP)  # a higher id, committed
        assert rollup.ledger_rollup(in_sql=in_sql) == 2
    finally:
        slow.join(timeout=30)
    assert errors == []
    assert RollupCursor.objects.get().last_id == ConsentEvent.objects.order_by("-id")[0].pk
    week = Tally.objects.get(period=Period.WEEK, measure=rollup.GRANT_SIGNUP)
    assert week.count == 2
