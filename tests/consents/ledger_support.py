"""What an attacker with database access does to the ledger, for the tests that
replay it: drop the append-only triggers, recompute the chain."""

from __future__ import annotations

from django.db import connection

from consents import ledger
from consents.models import ConsentEvent, LedgerHead


def drop_append_only_triggers(name: str, table: str) -> None:
    """Drop `<name>_no_update` and `<name>_no_delete` (rolled back with the test)."""
    with connection.cursor() as cursor:
        for trigger in (f"{name}_no_update", f"{name}_no_delete"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER {trigger} ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER {trigger}")


def drop_event_triggers() -> None:
    drop_append_only_triggers("consents_ledger", "consents_consentevent")


def recompute_chain_from(seq: int) -> str:
    """What an attacker without the key can do: every hash from #seq on
    recomputed, the head moved to the new last hash (its signature stays)."""
    prev = ConsentEvent.objects.get(seq=seq - 1).hash if seq > 1 else ledger.GENESIS
    for event in ConsentEvent.objects.filter(seq__gte=seq).order_by("seq"):
        new_hash = ledger.event_hash_of(event, prev_hash=prev)
        ConsentEvent.objects.filter(pk=event.pk).update(prev_hash=prev, hash=new_hash)
        prev = new_hash
    LedgerHead.objects.update(hash=prev)
    return prev
