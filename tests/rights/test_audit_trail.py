"""The staff audit trail's table: append-only on SQLite and PostgreSQL, except
the retention task's deletion of rows past their legal period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from rights import audit, retention
from rights.models import AuditAction, AuditEntry, AuditPurge


def _row(staff, *, age: timedelta = timedelta(0), **extra) -> AuditEntry:
    if not age:
        return audit.record(acting_user=staff, action=AuditAction.PURPOSE_RETIRE, **extra)
    # Only a test backdates a row: INSERT is the one thing the table allows.
    return AuditEntry.objects.create(
        at=timezone.now() - age,
        actor=staff,
        actor_email=staff.email,
        action=AuditAction.PURPOSE_RETIRE,
    )


def test_a_row_cannot_be_changed(staff):
    entry = _row(staff)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    entry.refresh_from_db()
    assert entry.reason == ""


def test_a_fresh_row_cannot_be_deleted_even_with_a_cutoff_stated(staff):
    entry = _row(staff)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        # A cutoff of "now" (a bug, or someone imitating the task) is not enough:
        # the trigger's own floor keeps every row younger than 365 days.
        AuditPurge.objects.create(cutoff=timezone.now() + timedelta(days=1))
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_an_old_row_goes_only_with_the_tasks_cutoff(staff):
    old = _row(staff, age=timedelta(days=400))
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=old.pk).delete()  # no cutoff stated
    with pytest.raises(DatabaseError), transaction.atomic():
        # A cutoff before the row: it is not past it.
        AuditPurge.objects.create(cutoff=timezone.now() - timedelta(days=500))
        AuditEntry.objects.filter(pk=old.pk).delete()
    assert AuditEntry.objects.filter(pk=old.pk).exists()
    with transaction.atomic():
        assert (
            audit.purge(
                AuditEntry.objects.filter(pk=old.pk), timezone.now() + timedelta(days=5 * 365)
            )
            == 1
        )
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert not AuditPurge.objects.exists()


def test_retention_deletes_rows_past_the_kept_period_only(staff, settings):
    settings.AUDIT_KEPT_DAYS = 5 * 365 + 1
    past = _row(staff, age=timedelta(days=5 * 365 + 2))
    within = _row(staff, age=timedelta(days=5 * 365 - 1))
    fresh = _row(staff)
    report = retention.retention_enforce(dry_run=True)
    assert report.counts["audit-trail"] == 1
    report = retention.retention_enforce()
    assert report.counts["audit-trail"] == 1
    assert set(AuditEntry.objects.values_list("pk", flat=True)) == {within.pk, fresh.pk}
    assert past.pk not in AuditEntry.objects.values_list("pk", flat=True)
    # A clock far ahead still never reaches a row younger than the floor.
    report = retention.retention_enforce(now=timezone.now() + timedelta(days=20 * 365))
    assert report.counts["audit-trail"] == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert retention.retention_enforce().counts["audit-trail"] == 0


def test_a_shorter_period_is_enforced_down_to_the_floor(staff, settings):
    settings.AUDIT_KEPT_DAYS = 365
    _row(staff, age=timedelta(days=366))
    kept = _row(staff, age=timedelta(days=300))
    assert retention.retention_enforce().counts["audit-trail"] == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [kept.pk]


def test_a_look_at_a_person_must_say_why(staff, customer):
    with pytest.raises(audit.AuditError):
        audit.record(
            acting_user=staff, action=AuditAction.VIEW_ACCOUNT, subject_id=customer.subject_id
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(
            actor=staff,
            actor_email=staff.email,
            action=AuditAction.VIEW_ACCOUNT,
            subject_id=customer.subject_id,
        )
    assert not AuditEntry.objects.exists()


def test_only_staff_actions_are_recorded(customer):
    with pytest.raises(audit.AuditError):
        audit.record(acting_user=customer, action=AuditAction.PURPOSE_RETIRE)
    with pytest.raises(audit.AuditError):
        audit.record(acting_user=None, action=AuditAction.PURPOSE_RETIRE)


def test_the_period_is_stated_with_the_other_records(settings):
    settings.AUDIT_KEPT_DAYS = 1826
    with translation.override("en"):
        stated = retention.stated_periods()
    assert any("staff access" in line and "1826 days" in line for line in stated)


def test_the_privacy_page_and_the_record_of_processing_state_the_period(client, settings, staff):
    settings.AUDIT_KEPT_DAYS = 1826
    html = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Record of staff access to your data" in html and "kept 1826 days" in html
    client.force_login(staff)
    csv = client.get(reverse("admin:consents_purpose_ropa")).content.decode()
    assert "record:audit-trail" in csv and ",1826," in csv


def test_the_trail_list_costs_the_same_queries_whatever_its_size(client, staff, customer):
    client.force_login(staff)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("admin:rights_auditentry_changelist")).status_code == 200
        return len(captured)

    _row(staff)
    few = queries()
    for n in range(30):
        audit.record(
            acting_user=staff,
            action=AuditAction.VIEW_ACCOUNT,
            subject_id=customer.subject_id,
            reason=f"look {n}",
        )
    assert queries() == few
