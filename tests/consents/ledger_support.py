"""What an attacker with database access does to the ledger, for the tests that
replay it (issue 9): drop the append-only triggers, rewrite rows, recompute an
event's hash. None of it can sign: the portal's key is not in the database."""

from __future__ import annotations

from io import StringIO

from django.core.management import CommandError, call_command
from django.db import connection

from consents import ledger, merkle
from consents.models import (
    ConsentEvent,
    ConsentState,
    Decision,
    LedgerLeaf,
    LedgerNode,
    LedgerSeal,
    Method,
)
from consents.services import consent_record

# (trigger name prefix, table) of every append-only table the ledger relies on.
EVENTS = ("consents_ledger", "consents_consentevent")
LEAVES = ("consents_leaf", "consents_ledgerleaf")
NODES = ("consents_node", "consents_ledgernode")
SEALS = ("consents_seal", "consents_ledgerseal")
NOTICES = ("consents_notice", "consents_purposenotice")
CHECKPOINTS = ("consents_checkpoint", "consents_ledgercheckpoint")
POLICY_VERSIONS = ("policies_version", "policies_policyversion")
EVERY_TABLE = (EVENTS, LEAVES, NODES, SEALS, NOTICES, CHECKPOINTS, POLICY_VERSIONS)


def drop_append_only_triggers(name: str, table: str) -> None:
    """Drop `<name>_no_update` and `<name>_no_delete` (rolled back with the
    test). Raises if a trigger is missing: a test must know it is there."""
    with connection.cursor() as cursor:
        for trigger in (f"{name}_no_update", f"{name}_no_delete"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER {trigger} ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER {trigger}")


def drop_event_triggers() -> None:
    drop_append_only_triggers(*EVENTS)


def drop_tree_triggers() -> None:
    """The leaves, the nodes and the seals."""
    for name, table in (LEAVES, NODES, SEALS):
        drop_append_only_triggers(name, table)


def drop_every_trigger() -> None:
    for name, table in EVERY_TABLE:
        drop_append_only_triggers(name, table)


def execute(sql: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def rehash(event: ConsentEvent) -> str:
    """What an attacker without the key can do after changing an event: give it
    the hash of what it now says (notice and policy hashes included)."""
    event = ConsentEvent.objects.select_related("notice").get(pk=event.pk)
    new_hash = ledger.event_hash_of(event)
    ConsentEvent.objects.filter(pk=event.pk).update(hash=new_hash)
    return new_hash


def place_of(event: ConsentEvent) -> int | None:
    return LedgerLeaf.objects.filter(event_id=event.pk).values_list("seq", flat=True).first()


def roll_back_to(size: int) -> None:
    """A rollback: every event after leaf #size deleted with its leaf, its
    state, every node and seal beyond it (the seals up to `size` are genuine
    and stay). The database is then consistent with itself."""
    cut = LedgerLeaf.objects.filter(seq__gt=size).values_list("event_id", flat=True)
    later = list(cut)
    unsealed_after = (
        LedgerLeaf.objects.filter(seq=size).values_list("event_id", flat=True).first() or 0
    )
    later += list(
        ConsentEvent.objects.filter(id__gt=unsealed_after, leaf__isnull=True).values_list(
            "id", flat=True
        )
    )
    ConsentState.objects.filter(event_id__in=later).delete()
    LedgerLeaf.objects.filter(seq__gt=size).delete()
    beyond = [
        pk
        for pk, level, index in LedgerNode.objects.values_list("pk", "level", "index")
        if (index + 1) << level > size
    ]
    LedgerNode.objects.filter(pk__in=beyond).delete()
    LedgerSeal.objects.filter(size__gt=size).delete()
    ConsentEvent.objects.filter(id__in=later).delete()


def wipe() -> None:
    """Every event, state, leaf, node and seal deleted."""
    ConsentState.objects.all().delete()
    LedgerLeaf.objects.all().delete()
    LedgerNode.objects.all().delete()
    LedgerSeal.objects.all().delete()
    ConsentEvent.objects.all().delete()


def record(purposes, subject, key, decision=Decision.GRANTED, method=Method.PANEL):
    return consent_record(
        subject_id=subject, purpose=purposes[key], decision=decision, method=method
    )


def verify_output(*paths) -> tuple[bool, str]:
    """What `verify_ledger` says (stderr first), and whether it exits 0."""
    out, err = StringIO(), StringIO()
    arguments = [item for path in paths for item in ("--checkpoints", str(path))]
    try:
        call_command("verify_ledger", *arguments, stdout=out, stderr=err)
    except CommandError as exc:
        return False, f"{err.getvalue()}{exc}"
    return True, err.getvalue() + out.getvalue()


def tree_root(event_hashes: list[str]) -> str:
    """The RFC 9162 root of events' hashes, computed here from scratch."""
    frontier = merkle.Frontier()
    for digest in event_hashes:
        frontier.append(merkle.leaf_hash(bytes.fromhex(digest)))
    return frontier.root().hex()
