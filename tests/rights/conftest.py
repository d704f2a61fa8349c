from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record
from portal.mail import EMAIL
from portal.models import OutboxItem
from rights import services
from rights.models import Channel, IdentityCheck, Kind


def local(*args) -> datetime:
    """A moment in the portal's time zone."""
    return datetime(*args, tzinfo=ZoneInfo(settings.TIME_ZONE))


@pytest.fixture
def purposes(db):
    return {p.key: p for p in seed_inventory()}


def grant(person, purpose):
    return consent_record(
        subject_id=person.subject_id,
        purpose=purpose,
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )


def ask(person, kind=Kind.ACCESS, **extra):
    """A request the person makes from the panel."""
    return services.request_create(user=person, kind=kind, **extra)


def enter(staff, email, kind=Kind.ACCESS, **extra):
    """A request staff enter for a phone call, identity checked by phone."""
    extra.setdefault("channel", Channel.PHONE)
    extra.setdefault("identity_check", IdentityCheck.PHONE)
    return services.request_create(acting_user=staff, email=email, kind=kind, **extra)


def emails(template: str = "") -> list[OutboxItem]:
    rows = OutboxItem.objects.filter(kind=EMAIL).order_by("pk")
    if template:
        rows = rows.filter(topic=template)
    return list(rows)
