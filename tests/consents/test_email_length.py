"""An email address longer than the 254 characters every email column holds is
refused with a clear message wherever one is typed: it is never truncated into
an address nobody gave, never mailed, and never a 500 (PostgreSQL refuses the
INSERT; SQLite would keep it whole)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from consents.models import ConsentEvent, NewsletterSignup
from portal.models import OutboxItem
from tests.conftest import PASSWORD
from tests.consents.test_newsletter import notice_hashes

# 312 characters, a valid address in form: 64-character labels, as RFC 5321 allows.
LONG = "a" * 60 + "@" + ".".join(["b" * 63] * 3) + "." + "c" * 47 + ".example.com"
TOO_LONG = "An email address can have at most 254 characters; this one has 312."


def nothing_sent() -> bool:
    return not OutboxItem.objects.exists() and not mail.outbox


def test_the_long_address_is_a_valid_312_character_address():
    assert len(LONG) == 312
    local, domain = LONG.split("@")
    assert len(local) <= 64
    assert all(len(label) <= 63 for label in domain.split("."))


@pytest.mark.django_db
def test_the_newsletter_refuses_an_over_long_address_and_stores_and_sends_nothing(
    client, purposes, django_capture_on_commit_callbacks
):
    hashes = notice_hashes(client.get("/newsletter/").content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/newsletter/", {"email": LONG, "purposes": ["newsletter"], **hashes}
        )

    assert response.status_code == 400
    assert TOO_LONG in response.content.decode()
    assert not NewsletterSignup.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert nothing_sent()


@pytest.mark.django_db
def test_an_address_of_exactly_254_characters_is_accepted_by_the_newsletter(
    client, purposes, django_capture_on_commit_callbacks
):
    longest = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 49 + ".example.com"
    assert len(longest) == 254
    hashes = notice_hashes(client.get("/newsletter/").content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/newsletter/", {"email": longest, "purposes": ["newsletter"], **hashes}
        )

    assert response.status_code == 302
    assert NewsletterSignup.objects.get().email == longest
    assert [m.to for m in mail.outbox] == [[longest]]


@pytest.mark.django_db
def test_signup_refuses_an_over_long_address_instead_of_truncating_it(
    client, purposes, django_capture_on_commit_callbacks
):
    signup = client.get(reverse("account_signup")).content.decode()
    data = {"email": LONG, "password1": PASSWORD, "password2": PASSWORD, **notice_hashes(signup)}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("account_signup"), data)

    assert response.status_code == 200
    assert TOO_LONG in response.content.decode()
    assert not get_user_model().objects.exists()
    assert not EmailAddress.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert nothing_sent()


@pytest.mark.django_db
def test_adding_an_over_long_address_to_an_account_is_refused(
    client, customer, django_capture_on_commit_callbacks
):
    client.force_login(customer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/email/", {"email": LONG, "action_add": ""})

    assert response.status_code == 200
    assert TOO_LONG in response.content.decode()
    assert list(EmailAddress.objects.values_list("email", flat=True)) == [customer.email]
    customer.refresh_from_db()
    assert customer.email == "customer@example.com"
    assert nothing_sent()


@pytest.mark.django_db
def test_password_reset_for_an_over_long_address_says_so_and_sends_nothing(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("account_reset_password"), {"email": LONG})

    assert response.status_code == 200
    assert TOO_LONG in response.content.decode()
    assert nothing_sent()
