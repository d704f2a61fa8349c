"""The hash chain under the consent ledger.

Each event's hash covers its own fields, the hash of the notice text it points
at, and the previous event's hash. Appends are serialised by a row lock on the
single LedgerHead row, which also carries a signature of the last (seq, hash)
by the portal's signing key (consents.keys): an attacker who can write to the
database but does not hold the key cannot cut events off the end or recompute
the chain without verify_ledger noticing, and no append extends a head that
does not verify. Someone who also saved an earlier head row can write it back
after cutting events off: the signed checkpoints kept outside the database
(consents.checkpoints) are what names that, and verify() checks the chain
against every one it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q

from consents import checkpoints as checkpoints_module
from consents import keys
from consents.models import ConsentEvent, ConsentState, LedgerHead, PurposeNotice

GENESIS = "0" * 64
SEPARATOR = "\x1f"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    seq: int,
    uuid: object,
    subject_id: object,
    purpose_id: int,
    notice_hash: str,
    policy_version_id: int | None,
    decision: str,
    method: str,
    created_at: datetime,
    ip_truncated: str,
    user_agent_family: str,
    prev_hash: str,
    gpc_signal: bool = False,
) -> str:
    fields = [
        "v1",
        str(seq),
        str(uuid),
        str(subject_id),
        str(purpose_id),
        notice_hash,
        "" if policy_version_id is None else str(policy_version_id),
        decision,
        method,
        _timestamp(created_at),
        ip_truncated,
        user_agent_family,
        "gpc" if gpc_signal else "",
        prev_hash,
    ]
    return hashlib.sha256(SEPARATOR.join(fields).encode()).hexdigest()


def event_hash_of(event: ConsentEvent, *, prev_hash: str) -> str:
    """event_hash of an event as it stands, after `prev_hash`."""
    return event_hash(
        seq=event.seq,
        uuid=event.uuid,
        subject_id=event.subject_id,
        purpose_id=event.purpose_id,
        notice_hash=event.notice.content_hash,
        policy_version_id=event.policy_version_id,
        decision=event.decision,
        method=event.method,
        created_at=event.created_at,
        ip_truncated=event.ip_truncated,
        user_agent_family=event.user_agent_family,
        prev_hash=prev_hash,
        gpc_signal=event.gpc_signal,
    )


def notice_content_hash(content: dict) -> str:
    """SHA-256 of a notice's canonical JSON: what every event's hash covers."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class LedgerIntegrityError(Exception):
    """The chain head does not verify: nothing is appended to a ledger that may
    have been tampered with, so that an honest decision never re-signs a forgery."""


def _head_message(seq: int, hash_: str) -> bytes:
    return f"clareza-ledger-head:{seq}:{hash_}".encode()


def head_signature(seq: int, hash_: str) -> str:
    """The chain head signed with the portal's signing key (consents.keys), not
    with SECRET_KEY: rotating either keeps every earlier head verifiable."""
    return keys.sign(_head_message(seq, hash_))


def head_signature_valid(head: LedgerHead) -> bool:
    return keys.verify(_head_message(head.seq, head.hash), head.signature)


def lock_head() -> LedgerHead:
    """The chain head, locked until the surrounding transaction ends, after
    checking that it is the one the ledger signed and that the last event is
    the one it names (LedgerIntegrityError otherwise)."""
    assert transaction.get_connection().in_atomic_block, "append inside a transaction"
    head = LedgerHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        created = False
        try:
            with transaction.atomic():
                LedgerHead.objects.create(pk=1, signature=head_signature(0, GENESIS))
            created = True
        except IntegrityError:
            pass  # another transaction created it first
        head = LedgerHead.objects.select_for_update().get(pk=1)
        if created and ConsentEvent.objects.exists():
            raise LedgerIntegrityError("the chain head is missing but the ledger has events")
    check_head(head)
    return head


def check_head(head: LedgerHead) -> None:
    """One indexed read: the head's signature holds and the highest event is
    the one it names. Raises LedgerIntegrityError saying what is wrong."""
    if not head_signature_valid(head):
        raise LedgerIntegrityError("the chain head's signature is wrong: the head was rewritten")
    last = ConsentEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    if (last or (0, GENESIS)) != (head.seq, head.hash):
        raise LedgerIntegrityError(
            f"the chain head names #{head.seq} but the last event is #{last[0] if last else 0}"
        )


def append(head: LedgerHead, **fields: object) -> ConsentEvent:
    """Append one event after `head` (locked by lock_head) and move the head."""
    event = ConsentEvent(seq=head.seq + 1, prev_hash=head.hash, **fields)
    event.hash = event_hash_of(event, prev_hash=event.prev_hash)
    event.save(force_insert=True)
    head.seq, head.hash = event.seq, event.hash
    head.signature = head_signature(head.seq, head.hash)
    head.updated_at = event.created_at
    head.save(update_fields=["seq", "hash", "signature", "updated_at"])
    return event


def head_problem() -> str:
    """What is wrong with the chain head, or "" (for /health/: two indexed reads)."""
    head = LedgerHead.objects.filter(pk=1).first()
    if head is None:
        return "the chain head is missing" if ConsentEvent.objects.exists() else ""
    try:
        check_head(head)
    except LedgerIntegrityError as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class Verdict:
    intact: bool
    count: int
    problem: str = ""
    checkpoints: int = 0  # signed checkpoints the chain was checked against
    untrusted: tuple[str, ...] = ()  # checkpoints left out: why each is not trusted


CHAIN_FIELDS = (
    "seq",
    "uuid",
    "subject_id",
    "purpose_id",
    "notice_id",
    "policy_version_id",
    "decision",
    "method",
    "created_at",
    "ip_truncated",
    "user_agent_family",
    "gpc_signal",
    "prev_hash",
    "hash",
)


def _rows(chunk_size: int) -> Iterator[tuple]:
    """Every event in chain order, a chunk at a time: memory stays flat.

    Keyset pagination rather than a server-side cursor, so that it behaves the
    same on SQLite and PostgreSQL and never holds a long transaction open."""
    last = None
    while True:
        query = ConsentEvent.objects.order_by("seq")
        if last is not None:
            query = query.filter(seq__gt=last)
        chunk = list(query.values_list(*CHAIN_FIELDS)[:chunk_size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][0]


def verify(*, chunk_size: int = 5000, checkpoint_files: tuple = ()) -> Verdict:
    """Check the notices, the chain against its signed head and against every
    signed checkpoint (those stored in the database and those in
    `checkpoint_files`, exported or published), and the current state against
    the chain, all in one snapshot of the database, so that decisions made
    while it runs are never mistaken for tampering."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # A snapshot for the whole read (SQLite's read transaction is one already).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # The files are read before the first query takes the snapshot: every
        # checkpoint they hold was committed before it, so the snapshot holds
        # every event such a checkpoint covers (no false alarm while customers
        # decide and the beat task checkpoints).
        anchors, untrusted = checkpoints_module.checkpoints_gather(checkpoint_files)
        extra = {"checkpoints": len(anchors), "untrusted": tuple(untrusted)}
        notice_hashes, problem = _verified_notice_hashes()
        if problem:
            return Verdict(False, 0, problem, **extra)
        verdict = _verify_chain(notice_hashes, chunk_size, anchors)
        if not verdict.intact:
            return Verdict(False, verdict.count, verdict.problem, **extra)
        problem = _state_problem()
        if problem:
            return Verdict(False, verdict.count, problem, **extra)
        return Verdict(True, verdict.count, **extra)


def _verified_notice_hashes() -> tuple[dict[int, str], str]:
    """Every notice's hash, recomputed from the text it holds: an event points at
    a hash, so a notice whose text was rewritten would otherwise go unseen.
    A reverted text carries the version it returns to in its hash."""
    hashes: dict[int, str] = {}
    earlier: dict[int, list[int]] = {}
    rows = PurposeNotice.objects.order_by("purpose_id", "version").values_list(
        "pk", "purpose_id", "purpose__key", "version", "content", "content_hash"
    )
    for pk, purpose_id, key, version, content, stored in rows.iterator():
        versions = earlier.setdefault(purpose_id, [])
        candidates = [notice_content_hash(content)] + [
            notice_content_hash({"revert_of": v, **content}) for v in versions
        ]
        if not any(hmac.compare_digest(stored, c) for c in candidates):
            return {}, (
                f"the notice of purpose “{key}” version {version} was changed after it was "
                "frozen: its text no longer matches its hash"
            )
        hashes[pk] = stored
        versions.append(version)
    return hashes, ""


def _verify_chain(
    notice_hashes: dict[int, str],
    chunk_size: int,
    anchors: list[checkpoints_module.Checkpoint] = (),
) -> Verdict:
    """The chain, then the checkpoints (sorted by size, matched while the events
    stream past: memory stays flat), then the head."""
    expected_prev = GENESIS
    count = 0
    pending = iter(anchors)
    anchor = next(pending, None)
    matched = 0  # the size of the last checkpoint that matched
    mismatch = None  # the earliest checkpoint that does not match
    while anchor is not None and anchor.size == 0:
        if anchor.root != GENESIS and mismatch is None:
            mismatch = anchor
        anchor = next(pending, None)
    for row in _rows(chunk_size):
        (
            seq,
            uuid,
            subject,
            purpose,
            notice_id,
            policy,
            decision,
            method,
            created,
            ip,
            ua,
            gpc,
            prev,
            stored,
        ) = row
        notice_hash = notice_hashes.get(notice_id, "")
        count += 1
        where = f"event #{seq} ({uuid})"
        if seq != count:
            if seq > count:
                return Verdict(
                    False, count - 1, f"{where}: events before it are missing (expected #{count})"
                )
            return Verdict(False, count - 1, f"{where}: out of order")
        if prev != expected_prev:
            return Verdict(False, count - 1, f"{where}: does not follow the event before it")
        computed = event_hash(
            seq=seq,
            uuid=uuid,
            subject_id=subject,
            purpose_id=purpose,
            notice_hash=notice_hash,
            policy_version_id=policy,
            decision=decision,
            method=method,
            created_at=created,
            ip_truncated=ip,
            user_agent_family=ua,
            prev_hash=prev,
            gpc_signal=gpc,
        )
        if computed != stored:
            return Verdict(False, count - 1, f"{where}: its content was changed")
        expected_prev = stored
        while anchor is not None and anchor.size == seq:
            if mismatch is None:
                if hmac.compare_digest(anchor.root, stored):
                    matched = seq
                else:
                    mismatch = anchor
            anchor = next(pending, None)
    # The first checkpoint beyond the last event, if any (checkpoints are sorted).
    beyond = anchor
    head = LedgerHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    head_problem = ""
    if head and not head_signature_valid(head):
        head_problem = "the chain head's signature is wrong: the head was rewritten"
    elif head is None and count:
        head_problem = "the chain head is missing: it was deleted"
    elif (head_seq, head_hash) != (count, expected_prev):
        head_problem = (
            f"the chain ends at #{count} but its signed head says #{head_seq}: "
            "events were removed from the end or added around the lock"
        )
    if mismatch is not None:
        problem = (
            f"event #{mismatch.size}'s hash differs from the checkpoint of {mismatch.time}: "
            f"an event at or before #{mismatch.size} was changed"
        )
        if head_problem:
            # The chain was recomputed consistently: the checkpoints, not the
            # head, say where the change is.
            problem += f" (the earliest checkpoint that no longer matches); {head_problem}"
        return Verdict(False, matched, problem)
    if beyond is not None:
        if count == 0:
            problem = (
                f"the ledger has 0 events but the checkpoint of {beyond.time} covers "
                f"{beyond.size}: the ledger was wiped"
            )
        else:
            problem = (
                f"the ledger has {count} event{'s' if count != 1 else ''} but the checkpoint "
                f"of {beyond.time} covers "
                f"{beyond.size}: events were removed (a rollback or truncation)"
            )
        if head_problem:
            problem += f"; {head_problem}"
        return Verdict(False, count, problem)
    if head_problem:
        return Verdict(False, count, head_problem)
    return Verdict(True, count)


def _state_problem() -> str:
    """The current state, which every page and every "may we?" reads, must be
    exactly what the ledger says: for each person and purpose, the decision of
    their last event, and a state for every pair that has events."""
    last_event = ConsentEvent.objects.filter(
        subject_id=OuterRef("subject_id"), purpose_id=OuterRef("purpose_id")
    ).order_by("-seq")
    wrong = (
        ConsentState.objects.annotate(last=last_event.values("pk")[:1])
        .filter(Q(last__isnull=True) | ~Q(event_id=F("last")) | ~Q(decision=F("event__decision")))
        .values_list("subject_id", "purpose__key", "decision")
        .first()
    )
    if wrong:
        subject, key, decision = wrong
        return (
            f"the current state of “{key}” for subject {subject} says {decision}, "
            "which is not the last decision the ledger holds for them"
        )
    stateless = (
        ConsentEvent.objects.filter(
            ~Exists(
                ConsentState.objects.filter(
                    subject_id=OuterRef("subject_id"), purpose_id=OuterRef("purpose_id")
                )
            )
        )
        .values_list("seq", "subject_id", "purpose__key")
        .first()
    )
    if stateless:
        seq, subject, key = stateless
        return (
            f"subject {subject} has decisions about “{key}” in the ledger (#{seq}) "
            "but no current state: the state was deleted"
        )
    return ""
