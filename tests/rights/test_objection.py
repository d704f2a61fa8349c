"""Objection and restriction take effect at once: consents asks
rights.selectors.processing_allowed before it uses data for a purpose."""

from __future__ import annotations

from consents import selectors as consent_selectors
from rights import services
from rights.models import Kind
from rights.selectors import limited_purpose_ids, processing_allowed
from shop.benefits import benefits_for
from tests.rights.conftest import ask, enter, grant


def _emailable(person) -> bool:
    return (
        consent_selectors.subjects_accepting_optional_email()
        .filter(subject_id=person.subject_id)
        .exists()
    )


def test_a_restriction_stops_a_use_at_once_and_only_for_that_person_and_purpose(
    customer, other_customer, purposes
):
    for person in (customer, other_customer):
        grant(person, purposes["recommendations"])
        grant(person, purposes["newsletter"])
    assert benefits_for(subject_id=customer.subject_id).recommendations_on
    ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["recommendations"]])
    assert not processing_allowed(customer.subject_id, purposes["recommendations"])
    assert processing_allowed(customer.subject_id, purposes["newsletter"])
    assert processing_allowed(other_customer.subject_id, purposes["recommendations"])
    assert not benefits_for(subject_id=customer.subject_id).recommendations_on
    assert benefits_for(subject_id=other_customer.subject_id).recommendations_on
    assert not consent_selectors.processing_allowed(
        subject_id=customer.subject_id, purpose=purposes["recommendations"]
    )
    assert consent_selectors.processing_allowed(
        subject_id=customer.subject_id, purpose=purposes["newsletter"]
    )


def test_a_restriction_ends_when_it_is_answered_or_cancelled(customer, staff, purposes):
    grant(customer, purposes["recommendations"])
    first = ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["recommendations"]])
    services.request_complete(request=first, acting_user=staff)
    assert processing_allowed(customer.subject_id, purposes["recommendations"])
    second = ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["recommendations"]])
    assert not processing_allowed(customer.subject_id, purposes["recommendations"])
    services.request_cancel(request=second, user=customer)
    assert processing_allowed(customer.subject_id, purposes["recommendations"])


def test_an_objection_stands_once_answered_and_ends_only_when_refused(customer, staff, purposes):
    account = purposes["account-orders"]
    account.legal_basis = "legitimate_interest"
    account.save(update_fields=["legal_basis"])
    objection = ask(customer, kind=Kind.OBJECTION, purposes=[account])
    assert not processing_allowed(customer.subject_id, account)
    services.request_complete(request=objection, acting_user=staff)
    assert not processing_allowed(customer.subject_id, account)
    assert account.pk in limited_purpose_ids(subject_id=customer.subject_id)
    in_use = {
        c.key: [p.key for p in c.purposes_in_use]
        for c in consent_selectors.categories_in_use_for(subject_id=customer.subject_id)
    }
    assert all("account-orders" not in keys for keys in in_use.values())
    other = ask(customer, kind=Kind.OBJECTION, purposes=[account])
    services.request_refuse(request=other, reason="Fraud prevention.", acting_user=staff)
    # The first objection, upheld, still stands.
    assert not processing_allowed(customer.subject_id, account)


def test_a_restriction_stops_optional_email_to_the_person(customer, other_customer, purposes):
    for person in (customer, other_customer):
        grant(person, purposes["newsletter"])
    assert _emailable(customer)
    ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]])
    assert not _emailable(customer)
    assert _emailable(other_customer)


def test_a_refused_objection_lets_processing_resume(customer, staff, purposes):
    account = purposes["account-orders"]
    account.legal_basis = "legitimate_interest"
    account.save(update_fields=["legal_basis"])
    objection = enter(staff, customer.email, kind=Kind.OBJECTION, purposes=[account])
    assert not processing_allowed(customer.subject_id, account.pk)
    services.request_refuse(
        request=objection, reason="Compelling legitimate grounds.", acting_user=staff
    )
    assert processing_allowed(customer.subject_id, account.pk)


def test_a_restricted_field_is_kept_not_erased(customer, purposes):
    from consents.models import PersonalDatum
    from consents.personal_data import personal_data_update

    grant(customer, purposes["dietary-suggestions"])
    personal_data_update(user=customer, field_key="dietary", value=["nuts"])
    ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["dietary-suggestions"]])
    assert PersonalDatum.objects.filter(subject_id=customer.subject_id, field="dietary").exists()
