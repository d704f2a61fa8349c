"""Every staff look at one person's data in the admin writes its audit row
first, tied to the person's open request or to a reason asked for (no
JavaScript needed); no row, no page."""

from __future__ import annotations

import pytest
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone

from portal.mail import EMAIL
from portal.models import OutboxItem
from rights.models import AuditAction
from tests.conftest import make_user
from tests.rights.conftest import ask, audit_rows

REASON = "Complaint by phone about a lost parcel"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def user_url(user) -> str:
    return reverse("admin:portal_user_change", args=[user.pk])


def test_the_request_screen_writes_its_row_tied_to_the_request(admin_client, staff, customer):
    request = ask(customer, details="my orders")
    response = admin_client.get(reverse("admin:rights_rightsrequest_change", args=[request.pk]))
    assert response.status_code == 200 and b"my orders" in response.content
    [row] = audit_rows()
    assert (row.action, row.subject_id, row.request_uuid, row.actor_email) == (
        AuditAction.VIEW_REQUEST,
        customer.subject_id,
        request.uuid,
        staff.email,
    )


def test_the_request_screen_is_not_shown_without_its_row(admin_client, customer, audit_refused):
    request = ask(customer, details="my orders")
    with pytest.raises(DatabaseError):
        admin_client.get(reverse("admin:rights_rightsrequest_change", args=[request.pk]))


def test_an_account_with_an_open_request_opens_for_that_request(admin_client, customer):
    request = ask(customer)
    response = admin_client.get(user_url(customer))
    assert response.status_code == 200 and customer.email.encode() in response.content
    [row] = audit_rows()
    assert (row.action, row.subject_id, row.request_uuid, row.reason) == (
        AuditAction.VIEW_ACCOUNT,
        customer.subject_id,
        request.uuid,
        "",
    )


def test_an_account_without_a_request_asks_why_before_showing_anything(admin_client, customer):
    response = admin_client.get(user_url(customer))
    assert response.status_code == 200
    html = response.content.decode()
    assert customer.email not in html and str(customer.subject_id) not in html
    assert "Why do you need to see this person" in html and 'name="_audit_reason"' in html
    assert audit_rows() == []
    # An empty reason is refused and still shows nothing.
    response = admin_client.post(user_url(customer), {"_audit_reason": "1", "reason": "  "})
    assert response.status_code == 400 and customer.email not in response.content.decode()
    assert audit_rows() == []
    # Stated: back to the page, which writes its row with the reason.
    response = admin_client.post(user_url(customer), {"_audit_reason": "1", "reason": REASON})
    assert response.status_code == 302 and response["Location"] == user_url(customer)
    assert audit_rows() == []  # stating a reason is not a look
    response = admin_client.get(user_url(customer))
    assert response.status_code == 200 and customer.email in response.content.decode()
    [row] = audit_rows()
    assert (row.action, row.subject_id, row.request_uuid, row.reason) == (
        AuditAction.VIEW_ACCOUNT,
        customer.subject_id,
        None,
        REASON,
    )
    # Every look is a row; the reason covers them for AUDIT_REASON_MINUTES.
    admin_client.get(user_url(customer))
    assert [r.reason for r in audit_rows()] == [REASON, REASON]


def test_a_reason_covers_one_person_only_and_expires(admin_client, customer, other_customer):
    admin_client.post(user_url(customer), {"_audit_reason": "1", "reason": REASON})
    response = admin_client.get(user_url(other_customer))
    assert other_customer.email not in response.content.decode()
    session = admin_client.session
    session["audit_reasons"][str(customer.subject_id)]["until"] = timezone.now().isoformat()
    session.save()
    response = admin_client.get(user_url(customer))
    assert customer.email not in response.content.decode()
    assert audit_rows() == []


def test_a_reason_is_per_session_and_per_staff_member(client, customer, staff):
    client.force_login(staff)
    client.post(user_url(customer), {"_audit_reason": "1", "reason": REASON})
    colleague = make_user("colleague@example.com", staff=True)
    client.force_login(colleague)  # a new session
    assert customer.email not in client.get(user_url(customer)).content.decode()


def test_a_save_posted_without_a_why_changes_nothing(admin_client, customer):
    response = admin_client.post(
        user_url(customer), {"email": "changed@example.com", "language": "en"}
    )
    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.email == "customer@example.com"
    assert audit_rows() == []


def test_the_account_page_is_not_shown_without_its_row(admin_client, customer, audit_refused):
    ask(customer)
    with pytest.raises(DatabaseError):
        admin_client.get(user_url(customer))


def test_the_password_page_asks_why_too(admin_client, customer):
    url = reverse("admin:auth_user_password_change", args=[customer.pk])
    response = admin_client.get(url)
    assert customer.email not in response.content.decode()
    ask(customer)
    response = admin_client.get(url)
    assert response.status_code == 200 and customer.email in response.content.decode()
    assert [r.action for r in audit_rows()] == [AuditAction.VIEW_ACCOUNT]


def test_an_outbox_row_about_a_person_is_opened_with_a_why(admin_client, customer):
    about = OutboxItem.objects.create(
        kind=EMAIL, recipient=customer.email, title="Your request", subject_id=customer.subject_id
    )
    nobody = OutboxItem.objects.create(kind=EMAIL, recipient="dpo@example.com", title="Due")
    url = reverse("admin:portal_outboxitem_change", args=[about.pk])
    assert customer.email not in admin_client.get(url).content.decode()
    admin_client.post(url, {"_audit_reason": "1", "reason": REASON})
    assert customer.email in admin_client.get(url).content.decode()
    [row] = audit_rows()
    assert (row.action, row.subject_id, row.reason) == (
        AuditAction.VIEW_EMAIL,
        customer.subject_id,
        REASON,
    )
    # A row about no one (the DPO's list) names no person: no why, no row.
    response = admin_client.get(reverse("admin:portal_outboxitem_change", args=[nobody.pk]))
    assert response.status_code == 200 and len(audit_rows()) == 1


@pytest.mark.parametrize(
    "name", ["account_emailaddress", "mfa_authenticator", "usersessions_usersession"]
)
def test_allauths_records_of_a_person_are_audited_and_read_only(admin_client, customer, name):
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from allauth.usersessions.models import UserSession

    from tests.conftest import add_second_factor

    add_second_factor(customer)
    UserSession.objects.create(
        user=customer, session_key="k" * 32, ip="192.0.2.1", user_agent="Firefox"
    )
    model = {
        "account_emailaddress": EmailAddress,
        "mfa_authenticator": Authenticator,
        "usersessions_usersession": UserSession,
    }[name]
    record = model.objects.get(user=customer)
    url = reverse(f"admin:{name}_change", args=[record.pk])
    assert admin_client.get(url).status_code == 200 and audit_rows() == []
    ask(customer)
    response = admin_client.get(url)
    assert response.status_code == 200
    [row] = audit_rows()
    assert (row.action, row.subject_id) == (AuditAction.VIEW_ACCOUNT_RECORD, customer.subject_id)
    assert b'name="_save"' not in response.content  # read-only
    assert admin_client.post(url, {}).status_code == 403
    assert model.objects.filter(pk=record.pk).exists()
