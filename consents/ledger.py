"""The consent ledger: events, the Merkle tree that seals them, and its proof.

A decision is one INSERT of an event that carries its own content hash
(format clareza-event-v2: every field, the hash of the notice text shown and
the hash of the policy version in force). Decisions of different people never
wait for each other: each takes a shared advisory lock on the ledger and an
exclusive one on its person (PostgreSQL; SQLite has one writer anyway). On
PostgreSQL the whole decision is one call of consents_decide() (decide(),
migration 0010); consents.services runs the same rules in Python elsewhere.

The sealer (consents.tasks.ledger_seal, every LEDGER_SEAL_SECONDS) takes the
ledger lock exclusively for an instant, so that every event below the highest
id it then sees is committed, and folds the new events, in id order, into an
RFC 9162 Merkle tree: LedgerLeaf gives each event its place, LedgerNode keeps
the complete subtrees of 2**NODE_LEVEL leaves and up (an inclusion proof reads
a few of them and one block of leaves, whatever the ledger's size), and
LedgerSeal is the signed tree head. The sealer checks the last seal before it
extends it: it never signs a tree that does not verify.

Events from before the tree (format 1, a hash chain) keep their chain hash,
which covers their place and the hash before them; they are the tree's first
leaves, in chain order.

verify() recomputes everything from the rows: the notices' and the policies'
texts, each event's hash, the tree against every signed seal and every
checkpoint it is given (consents.checkpoints: kept outside the database, where
someone who can rewrite the database cannot reach them), and the current state
against the last decisions.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import threading
import time
import uuid as uuid_module
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from django.conf import settings
from django.db import DataError, connection, transaction
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consents import checkpoints as checkpoints_module
from consents import merkle
from consents.models import (
    ConsentEvent,
    ConsentState,
    LedgerLeaf,
    LedgerNode,
    LedgerSeal,
    Purpose,
    PurposeNotice,
)

GENESIS = "0" * 64  # format 1: the hash before the first event
SEPARATOR = "\x1f"
EVENT_FORMAT = "clareza-event-v2"
NODE_LEVEL = 8  # LedgerNode keeps complete subtrees of 256 leaves and up
BLOCK = 1 << NODE_LEVEL
SEAL_BATCH = 100_000  # events folded in per transaction

# PostgreSQL advisory lock keys: the ledger (bigint space), and people (two-int space).
LEDGER_LOCK = 0x436C_6172_657A_61  # "Clareza"
SUBJECT_LOCK_CLASS = 0x436C
SEAL_LOCK = LEDGER_LOCK + 1


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    uuid: object,
    subject_id: object,
    purpose_id: int,
    notice_hash: str,
    policy_version_id: int | None,
    policy_hash: str,
    decision: str,
    method: str,
    created_at: datetime,
    ip_truncated: str,
    user_agent_family: str,
    gpc_signal: bool = False,
) -> str:
    """The content hash of an event (format clareza-event-v2), the leaf of the
    Merkle tree. verify_ledger on PostgreSQL computes the same in SQL
    (_SQL_EVENT_HASH); a test keeps the two equal."""
    fields = [
        EVENT_FORMAT,
        str(uuid),
        str(subject_id),
        str(purpose_id),
        notice_hash,
        "" if policy_version_id is None else str(policy_version_id),
        policy_hash,
        decision,
        method,
        _timestamp(created_at),
        ip_truncated,
        user_agent_family,
        "gpc" if gpc_signal else "",
    ]
    return hashlib.sha256(SEPARATOR.join(fields).encode()).hexdigest()


def chain_hash_v1(
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
    """The hash of an event of format 1 (the hash chain before the tree)."""
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


def event_hash_of(event: ConsentEvent, *, policy_hash: str | None = None) -> str:
    """The hash of an event as it stands: format 1 for an event of the chain,
    format 2 otherwise (with the policy version's hash, looked up if not given)."""
    if event.prev_hash:
        return chain_hash_v1(
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
            prev_hash=event.prev_hash,
            gpc_signal=event.gpc_signal,
        )
    if policy_hash is None:
        versions = [event.policy_version_id] if event.policy_version_id is not None else []
        policy_hash = policy_hashes(versions).get(event.policy_version_id, "")
    return event_hash(
        uuid=event.uuid,
        subject_id=event.subject_id,
        purpose_id=event.purpose_id,
        notice_hash=event.notice.content_hash,
        policy_version_id=event.policy_version_id,
        policy_hash=policy_hash,
        decision=event.decision,
        method=event.method,
        created_at=event.created_at,
        ip_truncated=event.ip_truncated,
        user_agent_family=event.user_agent_family,
        gpc_signal=event.gpc_signal,
    )


def notice_content_hash(content: dict) -> str:
    """SHA-256 of a notice's canonical JSON: what every event's hash covers."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# The policies app tells the ledger the hash of each published policy version's
# text, recomputed from the text (consents does not import policies).
_policy_hashes_provider = None


def set_policy_hashes_provider(provider) -> None:
    """`provider(ids=None)` returns ({version id: hash recomputed from its
    text}, problem), for every published version or for `ids`."""
    global _policy_hashes_provider
    _policy_hashes_provider = provider


def _policy_hashes_checked(ids=None) -> tuple[dict[int, str], str]:
    if _policy_hashes_provider is None:
        return {}, ""
    return _policy_hashes_provider(ids)


def policy_hashes(ids=None) -> dict[int, str]:
    """{published policy version id: the hash of its text, recomputed}, for
    every version or for `ids`."""
    return _policy_hashes_checked(ids)[0]


def notice_intact(notice: PurposeNotice) -> bool:
    """The notice holds the text its hash was taken from. Remembered on the
    instance (its content is what a receipt then states), never across
    instances: a notice read again from the database is checked again."""
    if notice.__dict__.get("_intact_hash") == notice.content_hash:
        return True
    candidates = [notice_content_hash(notice.content)] + [
        notice_content_hash({"revert_of": v, **notice.content}) for v in range(1, notice.version)
    ]
    if not any(hmac.compare_digest(notice.content_hash, c) for c in candidates):
        return False
    notice._intact_hash = notice.content_hash
    return True


# (policy version id, hash) pairs whose published text was recomputed to that
# hash in this process. A published version's text is frozen (a trigger), and
# a receipt states only the version's number, never its text, so a pair once
# checked need not be read again for each receipt; verify() recomputes every
# text, every time.
_policies_checked: set[tuple[int, str]] = set()


def _event_policy_hash(event: ConsentEvent) -> str:
    """The hash of the event's policy version, recomputed from its text ("" if
    it no longer matches). An event just recorded in this process carries the
    hash it was made with (`_ledger_policy_hash`): once that pair is checked,
    it is not read again."""
    version = event.policy_version_id
    if version is None:
        return ""
    used = event.__dict__.get("_ledger_policy_hash")
    if used is not None and (version, used) in _policies_checked:
        return used
    computed = policy_hashes([version]).get(version, "")
    if used is not None and computed and hmac.compare_digest(computed, used):
        if len(_policies_checked) >= 1000:
            _policies_checked.clear()
        _policies_checked.add((version, used))
    return computed


def event_intact(event: ConsentEvent, *, notice_ok: bool | None = None) -> bool:
    """The event's notice still holds the text its hash was taken from, and
    the event's own hash still covers what the row says (before a receipt is
    signed for it: the portal never signs a forged text). `notice_ok`: the
    notice's check, when the caller has already made it for this notice."""
    if not (notice_intact(event.notice) if notice_ok is None else notice_ok):
        return False
    if event.prev_hash:
        return hmac.compare_digest(event_hash_of(event), event.hash)
    return hmac.compare_digest(
        event_hash_of(event, policy_hash=_event_policy_hash(event)), event.hash
    )


class LedgerIntegrityError(Exception):
    """The last seal does not verify: nothing is sealed on top of a ledger that
    may have been tampered with, so that the sealer never signs a forgery."""


# Appending


def decision_lock(subject_id: object) -> None:
    """Before a person's decision: the ledger lock shared (many decisions at
    once; the sealer waits for them) and the person's own lock, so that two
    decisions of one person are ordered and the state read after it is
    current. Held until the transaction ends. Nothing to take on SQLite, where
    one writer at a time is the rule."""
    assert transaction.get_connection().in_atomic_block, "decide inside a transaction"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock(%s, hashtext(%s))",
                [LEDGER_LOCK, SUBJECT_LOCK_CLASS, str(subject_id)],
            )


def ledger_lock() -> None:
    """The ledger lock, exclusive, until the transaction ends: no decision is
    being recorded while it is held (retiring a purpose, freezing a notice)."""
    assert transaction.get_connection().in_atomic_block, "lock inside a transaction"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK])


@dataclass(frozen=True)
class DecisionContext:
    notice_id: int | None  # the purpose's current (highest) notice
    retired: bool
    decision: str | None  # the person's current decision, if any


_DECISION_READ = """
SELECT
    (SELECT n.id FROM consents_purposenotice n WHERE n.purpose_id = p.id
     ORDER BY n.version DESC LIMIT 1),
    p.retired_at IS NOT NULL,
    s.decision
FROM consents_purpose p
LEFT JOIN consents_consentstate s ON s.purpose_id = p.id AND s.subject_id = %s
WHERE p.id = %s
"""


def decision_context(*, subject_id: object, purpose_id: int) -> DecisionContext:
    """What a decision needs to know, in one statement (after decision_lock):
    a decision's cost is its statements, so they are few and plain."""
    with connection.cursor() as cursor:
        cursor.execute(_DECISION_READ, [_prep(ConsentState, "subject_id", subject_id), purpose_id])
        row = cursor.fetchone()
    if row is None:
        return DecisionContext(None, True, None)
    return DecisionContext(row[0], bool(row[1]), row[2])


def event_uuid() -> uuid_module.UUID:
    """A new event's uuid, time-ordered (UUIDv7, RFC 9562: 48 bits of Unix
    milliseconds, then 74 random bits), so that its unique index grows at its
    right edge, as the primary key does, instead of rewriting a random page of
    a large index with every decision. It states nothing the event does not
    (its time is in it anyway)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122 variant
    return uuid_module.UUID(int=value)


def decides_in_database() -> bool:
    """Whether a decision is one call of consents_decide() (migration 0010),
    the decision rules run by the database: on PostgreSQL. Elsewhere
    consents.services runs the same rules in Python, statement by statement."""
    return connection.vendor == "postgresql"


@dataclass(frozen=True)
class Decided:
    """What consents_decide() did: `status` is recorded, repeated (nothing to
    record), retired, no_notice or notice_changed (refused, nothing written)."""

    status: str
    event_id: int | None
    decision: str | None
    notice_id: int | None
    policy_version_id: int | None
    policy_hash: str | None
    created_at: datetime | None
    hash: str | None


_DECIDE = (
    "SELECT status, event_id, decision, notice_id, policy_version_id, policy_hash, "
    "created_at, hash FROM consents_decide("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def decide(
    *,
    subject_id: object,
    purpose_id: int,
    decision: str,
    method: str,
    notice_id: int | None,
    policy_version_id: int | None,
    policy_hash: str | None,
    day,
    allow_retired: bool,
    reconfirm: bool,
    uuid: object,
    ip_truncated: str,
    user_agent_family: str,
    gpc_signal: bool,
    created_at: datetime | None = None,
) -> Decided:
    """One decision in one statement (PostgreSQL): the locks of decision_lock,
    the read of decision_context, the rules, the event with its hash (as
    event_hash computes it) and the state. In autocommit it is its own
    transaction; in a transaction, part of it. `created_at` None: the
    database's clock once the person's lock is held."""
    with _prepared_cursor() as cursor:
        cursor.execute(
            _DECIDE,
            [
                _uuid(ConsentState, "subject_id", subject_id),
                purpose_id,
                decision,
                method,
                notice_id,
                policy_version_id,
                policy_hash,
                day,
                allow_retired,
                reconfirm,
                _uuid(ConsentEvent, "uuid", uuid),
                created_at,
                ip_truncated,
                user_agent_family,
                gpc_signal,
            ],
        )
        return Decided(*cursor.fetchone())


class _Prepared(ServerBindingCursor):
    """Binds its parameters on the server and prepares its statement there,
    when the connection allows it (DATABASES' OPTIONS prepare_threshold is not
    None): psycopg then sends the call's name and its values, and PostgreSQL
    keeps its plan, instead of parsing and planning the text of every call (a
    tenth of the database's work per decision, bench/README.md)."""

    def execute(self, query, params=None, *, prepare=True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


def _prepared_cursor():
    """A cursor of _Prepared, wrapped as connection.cursor() wraps its own
    (errors as Django's, the statement in connection.queries while they are
    logged)."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = _Prepared(connection.connection)
    connection.validate_thread_sharing()
    if connection.queries_logged:
        return _PreparedDebugWrapper(cursor, connection)
    return connection.make_cursor(cursor)


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Django's debug cursor, logging the statement as it was written (with
    its %s and its parameters): a cursor that binds on the server has no
    client-side text of the call to show."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


# An event this process recorded less than this long ago is taken to be not yet
# sealed without asking the database (its receipt, signed as it is recorded).
JUST_RECORDED_SECONDS = 1.0
_sealed_here_at = 0.0  # when this process last ran the sealer (time.monotonic())


def mark_recorded(event: ConsentEvent) -> None:
    """The event was recorded by this call, now: it has no place in the tree."""
    event._ledger_recorded_at = time.monotonic()


def recorded_just_now(event: ConsentEvent) -> bool:
    """Whether the event was recorded in this process within
    JUST_RECORDED_SECONDS, and this process has not run the sealer since: the
    sealer takes only committed events and runs LEDGER_SEAL_SECONDS apart, so
    its place is (almost always) not given yet, and a receipt made now need
    not look for one."""
    at = event.__dict__.get("_ledger_recorded_at")
    return at is not None and at > _sealed_here_at and time.monotonic() - at < JUST_RECORDED_SECONDS


_notices: dict[int, PurposeNotice] = {}


def notice_by_id(pk: int) -> PurposeNotice:
    """A notice, kept in this process once read: notices are never changed
    (a trigger refuses it), so a copy never goes stale."""
    notice = _notices.get(pk)
    if notice is None:
        notice = PurposeNotice.objects.get(pk=pk)
        if len(_notices) >= 1000:
            _notices.clear()
        _notices[pk] = notice
    return notice


def _prep(model, name: str, value: object) -> object:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _uuid(model, name: str, value: object) -> object:
    """A UUID as PostgreSQL takes it (natively: as it is); anything else
    through the field, as _prep does. A decision's cost is mostly Python's."""
    if isinstance(value, uuid_module.UUID) and connection.features.has_native_uuid_field:
        return value
    return _prep(model, name, value)


_EVENT_COLUMNS_INSERTED = (
    "uuid",
    "subject_id",
    "purpose",
    "notice",
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


_EVENT_ATTNAMES = [f.attname for f in ConsentEvent._meta.concrete_fields]


def event_as_read(*, purpose: Purpose, notice: PurposeNotice, **values: object) -> ConsentEvent:
    """The event a decision just wrote, as if read back from the database
    (Model.from_db, the purpose and notice given as its related objects): half
    the cost of ConsentEvent(**fields), which a decision pays each time."""
    values["purpose_id"] = purpose.pk
    values["notice_id"] = notice.pk
    event = ConsentEvent.from_db(
        connection.alias, _EVENT_ATTNAMES, [values[n] for n in _EVENT_ATTNAMES]
    )
    event._state.fields_cache["purpose"] = purpose
    event._state.fields_cache["notice"] = notice
    return event


def append(*, policy_hash: str = "", **fields: object) -> ConsentEvent:
    """Insert one event with its content hash (after decision_lock): one plain
    INSERT, no lock on anything shared. The sealer gives it its place in the
    tree within LEDGER_SEAL_SECONDS."""
    event = ConsentEvent(**fields)
    event.hash = event_hash_of(event, policy_hash=policy_hash)
    names = [ConsentEvent._meta.get_field(name) for name in _EVENT_COLUMNS_INSERTED]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in names)
    values = [f.get_db_prep_save(getattr(event, f.attname), connection) for f in names]
    marks = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(
                f"INSERT INTO consents_consentevent ({columns}) VALUES ({marks}) RETURNING id",  # noqa: S608
                values,
            )
            event.pk = cursor.fetchone()[0]
        else:
            cursor.execute(
                f"INSERT INTO consents_consentevent ({columns}) VALUES ({marks})",  # noqa: S608
                values,
            )
            event.pk = cursor.lastrowid
    event._state.adding = False
    event._state.db = connection.alias
    return event


def state_set(event: ConsentEvent) -> None:
    """The person's current state for the event's purpose becomes the event's
    decision (one upsert; the person's lock is held)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consents_consentstate (subject_id, purpose_id, decision, event_id, "
            "updated_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_id, purpose_id) "
            "DO UPDATE SET decision = excluded.decision, event_id = excluded.event_id, "
            "updated_at = excluded.updated_at",
            [
                _prep(ConsentState, "subject_id", event.subject_id),
                event.purpose_id,
                event.decision,
                event.pk,
                _prep(ConsentState, "updated_at", event.created_at),
            ],
        )


# Sealing


@dataclass(frozen=True)
class SealOutcome:
    seal: LedgerSeal | None  # the newest seal, or None while nothing was ever sealed
    sealed: int  # events sealed by this run


def committed_barrier() -> int:
    """The highest event id such that every event with a lower id is committed
    or rolled back: taking the ledger lock exclusively waits for the decisions
    under way, and every later one gets a higher id."""
    with transaction.atomic():
        ledger_lock()
        return ConsentEvent.objects.aggregate(m=Max("id"))["m"] or 0


def _take_seal_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK])
        return bool(cursor.fetchone()[0])


def seal_token(*, size: int, root: str, moment: datetime) -> str:
    return checkpoints_module.checkpoint_token(
        size=size, root=root, moment=moment, format=checkpoints_module.MERKLE_V1
    )


def seal_check(last: LedgerSeal | None) -> merkle.Frontier:
    """The frontier to extend, after checking that the last seal is one the
    sealer signed, that the tree holds exactly its leaves, and that its
    frontier gives its root. LedgerIntegrityError says what is wrong."""
    leaves = LedgerLeaf.objects.aggregate(m=Max("seq"))["m"] or 0
    if last is None:
        if leaves:
            raise LedgerIntegrityError(
                f"the tree has {leaves} leaves but no seal: the seals were deleted"
            )
        return merkle.Frontier()
    try:
        checkpoint = checkpoints_module.checkpoint_verify(last.token, source=f"seal #{last.size}")
    except checkpoints_module.UntrustedCheckpoint as exc:
        raise LedgerIntegrityError(f"the last seal does not verify: {exc}") from None
    if (checkpoint.size, checkpoint.root) != (last.size, last.root):
        raise LedgerIntegrityError(
            f"the last seal's row says #{last.size} but its signature covers "
            f"#{checkpoint.size}: the seal was rewritten"
        )
    if leaves != last.size:
        raise LedgerIntegrityError(
            f"the last seal covers {last.size} events but the tree has {leaves} leaves: "
            "leaves were removed or added behind the sealer"
        )
    try:
        frontier = merkle.Frontier.from_json(last.frontier)
    except (KeyError, TypeError, ValueError):
        raise LedgerIntegrityError("the last seal's frontier is unreadable") from None
    if frontier.size != last.size or frontier.root().hex() != last.root:
        raise LedgerIntegrityError("the last seal's frontier does not give its signed root")
    return frontier


def seal(*, batch: int = SEAL_BATCH) -> SealOutcome:
    """Fold every committed, unsealed event into the tree and sign the new head,
    `batch` events per transaction. Returns the newest seal and how many events
    were sealed. One sealer at a time: a second one returns at once."""
    global _sealed_here_at
    try:
        return _seal(batch)
    finally:
        # An event this process recorded before now may be in the tree.
        _sealed_here_at = time.monotonic()


def _seal(batch: int) -> SealOutcome:
    barrier = committed_barrier()
    sealed = 0
    newest = None
    while True:
        with transaction.atomic():
            if not _take_seal_lock():
                return SealOutcome(LedgerSeal.objects.order_by("-size").first(), sealed)
            last = LedgerSeal.objects.order_by("-size").first()
            newest = last
            frontier = seal_check(last)
            after = last.last_event_id if last else 0
            rows = _unsealed(after, barrier, batch)
            if not rows:
                return SealOutcome(newest, sealed)
            if not sealed:
                # Never sign a tree that a checkpoint kept outside contradicts.
                problem = anchor_problem(frontier.size)
                if problem:
                    raise LedgerIntegrityError(problem)
            last_id = rows[-1][0]
            start = frontier.size
            _insert_leaves(start, after, last_id)
            nodes = []
            for _, hash_ in rows:
                for level, index, digest in frontier.append(merkle.leaf_hash(bytes.fromhex(hash_))):
                    if level >= NODE_LEVEL:
                        nodes.append(LedgerNode(level=level, index=index, hash=digest.hex()))
            LedgerNode.objects.bulk_create(nodes, batch_size=1000)
            now = timezone.now()
            root = frontier.root().hex()
            newest = LedgerSeal.objects.create(
                size=frontier.size,
                root=root,
                last_event_id=last_id,
                frontier=frontier.to_json(),
                created_at=now,
                token=seal_token(size=frontier.size, root=root, moment=now),
            )
            sealed += len(rows)
            if len(rows) < batch:
                return SealOutcome(newest, sealed)


def _unsealed(after: int, barrier: int, limit: int) -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, hash FROM consents_consentevent WHERE id > %s AND id <= %s "
            "ORDER BY id LIMIT %s",
            [after, barrier, limit],
        )
        return cursor.fetchall()


def _insert_leaves(start: int, after: int, last_id: int) -> None:
    """One statement places every event of the batch, in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consents_ledgerleaf (seq, event_id) "
            "SELECT %s + ROW_NUMBER() OVER (ORDER BY id), id FROM consents_consentevent "
            "WHERE id > %s AND id <= %s",
            [start, after, last_id],
        )


def seal_problem() -> str:
    """What is wrong with the last seal, or how long decisions have waited to
    be sealed beyond LEDGER_SEAL_MAX_DELAY, or "" (for /health/: a few indexed
    reads and one signature check)."""
    last = LedgerSeal.objects.order_by("-size").first()
    try:
        seal_check(last)
    except LedgerIntegrityError as exc:
        return str(exc)
    oldest = (
        ConsentEvent.objects.filter(id__gt=last.last_event_id if last else 0)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is not None:
        waited = timezone.now() - oldest
        if waited > settings.LEDGER_SEAL_MAX_DELAY:
            return (
                f"decisions have waited {int(waited.total_seconds())} s to be sealed "
                f"(at most {int(settings.LEDGER_SEAL_MAX_DELAY.total_seconds())} s): "
                "is the Celery beat running?"
            )
    return ""


# Proofs


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int  # from 0
    tree_size: int
    audit_path: list[str]
    token: str  # the signed seal or checkpoint of tree_size

    def as_dict(self) -> dict:
        return {
            "format": checkpoints_module.MERKLE_V1,
            "leafIndex": self.leaf_index,
            "treeSize": self.tree_size,
            "auditPath": self.audit_path,
            "checkpoint": self.token,
        }


def _leaf_hashes(start: int, end: int) -> list[bytes]:
    """The leaf hashes of places [start, end) (from 0), in order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.hash FROM consents_ledgerleaf l "
            "JOIN consents_consentevent e ON e.id = l.event_id "
            "WHERE l.seq > %s AND l.seq <= %s ORDER BY l.seq",
            [start, end],
        )
        return [merkle.leaf_hash(bytes.fromhex(row[0])) for row in cursor.fetchall()]


def perfect_subtrees(needed: Iterable[tuple[int, int]], size: int) -> dict[tuple[int, int], bytes]:
    """The hashes of the complete subtrees `needed` (level, index), from stored
    nodes (NODE_LEVEL and up) and from the leaves of the blocks below them."""
    needed = set(needed)
    high = {key for key in needed if key[0] >= NODE_LEVEL}
    found: dict[tuple[int, int], bytes] = {}
    if high:
        # One term per level (a proof for many leaves needs thousands of nodes).
        by_level: dict[int, set[int]] = {}
        for level, index in high:
            by_level.setdefault(level, set()).add(index)
        query = Q()
        for level, indices in by_level.items():
            query |= Q(level=level, index__in=sorted(indices))
        for level, index, digest in LedgerNode.objects.filter(query).values_list(
            "level", "index", "hash"
        ):
            found[(level, index)] = bytes.fromhex(digest)
    blocks: dict[int, list[bytes]] = {}
    for level, index in needed - high:
        block = (index << level) >> NODE_LEVEL
        if block not in blocks:
            start = block * BLOCK
            blocks[block] = _leaf_hashes(start, min(start + BLOCK, size))
        leaves = blocks[block]
        first = (index << level) - block * BLOCK
        found[(level, index)] = _root_of(leaves[first : first + (1 << level)])
    return found


def _root_of(leaves: list[bytes]) -> bytes:
    frontier = merkle.Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def inclusion_proof(event: ConsentEvent, *, size: int | None = None) -> InclusionProof | None:
    """The proof that `event` is in the tree of `size` leaves (a seal's size;
    the newest seal's by default), or None while it is not sealed."""
    leaf = LedgerLeaf.objects.filter(event=event).values_list("seq", flat=True).first()
    if leaf is None:
        return None
    seals = LedgerSeal.objects.order_by("-size")
    target = seals.filter(size=size).first() if size is not None else seals.first()
    if target is None or target.size < leaf:
        return None
    index = leaf - 1
    ranges = merkle.inclusion_ranges(index, target.size)
    nodes = perfect_subtrees(merkle.perfect_needed(ranges), target.size)
    path = merkle.inclusion_proof(index, target.size, lambda level, i: nodes[(level, i)])
    return InclusionProof(index, target.size, [p.hex() for p in path], target.token)


def inclusion_proofs(places: Iterable[int], size: int, token: str) -> dict[int, InclusionProof]:
    """inclusion_proof for many places (from 1) in the tree of `size` leaves
    signed by `token`, with one read of the stored nodes and one of each block
    of leaves they need (a copy of one's data proves thousands of receipts)."""
    places = [place for place in dict.fromkeys(places) if 0 < place <= size]
    ranges = {place: merkle.inclusion_ranges(place - 1, size) for place in places}
    nodes = perfect_subtrees(merkle.perfect_needed(r for rs in ranges.values() for r in rs), size)
    proofs = {}
    for place in places:
        path = merkle.inclusion_proof(place - 1, size, lambda level, i: nodes[(level, i)])
        proofs[place] = InclusionProof(place - 1, size, [p.hex() for p in path], token)
    return proofs


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    proof: list[str]
    first_token: str
    second_token: str

    def as_dict(self) -> dict:
        return {
            "format": checkpoints_module.MERKLE_V1,
            "first": self.first,
            "second": self.second,
            "proof": self.proof,
            "firstCheckpoint": self.first_token,
            "secondCheckpoint": self.second_token,
        }


def consistency_proof(first: int, second: int | None = None) -> ConsistencyProof | None:
    """RFC 9162 proof that the tree signed at `first` events is the beginning
    of the tree signed at `second` (the newest seal by default): nothing
    before `first` was changed since. None when either is not a seal's size."""
    seals = LedgerSeal.objects.order_by("-size")
    newer = seals.filter(size=second).first() if second is not None else seals.first()
    older = seals.filter(size=first).first()
    if newer is None or older is None or older.size > newer.size:
        return None
    ranges = merkle.consistency_ranges(older.size, newer.size)
    nodes = perfect_subtrees(merkle.perfect_needed(ranges), newer.size)
    path = merkle.consistency_proof(older.size, newer.size, lambda level, i: nodes[(level, i)])
    return ConsistencyProof(
        older.size, newer.size, [p.hex() for p in path], older.token, newer.token
    )


def root_at(size: int) -> str:
    """The root of the tree of the first `size` leaves, from the stored nodes
    and at most one block of leaves (a checkpoint's consistency with today)."""
    if size == 0:
        return merkle.EMPTY_ROOT.hex()
    needed = merkle.perfect_needed([(0, size)])
    nodes = perfect_subtrees(needed, size)
    return merkle.range_hash(0, size, lambda level, i: nodes[(level, i)]).hex()


def extends_problem(checkpoint) -> str:
    """Whether today's tree still holds the tree `checkpoint` (a stored
    LedgerCheckpoint, or a checkpoints.Checkpoint) signed, or "". The size of
    the tree is not checked here: see anchor_problem."""
    if checkpoint.size == 0:
        return ""
    format_ = getattr(checkpoint, "format", None)
    if format_ is None:
        format_ = _format_of(checkpoint.token)
    if format_ == checkpoints_module.CHAIN_V1:
        found = (
            LedgerLeaf.objects.filter(seq=checkpoint.size)
            .values_list("event__hash", flat=True)
            .first()
        )
    else:
        found = root_at(checkpoint.size)
    if found != checkpoint.root:
        return (
            f"the tree's first {checkpoint.size} events differ from the checkpoint "
            f"#{checkpoint.size}: events were changed, removed or added before it"
        )
    return ""


def _format_of(token: str) -> str:
    try:
        return checkpoints_module.checkpoint_verify(token, source="").format
    except checkpoints_module.UntrustedCheckpoint:
        return ""


def anchor_problem(size: int) -> str:
    """Whether a tree of `size` leaves contradicts the newest checkpoint: the
    one stored and the last line exported to LEDGER_CHECKPOINT_FILE, which
    someone who rewrote the database may not have reached. "" when it agrees."""
    newest = checkpoints_module.newest_checkpoint()
    if newest is None:
        return ""
    if newest.size > size:
        return (
            f"{newest.source} covers {newest.size} events but the tree holds {size}: "
            "the ledger was rolled back or wiped"
        )
    return extends_problem(newest)


# Verifying


@dataclass(frozen=True)
class Verdict:
    intact: bool
    count: int
    problem: str = ""
    checkpoints: int = 0  # signed checkpoints the tree was checked against
    untrusted: tuple[str, ...] = ()  # checkpoints left out: why each is not trusted
    unsealed: int = 0  # events not sealed yet (checked, not yet in the tree)
    seals: int = 0  # 1 when the last seal was checked


@dataclass
class _Anchor:
    size: int
    root: str
    time: str
    kind: str  # "seal", "checkpoint" (Merkle) or "chain" (format 1 checkpoint)
    source: str = ""
    root_found: str = ""  # a chain checkpoint: the stored hash of event #size


def verify(*, chunk_size: int = 5000, checkpoint_files: tuple = ()) -> Verdict:
    """Check the notices' and policies' texts, every event's hash, the tree
    against every signed seal and every signed checkpoint (stored, exported or
    published), and the current state against the events, all in one snapshot
    of the database, so that decisions made meanwhile are never mistaken for
    tampering."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # A snapshot for the whole read (SQLite's read transaction is one already).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # The files are read before the first query takes the snapshot: every
        # checkpoint they hold was committed before it.
        anchors, untrusted = checkpoints_module.checkpoints_gather(checkpoint_files)
        extra = {"checkpoints": len(anchors), "untrusted": tuple(untrusted)}
        notice_hashes, problem = _verified_notice_hashes()
        if not problem:
            policy, problem = _policy_hashes_checked()
        if problem:
            return Verdict(False, 0, problem, **extra)
        beside = _Beside.launch(notice_hashes, policy) if outermost else None
        try:
            verdict = _verify_tree(notice_hashes, policy, chunk_size, anchors, beside)
        finally:
            if beside is not None:
                beside.finish()
        if verdict.intact:
            if beside is not None:
                problem = beside.result("notices") or beside.result("state")
            else:
                problem = _notice_problem() or _state_problem()
            if problem:
                verdict = Verdict(False, verdict.count, problem, unsealed=verdict.unsealed)
        return Verdict(
            verdict.intact,
            verdict.count,
            verdict.problem,
            unsealed=verdict.unsealed,
            seals=verdict.seals,
            **extra,
        )


class _Beside(threading.Thread):
    """verify()'s SQL checks on a second connection that imports the first
    one's snapshot (pg_export_snapshot), so that they run while the leaves
    are read and folded on the first: both of the machine's cores busy. Both
    see exactly the same rows. Only for a
    verify() that owns its transaction: rows that an enclosing transaction
    wrote and has not committed are not visible from another connection."""

    def __init__(self, snapshot: str, notices: dict[int, str], policies: dict[int, str]):
        super().__init__(name="verify-beside", daemon=True)
        self.snapshot = snapshot
        self.notices = notices
        self.policies = policies
        self.results: dict[str, object] = {}
        self.error: BaseException | None = None

    @classmethod
    def launch(cls, notices: dict[int, str], policies: dict[int, str]) -> _Beside | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
        beside = cls(snapshot, notices, policies)
        beside.start()
        return beside

    def run(self) -> None:
        # This thread's own connection (Django's are per thread), closed at the end.
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    cursor.execute("SET TRANSACTION SNAPSHOT %s", [self.snapshot])
                    # The events' join with the states in memory, not in batches on disk.
                    cursor.execute("SET LOCAL work_mem = '64MB'")
                self.results["chain"] = _chain_problem(self.notices, 5000)
                events, state = _pg_events_and_state_problems(self.notices, self.policies)
                self.results["events"] = events
                self.results["state"] = state
                self.results["notices"] = _notice_problem()
                barrier = _last_barrier()
                self.results["hidden"] = (barrier, _hidden_below(barrier))
        except BaseException as exc:  # raised again in verify()'s thread
            self.error = exc
        finally:
            connection.close()

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error

    def result(self, name: str):
        self.finish()
        return self.results[name]


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


def _anchors(checkpoints: list) -> tuple[list[_Anchor], int, str]:
    """The newest seal (its signature checked: a seal that does not verify is
    named as tampering) and every trusted checkpoint, by size."""
    anchors = []
    seals = 0
    last = LedgerSeal.objects.order_by("-size").values_list("size", "root", "token").first()
    if last is not None:
        size, root, token = last
        try:
            signed = checkpoints_module.checkpoint_verify(token, source=f"the last seal (#{size})")
        except checkpoints_module.UntrustedCheckpoint as exc:
            return [], 0, f"{exc}: the seal was rewritten"
        if (signed.size, signed.root) != (size, root):
            return [], 0, f"the last seal (#{size}) differs from what it signs: it was rewritten"
        seals = 1
        anchors.append(_Anchor(size, root, signed.time, "seal", f"the last seal ({signed.time})"))
    for checkpoint in checkpoints:
        kind = "chain" if checkpoint.format == checkpoints_module.CHAIN_V1 else "checkpoint"
        anchors.append(
            _Anchor(
                checkpoint.size,
                checkpoint.root,
                checkpoint.time,
                kind,
                f"the checkpoint of {checkpoint.time}",
            )
        )
    anchors.sort(key=lambda a: (a.size, a.kind))
    return anchors, seals, ""


_LEAF_COLUMNS = (
    "l.seq, e.id, e.seq, e.uuid, e.subject_id, e.purpose_id, e.notice_id, "
    "e.policy_version_id, e.decision, e.method, e.created_at, e.ip_truncated, "
    "e.user_agent_family, e.gpc_signal, e.prev_hash, e.hash"
)


_EVENT_COLUMNS = _LEAF_COLUMNS.split(", ", 1)[1]


def _keyset(sql: str, start: int, key: int, chunk_size: int) -> Iterator[tuple]:
    """The rows of `sql` (which takes the last key seen and a limit, in key
    order), a chunk at a time: keyset pagination, so memory stays flat and the
    same on SQLite and PostgreSQL. `key` is the index of the key in a row."""
    last = start
    while True:
        chunk = _fetch(sql, [last, chunk_size])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][key]


def _leaf_rows(chunk_size: int) -> Iterator[tuple]:
    """Every leaf with its event, in tree order."""
    return _keyset(
        f"SELECT {_LEAF_COLUMNS} FROM consents_ledgerleaf l "  # noqa: S608 (constant columns)
        "LEFT JOIN consents_consentevent e ON e.id = l.event_id "
        "WHERE l.seq > %s ORDER BY l.seq LIMIT %s",
        0,
        0,
        chunk_size,
    )


def _unsealed_rows(after: int, chunk_size: int) -> Iterator[tuple]:
    """Every event beyond the id `after` that is not in the tree, in id order."""
    return _keyset(
        f"SELECT NULL, {_EVENT_COLUMNS} FROM consents_consentevent e "  # noqa: S608
        "WHERE e.id > %s AND NOT EXISTS "
        "(SELECT 1 FROM consents_ledgerleaf l WHERE l.event_id = e.id) "
        "ORDER BY e.id LIMIT %s",
        after,
        1,
        chunk_size,
    )


def tree_rows(first: int, last: int, *, chunk_size: int = 2000) -> Iterator[tuple]:
    """The leaves at places first..last (from 1) with their events, in tree
    order, a chunk at a time (columns as _LEAF_COLUMNS): the auditor's evidence
    export streams a range of the tree with it."""
    return _keyset(
        f"SELECT {_LEAF_COLUMNS} FROM consents_ledgerleaf l "  # noqa: S608 (constant columns)
        "JOIN consents_consentevent e ON e.id = l.event_id "
        f"WHERE l.seq > %s AND l.seq <= {int(last)} ORDER BY l.seq LIMIT %s",
        first - 1,
        0,
        chunk_size,
    )


def unsealed_rows_between(
    after: int, start: datetime, end: datetime, *, chunk_size: int = 2000
) -> Iterator[tuple]:
    """The events beyond the id `after` (the last sealed one) made in [start,
    end), in id order, as tree_rows gives them (no place)."""
    low = connection.ops.adapt_datetimefield_value(start)
    high = connection.ops.adapt_datetimefield_value(end)
    last = after
    while True:
        chunk = _fetch(
            f"SELECT NULL, {_EVENT_COLUMNS} FROM consents_consentevent e "  # noqa: S608
            "WHERE e.id > %s AND e.created_at >= %s AND e.created_at < %s "
            "ORDER BY e.id LIMIT %s",
            [last, low, high, chunk_size],
        )
        if not chunk:
            return
        yield from chunk
        last = chunk[-1][1]


def event_timestamp(moment: datetime) -> str:
    """The time of an event as its hash covers it."""
    return _timestamp(moment)


def _fetch(sql: str, params: list) -> list[tuple]:
    """Rows with Django's conversions (UUIDs, aware datetimes, booleans)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if connection.vendor != "sqlite":
        return rows
    return [_convert(row) for row in rows]


def _convert(row: tuple) -> tuple:
    """A SQLite row as PostgreSQL gives it: UUIDs, aware datetimes, booleans."""
    row = list(row)
    for i in (3, 4):
        if row[i] is not None and not isinstance(row[i], uuid_module.UUID):
            row[i] = uuid_module.UUID(row[i])
    moment = parse_datetime(row[10]) if isinstance(row[10], str) else row[10]
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # SQLite keeps UTC, without the zone
    row[10] = moment
    row[13] = bool(row[13])
    return tuple(row)


@dataclass
class _Walk:
    """What verifying the tree found so far."""

    count: int = 0
    problem: str = ""
    mismatch: _Anchor | None = None  # the earliest anchor that does not match
    matched: int = 0  # the size of the last anchor that matched
    chain_prev: str = GENESIS
    # The complete subtrees of NODE_LEVEL and up, as recomputed: the stored ones
    # must be the same (an inclusion proof is read from them). One per 2**NODE_LEVEL
    # leaves: a few thousand for a million events.
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)


def _event_problem(row: tuple, notices: dict[int, str], policies: dict[int, str], walk) -> str:
    """What is wrong with one event's row, or "" (its hash recomputed)."""
    (_, _id, seq, uuid, subject, purpose, notice_id, policy, decision, method, created, ip, ua,
     gpc, prev, stored) = row  # fmt: skip
    where = f"event {uuid}"
    if prev:
        if prev != walk.chain_prev:
            return f"{where} (#{seq} of the chain): does not follow the event before it"
        computed = chain_hash_v1(
            seq=seq,
            uuid=uuid,
            subject_id=subject,
            purpose_id=purpose,
            notice_hash=notices.get(notice_id, ""),
            policy_version_id=policy,
            decision=decision,
            method=method,
            created_at=created,
            ip_truncated=ip,
            user_agent_family=ua,
            prev_hash=prev,
            gpc_signal=gpc,
        )
        walk.chain_prev = stored
    else:
        computed = event_hash(
            uuid=uuid,
            subject_id=subject,
            purpose_id=purpose,
            notice_hash=notices.get(notice_id, ""),
            policy_version_id=policy,
            policy_hash=policies.get(policy, "") if policy is not None else "",
            decision=decision,
            method=method,
            created_at=created,
            ip_truncated=ip,
            user_agent_family=ua,
            gpc_signal=gpc,
        )
    if computed != stored:
        return f"{where}: its content was changed"
    return ""


def _verify_tree(
    notices: dict[int, str],
    policies: dict[int, str],
    chunk_size: int,
    checkpoints: list,
    beside: _Beside | None = None,
) -> Verdict:
    """Every event's hash, then the leaves in order and the tree's root at
    every anchor (matched while the leaves stream past: memory stays flat),
    then what lies beyond the last seal.

    On PostgreSQL the database recomputes the events' hashes itself (one
    statement) and streams the leaf hashes over COPY; elsewhere each row is
    checked in Python as it streams past."""
    anchors, seal_count, forged = _anchors(checkpoints)
    if forged:
        return Verdict(False, 0, forged)
    walk = _Walk()
    # Read before the leaves: the chain's anchors are roots of their own.
    for anchor in anchors:
        if anchor.kind == "chain":
            anchor.root_found = _chain_hash_at(anchor.size)
    fast = connection.vendor == "postgresql"
    if fast:
        # The database checks every event's hash (on the second connection,
        # while the leaves stream here, when there is one), and the stream says
        # whether every leaf is in its place: the verdict is the first of the
        # events' check, the leaves' places, and the roots at the anchors.
        if beside is None:
            problem = _chain_problem(notices, chunk_size)
            if problem:
                return Verdict(False, 0, problem, seals=seal_count)
        verdict, placed = _pg_fold(anchors, walk, seal_count)
        if beside is not None and beside.result("chain"):
            return Verdict(False, 0, beside.result("chain"), seals=seal_count)
        if beside is not None:
            found = beside.result("events")
        else:
            found = _pg_event_problem(notices, policies, after=0)
        if not found and not placed:
            found = _pg_leaf_order_problem() or (
                "a leaf of the tree is not where its event puts it",
                0,
            )
        if found:
            problem, verified = found
            return Verdict(False, verified, problem, seals=seal_count)
    else:
        leaves = _checked_leaf_hashes(notices, policies, chunk_size, walk)
        try:
            verdict = _walk_tree(leaves, anchors, walk, seal_count)
        finally:
            leaves.close()  # ends the stream, wherever the walk stopped
    if verdict is not None:
        return verdict
    problem = _nodes_problem(walk.nodes)
    if problem:
        return Verdict(False, walk.count, problem, seals=seal_count)
    return _beyond_the_tree(
        notices, policies, chunk_size, walk, seal_count, check=not fast, beside=beside
    )


def _checked_leaf_hashes(
    notices: dict[int, str], policies: dict[int, str], chunk_size: int, walk: _Walk
) -> Iterator[tuple[int, int | None, bytes]]:
    """(place, event id, leaf hash) in tree order, each event's hash checked
    first (walk.problem says why it stopped)."""
    for row in _leaf_rows(chunk_size):
        if row[1] is not None:
            problem = _event_problem(row, notices, policies, walk)
            if problem:
                walk.problem = f"{problem} (leaf #{row[0]})"
                return
        yield row[0], row[1], merkle.leaf_hash(bytes.fromhex(row[15])) if row[15] else b""


class _Folder:
    """Folds leaf hashes into the tree in order, checking the root at every
    anchor as the tree reaches its size, and keeping the complete subtrees of
    NODE_LEVEL and up (walk.nodes) for the stored ones to be checked."""

    def __init__(self, anchors: list[_Anchor], walk: _Walk) -> None:
        self.walk = walk
        self.pending = iter(anchors)
        self.anchor = next(self.pending, None)
        self.frontier = merkle.Frontier()
        self.size = 0
        while self.anchor is not None and self.anchor.size == 0:
            if self.anchor.root not in (GENESIS, merkle.EMPTY_ROOT.hex()):
                walk.mismatch = walk.mismatch or self.anchor
            self.anchor = next(self.pending, None)
        nodes = walk.nodes

        def keep(level: int, index: int, digest: bytes) -> None:
            nodes[level, index] = digest

        self.keep = keep

    def _extend(self, leaves: list[bytes]) -> None:
        # Whole blocks hashed level by level; only nodes of NODE_LEVEL and up kept.
        self.frontier.extend_blocks(leaves, self.keep, min_level=NODE_LEVEL)

    def feed(self, leaves: list[bytes]) -> None:
        """The next leaves, in tree order."""
        start = 0
        anchor, walk = self.anchor, self.walk
        while anchor is not None and anchor.size - self.size <= len(leaves) - start:
            cut = start + anchor.size - self.size
            self._extend(leaves[start:cut])
            self.size, start = anchor.size, cut
            while anchor is not None and anchor.size == self.size:
                if walk.mismatch is None:
                    chain = anchor.kind == "chain"
                    root = anchor.root_found if chain else self.frontier.root().hex()
                    if hmac.compare_digest(anchor.root, root):
                        walk.matched = self.size
                    else:
                        walk.mismatch = anchor
                anchor = next(self.pending, None)
        self.anchor = anchor
        self._extend(leaves[start:])
        self.size += len(leaves) - start


def _walk_tree(
    leaves: Iterable[tuple[int, int | None, bytes]],
    anchors: list[_Anchor],
    walk: _Walk,
    seal_count: int,
) -> Verdict | None:
    """Fold the leaves into the tree, checking their places, their order and
    the root at every anchor. A Verdict when something is wrong, else None."""
    folder = _Folder(anchors, walk)
    batch: list[bytes] = []
    last_id = 0
    for place, event_id, leaf in leaves:
        if place != walk.count + 1:
            walk.problem = f"leaf #{walk.count + 1} is missing: the tree skips to #{place}"
            break
        if event_id is None:
            walk.problem = f"leaf #{place}: its event was deleted"
            break
        if event_id <= last_id:
            walk.problem = f"leaf #{place}: out of order"
            break
        walk.count = place
        last_id = event_id
        batch.append(leaf)
        if len(batch) >= 4096:
            folder.feed(batch)
            batch = []
    folder.feed(batch)  # the leaves checked before any problem: their anchors too
    if walk.problem:
        return Verdict(False, walk.count, walk.problem, seals=seal_count)
    return _walk_verdict(walk, folder.anchor, seal_count)


def _walk_verdict(walk: _Walk, anchor: _Anchor | None, seal_count: int) -> Verdict | None:
    """After the leaves: the earliest anchor the tree did not match, or the
    first anchor beyond the tree (`anchor`), named; None when all matched."""
    if walk.mismatch is not None:
        earlier = f"after #{walk.matched}" if walk.matched else "from the first"
        return Verdict(
            False,
            walk.matched,
            f"the tree of {walk.mismatch.size} events differs from {walk.mismatch.source}: "
            f"an event {earlier} up to #{walk.mismatch.size} was changed, removed or added",
            seals=seal_count,
        )
    if anchor is not None:
        count = walk.count
        what = "the ledger was wiped" if count == 0 else "events were removed (a rollback)"
        return Verdict(
            False,
            count,
            f"the ledger has {count} sealed event{'s' if count != 1 else ''} but "
            f"{anchor.source} covers {anchor.size}: {what}",
            seals=seal_count,
        )
    return None


def _nodes_problem(computed: dict[tuple[int, int], bytes]) -> str:
    """The stored subtrees are exactly those the leaves give: a rewritten one
    would make inclusion proofs fail against the signed root."""
    stored = 0
    rows = LedgerNode.objects.order_by("level", "index").values_list("level", "index", "hash")
    for level, index, digest in rows.iterator(chunk_size=5000):
        stored += 1
        if computed.get((level, index)) != bytes.fromhex(digest):
            return (
                f"the stored subtree {level}/{index} of the tree differs from its leaves: "
                "it was rewritten (inclusion proofs read from it fail)"
            )
    if stored != len(computed):
        return (
            f"the tree has {len(computed)} complete subtrees of {BLOCK} leaves and up, "
            f"but {stored} are stored: some were deleted or added"
        )
    return ""


def _last_barrier() -> int:
    return LedgerSeal.objects.order_by("-size").values_list("last_event_id", flat=True).first() or 0


def _hidden_below(barrier: int):
    """The uuid of the first event up to the last seal's barrier that is not
    in the tree, or None."""
    return (
        ConsentEvent.objects.filter(id__lte=barrier, leaf__isnull=True)
        .values_list("uuid", flat=True)
        .first()
    )


def _chain_hash_at(place: int) -> str:
    """The stored hash of the event at `place` (a checkpoint of the chain)."""
    return LedgerLeaf.objects.filter(seq=place).values_list("event__hash", flat=True).first() or ""


def _beyond_the_tree(
    notices: dict[int, str],
    policies: dict[int, str],
    chunk_size: int,
    walk: _Walk,
    seal_count: int,
    *,
    check: bool,
    beside: _Beside | None = None,
) -> Verdict:
    """The last seal covers exactly the tree, no event hides below its
    barrier, and the events not sealed yet are counted (and checked, when the
    database did not check them already)."""
    last_seal = LedgerSeal.objects.order_by("-size").values_list("size", "last_event_id").first()
    if last_seal is None and walk.count:
        return Verdict(False, walk.count, "the tree has leaves but no seal: the seals were deleted")
    if last_seal is not None and last_seal[0] != walk.count:
        return Verdict(
            False,
            walk.count,
            f"the tree has {walk.count} leaves but its last seal covers {last_seal[0]}: "
            "leaves were added or removed behind the sealer",
            seals=seal_count,
        )
    barrier = last_seal[1] if last_seal else 0
    # Every event up to the last seal's barrier is in the tree: none was slipped in below it.
    if beside is not None and beside.result("hidden")[0] == barrier:
        hidden = beside.result("hidden")[1]
    else:
        hidden = _hidden_below(barrier)
    if hidden is not None:
        return Verdict(
            False,
            walk.count,
            f"event {hidden} is older than the last seal but not in the tree: "
            "it was inserted behind the sealer",
            seals=seal_count,
        )
    if not check:
        found = _pg_event_problem(notices, policies, after=barrier)
        if found:
            return Verdict(False, walk.count, found[0], seals=seal_count)
        unsealed = ConsentEvent.objects.filter(id__gt=barrier).count()
        return Verdict(True, walk.count, unsealed=unsealed, seals=seal_count)
    unsealed = 0
    for row in _unsealed_rows(barrier, chunk_size):
        problem = _event_problem(row, notices, policies, walk)
        if problem:
            return Verdict(False, walk.count, f"{problem} (not sealed yet)", seals=seal_count)
        unsealed += 1
    return Verdict(True, walk.count, unsealed=unsealed, seals=seal_count)


# PostgreSQL computes SHA-256 itself: the events' hashes (format 2) are checked
# in one statement, the same fields joined as event_hash() joins them.
_SQL_EVENT_HASH = """
encode(sha256(convert_to(concat_ws(chr(31),
    'clareza-event-v2',
    e.uuid::text,
    e.subject_id::text,
    e.purpose_id::text,
    coalesce(n.hash, ''),
    coalesce(e.policy_version_id::text, ''),
    coalesce(p.hash, ''),
    e.decision,
    e.method,
    to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    e.ip_truncated,
    e.user_agent_family,
    CASE WHEN e.gpc_signal THEN 'gpc' ELSE '' END
), 'UTF8')), 'hex')
"""

_SQL_CHANGED_EVENT = f"""
SELECT min(e.id) FROM consents_consentevent e
LEFT JOIN unnest(%s::bigint[], %s::text[]) AS n(id, hash) ON n.id = e.notice_id
LEFT JOIN unnest(%s::bigint[], %s::text[]) AS p(id, hash) ON p.id = e.policy_version_id
WHERE e.id > %s AND e.prev_hash = '' AND e.hash <> {_SQL_EVENT_HASH}
"""  # noqa: S608 (constant SQL). An aggregate: PostgreSQL scans in parallel.


def event_hash_in_sql(event_id: int) -> str:
    """The database's own hash of one event (format 2): a test keeps it equal
    to event_hash()."""
    notices, _ = _verified_notice_hashes()
    policies = policy_hashes()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_SQL_EVENT_HASH} FROM consents_consentevent e "  # noqa: S608
            "LEFT JOIN unnest(%s::bigint[], %s::text[]) AS n(id, hash) ON n.id = e.notice_id "
            "LEFT JOIN unnest(%s::bigint[], %s::text[]) AS p(id, hash) "
            "ON p.id = e.policy_version_id WHERE e.id = %s",
            [*_arrays(notices), *_arrays(policies), event_id],
        )
        return cursor.fetchone()[0]


def _arrays(hashes: dict[int, str]) -> tuple[list[int], list[str]]:
    return list(hashes), list(hashes.values())


def _pg_event_problem(
    notices: dict[int, str], policies: dict[int, str], *, after: int
) -> tuple[str, int] | None:
    """The first event beyond the id `after` whose hash the database finds
    wrong: (what is wrong, how many leaves verified before it), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL_CHANGED_EVENT, [*_arrays(notices), *_arrays(policies), after])
        event_id = cursor.fetchone()[0]
    if event_id is None:
        return None
    uuid = ConsentEvent.objects.filter(pk=event_id).values_list("uuid", flat=True).first()
    place = LedgerLeaf.objects.filter(event_id=event_id).values_list("seq", flat=True).first()
    where = f"leaf #{place}" if place else "not sealed yet"
    return f"event {uuid}: its content was changed ({where})", (place or 1) - 1


_SQL_LEAF_ORDER = """
SELECT
    (SELECT min(l.seq) FROM consents_ledgerleaf l
     LEFT JOIN consents_consentevent e ON e.id = l.event_id WHERE e.id IS NULL),
    (SELECT min(t.seq) FROM (
        SELECT seq, event_id, lag(event_id) OVER (ORDER BY seq) AS before
        FROM consents_ledgerleaf) t WHERE t.event_id <= t.before),
    (SELECT count(*) FROM consents_ledgerleaf),
    (SELECT coalesce(max(seq), 0) FROM consents_ledgerleaf)
"""


def _pg_leaf_order_problem() -> tuple[str, int] | None:
    """The leaves are places 1..n, each an event that exists, in the order of
    the events' ids: the first place where that fails, named, or None."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL_LEAF_ORDER)
        deleted, disordered, count, highest = cursor.fetchone()
        missing = None
        if count != highest:
            # The first place whose predecessor is missing, and where the tree resumes.
            cursor.execute(
                "SELECT coalesce(max(p.seq), 0) + 1, min(l.seq) FROM consents_ledgerleaf l "
                "LEFT JOIN consents_ledgerleaf p ON p.seq < l.seq "
                "WHERE l.seq = (SELECT min(x.seq) FROM consents_ledgerleaf x WHERE x.seq > 1 "
                "AND NOT EXISTS (SELECT 1 FROM consents_ledgerleaf y WHERE y.seq = x.seq - 1)) "
                "OR (l.seq = (SELECT min(seq) FROM consents_ledgerleaf) AND l.seq > 1)"
            )
            missing = cursor.fetchone()
    problems = []
    if missing and missing[1] is not None:
        problems.append(
            (missing[0], f"leaf #{missing[0]} is missing: the tree skips to #{missing[1]}")
        )
    if deleted is not None:
        problems.append((deleted, f"leaf #{deleted}: its event was deleted"))
    if disordered is not None:
        problems.append((disordered, f"leaf #{disordered}: out of order"))
    if not problems:
        return None
    place, problem = min(problems)
    return problem, place - 1


_SQL_LEAVES = """
SELECT
    decode(CASE WHEN length(e.hash) = 64 THEN e.hash ELSE repeat('0', 64) END, 'hex'),
    e.id IS NOT NULL AND length(e.hash) = 64
        AND l.seq = row_number() OVER (ORDER BY l.event_id)
FROM consents_ledgerleaf l LEFT JOIN consents_consentevent e ON e.id = l.event_id
ORDER BY l.event_id
"""
# The leaves come in the order of their events' ids, which both indexes give
# without a sort (a merge join), with whether each is where it belongs: its
# event exists, and its place is exactly its rank among the leaves by event id.
# Places 1..n in the events' order is what the tree requires, so when every
# row says true they came in tree order; one false row sends verify to
# _pg_leaf_order_problem() for the name of what is wrong. The events' stored
# hashes come decoded, and Python hashes them into leaves (SHA-256 in
# PostgreSQL costs about 2 µs a call, hashlib's a fraction of that). A
# server-side cursor fetched in binary, LEAF_FETCH rows at a time: a third of
# the Python time of a COPY stream, whose every row is a message of its own.
LEAF_FETCH = 20_000


def _pg_leaf_blocks() -> Iterator[tuple[list[bytes], bool]]:
    """(leaf hashes, whether every one is in its place), LEAF_FETCH at a time,
    in verify's snapshot. A thread fetches the next rows while this one hashes
    and folds the last (psycopg waits for the database without the GIL): the
    database's work and Python's overlap. Memory stays flat: at most two
    fetches wait."""
    sha256 = hashlib.sha256
    zero = b"\x00"
    connection.ensure_connection()
    raw = connection.connection
    fetched: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            with raw.cursor(name="clareza_verify_leaves", binary=True) as cursor:
                cursor.itersize = LEAF_FETCH
                cursor.execute(_SQL_LEAVES)
                while not stop.is_set() and (rows := cursor.fetchmany(LEAF_FETCH)):
                    fetched.put(rows)
            fetched.put(None)
        except BaseException as exc:  # raised again in the folding thread
            fetched.put(exc)

    fetcher = threading.Thread(target=fetch, name="verify-leaves", daemon=True)
    fetcher.start()
    try:
        while (rows := fetched.get()) is not None:
            if isinstance(rows, BaseException):
                raise rows
            yield [sha256(zero + leaf).digest() for leaf, _ in rows], all(ok for _, ok in rows)
    finally:
        stop.set()
        while fetcher.is_alive():  # let a fetcher blocked on a full queue finish
            with contextlib.suppress(queue.Empty):
                fetched.get(timeout=0.05)
        fetcher.join()


def _pg_fold(anchors: list[_Anchor], walk: _Walk, seal_count: int) -> tuple[Verdict | None, bool]:
    """Fold the streamed leaves, checking the root at every anchor; also
    whether every leaf was in its place (when not, the fold's verdict means
    nothing: _pg_leaf_order_problem() names what is wrong). A stored hash that
    is not hex stops the stream: the events' check names that event."""
    folder = _Folder(anchors, walk)
    placed = True
    try:
        with transaction.atomic():  # a savepoint: the snapshot's transaction survives an error
            blocks = _pg_leaf_blocks()
            try:
                for leaves, in_place in blocks:
                    placed = placed and in_place
                    folder.feed(leaves)
            finally:
                blocks.close()
    except (DataError, psycopg.DataError):
        return None, False
    walk.count = folder.size
    return _walk_verdict(walk, folder.anchor, seal_count), placed


def _chain_problem(notices: dict[int, str], chunk_size: int) -> str:
    """The events of the old hash chain (format 1), checked in Python: each
    hash covers the one before it."""
    walk = _Walk()
    rows = _keyset(
        f"SELECT NULL, {_EVENT_COLUMNS} FROM consents_consentevent e "  # noqa: S608
        "WHERE e.prev_hash <> '' AND e.id > %s ORDER BY e.id LIMIT %s",
        0,
        1,
        chunk_size,
    )
    for row in rows:
        problem = _event_problem(row, notices, {}, walk)
        if problem:
            return problem
    return ""


_SQL_STATES_WRONG = """
SELECT min(s.id) FROM consents_consentstate s
LEFT JOIN consents_consentevent e ON e.id = s.event_id
WHERE e.id IS NULL OR e.subject_id <> s.subject_id OR e.purpose_id <> s.purpose_id
   OR e.decision <> s.decision
"""
# Aggregates rather than LIMIT 1: the planner then joins by hash, once over each table.
_SQL_EVENTS_UNSTATED = """
SELECT min(e.id) FILTER (WHERE s.id IS NULL),
       min(s.id) FILTER (WHERE s.id IS NOT NULL AND e.id > s.event_id)
FROM consents_consentevent e
LEFT JOIN consents_consentstate s ON s.subject_id = e.subject_id AND s.purpose_id = e.purpose_id
"""


def _state_problem() -> str:
    """The current state, which every page and every "may we?" reads, must be
    exactly what the ledger says: for each person and purpose, the decision of
    their last event, and a state for every pair that has events."""
    if connection.vendor == "postgresql":
        return _pg_state_problem()
    last_event = ConsentEvent.objects.filter(
        subject_id=OuterRef("subject_id"), purpose_id=OuterRef("purpose_id")
    ).order_by("-id")
    wrong = (
        ConsentState.objects.annotate(last=last_event.values("pk")[:1])
        .filter(Q(last__isnull=True) | ~Q(event_id=F("last")) | ~Q(decision=F("event__decision")))
        .values_list("subject_id", "purpose_id", "decision")
        .first()
    )
    if wrong:
        return _wrong_state_message(*wrong)
    stateless = (
        ConsentEvent.objects.filter(
            ~Exists(
                ConsentState.objects.filter(
                    subject_id=OuterRef("subject_id"), purpose_id=OuterRef("purpose_id")
                )
            )
        )
        .values_list("uuid", "subject_id", "purpose_id")
        .first()
    )
    if stateless:
        event, subject, key = stateless
        return _stateless_message(event, subject, key)
    return ""


def _purpose_key(pk: int) -> str:
    """A purpose's key for a message, or what is wrong with it: the ledger's
    rows have no foreign-key constraint (migration 0014), so it may be gone."""
    key = Purpose.objects.filter(pk=pk).values_list("key", flat=True).first()
    return key if key is not None else f"#{pk}, a purpose that does not exist"


# One pass over the events hashed against the few notices (parallel on PostgreSQL).
_SQL_NOTICE_MISMATCH = """
SELECT min(e.id) FROM consents_consentevent e
LEFT JOIN consents_purposenotice n ON n.id = e.notice_id
WHERE n.id IS NULL OR n.purpose_id <> e.purpose_id
"""


def _notice_problem() -> str:
    """Every event cites a notice that exists and is one of its own purpose's
    (and so its purpose exists: a notice's purpose has a constraint). The
    events' keys have no constraint in the database (migration 0014)."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL_NOTICE_MISMATCH)
        event_id = cursor.fetchone()[0]
    if event_id is None:
        return ""
    uuid, purpose_id, notice_id = ConsentEvent.objects.values_list(
        "uuid", "purpose_id", "notice_id"
    ).get(pk=event_id)
    notice_purpose = (
        PurposeNotice.objects.filter(pk=notice_id).values_list("purpose_id", flat=True).first()
    )
    if notice_purpose is None:
        return f"event {uuid} cites notice #{notice_id}, which does not exist"
    return (
        f"event {uuid} is about “{_purpose_key(purpose_id)}” but cites a notice of "
        f"“{_purpose_key(notice_purpose)}”"
    )


def _wrong_state_message(subject: object, purpose_id: int, decision: str) -> str:
    key = _purpose_key(purpose_id)
    return (
        f"the current state of “{key}” for subject {subject} says {decision}, "
        "which is not the last decision the ledger holds for them"
    )


def _stateless_message(event: object, subject: object, purpose_id: int) -> str:
    key = _purpose_key(purpose_id)
    return (
        f"subject {subject} has decisions about “{key}” in the ledger ({event}) "
        "but no current state: the state was deleted"
    )


_SQL_EVENTS_AND_STATES = f"""
SELECT min(e.id) FILTER (WHERE e.prev_hash = '' AND e.hash <> {_SQL_EVENT_HASH}),
       min(e.id) FILTER (WHERE s.id IS NULL),
       min(s.id) FILTER (WHERE e.id > s.event_id),
       count(*) FILTER (WHERE e.id = s.event_id AND e.decision = s.decision),
       (SELECT count(*) FROM consents_consentstate)
FROM consents_consentevent e
LEFT JOIN unnest(%s::bigint[], %s::text[]) AS n(id, hash) ON n.id = e.notice_id
LEFT JOIN unnest(%s::bigint[], %s::text[]) AS p(id, hash) ON p.id = e.policy_version_id
LEFT JOIN consents_consentstate s ON s.subject_id = e.subject_id AND s.purpose_id = e.purpose_id
"""  # noqa: S608 (constant SQL)


def _pg_events_and_state_problems(
    notices: dict[int, str], policies: dict[int, str]
) -> tuple[tuple[str, int] | None, str]:
    """_pg_event_problem(after=0) and _state_problem() in one pass over the
    events (parallel, hashed against the states): every event's hash; a state
    for every pair that has events, none older than the pair's last event; and
    each state pointing at an event of its own pair with its decision, which
    holds exactly when as many event rows match their state as there are
    states. Only when something is wrong do the named checks run."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL_EVENTS_AND_STATES, [*_arrays(notices), *_arrays(policies)])
        changed, unstated, stale, matched, states = cursor.fetchone()
    events = _pg_event_problem(notices, policies, after=0) if changed is not None else None
    if unstated is None and stale is None and matched == states:
        return events, ""
    return events, _pg_state_problem()


def _pg_state_problem() -> str:
    """The same check in two statements that each join the events and the
    states once (hash joins): a state per pair that has events, pointing at an
    event of its own pair with its decision, and no later event of that pair."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL_STATES_WRONG)
        wrong = cursor.fetchone()[0]
        if wrong is None:
            cursor.execute(_SQL_EVENTS_UNSTATED)
            missing, wrong = cursor.fetchone()
        else:
            missing = None
    if wrong is not None:
        subject, key, decision = ConsentState.objects.values_list(
            "subject_id", "purpose_id", "decision"
        ).get(pk=wrong)
        return _wrong_state_message(subject, key, decision)
    if missing is not None:
        event, subject, key = ConsentEvent.objects.values_list(
            "uuid", "subject_id", "purpose_id"
        ).get(pk=missing)
        return _stateless_message(event, subject, key)
    return ""
