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


def refuse_audit_rows(action: str = "") -> None:
    """From here to the end of the test the database refuses every new audit
    row (or only those of `action`): a trigger made inside the test's
    transaction, gone with it. Whatever must commit with its audit row must
    then not happen at all."""
    from django.db import connection

    when = f"NEW.action = '{action}'" if action else "1 = 1"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_audit_refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit row refused'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_audit_refuse BEFORE INSERT ON rights_auditentry "
                f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION test_audit_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_audit_refuse BEFORE INSERT ON rights_auditentry WHEN {when} "
                "BEGIN SELECT RAISE(ABORT, 'audit row refused'); END"
            )


@pytest.fixture
def audit_refused(db):
    refuse_audit_rows()


def audit_rows(**filters):
    from rights.models import AuditEntry

    return list(AuditEntry.objects.filter(**filters).order_by("pk"))
