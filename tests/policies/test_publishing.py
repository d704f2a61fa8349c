"""Publishing versions, who is told, and draining their notices from the outbox."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from policies import services
from policies.demo import seed_policies
from policies.models import Policy, PolicyVersion
from policies.notices import NOTICE, notices_of, topic
from portal import outbox
from portal.models import OutboxItem
from tests.conftest import make_user
from tests.policies.conftest import (
    REFUSED,
    REFUSING_BACKEND,
    customers,
    draft,
    expire_leases,
    grant,
    notice,
    publish,
    seeded_draft,
    send_batch,
    statuses,
    subscriber,
    v1,
)

# Numbers and immutability


def test_versions_are_numbered_one_two_three_as_they_are_published(
    privacy, django_capture_on_commit_callbacks
):
    first = v1(privacy)
    assert (first.number, first.status) == (1, PolicyVersion.Status.PUBLISHED)
    pending = seeded_draft(privacy)
    assert pending.number is None
    assert publish(pending, django_capture_on_commit_callbacks).version.number == 2
    assert publish(draft(privacy), django_capture_on_commit_callbacks).version.number == 3
    assert list(privacy.versions.values_list("number", flat=True)) == [3, 2, 1]


def test_a_published_version_cannot_be_edited_through_the_services(privacy):
    published = v1(privacy)
    with pytest.raises(services.PolicyError, match="cannot be changed"):
        services.policy_version_update(version=published, summary="Rewritten")
    published.summary = "Rewritten"
    with pytest.raises(services.PolicyError, match="cannot be changed"):
        services.policy_version_draft_save(version=published)
    published.refresh_from_db()
    assert published.summary == "Our first privacy policy."
    assert published.status == PolicyVersion.Status.PUBLISHED
    edited = services.policy_version_update(version=seeded_draft(privacy), summary="Edited")
    assert PolicyVersion.objects.get(pk=edited.pk).summary == "Edited"


def test_a_material_change_sooner_than_the_notice_period_is_refused_naming_the_earliest_date(
    privacy, customer, django_capture_on_commit_callbacks
):
    earliest = timezone.localdate() + timedelta(days=settings.POLICY_MATERIAL_NOTICE_DAYS)
    early = draft(privacy, material=True, effective_date=earliest - timedelta(days=1))
    with pytest.raises(services.PolicyError) as refused:
        publish(early, django_capture_on_commit_callbacks)
    assert earliest.isoformat() in str(refused.value)
    early.refresh_from_db()
    assert (early.status, early.number) == (PolicyVersion.Status.DRAFT, None)
    assert not OutboxItem.objects.filter(kind=NOTICE).exists()
    assert mail.outbox == []


@pytest.mark.parametrize("days", [0, 7])
def test_the_material_notice_period_follows_the_setting(
    privacy, days, django_capture_on_commit_callbacks
):
    with override_settings(POLICY_MATERIAL_NOTICE_DAYS=days):
        earliest = timezone.localdate() + timedelta(days=days)
        too_early = draft(privacy, material=True, effective_date=earliest - timedelta(days=1))
        with pytest.raises(services.PolicyError, match=earliest.isoformat()):
            services.policy_version_publish(version=too_early)
        on_time = draft(privacy, material=True, effective_date=earliest)
        assert publish(on_time, django_capture_on_commit_callbacks).version.number == 2


def test_the_first_version_of_a_policy_emails_nobody(
    purposes, customer, django_capture_on_commit_callbacks
):
    grant(customer, "newsletter")
    terms = Policy.objects.create(slug="terms", title="Terms of sale")
    result = publish(draft(terms, material=True), django_capture_on_commit_callbacks)
    assert (result.version.number, result.notifications) == (1, 0)
    assert not OutboxItem.objects.filter(kind=NOTICE).exists()
    assert mail.outbox == []


# Who is told


def test_a_material_change_tells_each_customer_and_subscriber_once_in_their_language(
    privacy, django_capture_on_commit_callbacks
):
    make_user("ana@example.com", language="pt-br")
    make_user("bob@example.com")
    make_user("unverified@example.com", verified=False)
    make_user("boss@example.com", staff=True)
    gone = make_user("gone@example.com")
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    subscriber("leitora@example.com", language="pt-br")
    subscriber("quiet@example.com", newsletter=False)
    result = publish(seeded_draft(privacy), django_capture_on_commit_callbacks)
    rows = notices_of(result.version)
    assert sorted((row.recipient, row.payload["language"]) for row in rows) == [
        ("ana@example.com", "pt-br"),
        ("bob@example.com", "en"),
        ("leitora@example.com", "pt-br"),
        ("quiet@example.com", "en"),
    ]
    assert result.notifications == 4
    assert sorted(m.to[0] for m in mail.outbox) == sorted(rows.values_list("recipient", flat=True))
    assert set(statuses(result.version).values()) == {OutboxItem.Status.SENT}


def test_the_queries_to_write_notifications_do_not_grow_with_recipients(
    privacy, django_assert_max_num_queries
):
    customers(5)

    def publish_counting(version) -> int:
        with CaptureQueriesContext(connection) as queries:
            result = services.policy_version_publish(version=version)
        return result.notifications, len(queries)

    seeded = seeded_draft(privacy)
    few, few_queries = publish_counting(seeded)
    customers(55, prefix="more")
    # The same purposes change: their re-consent requests cost the same both times.
    changed = tuple(seeded.changed_purposes.all())
    following = draft(privacy, material=True, body="A third text.", changed=changed)
    with django_assert_max_num_queries(few_queries):
        many, many_queries = publish_counting(following)
    assert (few, many) == (5, 60)
    assert many_queries == few_queries


def test_creating_the_notifications_again_adds_nobody(
    privacy, customer, django_capture_on_commit_callbacks
):
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    assert services.notifications_create(version=version) == 0
    assert notices_of(version).count() == 1


def test_a_minor_change_goes_only_to_those_accepting_optional_email_a_material_one_to_all(
    privacy, django_capture_on_commit_callbacks
):
    grant(make_user("news@example.com"), "newsletter")
    grant(make_user("offers@example.com"), "tailored-offers")
    grant(make_user("recs@example.com"), "recommendations")
    make_user("nothing@example.com")
    subscriber("reader@example.com")
    subscriber("silent@example.com", newsletter=False)
    minor = publish(draft(privacy), django_capture_on_commit_callbacks).version
    assert sorted(statuses(minor)) == [
        "news@example.com",
        "offers@example.com",
        "reader@example.com",
    ]
    major = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    assert sorted(statuses(major)) == [
        "news@example.com",
        "nothing@example.com",
        "offers@example.com",
        "reader@example.com",
        "recs@example.com",
        "silent@example.com",
    ]


def test_the_database_keeps_one_notification_per_version_and_address(
    privacy, customer, django_capture_on_commit_callbacks
):
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    row = notices_of(version).get()
    with pytest.raises(IntegrityError), transaction.atomic():
        # A fresh uuid: only the (kind, dedupe key) constraint stands in the way.
        OutboxItem.objects.create(
            kind=NOTICE, topic=row.topic, dedupe_key=row.dedupe_key, recipient=row.recipient
        )
    assert notices_of(version).count() == 1


# Sending


def test_a_batch_claims_at_most_the_batch_size(
    privacy, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_BATCH = 2
    customers(5)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        version = services.policy_version_publish(version=seeded_draft(privacy)).version
    assert len(queued) == 1
    assert send_batch(version) == 2
    assert send_batch(version, limit=1) == 1
    rows = notices_of(version)
    assert rows.filter(status=OutboxItem.Status.SENT).count() == 3
    assert rows.filter(status=OutboxItem.Status.PENDING, attempts=0).count() == 2
    assert len(mail.outbox) == 3


@pytest.mark.django_db(transaction=True)
def test_a_row_another_transaction_holds_is_skipped_not_waited_for():
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL; SQLite locks the whole database")
    seed_policies()  # nobody to tell yet, so publishing sends nothing
    version = services.policy_version_publish(
        version=PolicyVersion.objects.get(status=PolicyVersion.Status.DRAFT)
    ).version
    customers(3)
    # Written as publishing does, with their senders not started: the test is the sender.
    with transaction.atomic():
        assert services.notifications_create(version=version) == 3
        connection.run_on_commit.clear()
    assert set(statuses(version).values()) == {OutboxItem.Status.PENDING}
    held = notices_of(version).order_by("id").first()
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                OutboxItem.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert locked.wait(10)
        assert send_batch(version) == 2
    finally:
        release.set()
        worker.join(10)
    held.refresh_from_db()
    assert (held.status, held.attempts) == (OutboxItem.Status.PENDING, 0)
    assert held.recipient not in [m.to[0] for m in mail.outbox]
    assert len(mail.outbox) == 2


def test_a_refused_recipient_stays_pending_with_its_error_and_the_others_are_sent(
    privacy, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = REFUSING_BACKEND
    customers(2)
    make_user(REFUSED)
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    refused = notice(version, REFUSED)
    assert refused.status == OutboxItem.Status.PENDING
    assert refused.attempts == 1
    assert "SMTPRecipientsRefused" in refused.last_error
    assert REFUSED in refused.last_error
    assert refused.next_attempt_at > timezone.now()  # backing off
    assert refused.leased_until is None
    assert statuses(version) == {
        "person0@example.com": OutboxItem.Status.SENT,
        "person1@example.com": OutboxItem.Status.SENT,
        REFUSED: OutboxItem.Status.PENDING,
    }
    assert sorted(m.to[0] for m in mail.outbox) == ["person0@example.com", "person1@example.com"]


def test_after_the_last_attempt_a_refused_row_fails_and_keeps_its_error(
    privacy, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = REFUSING_BACKEND
    settings.OUTBOX_MAX_ATTEMPTS = 3
    make_user(REFUSED)
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    for attempt in (2, 3):
        assert notices_of(version).get().status == OutboxItem.Status.PENDING
        expire_leases(version)
        assert send_batch(version) == 0
        assert notices_of(version).get().attempts == attempt
    row = notices_of(version).get()
    assert row.status == OutboxItem.Status.FAILED
    assert (row.leased_until, row.next_attempt_at) == (None, None)
    assert "SMTPRecipientsRefused" in row.last_error
    assert not outbox.outbox_pending(kind=NOTICE, topic=topic(version.pk))


def test_retrying_failed_rows_puts_them_back_and_they_are_sent(
    privacy, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = REFUSING_BACKEND
    settings.OUTBOX_MAX_ATTEMPTS = 1
    make_user(REFUSED)
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    assert statuses(version) == {REFUSED: OutboxItem.Status.FAILED}
    assert services.notifications_retry_failed(version=version) == 1
    row = notices_of(version).get()
    assert (row.status, row.attempts, row.leased_until, row.next_attempt_at) == (
        OutboxItem.Status.PENDING,
        0,
        None,
        None,
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert send_batch(version) == 1
    assert statuses(version) == {REFUSED: OutboxItem.Status.SENT}
    assert [m.to for m in mail.outbox] == [[REFUSED]]


def test_the_sweep_sends_rows_left_pending_past_the_grace_period_and_leaves_fresh_ones(
    privacy, django_capture_on_commit_callbacks
):
    customers(2)
    with django_capture_on_commit_callbacks(execute=False):  # the task is lost
        version = services.policy_version_publish(version=seeded_draft(privacy)).version
    assert outbox.outbox_sweep() == {}
    assert set(statuses(version).values()) == {OutboxItem.Status.PENDING}
    assert mail.outbox == []
    notices_of(version).update(
        created_at=timezone.now() - settings.OUTBOX_GRACE - timedelta(seconds=1)
    )
    assert outbox.outbox_sweep() == {(NOTICE, topic(version.pk)): 2}
    assert set(statuses(version).values()) == {OutboxItem.Status.SENT}
    assert len(mail.outbox) == 2


def test_the_sweep_sends_rows_whose_lease_expired_and_leaves_live_leases(
    privacy, django_capture_on_commit_callbacks
):
    customers(2)
    with django_capture_on_commit_callbacks(execute=False):
        version = services.policy_version_publish(version=seeded_draft(privacy)).version
    # Then the worker dies.
    claimed = outbox.outbox_claim(kind=NOTICE, topic=topic(version.pk), limit=10)
    assert len(claimed) == 2
    assert outbox.outbox_sweep() == {}
    assert set(statuses(version).values()) == {OutboxItem.Status.SENDING}
    expire_leases(version)
    assert outbox.outbox_sweep() == {(NOTICE, topic(version.pk)): 2}
    assert set(statuses(version).values()) == {OutboxItem.Status.SENT}
    assert set(notices_of(version).values_list("attempts", flat=True)) == {2}
    assert len(mail.outbox) == 2


# The command


def test_the_command_publishes_and_queues_notifications(
    privacy, customer, tmp_path, django_capture_on_commit_callbacks
):
    body = tmp_path / "privacy.md"
    body.write_text("## Who we are\n\nA new text.", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "publish_policy", "privacy", "--body", str(body), "--summary", "A new text.",
            "--material", "--changed-purpose", "recommendations",
        )  # fmt: skip
    version = PolicyVersion.objects.get(policy=privacy, number=2)
    assert (version.body, version.summary, version.material) == (
        "## Who we are\n\nA new text.",
        "A new text.",
        True,
    )
    assert version.effective_date == services.earliest_effective_date(material=True)
    assert list(version.changed_purposes.values_list("key", flat=True)) == ["recommendations"]
    assert version.body_pt == v1(privacy).body_pt
    assert statuses(version) == {customer.email: OutboxItem.Status.SENT}
    assert [m.to for m in mail.outbox] == [[customer.email]]


def test_the_command_takes_the_portuguese_text_and_keeps_the_english_one(
    privacy, tmp_path, django_capture_on_commit_callbacks
):
    body = tmp_path / "privacidade.md"
    body.write_text("## Quem somos\n\nUm texto novo.", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "publish_policy", "privacy", "--body", str(body), "--summary", "Um texto novo.",
            "--language", "pt-br",
        )  # fmt: skip
    version = PolicyVersion.objects.get(policy=privacy, number=2)
    assert (version.body_pt, version.summary_pt) == (
        "## Quem somos\n\nUm texto novo.",
        "Um texto novo.",
    )
    assert version.body == v1(privacy).body
    # What changed is never the old version's summary, in any language.
    assert version.summary == "Um texto novo."
    assert version.material is False


@pytest.mark.parametrize(
    ("slug", "extra", "message"),
    [
        ("nope", [], "No policy 'nope'. Known: privacy."),
        ("privacy", ["--body", "missing.md"], "no such file"),
        ("privacy", ["--effective-date", "31/12/2030"], "--effective-date must be YYYY-MM-DD"),
        ("privacy", ["--changed-purpose", "telepathy"], "Unknown purpose(s): telepathy."),
        ("privacy", ["--material", "--effective-date", "TODAY"], "or later"),
    ],
)
def test_the_command_refuses_bad_input_clearly_and_publishes_nothing(
    privacy, customer, tmp_path, slug, extra, message, django_capture_on_commit_callbacks
):
    body = tmp_path / "privacy.md"
    body.write_text("A text.", encoding="utf-8")
    extra = [timezone.localdate().isoformat() if arg == "TODAY" else arg for arg in extra]
    if "--body" in extra:
        extra[extra.index("--body") + 1] = str(tmp_path / "missing.md")
    else:
        extra = ["--body", str(body), *extra]
    before = set(PolicyVersion.objects.values_list("pk", flat=True))
    with pytest.raises(CommandError) as refused, django_capture_on_commit_callbacks(execute=True):
        call_command("publish_policy", slug, "--summary", "A change.", *extra)
    assert message in str(refused.value)
    if "or later" in message:
        earliest = services.earliest_effective_date(material=True)
        assert earliest.isoformat() in str(refused.value)
    assert set(PolicyVersion.objects.values_list("pk", flat=True)) == before
    assert not OutboxItem.objects.filter(kind=NOTICE).exists()
    assert mail.outbox == []
