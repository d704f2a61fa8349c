"""Every absolute link the portal mails or signs names SITE_URL, the portal's
public address, whatever Host the request that caused it carried; and
`make run PORT=…` gives that port to SITE_URL."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from django.core import mail
from django.test import override_settings

from consents import receipts
from consents import services as consent_services
from consents.demo import seed_inventory
from consents.models import ConsentEvent, Decision, Method, Purpose
from policies import services as policy_services
from policies.demo import seed_policies
from policies.models import PolicyVersion

ROOT = Path(__file__).resolve().parents[2]
SITE = "http://127.0.0.1:8101"
URL = re.compile(r"https?://[^\s\"'<>]+")


def urls_in(message) -> set[str]:
    bodies = [message.body] + [content for content, _ in message.alternatives]
    found = {url for body in bodies for url in URL.findall(body)}
    assert found, message.body
    return found


def only_message_to(address: str):
    [message] = [m for m in mail.outbox if m.to == [address]]
    return message


@pytest.mark.django_db
@override_settings(SITE_URL=SITE)
def test_account_emails_link_to_site_url_not_to_the_requests_host(
    client, customer, password, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {"email": "new@example.com", "password1": password, "password2": password},
            HTTP_HOST="localhost",
        )
        client.post("/accounts/password/reset/", {"email": customer.email}, HTTP_HOST="localhost")
        client.post(
            "/accounts/password/reset/", {"email": "nobody@example.com"}, HTTP_HOST="localhost"
        )

    verification = urls_in(only_message_to("new@example.com"))
    reset = urls_in(only_message_to(customer.email))
    unknown = urls_in(only_message_to("nobody@example.com"))  # links to sign-up and reset
    assert any(u.startswith(f"{SITE}/accounts/confirm-email/") for u in verification)
    assert any(u.startswith(f"{SITE}/accounts/password/reset/key/") for u in reset)
    assert any(u.startswith(f"{SITE}/accounts/signup/") for u in unknown)
    for url in verification | reset | unknown:
        assert url.startswith(SITE + "/"), url


@pytest.mark.django_db
@override_settings(SITE_URL=SITE)
def test_newsletter_policy_emails_and_receipts_link_to_site_url(
    customer, django_capture_on_commit_callbacks
):
    seed_inventory()
    seed_policies()
    newsletter = Purpose.objects.get(key="newsletter")
    consent_services.consent_record(
        subject_id=customer.subject_id,
        purpose=newsletter,
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    offered = list(Purpose.objects.filter(offered_in_newsletter=True))
    with django_capture_on_commit_callbacks(execute=True):
        consent_services.newsletter_signup_start(
            email="reader@example.com",
            choices={p: p.key == "newsletter" for p in offered},
            notices=consent_services.current_notices(offered),
            language="en",
        )
        draft = PolicyVersion.objects.get(status=PolicyVersion.Status.DRAFT)
        policy_services.policy_version_publish(version=draft)

    for address in ("reader@example.com", customer.email):
        for url in urls_in(only_message_to(address)):
            assert url.startswith(SITE + "/"), (address, url)
    event = ConsentEvent.objects.get(subject_id=customer.subject_id)
    payload = receipts.receipt_payload(event)
    assert payload["policyUrl"].startswith(SITE + "/")
    assert payload["piiControllers"][0]["piiControllerUrl"] == SITE


def test_make_run_gives_its_port_to_site_url(tmp_path):
    # A stand-in for the virtualenv's python: it prints the SITE_URL it was given
    # and fails, so make stops at the first command of `run`.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "SITE_URL=$SITE_URL"\nexit 1\n')
    fake.chmod(0o755)
    stamp = tmp_path / "installed"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if k != "SITE_URL"}

    def site_url_of(*args: str, **extra: str) -> str:
        result = subprocess.run(
            ["make", "--no-print-directory", "run", f"BIN={tmp_path}", f"STAMP={stamp}", *args],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("SITE_URL=")]
        assert lines, result.stdout + result.stderr
        return lines[0].removeprefix("SITE_URL=")

    assert site_url_of("PORT=8101") == "http://127.0.0.1:8101"
    assert site_url_of("HOST=localhost", "PORT=8102") == "http://localhost:8102"
    assert site_url_of("PORT=8101", SITE_URL="https://privacy.example.com") == (
        "https://privacy.example.com"
    )
