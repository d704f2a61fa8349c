"""Each service: who may call it, what it checks, what it changes, and the
email it writes to the outbox in the same transaction."""

from __future__ import annotations

import pytest
from django.core import mail

from consents.models import ConsentEvent, Method, NewsletterSignup
from rights import services
from rights.models import Channel, IdentityCheck, Kind, RightsRequest, Status
from tests.conftest import make_user
from tests.rights.conftest import ask, emails, enter, grant, local


def test_a_person_asks_from_the_panel(customer):
    request = ask(customer, kind=Kind.RECTIFICATION, details="My surname is Souza.")
    assert request.subject_id == customer.subject_id
    assert (request.user, request.email) == (customer, customer.email)
    assert (request.channel, request.identity_check, request.entered_by) == (
        Channel.PORTAL,
        "",
        None,
    )
    assert request.status == Status.RECEIVED and request.closed_at is None
    assert emails() == []  # the person sees it at once in the panel


def test_staff_enter_a_phone_request_with_the_identity_check(customer, staff):
    received = local(2025, 1, 31, 15, 0)
    request = enter(staff, "CUSTOMER@example.com", kind=Kind.ERASURE, received_at=received)
    assert (request.subject_id, request.user) == (customer.subject_id, customer)
    assert (request.entered_by, request.channel) == (staff, Channel.PHONE)
    assert request.identity_check == IdentityCheck.PHONE
    assert request.received_at == received


def test_staff_can_enter_a_request_for_a_newsletter_only_subscriber(staff):
    signup = NewsletterSignup.objects.create(email="reader@example.com", language="pt-br")
    request = enter(staff, "reader@example.com", channel=Channel.LETTER)
    assert (request.subject_id, request.user, request.language) == (
        signup.subject_id,
        None,
        "pt-br",
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"identity_check": ""}, "identity"),
        ({"channel": Channel.PORTAL}, "letter, phone or email"),
        ({"email": ""}, "email address"),
        ({"kind": "nonsense"}, "what you are asking"),
        ({"jurisdiction": "xx"}, "law"),
    ],
)
def test_a_staff_entry_missing_what_it_needs_is_refused_and_adds_nothing(staff, extra, message):
    values = {"email": "someone@example.com", "kind": Kind.ACCESS, **extra}
    with pytest.raises(services.RightsError, match=message):
        enter(staff, **values)
    assert not RightsRequest.objects.exists()


def test_a_future_reception_date_is_refused(staff):
    with pytest.raises(services.RightsError, match="future"):
        enter(staff, "someone@example.com", received_at=local(2999, 1, 1))
    assert not RightsRequest.objects.exists()


def test_only_staff_may_act_for_someone_or_decide(customer, other_customer):
    with pytest.raises(services.RightsError, match="Only staff"):
        enter(other_customer, customer.email)
    request = ask(customer)
    for decide in (
        lambda: services.request_refuse(request=request, reason="No", acting_user=other_customer),
        lambda: services.request_complete(request=request, acting_user=other_customer),
        lambda: services.request_start(request=request, acting_user=other_customer),
    ):
        with pytest.raises(services.RightsError):
            decide()
    request.refresh_from_db()
    assert request.status == Status.RECEIVED


def test_refusing_needs_a_reason_and_emails_it_with_the_right_to_complain(customer, staff):
    request = ask(customer)
    with pytest.raises(services.RightsError, match="reason"):
        services.request_refuse(request=request, reason="", acting_user=staff)
    request.refresh_from_db()
    assert request.status == Status.RECEIVED
    refused = services.request_refuse(
        request=request, reason="We could not confirm it is you.", acting_user=staff
    )
    assert (refused.status, refused.closed_by) == (Status.REFUSED, staff)
    assert refused.closed_at is not None
    [email] = emails("emails/rights_request_refused")
    for body in (email.payload["body_text"], email.payload["body_html"]):
        assert "We could not confirm it is you." in body
        assert "ANPD" in body
    assert email.subject_id == customer.subject_id


def test_completing_emails_the_person_and_closes_the_request(
    customer, staff, django_capture_on_commit_callbacks
):
    request = ask(customer, kind=Kind.ACCESS)
    services.request_start(request=request, acting_user=staff)
    with django_capture_on_commit_callbacks(execute=True):
        done = services.request_complete(
            request=request, answer="Your copy is attached.", acting_user=staff
        )
    assert done.status == Status.DONE
    [message] = mail.outbox
    assert message.to == [customer.email]
    assert "Your copy is attached." in message.body
    assert "Your copy is attached." in message.alternatives[0][0]
    assert "/me/requests/" in message.body
    with pytest.raises(services.RightsError, match="already closed"):
        services.request_complete(request=request, acting_user=staff)
    assert len(emails()) == 1


def test_a_person_cancels_their_own_open_request_and_no_one_elses(customer, other_customer):
    request = ask(customer)
    with pytest.raises(services.RightsError, match="not yours"):
        services.request_cancel(request=request, user=other_customer)
    request.refresh_from_db()
    assert request.status == Status.RECEIVED
    cancelled = services.request_cancel(request=request, user=customer)
    assert cancelled.status == Status.CANCELLED and cancelled.closed_at is not None
    with pytest.raises(services.RightsError, match="already closed"):
        services.request_cancel(request=request, user=customer)


def test_the_person_is_answered_in_their_language(staff):
    person = make_user("ana@example.com", language="pt-br")
    request = ask(person)
    services.request_refuse(request=request, reason="Motivo.", acting_user=staff)
    [email] = emails()
    assert "Não podemos" in email.title
    assert "Por quê" in email.payload["body_text"]
    assert 'lang="pt-br"' in email.payload["body_html"]


def test_purposes_are_named_only_by_objections_and_restrictions(customer, purposes):
    with pytest.raises(services.RightsError, match="Choose purposes only"):
        ask(customer, kind=Kind.ACCESS, purposes=[purposes["newsletter"]])
    with pytest.raises(services.RightsError, match="uses of your data"):
        ask(customer, kind=Kind.OBJECTION)
    with pytest.raises(services.RightsError, match="cannot be objected to"):
        ask(customer, kind=Kind.OBJECTION, purposes=[purposes["account-orders"]])
    assert not RightsRequest.objects.exists()
    restriction = ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["account-orders"]])
    assert list(restriction.purposes.all()) == [purposes["account-orders"]]


def test_an_objection_to_a_consent_purpose_withdraws_it_with_the_recorders_method(
    customer, other_customer, staff, purposes
):
    for person in (customer, other_customer):
        grant(person, purposes["newsletter"])
    ask(customer, kind=Kind.OBJECTION, purposes=[purposes["newsletter"]])
    enter(staff, other_customer.email, kind=Kind.OBJECTION, purposes=[purposes["newsletter"]])
    last = {
        person: ConsentEvent.objects.filter(subject_id=person.subject_id).latest("id")
        for person in (customer, other_customer)
    }
    assert (last[customer].decision, last[customer].method) == ("withdrawn", Method.PANEL)
    assert (last[other_customer].decision, last[other_customer].method) == (
        "withdrawn",
        Method.STAFF,
    )
