"""The trail in the admin: superusers only, read-only, filtered by person
(subject id, or an email looked up and never stored), staff member, action
and date; and the person's own view of it, for their copy."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import NewsletterSignup
from rights import audit
from rights.models import AuditAction, AuditEntry
from tests.conftest import make_user
from tests.rights.conftest import ask, audit_rows

TRAIL = reverse("admin:rights_auditentry_changelist")


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def look(staff, person, reason="Checking a delivery complaint"):
    return audit.record(
        acting_user=staff,
        action=AuditAction.VIEW_ACCOUNT,
        subject_id=person.subject_id,
        reason=reason,
    )


def listed(client, **params) -> set[int]:
    response = client.get(TRAIL, params)
    assert response.status_code == 200
    return {
        entry.pk
        for entry in AuditEntry.objects.all()
        if reverse("admin:rights_auditentry_change", args=[entry.pk]) in response.content.decode()
    }


def test_staff_who_are_not_superusers_cannot_see_the_trail(client, staff, customer):
    entry = look(staff, customer)
    clerk = make_user("clerk@example.com", staff=True)
    clerk.is_superuser = False
    clerk.save(update_fields=["is_superuser"])
    # Even given every permission on the model.
    clerk.user_permissions.set(Permission.objects.filter(codename__endswith="_auditentry"))
    client.force_login(clerk)
    assert client.get(TRAIL).status_code == 403
    change = reverse("admin:rights_auditentry_change", args=[entry.pk])
    assert client.get(change).status_code == 403
    assert b"auditentry" not in client.get(reverse("admin:index")).content


def test_customers_cannot_see_the_trail(client, staff, customer):
    look(staff, customer)
    client.force_login(customer)
    assert client.get(TRAIL).status_code == 302  # to the login page


def test_nobody_adds_changes_or_deletes_a_row(admin_client, staff, customer):
    entry = look(staff, customer)
    change = reverse("admin:rights_auditentry_change", args=[entry.pk])
    response = admin_client.get(change)
    assert response.status_code == 200 and b'name="_save"' not in response.content
    assert admin_client.post(change, {"reason": "rewritten"}).status_code == 403
    assert admin_client.get(reverse("admin:rights_auditentry_add")).status_code == 403
    delete = reverse("admin:rights_auditentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        TRAIL, {"action": "delete_selected", "_selected_action": [entry.pk]}
    )
    entry.refresh_from_db()
    assert entry.reason == "Checking a delivery complaint"


def test_filter_by_person_with_subject_id_or_email(admin_client, staff, customer, other_customer):
    mine = look(staff, customer)
    theirs = look(staff, other_customer)
    # A newsletter-only subscriber (set up directly: only their address matters here).
    signup = NewsletterSignup.objects.create(email="reader@example.com")
    reader = audit.record(
        acting_user=staff,
        action=AuditAction.VIEW_DATA,
        subject_id=signup.subject_id,
        reason="A question by letter",
    )
    assert listed(admin_client, q=str(customer.subject_id)) == {mine.pk}
    assert listed(admin_client, q="CUSTOMER@example.com") == {mine.pk}
    assert listed(admin_client, q="reader@example.com") == {reader.pk}
    assert listed(admin_client, q="nobody@example.com") == set()
    assert theirs.pk in listed(admin_client)
    # The address searched for is looked up, never written down.
    assert not any(
        "customer@example.com" in json.dumps([e.reason, e.target, e.details]).lower()
        for e in AuditEntry.objects.all()
    )


def test_filter_by_staff_member_action_and_date(admin_client, staff, customer):
    colleague = make_user("colleague@example.com", staff=True)
    mine = look(staff, customer)
    theirs = look(colleague, customer)
    request = ask(customer)
    from rights import services

    services.request_start(request=request, acting_user=colleague)
    started = audit_rows(action=AuditAction.REQUEST_START)[0]
    assert listed(admin_client, staff=colleague.email) == {theirs.pk, started.pk}
    assert listed(admin_client, q=staff.email) == {mine.pk}
    assert listed(admin_client, action__exact=AuditAction.REQUEST_START) == {started.pk}
    old = AuditEntry.objects.create(
        at=timezone.now() - timedelta(days=40),
        actor=staff,
        actor_email=staff.email,
        action=AuditAction.PURPOSE_RETIRE,
    )
    # The list filter's "Past 7 days" link, as the admin writes it.
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    recent = listed(admin_client, **{"at__gte": str(midnight - timedelta(days=7))})
    assert old.pk not in recent and mine.pk in recent
    assert listed(admin_client, at__year=str(old.at.year), at__month=str(old.at.month)) >= {old.pk}


def test_the_trail_stays_readable_once_the_staff_member_is_gone(admin_client, customer):
    leaver = make_user("leaver@example.com", staff=True)
    leaver.first_name = "Lia"
    leaver.save(update_fields=["first_name"])
    entry = look(leaver, customer)
    leaver.delete()
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    response = admin_client.get(reverse("admin:rights_auditentry_change", args=[entry.pk]))
    assert response.status_code == 200 and b"leaver@example.com" in response.content
    [access] = audit.accesses(customer.subject_id)
    assert (access["staff"], access["staff_email"]) == ("Lia", "leaver@example.com")


def test_accesses_lists_who_looked_when_and_why_as_plain_values(staff, customer, other_customer):
    request = ask(customer)
    audit.record_read(
        acting_user=staff,
        action=AuditAction.VIEW_ACCOUNT,
        subject_id=customer.subject_id,
        reason=audit.Why(request=request),
    )
    look(staff, customer, reason="Parcel lost")
    look(staff, other_customer, reason="Not about this customer")
    with translation.override("pt-br"):
        accesses = list(audit.accesses(customer.subject_id))
    assert [a["reason"] for a in accesses] == ["", "Parcel lost"]
    first = accesses[0]
    assert first["request"] == str(request.uuid) and first["looked"] is True
    assert first["staff_email"] == staff.email and first["at"].tzinfo is not None
    assert (
        first["action"] == "view_account" and first["action_label"] != "Opened a person's account"
    )
    assert first["request_kind"] and first["request_kind"] != "A copy of my data (access)"
    assert list(audit.accesses(customer.subject_id.__class__(int=0))) == []
