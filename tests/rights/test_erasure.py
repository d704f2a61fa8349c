"""Closing an account and erasing a person (GDPR Art. 17, LGPD Art. 16 and 18
VI): reauthentication, the page that says what goes and what stays, the grace
period with its cancel links, the beat task, newsletter-only subscribers'
signed links, deletion in the admin through the same service, and after all
of it: nothing left that links the subject id to the person, and a ledger
that verify_ledger still finds intact."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import models
from django.urls import reverse
from django.utils import timezone

from consents import emails as consent_emails
from consents import ledger
from consents.models import (
    ConsentEvent,
    ConsentState,
    Decision,
    Method,
    NewsletterSignup,
    PersonalDatum,
)
from consents.personal_data import personal_data_update
from consents.services import current_notices, newsletter_signup_confirm, newsletter_signup_start
from rights import emails as rights_emails
from rights import services
from rights.models import AuditAction, AuditEntry, Channel, Kind, RightsRequest, Status
from rights.retention import retention_enforce, stated_periods
from shop.demo import seed_catalogue
from shop.models import Interest
from tests.conftest import PASSWORD, add_second_factor, make_user
from tests.consents.ledger_support import verify_output
from tests.rights.conftest import ask, emails, grant

CLOSE = reverse("me_close")
REQUESTS = reverse("me_requests")
REAUTH = "/accounts/reauthenticate/"
TEMPLATE = "emails/rights_erasure_scheduled"
# What erasure keeps on purpose: the ledger (and the state derived from it,
# which verify_ledger checks against it), the requests as proof, and the
# staff audit trail (by subject id only: checked for the address below).
KEPT = {ConsentEvent, ConsentState, RightsRequest, AuditEntry}


def cancel_url(request: RightsRequest) -> str:
    return reverse(
        "rights:erasure_cancel", kwargs={"token": rights_emails.erasure_cancel_token(request)}
    )


def emailed_erasure(body: str) -> RightsRequest | None:
    """The erasure that the cancel link in an email body names."""
    found = re.search(r"/rights/erasure/cancel/([^/\s\"]+)/", body)
    return rights_emails.erasure_from_token(found.group(1)) if found else None


def user_cancel_url(request: RightsRequest) -> str:
    return reverse("me_request_cancel", args=[request.uuid])


def erase_link(subject_id) -> str:
    return reverse(
        "rights:newsletter_erase",
        kwargs={
            "token": consent_emails.subject_token(subject_id, salt=consent_emails.ERASURE_SALT)
        },
    )


@pytest.fixture
def joao(purposes):
    """João, in Portuguese, with grants, interests, an address, a second factor,
    an acknowledged policy and emails sent to him."""
    seed_catalogue()
    user = make_user("joao@example.com", language="pt-br")
    for key in ("recommendations", "newsletter"):
        grant(user, purposes[key])
    personal_data_update(user=user, field_key="interests", value=["books"])
    personal_data_update(user=user, field_key="postal_address", value="Rua das Flores, 12")
    user.totp_secret = add_second_factor(user)
    return user


def log_in_and_reauthenticate(client, user):
    client.force_login(user)
    asked = client.get(CLOSE)
    assert asked.status_code == 302
    assert asked["Location"].startswith(REAUTH)
    confirmed = client.post(asked["Location"], {"password": PASSWORD})
    assert confirmed.status_code == 302 and confirmed["Location"] == CLOSE


def leftovers(*, user_id: int, email: str, subject_ids: list[uuid.UUID]) -> list[str]:
    """Every row anywhere, outside what erasure keeps on purpose, that holds
    the person's account id (as a key to the user), address or subject id;
    and every login session that still names the account."""
    User = get_user_model()
    found = []
    needles = [email.lower(), *(str(s) for s in subject_ids), *(s.hex for s in subject_ids)]
    for model in apps.get_models(include_auto_created=True):
        if model in KEPT or model._meta.proxy:
            continue
        user_keys = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, models.ForeignKey) and f.related_model is User
        ]
        for row in model.objects.all().values():
            text = repr(row).lower()
            if any(needle in text for needle in needles) or any(
                row[key] == user_id for key in user_keys
            ):
                found.append(f"{model._meta.label}: {row}")
            if model is User and row["id"] == user_id:
                found.append(f"{model._meta.label}: the account")
    for row in AuditEntry.objects.values():
        if email.lower() in repr(row).lower():
            found.append(f"rights.AuditEntry naming the address: {row}")
    for session in Session.objects.all():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            found.append("a session of the account")
    return found


def assert_erased(user_id, email, subject_ids) -> None:
    assert leftovers(user_id=user_id, email=email, subject_ids=subject_ids) == []
    verdict = ledger.verify()
    assert verdict.intact, verdict.problem


# The whole flow: João closes, cancels, closes again, and is erased ------------------


def test_joao_closes_his_account_cancels_closes_again_and_is_erased_after_the_grace_period(
    client, joao, settings
):
    user_id, subject_id = joao.pk, joao.subject_id
    events_before = ConsentEvent.objects.filter(subject_id=subject_id).count()
    log_in_and_reauthenticate(client, joao)

    page = client.get(CLOSE).content.decode()
    for what in ("Seus interesses", "Seus dados pessoais", "Sua conta"):
        assert what in page, what
    assert "Art. 17(3)(e)" in page and "LGPD Art. 16" in page
    assert "7 dias" in page  # the grace period
    first = client.post(CLOSE)
    assert first.status_code == 302
    closure = RightsRequest.objects.get(kind=Kind.ERASURE, subject_id=subject_id)
    joao.refresh_from_db()
    assert joao.closed_at == closure.received_at
    assert closure.erase_after == closure.received_at + timedelta(days=7)
    assert closure.status == Status.RECEIVED and closure.channel == Channel.PORTAL

    [email] = emails(TEMPLATE)
    assert email.recipient == "joao@example.com" and email.subject_id == subject_id
    assert "Sua conta foi encerrada" in email.title
    for body in (email.payload["body_text"], email.payload["body_html"]):
        assert emailed_erasure(body) == closure
        assert "LGPD Art. 16" in body

    # Cancelled from Your requests: the account is open again, nothing erased.
    assert client.post(user_cancel_url(closure)).status_code == 302
    closure.refresh_from_db()
    joao.refresh_from_db()
    assert closure.status == Status.CANCELLED and joao.closed_at is None
    assert services.erasures_due(now=timezone.now() + timedelta(days=30)) == 0
    assert Interest.objects.filter(subject_id=subject_id).exists()

    # And closed again.
    assert client.post(CLOSE).status_code == 302
    again = RightsRequest.objects.get(kind=Kind.ERASURE, subject_id=subject_id, status="received")
    assert again.pk != closure.pk
    assert "Cancelar o encerramento" in client.get(REQUESTS).content.decode()

    # Nothing happens before the grace period ends; then the task erases him.
    assert services.erasures_due(now=again.erase_after - timedelta(minutes=1)) == 0
    assert get_user_model().objects.filter(pk=user_id).exists()
    assert services.erasures_due(now=again.erase_after + timedelta(minutes=1)) == 1

    again.refresh_from_db()
    assert again.status == Status.DONE and again.erased_at is not None
    assert (again.email, again.user_id, again.details) == ("", None, "")
    assert again.subject_id == subject_id  # the proof names the opaque id only
    # The ledger was never edited: every event stays, and each grant was withdrawn.
    events = ConsentEvent.objects.filter(subject_id=subject_id)
    assert events.count() == events_before + 2
    assert set(events.filter(decision=Decision.WITHDRAWN).values_list("method", flat=True)) == {
        Method.PANEL
    }
    assert not ConsentState.objects.filter(subject_id=subject_id, decision="granted").exists()
    assert_erased(user_id, "joao@example.com", [subject_id])
    # His session ended with the account.
    assert client.get(reverse("me")).status_code == 302


def test_the_closure_page_needs_a_fresh_password_and_a_login(client, customer):
    response = client.get(CLOSE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(customer)
    assert client.post(CLOSE)["Location"].startswith(REAUTH)
    assert not RightsRequest.objects.exists()


def test_the_closure_page_refuses_other_methods(client, customer):
    log_in_and_reauthenticate(client, customer)
    assert client.put(CLOSE).status_code == 405
    assert client.head(CLOSE).status_code == 200


def test_closing_twice_changes_nothing_the_second_time(client, customer):
    log_in_and_reauthenticate(client, customer)
    client.post(CLOSE)
    again = client.post(CLOSE)
    assert again.status_code == 409
    assert RightsRequest.objects.filter(kind=Kind.ERASURE).count() == 1
    with pytest.raises(services.RightsError, match="already due"):
        services.account_close(user=customer)


def test_the_panel_shows_the_closure_link_and_no_longer_asks_erasure_in_the_form(client, customer):
    client.force_login(customer)
    security = client.get(reverse("me_security")).content.decode()
    requests_page = client.get(REQUESTS).content.decode()
    assert CLOSE in security and CLOSE in requests_page
    assert 'value="erasure"' not in requests_page
    refused = client.post(REQUESTS, {"kind": "erasure", "jurisdiction": "lgpd"})
    assert refused.status_code == 400
    assert not RightsRequest.objects.exists()


# Ownership and the grace period ------------------------------------------------------


def test_another_customer_cannot_cancel_someones_closure(client, customer, other_customer):
    closure = services.account_close(user=customer)
    client.force_login(other_customer)
    assert client.post(user_cancel_url(closure)).status_code == 404
    with pytest.raises(services.RightsError, match="not yours"):
        services.erasure_cancel(request=closure, user=other_customer)
    closure.refresh_from_db()
    customer.refresh_from_db()
    assert closure.status == Status.RECEIVED and customer.closed_at is not None


def test_cancelling_is_refused_once_the_grace_period_is_over(customer):
    closure = services.account_close(user=customer)
    with pytest.raises(services.RightsError, match="time to cancel has passed"):
        services.erasure_cancel(request=closure, now=closure.erase_after)
    closure.refresh_from_db()
    assert closure.status == Status.RECEIVED


def test_the_task_never_erases_before_the_grace_period_ends(customer):
    closure = services.account_close(user=customer)
    with pytest.raises(services.RightsError, match="grace period has not ended"):
        services.erasure_carry_out(request=closure, now=closure.erase_after - timedelta(seconds=1))
    assert get_user_model().objects.filter(pk=customer.pk).exists()


def test_the_grace_period_is_a_setting(customer, settings):
    settings.RIGHTS_ERASURE_GRACE_DAYS = 30
    closure = services.account_close(user=customer)
    assert closure.erase_after - closure.received_at == timedelta(days=30)
    # Longer than the LGPD's 15 days: the deadline follows the erasure.
    assert closure.due_at > closure.erase_after


def test_the_emailed_cancel_link_shows_a_button_and_only_post_cancels(client, customer):
    closure = services.account_close(user=customer)
    page = client.get(cancel_url(closure))
    assert page.status_code == 200 and "<form" in page.content.decode()
    closure.refresh_from_db()
    assert closure.status == Status.RECEIVED
    done = client.post(cancel_url(closure))
    assert done.status_code == 200
    closure.refresh_from_db()
    customer.refresh_from_db()
    assert closure.status == Status.CANCELLED and customer.closed_at is None
    # The same link afterwards says so, and changes nothing.
    assert "already cancelled" in client.get(cancel_url(closure)).content.decode()


def _old_token(monkeypatch, dump) -> str:
    """A token signed as if long ago."""
    real = time.time
    monkeypatch.setattr(signing.time, "time", lambda: real() - 90 * 24 * 3600)
    try:
        return dump()
    finally:
        monkeypatch.setattr(signing.time, "time", real)


@pytest.mark.parametrize("how", ["tampered", "expired"])
def test_a_bad_cancel_link_says_so_and_changes_nothing(client, customer, monkeypatch, how):
    closure = services.account_close(user=customer)
    if how == "tampered":
        token = rights_emails.erasure_cancel_token(closure)[:-3] + "abc"
    else:
        token = _old_token(monkeypatch, lambda: rights_emails.erasure_cancel_token(closure))
    url = reverse("rights:erasure_cancel", kwargs={"token": token})
    response = client.post(url)
    assert response.status_code == 400
    assert "Nothing was changed" in response.content.decode()
    closure.refresh_from_db()
    assert closure.status == Status.RECEIVED


# Newsletter-only subscribers ---------------------------------------------------------


@pytest.fixture
def reader(purposes):
    newsletter = purposes["newsletter"]
    signup = newsletter_signup_start(
        email="Reader@example.com",
        choices={newsletter: True},
        notices=current_notices([newsletter]),
        language="pt-br",
    )
    newsletter_signup_confirm(signup=signup)
    signup.refresh_from_db()
    return signup


def erased_subject(text: str):
    """The subject that the erasure link in a page or an email names (a
    token's signature carries the second it was made: compare what it names)."""
    found = re.search(r"/rights/erase/([^/\s\"]+)/", text)
    assert found, "no erasure link"
    return consent_emails.subject_from_token(found.group(1), salt=consent_emails.ERASURE_SALT)


def test_the_newsletter_emails_and_pages_carry_the_erasure_link(client, reader):
    [confirmed] = emails("emails/newsletter_confirmed")
    for body in (confirmed.payload["body_text"], confirmed.payload["body_html"]):
        assert erased_subject(body) == reader.subject_id
    receipts = consent_emails.newsletter_links(reader.subject_id)["receipts_path"]
    assert erased_subject(client.get(receipts).content.decode()) == reader.subject_id


def test_a_subscriber_erases_their_subscription_from_the_emailed_link(client, reader):
    subject_id = reader.subject_id
    link = erase_link(subject_id)
    page = client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Your newsletter subscription" in html and "<form" in html
    assert not RightsRequest.objects.exists()  # GET changes nothing

    asked = client.post(link)
    assert asked.status_code == 200
    erasure = RightsRequest.objects.get(subject_id=subject_id)
    assert (erasure.kind, erasure.user, erasure.email) == (Kind.ERASURE, None, "reader@example.com")
    [email] = emails(TEMPLATE)
    assert email.recipient == "reader@example.com"
    assert emailed_erasure(email.payload["body_text"]) == erasure
    assert emailed_erasure(email.payload["body_html"]) == erasure
    # Asking again answers the same request.
    client.post(link)
    assert RightsRequest.objects.count() == 1

    assert services.erasures_due(now=erasure.erase_after + timedelta(seconds=1)) == 1
    assert not NewsletterSignup.objects.exists()
    withdrawal = ConsentEvent.objects.filter(subject_id=subject_id).latest("id")
    assert (withdrawal.decision, withdrawal.method) == (Decision.WITHDRAWN, Method.EMAIL_LINK)
    assert_erased(0, "reader@example.com", [subject_id])
    # The old link now names nobody.
    assert client.get(link).status_code == 400


def test_a_subscriber_can_cancel_from_the_emailed_link(client, reader):
    client.post(erase_link(reader.subject_id))
    erasure = RightsRequest.objects.get()
    client.post(cancel_url(erasure))
    assert services.erasures_due(now=timezone.now() + timedelta(days=30)) == 0
    assert NewsletterSignup.objects.filter(pk=reader.pk).exists()


@pytest.mark.parametrize("how", ["tampered", "expired", "other salt"])
def test_a_bad_newsletter_erasure_link_says_so_and_changes_nothing(
    client, reader, monkeypatch, how
):
    subject_id = reader.subject_id
    if how == "tampered":
        token = consent_emails.subject_token(subject_id, salt=consent_emails.ERASURE_SALT) + "x"
    elif how == "expired":
        token = _old_token(
            monkeypatch,
            lambda: consent_emails.subject_token(subject_id, salt=consent_emails.ERASURE_SALT),
        )
    else:  # a receipts link's token does not erase
        token = consent_emails.subject_token(subject_id, salt=consent_emails.RECEIPTS_SALT)
    url = reverse("rights:newsletter_erase", kwargs={"token": token})
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 400
        assert "Nothing was changed" in response.content.decode()
    assert not RightsRequest.objects.exists()
    assert NewsletterSignup.objects.filter(pk=reader.pk).exists()


# Deleting in the admin ---------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _with_a_session(user) -> None:
    """A login through allauth's form, which lists the session."""
    from django.test import Client

    from tests.portal.test_mfa import MFA_URL, totp_code

    other = Client()
    answer = other.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    if answer["Location"] == MFA_URL:
        answer = other.post(MFA_URL, {"code": totp_code(user.totp_secret)})
    assert answer.status_code == 302 and "/accounts/" not in answer["Location"]


def test_deleting_a_user_in_the_admin_lists_what_goes_and_erases_through_the_service(
    admin_client, joao, staff
):
    user_id, subject_id = joao.pk, joao.subject_id
    _with_a_session(joao)
    assert Session.objects.count() == 2
    url = reverse("admin:portal_user_delete", args=[joao.pk])
    page = admin_client.get(url).content.decode()
    assert "Your interests: 1" in page and "Your login sessions: 1" in page
    assert "consent ledger" in page

    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    proof = RightsRequest.objects.get(subject_id=subject_id)
    assert (proof.kind, proof.status, proof.channel) == (Kind.ERASURE, Status.DONE, Channel.ADMIN)
    assert proof.closed_by == staff and proof.erased_at is not None
    withdrawn = ConsentEvent.objects.filter(subject_id=subject_id, decision=Decision.WITHDRAWN)
    assert set(withdrawn.values_list("method", flat=True)) == {Method.STAFF}
    assert not Authenticator.objects.filter(user_id=user_id).exists()
    assert_erased(user_id, "joao@example.com", [subject_id])
    # The staff erasure is in the audit trail, by subject id and staff member only.
    erased = AuditEntry.objects.get(action=AuditAction.ERASURE_CARRY_OUT)
    assert (erased.subject_id, erased.actor_email) == (subject_id, staff.email)
    assert Session.objects.count() == 1  # the staff member's own


def test_the_admin_bulk_delete_erases_each_selected_user(admin_client, customer, other_customer):
    people = [(u.pk, u.email, u.subject_id) for u in (customer, other_customer)]
    changelist = reverse("admin:portal_user_changelist")
    data = {"action": "delete_selected", "_selected_action": [customer.pk, other_customer.pk]}
    page = admin_client.post(changelist, data).content.decode()
    assert "Your email addresses: 1" in page
    admin_client.post(changelist, {**data, "post": "yes"})
    assert RightsRequest.objects.filter(channel=Channel.ADMIN, status=Status.DONE).count() == 2
    for user_id, email, subject_id in people:
        assert_erased(user_id, email, [subject_id])


def test_staff_cannot_erase_themselves_in_the_admin(admin_client, staff):
    url = reverse("admin:portal_user_delete", args=[staff.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    with pytest.raises(services.RightsError, match="your own account"):
        services.user_erase(user=staff, acting_user=staff)
    assert get_user_model().objects.filter(pk=staff.pk).exists()


def test_only_staff_erase_at_once(customer, other_customer):
    with pytest.raises(services.RightsError, match="Only staff"):
        services.user_erase(user=customer, acting_user=other_customer)
    assert get_user_model().objects.filter(pk=customer.pk).exists()


def test_an_admin_delete_during_a_grace_period_carries_out_that_erasure(customer, staff):
    closure = services.account_close(user=customer)
    done = services.user_erase(user=customer, acting_user=staff)
    assert done.pk == closure.pk and done.status == Status.DONE
    assert RightsRequest.objects.count() == 1


# What stays, what goes, and afterwards -----------------------------------------------


def test_the_persons_other_requests_are_emptied_and_closed(customer, purposes):
    access = ask(customer, details="My order 123 at Rua X")
    closure = services.account_close(user=customer)
    services.erasure_carry_out(request=closure, now=closure.erase_after)
    access.refresh_from_db()
    assert access.status == Status.CANCELLED and access.details == "" and access.user is None


def test_a_newsletter_subscription_under_the_accounts_address_goes_too(customer, purposes):
    newsletter = purposes["newsletter"]
    signup = newsletter_signup_start(
        email=customer.email,
        choices={newsletter: True},
        notices=current_notices([newsletter]),
        language="en",
    )
    newsletter_signup_confirm(signup=signup)
    services.user_erase(user=customer, acting_user=make_user("boss@example.com", staff=True))
    assert not ConsentState.objects.filter(subject_id=signup.subject_id, decision="granted")
    assert_erased(customer.pk, customer.email, [customer.subject_id, signup.subject_id])


def test_an_erased_address_can_sign_up_again_as_a_new_person(client, customer, purposes):
    from tests.consents.test_signup_consents import notice_hashes, signup_page

    old_subject = customer.subject_id
    services.user_erase(user=customer, acting_user=make_user("boss@example.com", staff=True))
    data = {
        "email": "customer@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "purposes": ["newsletter"],
        **notice_hashes(signup_page(client)),
    }
    assert client.post(reverse("account_signup"), data).status_code == 302
    again = get_user_model().objects.get(email="customer@example.com")
    assert again.subject_id != old_subject
    assert EmailAddress.objects.filter(user=again).count() == 1
    assert not services.pending_erasure(subject_id=again.subject_id)


def test_erasure_withdraws_in_the_ledger_and_verify_ledger_says_intact(customer, purposes):
    grant(customer, purposes["tailored-offers"])
    ledger.seal()
    closure = services.account_close(user=customer)
    services.erasure_carry_out(request=closure, now=closure.erase_after)
    ledger.seal()
    verdict = ledger.verify()
    assert verdict.intact and verdict.problem == ""
    assert ConsentEvent.objects.filter(subject_id=customer.subject_id).count() == 2
    # The command operators run says so too.
    ok, said = verify_output()
    assert ok and "intact" in said


def test_another_apps_holder_joins_every_erasure(customer, purposes):
    from rights import erasure

    erased = []

    def rows(person):
        return PersonalDatum.objects.filter(subject_id__in=person.subject_ids, field="note")

    def erase(person, queryset):
        erased.append(person.subject_id)
        return queryset.delete()[0]

    PersonalDatum.objects.create(subject_id=customer.subject_id, field="note", value="x")
    erasure.register(erasure.Holder("test-notes", "Notes", rows, erase))
    try:
        person = erasure.person_for(subject_id=customer.subject_id)
        assert ("Notes", 1) in erasure.plan(person)
        closure = services.account_close(user=customer)
        services.erasure_carry_out(request=closure, now=closure.erase_after)
    finally:
        erasure._holders.pop("test-notes")
    assert erased == [customer.subject_id]


def test_erase_due_lists_without_changing_then_erases(customer):
    from io import StringIO

    from django.core.management import call_command

    closure = services.account_close(user=customer, now=timezone.now() - timedelta(days=8))
    out = StringIO()
    call_command("erase_due", "--dry-run", stdout=out)
    assert str(closure.uuid) in out.getvalue() and customer.email not in out.getvalue()
    assert get_user_model().objects.filter(pk=customer.pk).exists()
    call_command("erase_due", stdout=StringIO())
    assert not get_user_model().objects.filter(pk=customer.pk).exists()


def test_the_beat_schedule_runs_the_erasure_task(settings):
    from rights.tasks import erasures_due

    entry = settings.CELERY_BEAT_SCHEDULE["rights-erasures-due"]
    assert entry["task"] == erasures_due.name == "rights.tasks.erasures_due"


# Retention ---------------------------------------------------------------------------


def test_contract_data_is_kept_for_its_period_after_the_closure_date(customer, purposes):
    days = purposes["account-orders"].retention_days
    personal_data_update(user=customer, field_key="postal_address", value="Rua A, 1")
    User = get_user_model()
    now = timezone.now()
    # Closed recently, last active long ago: the clock starts at the closure.
    User.objects.filter(pk=customer.pk).update(
        closed_at=now - timedelta(days=days - 1),
        last_login=now - timedelta(days=days * 3),
        date_joined=now - timedelta(days=days * 3),
    )
    retention_enforce(now=now)
    assert PersonalDatum.objects.filter(subject_id=customer.subject_id).exists()
    User.objects.filter(pk=customer.pk).update(closed_at=now - timedelta(days=days + 1))
    retention_enforce(now=now)
    assert not PersonalDatum.objects.filter(subject_id=customer.subject_id).exists()


def test_finished_requests_are_deleted_after_their_proof_period(customer, settings):
    settings.RIGHTS_REQUESTS_KEPT_DAYS = 100
    old, recent, still_open = ask(customer), ask(customer), ask(customer)
    for request in (old, recent):
        services.request_cancel(request=request, user=customer)
    now = timezone.now()
    RightsRequest.objects.filter(pk=old.pk).update(closed_at=now - timedelta(days=101))
    report = retention_enforce(now=now)
    assert report.counts["rights-requests-finished"] == 1
    assert set(RightsRequest.objects.values_list("pk", flat=True)) == {recent.pk, still_open.pk}
    assert any("100 days" in line for line in stated_periods())


def test_the_privacy_page_states_how_long_requests_are_kept(client, purposes, settings):
    settings.RIGHTS_REQUESTS_KEPT_DAYS = 1825
    html = client.get(reverse("consents:privacy")).content.decode()
    assert re.search(r"rights requests[^<]*kept 1825 days", html)


def test_one_failing_erasure_does_not_hold_up_the_others(customer, other_customer, caplog):
    from rights import erasure

    first = services.account_close(user=customer)
    second = services.account_close(user=other_customer)

    def rows(person):
        if person.subject_id == customer.subject_id:
            raise RuntimeError("a holder's bug")
        return PersonalDatum.objects.none()

    erasure.register(erasure.Holder("test-broken", "Broken", rows))
    try:
        assert services.erasures_due(now=second.erase_after) == 1
    finally:
        erasure._holders.pop("test-broken")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.RECEIVED and second.status == Status.DONE
    assert get_user_model().objects.filter(pk=customer.pk).exists()  # rolled back whole
    assert str(first.pk) in caplog.text


def test_refused_and_extended_requests_keep_a_marker_for_their_required_reasons(customer, staff):
    from rights.erasure import ERASED_TEXT

    refused = ask(customer, details="Call me at 555")
    services.request_refuse(request=refused, reason="Dear Customer, no.", acting_user=staff)
    extended = ask(customer, jurisdiction="gdpr")
    services.request_extend(request=extended, reason="Customer's case is long", acting_user=staff)
    services.user_erase(user=customer, acting_user=staff)
    refused.refresh_from_db()
    extended.refresh_from_db()
    assert (refused.refusal_reason, refused.details) == (ERASED_TEXT, "")
    assert extended.extension_reason == ERASED_TEXT
    assert extended.status == Status.CANCELLED


def test_a_refused_closure_opens_the_account_again(customer, staff):
    closure = services.account_close(user=customer)
    services.request_refuse(request=closure, reason="A court order", acting_user=staff)
    customer.refresh_from_db()
    assert customer.closed_at is None
    assert services.erasures_due(now=closure.erase_after) == 0


def test_the_one_click_stop_page_offers_a_subscriber_the_erasure_too(client, reader):
    stop = consent_emails.newsletter_links(reader.subject_id)["stop_path"]
    html = client.post(stop).content.decode()
    assert erased_subject(html) == reader.subject_id
