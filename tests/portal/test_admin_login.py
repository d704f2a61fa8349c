"""Staff log in through allauth, whatever path they take (/admin/login/ too):
its rate limits and its second step apply, and the admin opens only to staff
who have a second factor (STAFF_REQUIRE_MFA). Customers are not affected."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests.conftest import add_second_factor, make_user
from tests.portal.test_mfa import MFA_URL, enrol_totp, is_authenticated, totp_code, wrong_code
from tests.portal.test_settings import PRODUCTION, _start

ADMIN_LOGIN = "/admin/login/?next=/admin/"
SETUP_URL = "/accounts/2fa/totp/activate/"


def admin_log_in(client: Client, email: str, password: str):
    """What a person does at /admin/login/: fill in the form it shows, or the
    one it sends them to."""
    page = client.get(ADMIN_LOGIN)
    if page.status_code == 302:  # handed over to allauth's login
        return client.post(page["Location"], {"login": email, "password": password})
    return client.post(ADMIN_LOGIN, {"username": email, "password": password, "next": "/admin/"})


@pytest.fixture
def staff_without_mfa(db):
    return make_user("new-staff@example.com", staff=True, second_factor=False)


@pytest.mark.django_db
def test_the_admin_login_hands_over_to_allauths_login(client, staff, password):
    response = client.get(ADMIN_LOGIN)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    # Django's own form is gone: a password posted to it logs nobody in.
    posted = client.post(ADMIN_LOGIN, {"username": staff.email, "password": password})
    assert posted.status_code == 302
    assert urlsplit(posted["Location"]).path == "/accounts/login/"
    assert not is_authenticated(client)


@pytest.mark.django_db
def test_fifteen_wrong_passwords_then_the_right_one_is_refused_at_the_admin_login(
    client, staff, password
):
    for _ in range(15):
        admin_log_in(client, staff.email, "not-the-password")
        assert not is_authenticated(client)
    response = admin_log_in(client, staff.email, password)
    assert not is_authenticated(client)
    assert response.status_code in (200, 429)
    assert b"Too many" in response.content
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_staff_with_an_authenticator_must_pass_the_code_step_before_the_admin_opens(
    client, password
):
    user = make_user("sofia@example.com", staff=True, second_factor=False)
    secret = add_second_factor(user)

    response = admin_log_in(client, user.email, password)
    assert response.status_code == 302
    assert response["Location"] == MFA_URL
    assert not is_authenticated(client)
    assert client.get("/admin/").status_code == 302

    refused = client.post(MFA_URL, {"code": wrong_code(totp_code(secret))})
    assert refused.status_code == 200
    assert not is_authenticated(client)

    accepted = client.post(MFA_URL, {"code": totp_code(secret)})
    assert accepted.status_code == 302
    assert accepted["Location"] == "/admin/"
    admin = client.get("/admin/")
    assert admin.status_code == 200
    assert b"Privacy operations" in admin.content


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/policies/policyversion/", "/admin/portal/user/add/"]
)
def test_staff_without_a_second_factor_are_sent_to_set_one_up_before_any_admin_page(
    client, staff_without_mfa, url
):
    client.force_login(staff_without_mfa)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == SETUP_URL
    assert client.post(url, {}).status_code == 302  # nor can they write through it
    told = client.get(url, follow=True).content.decode()
    assert "The administration opens only once your account has a second factor." in told


def test_once_staff_set_up_a_second_factor_the_admin_opens(client, staff_without_mfa, password):
    enrol_totp(client, staff_without_mfa.email, password)
    assert client.get("/admin/").status_code == 200


def test_the_demo_setting_relaxes_the_requirement(client, staff_without_mfa, settings):
    settings.STAFF_REQUIRE_MFA = False
    client.force_login(staff_without_mfa)
    assert client.get("/admin/").status_code == 200


def test_a_customer_without_a_second_factor_is_not_affected(client, customer, password):
    response = client.post("/accounts/login/", {"login": customer.email, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/"
    for url in ("/", "/me/", "/me/data/", "/accounts/email/"):
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/").status_code == 302  # to the admin login, which refuses them
    assert client.get(ADMIN_LOGIN).status_code == 403


def test_production_refuses_to_start_with_the_requirement_off():
    result = _start({**PRODUCTION, "STAFF_REQUIRE_MFA": "0"}, "check")
    assert result.returncode != 0
    assert "STAFF_REQUIRE_MFA" in result.stderr
    assert _start({**PRODUCTION, "STAFF_REQUIRE_MFA": "1"}, "check").returncode == 0
