"""Retention, enforced (rights/retention.py): each rule, its batches, a second
run, the dry run, and the pages that state the periods. Time moves by giving
the service a later `now`, never by waiting."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consents import personal_data
from consents.demo import seed_inventory
from consents.models import (
    DataCategory,
    Decision,
    LegalBasis,
    Method,
    NewsletterSignup,
    PersonalDatum,
    Purpose,
)
from consents.services import consent_record
from portal.models import OutboxItem
from rights import retention
from rights.tasks import retention_enforce as retention_task
from shop.demo import seed_catalogue
from shop.models import Interest
from tests.conftest import make_user

DAY = timedelta(days=1)


@pytest.fixture
def purposes(db):
    """The demo shop's inventory, by purpose key, and its catalogue (interests
    name its product categories)."""
    seed_catalogue()
    return {p.key: p for p in seed_inventory()}


def grant(user, purpose) -> None:
    consent_record(
        subject_id=user.subject_id, purpose=purpose, decision=Decision.GRANTED, method=Method.PANEL
    )


def withdraw(user, purpose) -> None:
    consent_record(
        subject_id=user.subject_id,
        purpose=purpose,
        decision=Decision.WITHDRAWN,
        method=Method.PANEL,
    )


def enforce(*, days: float = 0, **options) -> dict[str, int]:
    return retention.retention_enforce(now=timezone.now() + days * DAY, **options).counts


def interests_of(user) -> set[str]:
    return set(
        Interest.objects.filter(subject_id=user.subject_id).values_list("category", flat=True)
    )


def data_of(user) -> dict[str, str]:
    return dict(
        PersonalDatum.objects.filter(subject_id=user.subject_id).values_list("field", "value")
    )


# Personal data, by purpose


def test_a_withdrawal_erases_at_once_and_the_task_erases_what_was_left_behind(purposes, customer):
    other = make_user("granted@example.com")
    for person in (customer, other):
        grant(person, purposes["recommendations"])
        personal_data.personal_data_update(user=person, field_key="interests", value=["books"])
    withdraw(customer, purposes["recommendations"])
    assert interests_of(customer) == set()  # at once, in the withdrawal's transaction
    # Interests written under a withdrawn consent by a path that forgot to erase
    # them (or before erasure existed): the task finds them.
    Interest.objects.create(subject_id=customer.subject_id, category_id="books")

    counts = enforce()

    assert counts["data:interests"] == 1
    assert interests_of(customer) == set()
    assert interests_of(other) == {"books"}


def test_granted_consent_keeps_data_for_its_period_after_the_person_was_last_active(
    purposes, customer
):
    grant(customer, purposes["dietary-suggestions"])  # 365 days
    personal_data.personal_data_update(user=customer, field_key="dietary", value=["nuts"])

    assert enforce(days=364)["data:dietary"] == 0
    assert data_of(customer) == {"dietary": "nuts"}
    assert enforce(days=366)["data:dietary"] == 1
    assert data_of(customer) == {}


def test_a_login_restarts_the_clock_of_a_granted_consent(purposes, customer):
    grant(customer, purposes["dietary-suggestions"])
    personal_data.personal_data_update(user=customer, field_key="dietary", value=["nuts"])
    get_user_model().objects.filter(pk=customer.pk).update(last_login=timezone.now() + 300 * DAY)

    assert enforce(days=366)["data:dietary"] == 0
    assert data_of(customer) == {"dietary": "nuts"}


def test_contract_data_stays_while_the_account_is_open_however_old(purposes, customer):
    personal_data.personal_data_update(user=customer, field_key="postal_address", value="Rua A 1")

    assert enforce(days=5000)["data:postal_address"] == 0
    assert data_of(customer) == {"postal_address": "Rua A 1"}


def test_contract_data_goes_its_period_after_the_account_closes(purposes, customer):
    personal_data.personal_data_update(user=customer, field_key="postal_address", value="Rua A 1")
    # The portal has no closure service yet: an account closes by is_active.
    get_user_model().objects.filter(pk=customer.pk).update(is_active=False)

    assert enforce(days=1824)["data:postal_address"] == 0  # account-orders: 1825 days
    assert data_of(customer) == {"postal_address": "Rua A 1"}
    assert enforce(days=1826)["data:postal_address"] == 1
    assert data_of(customer) == {}


def test_data_of_a_deleted_account_is_erased_at_the_next_run(purposes, customer):
    personal_data.personal_data_update(user=customer, field_key="postal_address", value="Rua A 1")
    subject_id = customer.subject_id
    customer.delete()

    assert enforce()["data:postal_address"] == 1
    assert not PersonalDatum.objects.filter(subject_id=subject_id).exists()


@pytest.fixture
def fraud_checks(purposes) -> Purpose:
    """A purpose on legitimate interest, kept 30 days, using the interests."""
    purpose = Purpose.objects.create(
        key="fraud-checks",
        name="Fraud checks",
        description="We look for unusual orders.",
        legal_basis=LegalBasis.LEGITIMATE_INTEREST,
        retention_days=30,
    )
    purpose.data_categories.set([DataCategory.objects.get(key="interests")])
    return purpose


def test_legitimate_interest_keeps_data_its_period_after_the_last_activity(fraud_checks, customer):
    personal_data.personal_data_update(user=customer, field_key="interests", value=["books"])

    assert enforce(days=29)["data:interests"] == 0
    assert interests_of(customer) == {"books"}
    assert enforce(days=31)["data:interests"] == 1
    assert interests_of(customer) == set()


def test_a_decision_restarts_the_clock_of_legitimate_interest(fraud_checks, purposes, customer):
    personal_data.personal_data_update(user=customer, field_key="interests", value=["books"])
    grant(customer, purposes["newsletter"])  # a decision: the person was active

    assert enforce(days=29)["data:interests"] == 0
    Interest.objects.filter(subject_id=customer.subject_id).update(
        created_at=timezone.now() - 100 * DAY
    )
    assert enforce(days=29)["data:interests"] == 0  # the row's own age does not count
    assert interests_of(customer) == {"books"}


def test_a_retired_purpose_holds_nothing(fraud_checks, customer):
    personal_data.personal_data_update(user=customer, field_key="interests", value=["books"])
    Purpose.objects.filter(pk=fraud_checks.pk).update(retired_at=timezone.now())

    assert enforce()["data:interests"] == 1


# Housekeeping


def outbox_row(status: str, *, age_days: float, **fields) -> OutboxItem:
    created = timezone.now() - age_days * DAY
    return OutboxItem.objects.create(
        kind="email",
        topic="account/email/password_reset_key",
        recipient="someone@example.com",
        status=status,
        created_at=created,
        sent_at=created if status == OutboxItem.Status.SENT else None,
        **fields,
    )


def test_sent_emails_are_deleted_after_their_period(db, settings):
    settings.OUTBOX_SENT_KEPT = 90 * DAY
    old = outbox_row(OutboxItem.Status.SENT, age_days=91)
    young = outbox_row(OutboxItem.Status.SENT, age_days=89)
    waiting = outbox_row(OutboxItem.Status.PENDING, age_days=200)

    assert enforce()["outbox-sent"] == 1
    assert set(OutboxItem.objects.values_list("pk", flat=True)) == {young.pk, waiting.pk}
    assert old.pk not in set(OutboxItem.objects.values_list("pk", flat=True))


def test_failed_emails_are_deleted_after_their_period(db, settings):
    settings.OUTBOX_FAILED_KEPT = 30 * DAY
    outbox_row(OutboxItem.Status.FAILED, age_days=31)
    young = outbox_row(OutboxItem.Status.FAILED, age_days=29)

    assert enforce()["outbox-failed"] == 1
    assert list(OutboxItem.objects.values_list("pk", flat=True)) == [young.pk]


def test_expired_sessions_and_their_entries_in_the_list_of_sessions_are_deleted(customer):
    stores = {}
    for name in ("live", "expired"):
        store = SessionStore()
        store.create()
        stores[name] = store.session_key
        UserSession.objects.create(user=customer, ip="203.0.113.1", session_key=store.session_key)
    Session.objects.filter(pk=stores["expired"]).update(expire_date=timezone.now() - DAY)
    UserSession.objects.create(user=customer, ip="203.0.113.1", session_key="ended-long-ago")

    counts = enforce()

    assert counts["sessions"] == 1
    assert counts["user-sessions"] == 2
    assert list(Session.objects.values_list("pk", flat=True)) == [stores["live"]]
    assert list(UserSession.objects.values_list("session_key", flat=True)) == [stores["live"]]


def test_unconfirmed_newsletter_signups_are_deleted_after_a_week(db):
    week = timedelta(days=NewsletterSignup.CONFIRMATION_DAYS)
    NewsletterSignup.objects.create(email="old@example.com", created_at=timezone.now() - week - DAY)
    NewsletterSignup.objects.create(email="new@example.com")
    NewsletterSignup.objects.create(
        email="confirmed@example.com",
        status=NewsletterSignup.Status.CONFIRMED,
        created_at=timezone.now() - 100 * week,
    )

    assert enforce()["newsletter-unconfirmed"] == 1
    assert set(NewsletterSignup.objects.values_list("email", flat=True)) == {
        "new@example.com",
        "confirmed@example.com",
    }


# Batches, a second run, the dry run, the beat task


def test_it_deletes_in_batches_of_the_size_given(db, settings):
    settings.OUTBOX_SENT_KEPT = 90 * DAY
    for _ in range(5):
        outbox_row(OutboxItem.Status.SENT, age_days=100)

    with CaptureQueriesContext(connection) as captured:
        counts = enforce(batch=2)

    deletes = [q["sql"] for q in captured if q["sql"].startswith('DELETE FROM "portal_outboxitem"')]
    assert counts["outbox-sent"] == 5
    assert len(deletes) == 3  # 2 + 2 + 1
    assert not OutboxItem.objects.exists()


def test_a_second_run_erases_nothing(purposes, customer, settings):
    settings.OUTBOX_SENT_KEPT = 90 * DAY
    personal_data.personal_data_update(user=customer, field_key="postal_address", value="Rua A 1")
    get_user_model().objects.filter(pk=customer.pk).update(is_active=False)
    outbox_row(OutboxItem.Status.SENT, age_days=100)
    kept = outbox_row(OutboxItem.Status.SENT, age_days=-1950)  # young, seen from 2000 days on

    first = enforce(days=2000)
    second = enforce(days=2000)

    assert first["data:postal_address"] == 1 and first["outbox-sent"] == 1
    assert sum(second.values()) == 0
    assert list(OutboxItem.objects.values_list("pk", flat=True)) == [kept.pk]
    assert data_of(customer) == {}


def test_the_dry_run_counts_and_changes_nothing(purposes, customer, settings, capsys):
    settings.OUTBOX_SENT_KEPT = 90 * DAY
    Interest.objects.create(subject_id=uuid.uuid4(), category_id="books")  # nobody's any more
    for _ in range(3):
        outbox_row(OutboxItem.Status.SENT, age_days=100)

    call_command("enforce_retention", "--dry-run", "--batch", "2")

    out = capsys.readouterr().out
    assert "data:interests: 1 would be erased" in out
    assert "outbox-sent: 3 would be erased" in out
    assert "total: 4 would be erased (dry run)" in out
    assert Interest.objects.count() == 1
    assert OutboxItem.objects.count() == 3

    call_command("enforce_retention")
    assert "total: 4 erased" in capsys.readouterr().out
    assert not Interest.objects.exists() and not OutboxItem.objects.exists()


def test_the_command_refuses_a_batch_below_one(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--batch must be at least 1"):
        call_command("enforce_retention", "--batch", "0")


def test_the_beat_task_runs_the_same_service_daily(db, settings):
    settings.OUTBOX_SENT_KEPT = 90 * DAY
    outbox_row(OutboxItem.Status.SENT, age_days=100)

    assert retention_task.delay().get() == 1
    assert not OutboxItem.objects.exists()
    schedule = settings.CELERY_BEAT_SCHEDULE["retention-enforce"]
    assert schedule == {"task": "rights.tasks.retention_enforce", "schedule": DAY}


# The pages that state the periods


def test_the_privacy_page_states_the_enforced_periods_from_the_settings(client, purposes, settings):
    settings.OUTBOX_SENT_KEPT = 120 * DAY
    settings.OUTBOX_FAILED_KEPT = 45 * DAY

    html = client.get("/privacy/").content.decode()

    assert "Sent emails: kept 120 days, then deleted" in html
    assert "Emails that could not be delivered: kept 45 days, then deleted" in html
    assert "Unconfirmed newsletter sign-ups: deleted after 7 days" in html
    card = re.search(r'id="purpose-account-orders".*?</article>', html, re.S).group(0)
    assert "While your account is open, then 1825 days after it closes" in card
    card = re.search(r'id="purpose-newsletter".*?</article>', html, re.S).group(0)
    assert "Until you withdraw, and at most 30 days after you were last active" in card


def test_the_privacy_page_states_the_periods_in_portuguese(client, purposes):
    html = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "E-mails enviados: guardados por 90 dias e depois apagados" in html


def test_the_record_of_processing_states_the_enforced_periods(client, staff, purposes, settings):
    settings.OUTBOX_SENT_KEPT = 120 * DAY
    client.force_login(staff)

    response = client.get(reverse("admin:consents_purpose_ropa"))

    header, *rows = csv.reader(io.StringIO(response.content.decode("utf-8")[1:]))
    records = {
        row[header.index("purpose key")]: dict(zip(header, row, strict=True)) for row in rows
    }
    sent = records["record:outbox-sent"]
    assert sent["erasure time limit (days)"] == "120"
    assert sent["erasure rule (enforced)"] == "Sent emails: kept 120 days, then deleted"
    assert {f"record:{rule.key}" for rule in retention.housekeeping_rules()} <= set(records)
    orders = records["account-orders"]
    assert orders["erasure rule (enforced)"] == (
        "While your account is open, then 1825 days after it closes"
    )


# The settings


def _settings_of(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "from django.conf import settings; print(settings.OUTBOX_SENT_KEPT.days)"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sent_emails_are_never_deleted_before_their_links_expire():
    refused = _settings_of({"OUTBOX_SENT_KEPT_DAYS": "30"})
    assert refused.returncode != 0
    assert "OUTBOX_SENT_KEPT_DAYS='30' must be at least 60" in refused.stderr
    longer_links = _settings_of({"POLICY_LINK_DAYS": "120"})
    assert longer_links.stdout.split() == ["120"]
