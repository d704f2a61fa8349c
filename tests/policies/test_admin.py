"""The staff side: a draft's preview-and-publish, the read-only published
version, and the delivery section with its progress and retry."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from policies.models import PolicyVersion
from policies.notices import NOTICE
from portal.models import OutboxItem
from tests.conftest import make_user
from tests.policies.conftest import (
    REFUSED,
    REFUSING_BACKEND,
    customers,
    seeded_draft,
    statuses,
    v1,
)

POLLING = 'hx-trigger="every 2s"'


def change_url(version: PolicyVersion) -> str:
    return reverse("admin:policies_policyversion_change", args=[version.pk])


def publish_url(version: PolicyVersion) -> str:
    return reverse("admin:policies_version_publish", args=[version.pk])


def delivery_url(version: PolicyVersion) -> str:
    return reverse("admin:policies_version_delivery", args=[version.pk])


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def draft_v2(privacy):
    customers(2)
    return seeded_draft(privacy)


def test_the_draft_change_page_offers_preview_and_publish(admin_client, draft_v2):
    html = admin_client.get(change_url(draft_v2)).content.decode()
    assert "Preview and publish" in html
    assert f'href="{publish_url(draft_v2)}"' in html
    assert 'name="summary"' in html


def test_a_published_version_is_read_only_in_the_admin(admin_client, privacy):
    published = v1(privacy)
    html = admin_client.get(change_url(published)).content.decode()
    assert "Our first privacy policy." in html
    for field in ("summary", "body", "body_pt", "effective_date", "material"):
        assert f'name="{field}"' not in html
    assert "Preview and publish" not in html
    assert 'name="_save"' not in html
    response = admin_client.post(
        change_url(published),
        {"summary": "Rewritten", "body": "Rewritten", "material": "on", "_save": "Save"},
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(published)
    assert (
        "A published version cannot be changed"
        in admin_client.get(change_url(published)).content.decode()
    )
    published.refresh_from_db()
    assert (published.summary, published.material) == ("Our first privacy policy.", False)
    assert published.body.startswith("## Who we are")


def test_the_publish_page_previews_the_email_the_headers_the_differences_and_the_count(
    admin_client, draft_v2
):
    make_user("unverified@example.com", verified=False)
    response = admin_client.get(publish_url(draft_v2))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Important: our Privacy policy is changing" in html
    assert draft_v2.summary in html
    assert "/policies/notice/" in html
    assert "List-Unsubscribe" in html
    assert "List-Unsubscribe=One-Click" in html
    assert "/policies/unsubscribe/" in html
    assert '<ins><span class="visually-hidden">[added: </span>' in html
    assert "2 people will be told by email." in html
    assert 'value="Publish and notify"' in html
    draft_v2.refresh_from_db()
    assert (draft_v2.status, draft_v2.number) == (PolicyVersion.Status.DRAFT, None)
    assert not OutboxItem.objects.filter(kind=NOTICE).exists()


def test_publishing_from_the_admin_sends_and_shows_the_delivery(
    admin_client, staff, draft_v2, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(publish_url(draft_v2))
    assert response.status_code == 302
    assert response["Location"] == change_url(draft_v2)
    draft_v2.refresh_from_db()
    assert (draft_v2.status, draft_v2.number, draft_v2.published_by) == (
        PolicyVersion.Status.PUBLISHED,
        2,
        staff,
    )
    assert len(mail.outbox) == 2
    html = admin_client.get(response["Location"]).content.decode()
    assert "Published Privacy policy, version 2. 2 people are being told by email." in html
    assert '<progress max="2" value="2"' in html
    assert "2 of 2 sent · 0 waiting · 0 failed" in html
    assert POLLING not in html


def test_the_delivery_section_polls_while_emails_wait_and_stops_when_done(
    admin_client, draft_v2, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        admin_client.post(publish_url(draft_v2))
    waiting = admin_client.get(delivery_url(draft_v2))
    assert waiting.status_code == 200
    html = waiting.content.decode()
    assert '<section class="delivery"' in html
    assert POLLING in html
    assert f'hx-get="{delivery_url(draft_v2)}"' in html
    assert '<progress max="2" value="0"' in html
    assert "0 of 2 sent · 2 waiting · 0 failed" in html
    for callback in queued:
        callback()
    done = admin_client.get(delivery_url(draft_v2)).content.decode()
    assert POLLING not in done
    assert "2 of 2 sent · 0 waiting · 0 failed" in done
    assert "finished" in done


def test_failed_emails_are_listed_with_their_errors_and_can_be_retried(
    admin_client, draft_v2, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = REFUSING_BACKEND
    settings.OUTBOX_MAX_ATTEMPTS = 1
    make_user(REFUSED)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(publish_url(draft_v2))
    html = admin_client.get(delivery_url(draft_v2)).content.decode()
    assert "2 of 3 sent · 0 waiting · 1 failed" in html
    assert f"<td>{REFUSED}</td>" in html
    assert "SMTPRecipientsRefused" in html
    retry = reverse("admin:policies_version_retry", args=[draft_v2.pk])
    assert f'action="{retry}"' in html
    assert POLLING not in html

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):  # the senders start on commit
        response = admin_client.post(retry)
    assert response.status_code == 302
    assert response["Location"] == change_url(draft_v2)
    assert statuses(draft_v2)[REFUSED] == OutboxItem.Status.SENT
    done = admin_client.get(delivery_url(draft_v2)).content.decode()
    assert "3 of 3 sent · 0 waiting · 0 failed" in done
    assert REFUSED not in done


def test_retry_needs_a_post(admin_client, draft_v2):
    retry = reverse("admin:policies_version_retry", args=[draft_v2.pk])
    assert admin_client.get(retry).status_code == 405


def test_a_customer_cannot_reach_the_staff_pages(
    client, customer, draft_v2, django_capture_on_commit_callbacks
):
    client.force_login(customer)
    retry = reverse("admin:policies_version_retry", args=[draft_v2.pk])
    for url in (change_url(draft_v2), publish_url(draft_v2), delivery_url(draft_v2)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    with django_capture_on_commit_callbacks(execute=True):
        for url in (publish_url(draft_v2), retry):
            response = client.post(url)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("admin:login"))
    draft_v2.refresh_from_db()
    assert draft_v2.status == PolicyVersion.Status.DRAFT
    assert not OutboxItem.objects.filter(kind=NOTICE).exists()
    assert mail.outbox == []


def test_a_version_nobody_was_told_about_does_not_poll(admin_client, privacy):
    html = admin_client.get(change_url(v1(privacy))).content.decode()
    assert '<section class="delivery"' in html
    assert "Nobody to tell" in html
    assert POLLING not in html
