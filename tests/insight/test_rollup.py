"""The fold of the ledger into counts of people: each person once per row,
incremental, and the same whatever the batches."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

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
