"""Accounts, end to end through allauth's pages: signup and verification, login,
rate limits, private pages, language, email change and enumeration safety."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from portal.mail import EMAIL
from portal.models import OutboxItem
from tests.conftest import make_user

LOGIN_URL = "/accounts/login/"
PRIVATE_PAGES = [
    "/accounts/email/",
    "/accounts/2fa/",
    "/accounts/sessions/",
    "/accounts/password/change/",
]
LINK = re.compile(re.escape(settings.SITE_URL) + r"(/accounts/[^\s]+/)")


def log_in(client: Client, email: str, password: str):
    return client.post(LOGIN_URL, {"login": email, "password": password})


def is_authenticated(client: Client) -> bool:
    return SESSION_KEY in client.session


def only_email_to(address: str):
    sent = [message for message in mail.outbox if message.to == [address]]
    assert len(sent) == 1, [(m.to, m.subject) for m in mail.outbox]
    return sent[0]


def link_in(message) -> str:
    match = LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def in_portuguese(english: str) -> str:
    """The pt-BR catalogue's translation (the project's, else allauth's)."""
    with translation.override("pt-br"):
        portuguese = translation.gettext(english)
    assert portuguese != english, f"no pt-BR translation of {english!r}"
    return portuguese


def without_csrf(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


# 1. Signup, verification, login


@pytest.mark.django_db
def test_signup_sends_a_verification_email_whose_link_confirms_the_address_and_allows_login(
    client, password, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/signup/",
            {"email": "new@example.com", "password1": password, "password2": password},
        )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert not is_authenticated(client)

    message = only_email_to("new@example.com")
    assert message.subject == "[Clareza] Please Confirm Your Email Address"
    assert f"Hello from {settings.CONTROLLER_NAME}!" in message.body
    assert "has given your email address to register an account" in message.body
    confirm_path = link_in(message)
    assert confirm_path.startswith("/accounts/confirm-email/")
    for content, mimetype in message.alternatives:  # none until templates add one
        assert mimetype == "text/html"
        assert confirm_path in content
    row = OutboxItem.objects.get(kind=EMAIL, recipient="new@example.com")
    assert row.status == OutboxItem.Status.SENT
    assert row.payload == {}  # the link left with the email

    page = client.get(confirm_path)
    assert page.status_code == 200
    assert b"new@example.com" in page.content
    assert not EmailAddress.objects.get(email="new@example.com").verified

    confirmed = client.post(confirm_path)
    assert confirmed.status_code == 302
    assert EmailAddress.objects.get(email="new@example.com").verified

    fresh = Client()
    response = log_in(fresh, "new@example.com", password)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert is_authenticated(fresh)
    assert fresh.get("/").context["user"].email == "new@example.com"


@pytest.mark.django_db
def test_it_does_not_confirm_an_address_on_a_plain_get_of_the_link(
    client, password, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {"email": "new@example.com", "password1": password, "password2": password},
        )
    confirm_path = link_in(only_email_to("new@example.com"))

    assert Client().get(confirm_path).status_code == 200
    assert not EmailAddress.objects.get(email="new@example.com").verified


# 2. Login refused before verification


@pytest.mark.django_db
def test_it_refuses_login_before_verification(client, password):
    make_user("unverified@example.com", verified=False)

    response = log_in(client, "unverified@example.com", password)

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_authenticated(client)
    assert client.get(response["Location"]).status_code == 200
    assert client.get("/accounts/email/").status_code == 302


@pytest.mark.django_db
def test_login_before_verification_sends_a_fresh_verification_email(
    client, password, django_capture_on_commit_callbacks
):
    make_user("unverified@example.com", verified=False)

    with django_capture_on_commit_callbacks(execute=True):
        log_in(client, "unverified@example.com", password)

    message = only_email_to("unverified@example.com")
    assert link_in(message).startswith("/accounts/confirm-email/")


# 5. Rate limits


@pytest.mark.django_db
def test_it_refuses_even_the_right_password_after_five_failed_logins_for_that_email(
    client, customer, other_customer, password
):
    for _ in range(5):
        response = log_in(client, customer.email, "not-the-password")
        assert response.status_code == 200
        assert b"The email address and/or password you specified are not correct." in (
            response.content
        )

    response = log_in(client, customer.email, password)

    assert response.status_code == 200
    assert b"Too many failed login attempts. Try again in 5 minutes." in response.content
    assert not is_authenticated(client)
    # The limit is per email: another account still gets in from the same browser.
    assert log_in(client, other_customer.email, password).status_code == 302
    assert is_authenticated(client)


@pytest.mark.django_db
def test_too_many_login_posts_from_one_ip_get_429_with_the_portal_page(client, customer, password):
    for _ in range(30):
        assert log_in(client, "nobody@example.com", "not-the-password").status_code == 200

    response = log_in(client, customer.email, password)

    assert response.status_code == 429
    assert "429.html" in [template.name for template in response.templates]
    assert b"Too many attempts" in response.content
    assert not is_authenticated(client)


# 6. Private pages


@pytest.mark.parametrize("path", PRIVATE_PAGES)
@pytest.mark.django_db
def test_it_sends_an_anonymous_visitor_from_a_private_page_to_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={path}"


@pytest.mark.django_db
def test_it_sends_an_anonymous_visitor_from_the_admin_to_the_admin_login(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


@pytest.mark.django_db
def test_it_shows_private_pages_to_a_logged_in_customer(client, customer, password):
    log_in(client, customer.email, password)

    for path in PRIVATE_PAGES:
        assert client.get(path).status_code == 200, path


# 7. Language


@pytest.mark.django_db
def test_a_logged_in_customer_choosing_portuguese_stores_it_on_the_account(
    client, customer, password
):
    log_in(client, customer.email, password)

    response = client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.language == "pt-br"


@pytest.mark.django_db
def test_the_stored_language_follows_the_customer_to_a_new_login_on_another_browser(
    client, customer, password
):
    log_in(client, customer.email, password)
    client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})

    fresh = Client()
    assert log_in(fresh, customer.email, password).status_code == 302
    page = fresh.get("/accounts/email/")

    assert page.status_code == 200
    assert page["Content-Language"] == "pt-br"
    assert b'<html lang="pt-br">' in page.content
    assert in_portuguese("Email addresses") in page.content.decode()


@pytest.mark.django_db
def test_a_password_reset_email_reaches_a_portuguese_customer_in_portuguese(
    client, customer, password, django_capture_on_commit_callbacks
):
    log_in(client, customer.email, password)
    client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})

    stranger = Client()  # an English browser, nobody logged in
    with django_capture_on_commit_callbacks(execute=True):
        response = stranger.post("/accounts/password/reset/", {"email": customer.email})
    assert response.status_code == 302

    message = only_email_to(customer.email)
    assert message.subject == f"[Clareza] {in_portuguese('Password Reset Email')}"
    greeting = in_portuguese("Hello from %(site_name)s!") % {"site_name": settings.CONTROLLER_NAME}
    assert message.body.startswith(greeting)
    assert "/accounts/password/reset/key/" in message.body


@pytest.mark.django_db
def test_a_visitor_choice_of_language_is_remembered_by_cookie(client):
    response = client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})

    assert response.cookies["django_language"].value == "pt-br"
    page = client.get(LOGIN_URL)
    assert page["Content-Language"] == "pt-br"
    assert b'<html lang="pt-br">' in page.content
    assert in_portuguese("Sign In") in page.content.decode()


@pytest.mark.django_db
def test_a_visitor_who_signs_up_in_portuguese_gets_the_account_and_email_in_portuguese(
    client, password, django_capture_on_commit_callbacks
):
    client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {"email": "nova@example.com", "password1": password, "password2": password},
        )

    assert get_user_model().objects.get(email="nova@example.com").language == "pt-br"
    message = only_email_to("nova@example.com")
    assert message.subject == f"[Clareza] {in_portuguese('Please Confirm Your Email Address')}"


# 8. Email change


@pytest.mark.django_db
def test_adding_an_address_sends_a_verification_email_to_the_new_address(
    client, customer, password, django_capture_on_commit_callbacks
):
    log_in(client, customer.email, password)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/email/", {"email": "changed@example.com", "action_add": ""}
        )

    assert response.status_code == 302
    message = only_email_to("changed@example.com")
    assert message.subject == "[Clareza] Please Confirm Your Email Address"
    confirm_path = link_in(message)
    assert not EmailAddress.objects.get(email="changed@example.com").verified
    customer.refresh_from_db()
    assert customer.email == "customer@example.com"

    client.post(confirm_path)

    assert EmailAddress.objects.get(email="changed@example.com").verified
    customer.refresh_from_db()
    assert customer.email == "changed@example.com"


# 9. Enumeration safety


@pytest.mark.django_db
def test_signup_with_a_taken_address_answers_like_a_new_one_and_warns_the_owner_by_email(
    customer, password, django_capture_on_commit_callbacks
):
    answers = []
    for email in ("brand-new@example.com", customer.email):
        with django_capture_on_commit_callbacks(execute=True):
            response = Client().post(
                "/accounts/signup/", {"email": email, "password1": password, "password2": password}
            )
        answers.append((response.status_code, response["Location"]))

    assert answers[0] == answers[1] == (302, "/accounts/confirm-email/")
    assert get_user_model().objects.filter(email__iexact=customer.email).count() == 1
    warning = only_email_to(customer.email)
    assert "/accounts/confirm-email/" not in warning.body
    assert "/accounts/password/reset/" in warning.body


@pytest.mark.django_db
def test_password_reset_answers_the_same_for_an_unknown_email_as_for_a_known_one(
    customer, django_capture_on_commit_callbacks
):
    pages = []
    for email in (customer.email, "nobody@example.com"):
        browser = Client()
        with django_capture_on_commit_callbacks(execute=True):
            response = browser.post("/accounts/password/reset/", {"email": email})
        assert response.status_code == 302
        done = browser.get(response["Location"])
        assert done.status_code == 200
        pages.append((response["Location"], without_csrf(done.content.decode())))

    assert pages[0] == pages[1]
    assert "/accounts/password/reset/key/" in only_email_to(customer.email).body
    assert "/accounts/password/reset/key/" not in only_email_to("nobody@example.com").body


def test_an_unknown_language_is_not_stored_on_the_account(client, customer):
    client.force_login(customer)
    client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    customer.refresh_from_db()
    assert customer.language == "en"
