"""The DPO's daily email of open requests overdue or due soon; none when
nothing is."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from rights import services
from rights.models import RightsRequest
from rights.tasks import requests_due_digest
from tests.rights.conftest import ask, emails

DIGEST = "emails/rights_requests_due"


def _due_in(request, delta):
    RightsRequest.objects.filter(pk=request.pk).update(
        received_at=timezone.now() + delta - timedelta(days=15), due_at=timezone.now() + delta
    )


def test_nothing_is_sent_when_nothing_is_due(customer, staff):
    _due_in(ask(customer), timedelta(days=10))
    late_but_done = ask(customer)
    _due_in(late_but_done, timedelta(days=-3))
    services.request_complete(request=late_but_done, acting_user=staff)
    assert requests_due_digest.delay().get() == 0
    assert emails(DIGEST) == []


def test_the_dpo_gets_the_overdue_and_due_soon_requests(customer, settings):
    settings.RIGHTS_DUE_SOON_DAYS = 3
    overdue, soon, later = ask(customer), ask(customer, kind="erasure"), ask(customer)
    _due_in(overdue, timedelta(days=-1))
    _due_in(soon, timedelta(days=2))
    _due_in(later, timedelta(days=9))
    assert requests_due_digest.delay().get() == 2
    [email] = emails(DIGEST)
    assert email.recipient == settings.DPO_EMAIL
    assert "1 overdue, 1 due soon" in email.title
    for body in (email.payload["body_text"], email.payload["body_html"]):
        assert f"/admin/rights/rightsrequest/{overdue.pk}/change/" in body
        assert f"/admin/rights/rightsrequest/{soon.pk}/change/" in body
        assert f"/admin/rights/rightsrequest/{later.pk}/change/" not in body
        assert "OVERDUE" in body
        assert customer.email not in body  # the list names no one


def test_the_digest_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["rights-requests-due"]
    assert entry["task"] == "rights.tasks.requests_due_digest"
    assert requests_due_digest.name == entry["task"]
