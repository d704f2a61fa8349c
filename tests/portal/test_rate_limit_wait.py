"""Someone stopped by a rate limit is told how long to wait, from the limit
that stopped them (ACCOUNT_RATE_LIMITS), and 429 answers carry Retry-After."""

from __future__ import annotations

import pytest

from portal.ratelimits import handler429
from tests.conftest import make_user

SIGNUP = "/accounts/signup/"


def sign_up(client, email: str):
    return client.post(
        SIGNUP, {"email": email, "password1": "a-long-Test-passphrase-42", "password2": "x"}
    )


@pytest.mark.django_db
def test_the_signup_limit_page_says_how_long_to_wait(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/10m/ip"}
    assert sign_up(client, "first@example.com").status_code != 429
    response = sign_up(client, "second@example.com")
    assert response.status_code == 429
    assert response["Retry-After"] == "600"
    assert b"Please wait 10 minutes and try again." in response.content


@pytest.mark.django_db
def test_the_login_limit_page_says_how_long_to_wait(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1/45s/ip"}
    client.post("/accounts/login/", {"login": "nobody@example.com", "password": "nope"})
    response = client.post("/accounts/login/", {"login": "nobody@example.com", "password": "no"})
    assert response.status_code == 429
    assert response["Retry-After"] == "45"
    assert b"Please wait 45 seconds and try again." in response.content


@pytest.mark.django_db
def test_too_many_failed_logins_say_how_long_to_wait(client, password):
    user = make_user("locked@example.com")
    for _ in range(5):
        client.post("/accounts/login/", {"login": user.email, "password": "wrong"})
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert b"Too many failed login attempts. Try again in 5 minutes." in response.content


@pytest.mark.django_db
def test_a_limit_of_unknown_length_still_answers_a_clear_page(rf):
    response = handler429(rf.post("/somewhere/"))
    assert response.status_code == 429
    assert not response.has_header("Retry-After")
    assert b"Please wait a few minutes and try again." in response.content
