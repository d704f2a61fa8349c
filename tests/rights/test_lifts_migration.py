"""rights 0012 writes a lift for every objection and restriction already
lifted, in the order they were closed, so that a changes cursor given before
lifts were followed catches them up (PostgreSQL and SQLite alike)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from rights.models import LimitLifted
from tests.migration_support import migrate, migrate_to_the_end

BEFORE = [("rights", "0011_audit_webhook_views")]
AFTER = [("rights", "0012_limits_lifted")]


@pytest.mark.django_db(transaction=True)
def test_the_lifts_before_the_migration_are_written_in_the_order_they_were_closed(
    flushed_after,
):
    executor = migrate(BEFORE)
    Request = executor.loader.project_state(BEFORE).apps.get_model("rights", "RightsRequest")
    now = timezone.now()

    def request(kind, status, closed_minutes_ago=None):
        closed = now - timedelta(minutes=closed_minutes_ago) if closed_minutes_ago else None
        return Request.objects.create(
            subject_id=uuid.uuid4(),
            kind=kind,
            status=status,
            jurisdiction="lgpd",
            received_at=now - timedelta(days=1),
            due_at=now + timedelta(days=14),
            closed_at=closed,
            refusal_reason="Not founded." if status == "refused" else "",
        )

    answered = request("restriction", "done", closed_minutes_ago=5)
    refused = request("objection", "refused", closed_minutes_ago=30)
    withdrawn = request("restriction", "cancelled", closed_minutes_ago=10)
    request("objection", "done", closed_minutes_ago=20)  # upheld: still in effect
    request("restriction", "received")  # open: in effect
    request("access", "done", closed_minutes_ago=1)  # not a limit at all

    migrate(AFTER)
    lifts = list(LimitLifted.objects.order_by("pk").values_list("request_id", "lifted_at"))
    assert [pk for pk, _at in lifts] == [refused.pk, withdrawn.pk, answered.pk]
    assert [at for _pk, at in lifts] == sorted(at for _pk, at in lifts)
    migrate_to_the_end()
