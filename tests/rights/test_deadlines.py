"""The deadline arithmetic: LGPD 15 days; GDPR one calendar month (the last
day of a shorter month), extendable once, before it ends, to three months."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rights import deadlines, services
from rights.models import Jurisdiction, Status
from tests.rights.conftest import ask, emails, local


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (local(2025, 3, 10, 9, 30), local(2025, 3, 25, 9, 30)),
        (local(2025, 12, 20, 14, 0), local(2026, 1, 4, 14, 0)),
        (local(2024, 2, 20, 8, 0), local(2024, 3, 6, 8, 0)),  # leap year: 29 February counts
    ],
)
def test_lgpd_gives_fifteen_calendar_days(received, due):
    assert deadlines.due_at(received, Jurisdiction.LGPD) == due


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (local(2025, 3, 15, 10, 0), local(2025, 4, 15, 10, 0)),
        (local(2025, 1, 31, 10, 0), local(2025, 2, 28, 10, 0)),
        (local(2024, 1, 31, 10, 0), local(2024, 2, 29, 10, 0)),
        (local(2025, 3, 31, 10, 0), local(2025, 4, 30, 10, 0)),
        (local(2025, 12, 31, 23, 0), local(2026, 1, 31, 23, 0)),
        (local(2025, 2, 28, 10, 0), local(2025, 3, 28, 10, 0)),
    ],
)
def test_gdpr_gives_one_calendar_month_ending_on_a_shorter_months_last_day(received, due):
    assert deadlines.due_at(received, Jurisdiction.GDPR) == due


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (local(2025, 1, 31, 10, 0), local(2025, 4, 30, 10, 0)),
        (local(2025, 11, 30, 10, 0), local(2026, 2, 28, 10, 0)),
        (local(2025, 5, 5, 10, 0), local(2025, 8, 5, 10, 0)),
    ],
)
def test_the_gdpr_extension_makes_three_months_from_receipt(received, due):
    assert deadlines.extended_due_at(received, Jurisdiction.GDPR) == due


def test_the_periods_come_from_settings(settings):
    settings.RIGHTS_DEADLINES = {"lgpd": {"days": 10}, "gdpr": {"months": 1}}
    received = local(2025, 3, 1, 9, 0)
    assert deadlines.due_at(received, "lgpd") == local(2025, 3, 11, 9, 0)
    assert not deadlines.can_extend("gdpr")
    with pytest.raises(ValueError, match="xx"):
        deadlines.due_at(received, "xx")


def test_a_request_is_due_by_its_jurisdictions_period(customer):
    lgpd = ask(customer, jurisdiction=Jurisdiction.LGPD)
    gdpr = ask(customer, jurisdiction=Jurisdiction.GDPR)
    assert lgpd.due_at == deadlines.due_at(lgpd.received_at, "lgpd")
    assert lgpd.due_at - lgpd.received_at == timedelta(days=15)
    assert gdpr.due_at == deadlines.add_months(gdpr.received_at, 1)


def test_an_extension_inside_the_first_month_moves_the_deadline_and_tells_the_person(
    customer, staff
):
    request = ask(customer, jurisdiction=Jurisdiction.GDPR)
    extended = services.request_extend(
        request=request, reason="The archive is on tape.", acting_user=staff
    )
    assert extended.status == Status.EXTENDED
    assert extended.due_at == deadlines.add_months(request.received_at, 3)
    [email] = emails("emails/rights_request_extended")
    assert email.recipient == customer.email
    assert "The archive is on tape." in email.payload["body_text"]
    assert "The archive is on tape." in email.payload["body_html"]


def test_an_extension_after_the_first_month_is_refused_and_changes_nothing(customer, staff):
    request = ask(customer, jurisdiction=Jurisdiction.GDPR)
    late = request.due_at + timedelta(seconds=1)
    with pytest.raises(services.RightsError, match="first deadline has passed"):
        services.request_extend(request=request, reason="Late", acting_user=staff, now=late)
    request.refresh_from_db()
    assert (request.status, request.extended_at) == (Status.RECEIVED, None)
    assert emails() == []


def test_an_extension_is_given_once_needs_a_reason_and_only_under_the_gdpr(customer, staff):
    gdpr = ask(customer, jurisdiction=Jurisdiction.GDPR)
    with pytest.raises(services.RightsError, match="reason"):
        services.request_extend(request=gdpr, reason="  ", acting_user=staff)
    services.request_extend(request=gdpr, reason="Many systems", acting_user=staff)
    due = gdpr.__class__.objects.get(pk=gdpr.pk).due_at
    with pytest.raises(services.RightsError, match="already extended"):
        services.request_extend(request=gdpr, reason="Again", acting_user=staff)
    gdpr.refresh_from_db()
    assert gdpr.due_at == due
    lgpd = ask(customer, jurisdiction=Jurisdiction.LGPD)
    with pytest.raises(services.RightsError, match="cannot be extended"):
        services.request_extend(request=lgpd, reason="Busy", acting_user=staff)
    lgpd.refresh_from_db()
    assert lgpd.status == Status.RECEIVED
    assert lgpd.due_at - lgpd.received_at == timedelta(days=15)
    assert timezone.now() < lgpd.due_at
