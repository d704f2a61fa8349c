"""Consent ledger benchmarks (issue 9: "Speed and memory"), on PostgreSQL.

1. Decisions through the service, with C concurrent clients (default 16
   processes, each with its own connection, deciding for different people):
   consents.services.consent_record (event + state, one transaction) plus a
   signed receipt (consents.receipts.receipt_jws), while the sealer
   (consents.ledger.seal) runs in the background every second, as the beat
   does, so that sealing's cost is in the figure. Baseline: plain single-row
   ORM inserts in autocommit (OutboxItem.objects.create) by the same number
   of clients, for as long, measured before and after the service (their
   mean is the reference: the machine's load may change meanwhile).
2. Sealing: events sealed per second by ledger.seal() over events inserted
   unsealed (COPY, with valid content hashes). Baseline: the same rows read
   back (SELECT id, hash ... ORDER BY id, in the sealer's batches).
3. verify (verify_ledger) over N events (default 1,000,000): events per second
   and the process's peak memory, against a plain scan of the same rows (every
   column of every event streamed over COPY and parsed); peak memory at N/10
   and N, to show it stays flat. Each run in a process of its own.
4. An inclusion proof for one receipt (ledger.inclusion_proof): mean time over
   random sealed events at 10,000 events and at N, as a ratio (~1: constant in
   the ledger's size).

The ledger is filled in steps (10,000, N/10, N), each sealed before it is
measured; decisions run last, against the full ledger.

Usage: python bench/ledger.py [--events 1000000] [--clients 16] [--seconds 15]
                              [--proofs 200]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

PROOF_SMALL = 10_000  # the small ledger of figure 4
SEAL_EVERY = 1.0  # seconds between sealer runs during figure 1

# The child processes of figure 3 print what they measured as JSON: seconds,
# and VmHWM (peak resident memory) before and after the work, in KiB.
_MEASURE = """
import json, sys, time
import django
django.setup()


def hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


before = hwm()
started = time.perf_counter()
result = work()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "hwm_before": before, "hwm": hwm(), "result": result}))
"""

VERIFY = """
def work():
    from consents import ledger
    verdict = ledger.verify()
    if not verdict.intact:
        sys.exit(f"verify found the bench ledger not intact: {verdict.problem}")
    return verdict.count + verdict.unsealed
"""

SCAN = """
def work():
    from django.db import connection
    rows = 0
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
        "COPY (SELECT * FROM consents_consentevent ORDER BY id) TO STDOUT"
    ) as copy:
        for _row in copy.rows():
            rows += 1
    return rows
"""


# Figure 1: concurrent clients


def _client(kind: str, seconds: float, barrier, results) -> None:
    """One client process: Django of its own, warmed up, then as many
    operations as it can until the time is up."""
    import django

    django.setup()
    operation = _decide if kind == "service" else _insert
    state = {"n": 0, "purposes": _consent_purposes()}
    operation(state)  # warm: connection, caches, the signing key
    barrier.wait()
    started = time.perf_counter()
    deadline = started + seconds
    count = 0
    while time.perf_counter() < deadline:
        operation(state)
        count += 1
    results.put((count, time.perf_counter() - started))


def _consent_purposes() -> list:
    from consents.models import Purpose

    return list(Purpose.objects.filter(legal_basis="consent", retired_at__isnull=True))


def _decide(state: dict) -> None:
    """A decision of a new person, and its signed receipt."""
    from consents.models import Decision, Method
    from consents.receipts import receipt_jws
    from consents.services import consent_record

    purposes = state["purposes"]
    state["n"] += 1
    event = consent_record(
        subject_id=uuid.uuid4(),
        purpose=purposes[state["n"] % len(purposes)],
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    receipt_jws(event)


def _insert(state: dict) -> None:
    from portal.models import OutboxItem

    OutboxItem.objects.create(kind="email", recipient="bench@example.com", title="s")


def clients(kind: str, count: int, seconds: float) -> float:
    """Operations per second of `count` client processes running together."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(kind, seconds, barrier, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            sys.exit(f"a {kind} client failed (exit {process.exitcode})")
    return sum(n for n, _ in outcomes) / max(elapsed for _, elapsed in outcomes)


class Sealer(threading.Thread):
    """ledger.seal() every SEAL_EVERY seconds, as the beat runs it, on a
    connection of its own; remembers how long each run took."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.runs: list[tuple[float, int]] = []  # (seconds, events sealed)
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import connection

        from consents import ledger

        try:
            while not self.stopping.wait(SEAL_EVERY):
                started = time.perf_counter()
                outcome = ledger.seal()
                self.runs.append((time.perf_counter() - started, outcome.sealed))
        except BaseException as exc:  # a figure without its sealer would not be fair
            self.error = exc
        finally:
            connection.close()


def queries_per_decision(samples: int = 20) -> tuple[float, float]:
    """Round trips of one decision and of its receipt, counted in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from consents.models import Decision, Method
    from consents.receipts import receipt_jws
    from consents.services import consent_record

    purposes = _consent_purposes()
    decision = receipt = 0
    for i in range(samples):
        with CaptureQueriesContext(connection) as captured:
            event = consent_record(
                subject_id=uuid.uuid4(),
                purpose=purposes[i % len(purposes)],
                decision=Decision.GRANTED,
                method=Method.PANEL,
            )
        decision += len(captured)
        with CaptureQueriesContext(connection) as captured:
            receipt_jws(event)
        receipt += len(captured)
    return decision / samples, receipt / samples


# Filling the ledger


def fill(total: int) -> None:
    """Insert `total` unsealed events of new people fast (COPY), each with its
    valid content hash, and their current states (what verify checks)."""
    from django.db import connection

    from consents.ledger import event_hash
    from consents.models import ConsentEvent, PurposeNotice
    from consents.services import policy_version_in_force

    notices = {}
    for purpose in _consent_purposes():
        notices[purpose.pk] = (
            PurposeNotice.objects.filter(purpose=purpose).order_by("-version").first()
        )
    purpose_ids = list(notices)
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    after = ConsentEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=after)
    columns = (
        "uuid, subject_id, purpose_id, notice_id, policy_version_id, decision, method, "
        "created_at, ip_truncated, user_agent_family, gpc_signal, prev_hash, hash"
    )
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(
            f"COPY consents_consentevent ({columns}) FROM STDIN"
        ) as copy,
    ):
        for i in range(total):
            purpose_id = purpose_ids[i % len(purpose_ids)]
            notice = notices[purpose_id]
            event_uuid, subject = uuid.uuid4(), uuid.uuid4()
            created = start + timedelta(milliseconds=i)
            digest = event_hash(
                uuid=event_uuid,
                subject_id=subject,
                purpose_id=purpose_id,
                notice_hash=notice.content_hash,
                policy_version_id=policy_id,
                policy_hash=policy_hash,
                decision="granted",
                method="panel",
                created_at=created,
                ip_truncated="203.0.113.0",
                user_agent_family="Firefox",
            )
            copy.write_row(
                (
                    event_uuid,
                    subject,
                    purpose_id,
                    notice.pk,
                    policy_id,
                    "granted",
                    "panel",
                    created,
                    "203.0.113.0",
                    "Firefox",
                    False,
                    "",
                    digest,
                )
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consents_consentstate (subject_id, purpose_id, decision, event_id, "
            "updated_at) SELECT subject_id, purpose_id, decision, id, created_at "
            "FROM consents_consentevent WHERE id > %s",
            [after],
        )
    vacuum()


def vacuum() -> None:
    """As autovacuum would have left the tables: hint bits set, statistics
    fresh, so that no figure pays for the bulk load before it."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("consentevent", "consentstate", "ledgerleaf", "ledgernode"):
            cursor.execute(f"VACUUM ANALYZE consents_{table}")


def fill_to(total: int) -> None:
    from consents.models import ConsentEvent

    missing = total - ConsentEvent.objects.count()
    if missing > 0:
        fill(missing)


# Figure 2: sealing


def seal_timed() -> tuple[int, float, float]:
    """Seal every unsealed event; returns (events, seal seconds, seconds to
    read the same rows back in the sealer's batches: the baseline)."""
    from django.db import connection

    from consents import ledger
    from consents.models import LedgerSeal

    last = LedgerSeal.objects.order_by("-size").values_list("last_event_id", flat=True).first()
    after = last or 0
    started = time.perf_counter()
    rows = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT id, hash FROM consents_consentevent WHERE id > %s ORDER BY id LIMIT %s",
                [after, ledger.SEAL_BATCH],
            )
            chunk = cursor.fetchall()
            if not chunk:
                break
            rows += len(chunk)
            after = chunk[-1][0]
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    outcome = ledger.seal()
    seal_s = time.perf_counter() - started
    assert outcome.sealed == rows, (outcome.sealed, rows)
    vacuum()
    return rows, seal_s, read_s


# Figure 3: verify


def measured(script: str, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", script + _MEASURE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"a measuring process failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# Figure 4: inclusion proofs


def proof_mean_ms(samples: int) -> float:
    """Mean milliseconds of ledger.inclusion_proof for random sealed events."""
    from consents import ledger
    from consents.models import ConsentEvent, LedgerLeaf

    size = LedgerLeaf.objects.count()
    places = random.Random(9).sample(range(1, size + 1), min(samples, size))
    ids = dict(LedgerLeaf.objects.filter(seq__in=places).values_list("seq", "event_id"))
    events = ConsentEvent.objects.in_bulk(ids.values())
    ledger.inclusion_proof(events[ids[places[0]]])  # warm
    total = 0.0
    for place in places:
        event = events[ids[place]]
        started = time.perf_counter()
        proof = ledger.inclusion_proof(event)
        total += time.perf_counter() - started
        assert proof is not None and proof.leaf_index == place - 1
    return total / len(places) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--proofs", type=int, default=200)
    args, _others = parser.parse_known_args()  # bench/run.py passes every benchmark's options
    if args.events < PROOF_SMALL * 10:
        sys.exit(f"--events must be at least {PROOF_SMALL * 10}")

    keys = tempfile.mkdtemp(prefix="clareza-bench-keys-")  # the bench ledger's own signing key
    atexit.register(shutil.rmtree, keys, ignore_errors=True)
    os.environ.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": "http://127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
            "SIGNING_KEY_DIR": keys,
        }
    )
    os.environ.pop("REDIS_URL", None)  # nothing here queues work: Celery stays eager
    url = fresh_database("ledger")
    from consents.demo import seed_inventory
    from consents.keys import signing_key
    from policies.demo import seed_policies
    from policies.models import PolicyVersion

    seed_inventory()
    seed_policies()  # a privacy policy in force: every event records it
    PolicyVersion.objects.filter(status=PolicyVersion.Status.DRAFT).delete()
    signing_key()  # made once here, before the clients race to make it
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    small = args.events // 10
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    fill_to(PROOF_SMALL)
    seal_timed()
    proof_small = proof_mean_ms(args.proofs)

    fill_to(small)
    seal_timed()
    verify_small = measured(VERIFY, env)

    fill_to(args.events)
    sealed, seal_s, read_s = seal_timed()
    print(f"2. sealing: {sealed:,} events inserted unsealed (COPY), then one ledger.seal()")
    print(f"  seal     {sealed / seal_s:10,.0f} events/s  ({seal_s:.1f} s)")
    print(f"  baseline {sealed / read_s:10,.0f} rows/s read back (SELECT id, hash ORDER BY id)")
    print(f"  ratio    {read_s / seal_s:10.2f} (seal rate / read rate; target >= 50,000/s)")

    verify = measured(VERIFY, env)
    scan = measured(SCAN, env)
    assert verify["result"] == scan["result"] == args.events, (verify, scan)
    mib = 1024
    print(f"3. verify_ledger: {args.events:,} events (a process of its own; peak = VmHWM)")
    print(
        f"  verify   {args.events / verify['seconds']:10,.0f} events/s  "
        f"({verify['seconds']:.1f} s), peak {verify['hwm'] / mib:.0f} MiB "
        f"(+{(verify['hwm'] - verify['hwm_before']) / mib:.0f} MiB over Django loaded)"
    )
    print(
        f"  baseline {args.events / scan['seconds']:10,.0f} rows/s plain scan over COPY "
        f"({scan['seconds']:.1f} s), peak {scan['hwm'] / mib:.0f} MiB"
    )
    print(f"  ratio    {scan['seconds'] / verify['seconds']:10.2f} (verify rate / scan rate)")
    print(
        f"  memory   {verify_small['hwm'] / mib:.0f} MiB at {small:,} events vs "
        f"{verify['hwm'] / mib:.0f} MiB at {args.events:,} "
        f"(ratio {verify['hwm'] / verify_small['hwm']:.2f}: flat means ~1.0); "
        f"growth over Django loaded +{(verify_small['hwm'] - verify_small['hwm_before']) / mib:.0f}"
        f" vs +{(verify['hwm'] - verify['hwm_before']) / mib:.0f} MiB"
    )

    proof_large = proof_mean_ms(args.proofs)
    print(f"4. inclusion proof: mean of {args.proofs} random sealed events")
    print(f"  at {PROOF_SMALL:>9,} events {proof_small:8.2f} ms")
    print(f"  at {args.events:>9,} events {proof_large:8.2f} ms")
    print(f"  ratio    {proof_large / proof_small:10.2f} (large / small: constant means ~1.0)")

    decision_queries, receipt_queries = queries_per_decision()
    # The baseline before and after the service, and their mean as the
    # reference: on a shared machine the load can change within a minute.
    before_rate = clients("baseline", args.clients, args.seconds)
    sealer = Sealer()
    sealer.start()
    service_rate = clients("service", args.clients, args.seconds)
    sealer.stopping.set()
    sealer.join()
    if sealer.error is not None:
        sys.exit(f"the sealer failed during the decisions: {sealer.error!r}")
    after_rate = clients("baseline", args.clients, args.seconds)
    baseline_rate = (before_rate + after_rate) / 2
    runs = [seconds for seconds, sealed in sealer.runs if sealed]
    print(
        f"1. decisions: {args.clients} client processes, {args.seconds:g} s each, a new person "
        "per decision; ledger.seal() every second meanwhile"
    )
    print(
        f"  service  {service_rate:10,.0f} decisions/s (consent_record + signed receipt; "
        f"{decision_queries:.0f} + {receipt_queries:.0f} statements each, BEGIN and COMMIT "
        "included)"
    )
    print(
        f"  baseline {baseline_rate:10,.0f} plain ORM inserts/s, autocommit (1 statement each; "
        f"{before_rate:,.0f} before the service, {after_rate:,.0f} after)"
    )
    print(f"  ratio    {service_rate / baseline_rate:10.2f} (service / baseline; target >= 0.5)")
    if runs:
        print(
            f"  sealer   {len(sealer.runs)} runs, {sum(s for _, s in sealer.runs):,} events "
            f"sealed, longest run {max(runs) * 1000:.0f} ms"
        )
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
