"""Two-factor authentication through allauth.mfa's pages: TOTP enrolment with a
code computed from the pending secret, the second login step, recovery codes."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    format_hotp_value,
    hotp_value,
)
from django.contrib.auth import SESSION_KEY
from django.test import Client

LOGIN_URL = "/accounts/login/"
MFA_URL = "/accounts/2fa/authenticate/"
ACTIVATE_URL = "/accounts/2fa/totp/activate/"
REAUTH_URL = "/accounts/reauthenticate/"
PERIOD = 30  # allauth's MFA_TOTP_PERIOD, not overridden in settings


def log_in(client: Client, email: str, password: str):
    return client.post(LOGIN_URL, {"login": email, "password": password})


def is_authenticated(client: Client) -> bool:
    return SESSION_KEY in client.session


def totp_code(secret: str, *, valid_for: float = 2.0) -> str:
    """The authenticator app's current code. The window has no tolerance
    (MFA_TOTP_TOLERANCE=0), so wait for a fresh period rather than hand over a
    code that expires before the server checks it."""
    left = PERIOD - time.time() % PERIOD
    if left < valid_for:
        time.sleep(left + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time()) // PERIOD))


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def open_totp_activation(client: Client, email: str, password: str):
    """Log in, confirm the password again (allauth asks before any MFA change)
    and open the activation page."""
    assert log_in(client, email, password).status_code == 302
    asked = client.get(ACTIVATE_URL)
    assert asked.status_code == 302
    assert asked["Location"] == f"{REAUTH_URL}?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    confirmed = client.post(asked["Location"], {"password": password})
    assert confirmed["Location"] == ACTIVATE_URL
    page = client.get(ACTIVATE_URL)
    assert page.status_code == 200
    return page


def enrol_totp(client: Client, email: str, password: str) -> str:
    """Activate TOTP the way a person does; return the secret."""
    page = open_totp_activation(client, email, password)
    secret = client.session[SECRET_SESSION_KEY]
    assert secret in page.content.decode()  # shown for manual entry
    response = client.post(ACTIVATE_URL, {"code": totp_code(secret)})
    assert response.status_code == 302, response.content
    return secret


@pytest.mark.django_db
def test_activating_totp_needs_the_password_again_and_a_code_from_the_pending_secret(
    client, customer, password
):
    open_totp_activation(client, customer.email, password)
    secret = client.session[SECRET_SESSION_KEY]

    refused = client.post(ACTIVATE_URL, {"code": wrong_code(totp_code(secret))})
    assert refused.status_code == 200
    assert b"Incorrect code." in refused.content
    assert not Authenticator.objects.filter(user=customer).exists()

    accepted = client.post(ACTIVATE_URL, {"code": totp_code(secret)})

    assert accepted.status_code == 302
    assert accepted["Location"] == "/accounts/2fa/recovery-codes/"
    assert set(Authenticator.objects.filter(user=customer).values_list("type", flat=True)) == {
        Authenticator.Type.TOTP,
        Authenticator.Type.RECOVERY_CODES,
    }
    assert SECRET_SESSION_KEY not in client.session


@pytest.mark.django_db
def test_with_totp_the_password_alone_does_not_log_in_and_asks_for_the_code(
    client, customer, password
):
    secret = enrol_totp(client, customer.email, password)
    client.post("/accounts/logout/")
    assert not is_authenticated(client)

    response = log_in(client, customer.email, password)

    assert response.status_code == 302
    assert response["Location"] == MFA_URL
    assert not is_authenticated(client)
    assert client.get("/accounts/email/").status_code == 302
    assert client.get(MFA_URL).status_code == 200

    refused = client.post(MFA_URL, {"code": wrong_code(totp_code(secret))})
    assert refused.status_code == 200
    assert b"Incorrect code." in refused.content
    assert not is_authenticated(client)

    accepted = client.post(MFA_URL, {"code": totp_code(secret)})
    assert accepted.status_code == 302
    assert accepted["Location"] == "/"
    assert is_authenticated(client)
    assert client.get("/accounts/email/").status_code == 200


@pytest.mark.django_db
def test_the_second_step_cannot_be_reached_without_the_password(client, customer, password):
    enrol_totp(client, customer.email, password)

    stranger = Client()
    response = stranger.get(MFA_URL)

    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert not is_authenticated(stranger)


@pytest.mark.django_db
def test_a_totp_code_that_logged_in_once_is_refused_a_second_time(customer, password):
    secret = enrol_totp(Client(), customer.email, password)
    # Both logins must fall in the same 30-second period for this to test replay.
    code = totp_code(secret, valid_for=8)
    period = int(time.time()) // PERIOD

    first = Client()
    log_in(first, customer.email, password)
    assert first.post(MFA_URL, {"code": code}).status_code == 302
    assert is_authenticated(first)

    second = Client()
    log_in(second, customer.email, password)
    replay = second.post(MFA_URL, {"code": code})

    assert int(time.time()) // PERIOD == period, "the test ran too slowly to test replay"
    assert replay.status_code == 200
    assert b"Incorrect code." in replay.content
    assert not is_authenticated(second)


@pytest.mark.django_db
def test_a_recovery_code_logs_in_once_and_is_refused_the_second_time(client, customer, password):
    enrol_totp(client, customer.email, password)
    page = client.get("/accounts/2fa/recovery-codes/")
    assert page.status_code == 200
    codes = page.context["unused_codes"]
    assert len(codes) == 10
    assert all(code in page.content.decode() for code in codes)
    client.post("/accounts/logout/")

    first = Client()
    assert log_in(first, customer.email, password)["Location"] == MFA_URL
    response = first.post(MFA_URL, {"code": codes[0]})
    assert response.status_code == 302
    assert is_authenticated(first)
    recovery = Authenticator.objects.get(user=customer, type=Authenticator.Type.RECOVERY_CODES)
    assert recovery.wrap().get_unused_codes() == codes[1:]

    second = Client()
    log_in(second, customer.email, password)
    replay = second.post(MFA_URL, {"code": codes[0]})

    assert replay.status_code == 200
    assert b"Incorrect code." in replay.content
    assert not is_authenticated(second)

    other_code = second.post(MFA_URL, {"code": codes[1]})
    assert other_code.status_code == 302
    assert is_authenticated(second)
