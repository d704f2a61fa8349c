"""A decision has two implementations: consents_decide() in PostgreSQL (one
call: migration 0010) and the Python path that SQLite uses. Both apply the
same rules, write the same rows and give the same hash; on PostgreSQL every
case below runs through both, from the same starting point (a savepoint rolled
back between them), with the same uuid and time, and the results must be
equal to the byte. On SQLite the cases run through the one path there is."""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from consents import ledger, services
from consents.demo import seed_inventory
from consents.models import (
    ConsentEvent,
    ConsentState,
    Decision,
    Method,
    Purpose,
)
from consents.services import (
    ConsentError,
    RequestFacts,
    consent_record,
    purpose_retire,
    purpose_update,
    reconsent_request_create,
)
from policies.demo import seed_policies
from policies.models import PolicyVersion
from policies.selectors import in_force

POSTGRES = connection.vendor == "postgresql"
needs_postgres = pytest.mark.skipif(
    not POSTGRES, reason="consents_decide() is PostgreSQL's; SQLite has the Python path only"
)

FIELDS = (
    "uuid",
    "seq",
    "subject_id",
    "purpose_id",
    "notice_id",
    "policy_version_id",
    "decision",
    "method",
    "created_at",
    "ip_truncated",
    "user_agent_family",
    "gpc_signal",
    "prev_hash",
    "hash",
)
PATHS = [services._record_in_python] + ([services._record_in_database] if POSTGRES else [])
MOMENT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def outcome(record, **decision) -> tuple:
    """What one path did: the row it wrote and the state it left, the object it
    returned, or why it refused."""
    try:
        event = record(**decision)
    except ConsentError as exc:
        return ("refused", str(exc), ConsentEvent.objects.count())
    if event is None:
        return ("nothing recorded", ConsentEvent.objects.count())
    row = ConsentEvent.objects.values(*FIELDS).get(pk=event.pk)
    returned = {name: getattr(event, name) for name in FIELDS}
    state = ConsentState.objects.values("decision", "event__uuid", "updated_at").get(
        subject_id=decision["subject_id"], purpose=decision["purpose"]
    )
    assert returned == row, "the event returned is the event written"
    assert event.hash == ledger.event_hash_of(event), "the hash is event_hash()'s"
    assert event.notice.pk == row["notice_id"] and event.purpose.pk == row["purpose_id"]
    return ("recorded", row, state)


def decide_both_ways(**decision) -> tuple:
    """The decision through every path there is, each from the same starting
    point; the outcome, once every path agreed on it."""
    decision = {
        "notice": None,
        "facts": RequestFacts(),
        "policy_version_id": None,
        "allow_retired": False,
        "reconfirm": False,
        "method": Method.PANEL,
        "created_at": MOMENT,
        "event_uuid": uuid.UUID("0190f0e0-0000-7000-8000-000000000001"),
        **decision,
    }
    outcomes = []
    for record in PATHS:
        point = transaction.savepoint()
        outcomes.append(outcome(record, **decision))
        transaction.savepoint_rollback(point)
    assert all(found == outcomes[0] for found in outcomes), outcomes
    return outcomes[0]


@pytest.fixture(params=["no policy", "a privacy policy in force"])
def policy(request, purposes):
    """Both with and without a privacy policy in force (the event records it)."""
    if request.param == "no policy":
        return None
    seed_policies()
    return in_force("privacy")


HISTORIES = {
    # name: (decisions before, the decision, what is recorded)
    "a first grant": ([], Decision.GRANTED, Decision.GRANTED),
    "a first refusal": ([], Decision.REFUSED, Decision.REFUSED),
    "a withdrawal of nothing": ([], Decision.WITHDRAWN, None),
    "the same grant again": ([Decision.GRANTED], Decision.GRANTED, None),
    "unticking a grant": ([Decision.GRANTED], Decision.REFUSED, Decision.WITHDRAWN),
    "withdrawing a grant": ([Decision.GRANTED], Decision.WITHDRAWN, Decision.WITHDRAWN),
    "a grant after a refusal": ([Decision.REFUSED], Decision.GRANTED, Decision.GRANTED),
    "refusing again": ([Decision.REFUSED], Decision.REFUSED, None),
    "withdrawing a refusal": ([Decision.REFUSED], Decision.WITHDRAWN, None),
    "a grant after a withdrawal": (
        [Decision.GRANTED, Decision.WITHDRAWN],
        Decision.GRANTED,
        Decision.GRANTED,
    ),
}


@pytest.mark.parametrize("history", HISTORIES)
def test_both_paths_record_the_same_event_with_the_same_hash(purposes, policy, history):
    before, decision, recorded = HISTORIES[history]
    subject = uuid.uuid4()
    for earlier in before:
        consent_record(
            subject_id=subject,
            purpose=purposes["newsletter"],
            decision=earlier,
            method=Method.PANEL,
        )
    result = decide_both_ways(subject_id=subject, purpose=purposes["newsletter"], decision=decision)
    if recorded is None:
        assert result[0] == "nothing recorded"
        return
    kind, row, state = result
    assert kind == "recorded"
    assert row["decision"] == recorded == state["decision"]
    assert state["event__uuid"] == row["uuid"] and state["updated_at"] == MOMENT
    assert row["created_at"] == MOMENT and row["seq"] is None and row["prev_hash"] == ""
    assert row["notice_id"] == purposes["newsletter"].notices.get().pk
    assert row["policy_version_id"] == (policy.pk if policy else None)


def test_both_paths_hash_what_the_request_tells_alike(purposes, policy):
    """Every field of the request in the hash: a truncated IPv6 address, a
    browser family with an accent (UTF-8 on both sides) and the GPC signal."""
    kind, row, _state = decide_both_ways(
        subject_id=uuid.uuid4(),
        purpose=purposes["ad-partners"],
        decision=Decision.GRANTED,
        method=Method.GPC,
        facts=RequestFacts(ip_truncated="2001:db8::", user_agent_family="Safário", gpc_signal=True),
    )
    assert kind == "recorded"
    assert (row["ip_truncated"], row["user_agent_family"], row["gpc_signal"]) == (
        "2001:db8::",
        "Safário",
        True,
    )


def test_both_paths_record_a_policy_version_given_by_the_caller(purposes):
    seed_policies()
    version = in_force("privacy")
    kind, row, _state = decide_both_ways(
        subject_id=uuid.uuid4(),
        purpose=purposes["newsletter"],
        decision=Decision.GRANTED,
        policy_version_id=version.pk,
    )
    assert kind == "recorded" and row["policy_version_id"] == version.pk


def test_both_paths_refuse_a_purpose_retired_after_the_callers_copy_was_read(purposes):
    stale = Purpose.objects.get(key="recommendations")
    purpose_retire(purpose=purposes["recommendations"])
    assert stale.retired_at is None
    kind, message, count = decide_both_ways(
        subject_id=uuid.uuid4(), purpose=stale, decision=Decision.GRANTED
    )
    assert kind == "refused" and "is no longer offered" in message
    assert count == ConsentEvent.objects.count()


def test_both_paths_withdraw_from_a_retired_purpose_when_allowed(purposes):
    subject = uuid.uuid4()
    purpose = purposes["tailored-offers"]
    consent_record(subject_id=subject, purpose=purpose, decision=Decision.REFUSED, method="panel")
    Purpose.objects.filter(pk=purpose.pk).update(retired_at=timezone.now())
    kind, row, _state = decide_both_ways(
        subject_id=subject,
        purpose=purpose,
        decision=Decision.GRANTED,
        method=Method.STAFF,
        allow_retired=True,
    )
    assert kind == "recorded" and row["decision"] == Decision.GRANTED


def test_both_paths_refuse_a_purpose_without_a_notice(purposes):
    bare = Purpose.objects.create(
        key="bare",
        name="Bare",
        description="Nothing frozen yet.",
        legal_basis="consent",
        retention_days=30,
    )
    kind, message, _count = decide_both_ways(
        subject_id=uuid.uuid4(), purpose=bare, decision=Decision.GRANTED
    )
    assert kind == "refused" and "has no published notice yet" in message


def test_both_paths_refuse_a_notice_that_is_no_longer_current(purposes):
    purpose = purposes["newsletter"]
    shown = purpose.notices.get()
    purpose_update(purpose=purpose, acting_user=None, values={"description": "Weekly, now."})
    assert purpose.notices.count() == 2
    kind, message, _count = decide_both_ways(
        subject_id=uuid.uuid4(), purpose=purpose, decision=Decision.GRANTED, notice=shown
    )
    assert kind == "refused" and "changed while you were reading it" in message


def test_both_paths_refuse_the_notice_of_another_purpose(purposes):
    other = purposes["recommendations"].notices.get()
    kind, message, _count = decide_both_ways(
        subject_id=uuid.uuid4(),
        purpose=purposes["newsletter"],
        decision=Decision.GRANTED,
        notice=other,
    )
    assert kind == "refused" and "changed while you were reading it" in message


@pytest.mark.parametrize("asked", [True, False])
def test_both_paths_record_a_grant_given_again_only_while_it_is_asked(purposes, asked):
    subject = uuid.uuid4()
    purpose = purposes["recommendations"]
    consent_record(subject_id=subject, purpose=purpose, decision=Decision.GRANTED, method="panel")
    if asked:
        reconsent_request_create(
            purpose=purpose,
            policy_version_id=1,
            asked_at=timezone.now() + timedelta(seconds=1),
            effective_date=timezone.localdate() + timedelta(days=30),
        )
    result = decide_both_ways(
        subject_id=subject, purpose=purpose, decision=Decision.GRANTED, reconfirm=True
    )
    if asked:
        assert result[0] == "recorded" and result[1]["decision"] == Decision.GRANTED
    else:
        assert result[0] == "nothing recorded"


def test_a_new_event_has_a_time_ordered_uuid(purposes):
    events = [
        consent_record(
            subject_id=uuid.uuid4(),
            purpose=purposes["newsletter"],
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
        for _ in range(3)
    ]
    assert [e.uuid.version for e in events] == [7, 7, 7]
    stamps = [e.uuid.int >> 80 for e in events]  # the milliseconds of RFC 9562
    assert stamps == sorted(stamps)
    for event in events:
        moment = datetime.fromtimestamp((event.uuid.int >> 80) / 1000, tz=UTC)
        assert abs(moment - event.created_at) < timedelta(seconds=5)
    assert len({e.uuid for e in events}) == 3


# PostgreSQL: what the function relies on


@needs_postgres
def test_the_function_takes_the_ledgers_own_locks():
    migration = importlib.import_module("consents.migrations.0010_decision_function")
    assert migration.LEDGER_LOCK == ledger.LEDGER_LOCK
    assert migration.SUBJECT_LOCK_CLASS == ledger.SUBJECT_LOCK_CLASS


@needs_postgres
@pytest.mark.parametrize("day_offset", [-1, 0, 40])
def test_the_database_finds_the_same_policy_version_in_force_as_python(purposes, day_offset):
    """consents_policy_in_force (policies migration 0005) against
    policies.selectors.in_force, on a day before the first version, today,
    and after a second version takes effect."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, hash FROM consents_policy_in_force(%s)", [timezone.localdate()])
        assert cursor.fetchall() == []  # no policy at all yet
    seed_policies()
    from policies import services as policy_services

    draft = PolicyVersion.objects.get(status=PolicyVersion.Status.DRAFT)
    policy_services.policy_version_publish(version=draft)
    first = PolicyVersion.objects.filter(number=1).get()
    day = first.effective_date + timedelta(days=day_offset)
    expected = in_force("privacy", at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, hash FROM consents_policy_in_force(%s)", [day])
        found = cursor.fetchall()
    assert found == ([(expected.pk, expected.content_hash)] if expected else [])
    if day_offset == 40:
        assert expected.number == 2


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_database", [True, False], ids=["in SQL", "in Python"])
def test_no_grant_slips_past_a_retirement_under_way(monkeypatch, in_database):
    """A retirement holds the ledger lock: a grant made meanwhile, with a copy
    of the purpose read before, waits for it and is then refused. It never
    lands after the retirement withdrew every standing grant."""
    monkeypatch.setattr(ledger, "decides_in_database", lambda: in_database)
    purposes = {p.key: p for p in seed_inventory()}
    stale = Purpose.objects.get(key="product-research")
    holding = threading.Event()
    errors: list[BaseException] = []

    def retire() -> None:
        try:
            with transaction.atomic():
                ledger.ledger_lock()
                holding.set()
                time.sleep(0.5)  # the grant below is sent meanwhile, and waits
                purpose_retire(purpose=purposes["product-research"])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    retiring = threading.Thread(target=retire)
    retiring.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with pytest.raises(ConsentError, match="is no longer offered"):
            consent_record(
                subject_id=uuid.uuid4(),
                purpose=stale,
                decision=Decision.GRANTED,
                method=Method.PANEL,
            )
        assert time.monotonic() - started > 0.2  # it waited for the retirement
    finally:
        retiring.join(timeout=30)
    assert errors == []
    assert not ConsentEvent.objects.filter(purpose__key="product-research").exists()


def _prepared_decisions() -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%%consents_decide(%%'"
        )
        return cursor.fetchall()


def _grant(purpose) -> None:
    assert consent_record(
        subject_id=uuid.uuid4(), purpose=purpose, decision=Decision.GRANTED, method=Method.PANEL
    )


@needs_postgres
def test_the_decisions_call_is_prepared_once_per_connection(purposes):
    for _ in range(3):
        _grant(purposes["newsletter"])
    (plans,) = _prepared_decisions()  # one statement, planned from its name each time
    assert sum(plans) >= 2


@needs_postgres
def test_the_decisions_call_is_not_prepared_when_the_connection_forbids_it(purposes):
    connection.ensure_connection()
    raw = connection.connection
    kept, raw.prepare_threshold = raw.prepare_threshold, None  # DATABASE_PREPARED_STATEMENTS=0
    try:
        before = _prepared_decisions()  # [] unless an earlier test on this connection made it
        _grant(purposes["newsletter"])
        _grant(purposes["newsletter"])
        assert _prepared_decisions() == before
    finally:
        raw.prepare_threshold = kept


@needs_postgres
def test_the_prepared_call_is_in_the_query_log_as_written(purposes):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        _grant(purposes["newsletter"])
    calls = [q["sql"] for q in captured.captured_queries if "consents_decide(" in q["sql"]]
    assert len(calls) == 1
    assert "FROM consents_decide(%s, %s" in calls[0]
