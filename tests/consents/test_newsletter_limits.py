"""The newsletter form cannot be used to bomb someone's inbox: one pending
confirmation per address at a time, and rate limits per address and per client
(in the cache, like allauth's), refused with 429 and how long to wait, changing
nothing. A cache outage degrades to the database rule, never to a 500."""

from __future__ import annotations

import logging
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from consents.models import ConsentEvent, NewsletterSignup
from portal.models import OutboxItem
from tests.consents.test_newsletter import (
    CHECK_INBOX,
    EMAIL,
    confirmation_path,
    notice_hashes,
)
from tests.portal.test_accounts import without_csrf

WAIT = re.compile(r"Please wait (\d+) (minute|minutes|hour|hours) and try again")


@pytest.fixture
def hashes(client, purposes) -> dict[str, str]:
    return notice_hashes(client.get("/newsletter/").content.decode())


@pytest.fixture
def post(client, hashes, django_capture_on_commit_callbacks):
    def post(email=EMAIL, purposes=("newsletter",), remote_addr="127.0.0.1"):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/newsletter/",
                {"email": email, "purposes": list(purposes), **hashes},
                REMOTE_ADDR=remote_addr,
            )

    return post


def snapshot() -> list:
    return [
        list(NewsletterSignup.objects.order_by("pk").values()),
        OutboxItem.objects.count(),
        ConsentEvent.objects.count(),
    ]


def assert_refused_with_wait(response, *, longest_seconds: int) -> None:
    assert response.status_code == 429
    html = response.content.decode()
    assert "Nothing was sent" in html
    number, unit = WAIT.search(html).groups()
    minutes = int(number) * (60 if unit.startswith("hour") else 1)
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= longest_seconds
    # The words and the header say the same wait, rounded up to the minute.
    assert minutes == -(-retry_after // 60)


def test_a_second_signup_while_one_is_pending_sends_nothing_and_keeps_the_first_link(client, post):
    first = post(purposes=["newsletter"])
    assert first.status_code == 302
    before = snapshot()

    second = post(purposes=["newsletter", "tailored-offers"])

    # The same answer, word for word, as for a new address.
    assert second.status_code == 302 and second["Location"] == first["Location"]
    page = client.get(second["Location"]).content.decode()
    assert CHECK_INBOX in page and "one confirmation at a time" in page
    assert len(mail.outbox) == 1
    assert snapshot() == before
    assert client.post(confirmation_path(mail.outbox[0])).status_code == 302
    decisions = dict(ConsentEvent.objects.values_list("purpose__key", "decision"))
    assert decisions == {"newsletter": "granted", "tailored-offers": "refused"}


def test_thirty_posts_for_one_address_send_one_email_then_get_429_and_change_nothing(
    post, settings
):
    settings.NEWSLETTER_RATE_LIMITS = "100/h/ip,3/h/key"
    answers = [post(email=EMAIL if i % 2 else EMAIL.upper()).status_code for i in range(3)]
    assert answers == [302, 302, 302]
    before = snapshot()

    for _ in range(27):
        response = post()
        assert_refused_with_wait(response, longest_seconds=3600)

    assert len(mail.outbox) == 1 and mail.outbox[0].to == [EMAIL]
    assert snapshot() == before


def test_the_address_limit_is_kept_under_a_hash_never_the_address(post, settings):
    settings.NEWSLETTER_RATE_LIMITS = "1/h/key"
    assert post().status_code == 302
    assert post(email=f"  {EMAIL.upper()} ").status_code == 429
    if settings.REDIS_URL:
        keys = [k.decode() for k in cache._cache.get_client(write=False).scan_iter("*")]
    else:
        keys = list(cache._cache)  # the in-process cache's dict
    newsletter_keys = [k for k in keys if ":rl:newsletter:" in k]
    assert newsletter_keys
    assert not [k for k in newsletter_keys if "reader" in k.lower()]
    assert post(email="someone-else@example.com").status_code == 302


def test_one_client_is_limited_across_addresses(post, settings):
    settings.NEWSLETTER_RATE_LIMITS = "5/h/ip,3/h/key"
    for n in range(5):
        assert post(email=f"reader{n}@example.com").status_code == 302
    before = snapshot()

    response = post(email="reader5@example.com")

    assert_refused_with_wait(response, longest_seconds=3600)
    assert snapshot() == before
    assert len(mail.outbox) == 5
    # Another client is not held back by this one.
    assert post(email="reader6@example.com", remote_addr="198.51.100.7").status_code == 302


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(client, hashes, settings):
    settings.NEWSLETTER_RATE_LIMITS = "2/h/ip"
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1

    def post(email, forwarded):
        data = {"email": email, "purposes": ["newsletter"], **hashes}
        return client.post("/newsletter/", data, headers={"X-Forwarded-For": forwarded}).status_code

    assert [post(f"a{n}@example.com", "203.0.113.1") for n in range(3)] == [302, 302, 429]
    assert post("b@example.com", "203.0.113.2") == 302


def test_without_a_trusted_proxy_a_forged_forwarded_header_does_not_escape_the_limit(
    client, hashes, settings
):
    settings.NEWSLETTER_RATE_LIMITS = "2/h/ip"
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    answers = [
        client.post(
            "/newsletter/",
            {"email": f"a{n}@example.com", "purposes": ["newsletter"], **hashes},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(3)
    ]
    assert answers == [302, 302, 429]


def test_with_the_cache_down_the_form_still_works_and_logs_it(
    post, settings, caplog, django_capture_on_commit_callbacks
):
    settings.NEWSLETTER_RATE_LIMITS = "1/h/key"
    # A Redis that is not there: every cache call raises ConnectionError.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with caplog.at_level(logging.WARNING, logger="consents.ratelimit"):
        answers = [post().status_code for _ in range(3)]

    assert answers == [302, 302, 302]
    # The database rule still holds: one pending confirmation, one email.
    assert len(mail.outbox) == 1
    assert NewsletterSignup.objects.count() == 1
    assert "cache unavailable" in caplog.text


def test_the_answer_is_the_same_for_a_new_a_pending_and_a_confirmed_address(client, post):
    answers = []
    for email in ("new@example.com", "new@example.com", "other@example.com"):
        response = post(email=email)
        page = client.get(response["Location"]).content.decode()
        answers.append((response.status_code, response["Location"], without_csrf(page)))
    assert Client().post(confirmation_path(mail.outbox[-1])).status_code == 302
    response = post(email="other@example.com")
    page = client.get(response["Location"]).content.decode()
    answers.append((response.status_code, response["Location"], without_csrf(page)))

    assert answers[0][:2] == (302, reverse("consents:newsletter_sent"))
    assert answers[0] == answers[1] == answers[2] == answers[3]
