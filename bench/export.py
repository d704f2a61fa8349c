"""Copy-of-one's-data benchmark (issue 10: "Speed and memory"), on PostgreSQL.

Two customers: one with 100 ledger events and 10 emails, one with 10,000
events (--events) and 1,000 emails (--emails), filled by COPY with valid
hashes and sealed into the ledger's Merkle tree, so that every receipt carries
its inclusion proof, as in production.

1. Memory: the build of each copy (rights.exports.export_build: the ZIP with
   data.json, the CSVs, the summary, a signed receipt per event), each in a
   process of its own: the process's peak resident memory (VmHWM), and with
   --trace the peak of Python's allocations during the build (tracemalloc,
   which slows the build down several times). Flat means a ratio big/small
   of ~1.0.
2. Time: the big copy's build against a plain dump of
   the same rows (every row of the person's tables, as JSON lines, into a ZIP
   in the same process): what the sections, the CSV and HTML, and above all
   the receipts (an ES256 signature and an inclusion proof per event) cost.

Usage: python bench/export.py [--events 10000] [--emails 1000] [--trace]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

# The child prints JSON: seconds, peak traced bytes (when tracing), VmHWM (KiB), size.
BUILD = """
import json, sys, time, tracemalloc
import django
django.setup()
from django.conf import settings
settings.DEBUG = False  # as in production: no query log growing with every query
from rights.exports import export_build
from rights.models import DataExport

def hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

trace = TRACE
export = DataExport.objects.get(uuid="EXPORT")
# Everything imported and connected before the measure starts.
DataExport.objects.filter(pk=export.pk).update(status="queued", progress=0)
if trace:
    tracemalloc.start()
started = time.perf_counter()
done = export_build(export_uuid="EXPORT")
elapsed = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1] if trace else 0
print(json.dumps({"seconds": elapsed, "traced_peak": peak, "hwm": hwm(), "size": done.size}))
"""

# The same rows, dumped plainly: every row of the person's tables as a JSON line.
DUMP = """
import json, time, zipfile
import django
django.setup()
from django.conf import settings
settings.DEBUG = False
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from consents.models import ConsentEvent, ConsentState, PurposeNotice, PersonalDatum
from shop.models import Interest
from portal.models import OutboxItem
from rights.models import RightsRequest, DataExport

subject = "SUBJECT"
tables = [
    ConsentEvent.objects.filter(subject_id=subject).order_by("id"),
    PurposeNotice.objects.filter(events__subject_id=subject).distinct(),
    ConsentState.objects.filter(subject_id=subject),
    OutboxItem.objects.filter(Q(subject_id=subject) | Q(recipient="EMAIL")).order_by("id")
    .values("kind", "topic", "title", "recipient", "status", "attempts", "created_at", "sent_at"),
    PersonalDatum.objects.filter(subject_id=subject),
    Interest.objects.filter(subject_id=subject),
    RightsRequest.objects.filter(subject_id=subject),
    DataExport.objects.filter(subject_id=subject),
]
started = time.perf_counter()
with zipfile.ZipFile("PATH", "w", compression=zipfile.ZIP_DEFLATED) as archive:
    with archive.open("dump.jsonl", "w", force_zip64=True) as out:
        for rows in tables:
            if not hasattr(rows, "_fields") or not rows._fields:
                rows = rows.values()
            for row in rows.iterator(chunk_size=500):
                out.write(json.dumps(row, cls=DjangoJSONEncoder).encode() + b"\\n")
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def fill_events(subject: uuid.UUID, total: int) -> None:
    """`total` decisions of one person, alternating grant and withdrawal over
    the consent purposes, with valid content hashes (COPY), then sealed."""
    from django.db import connection

    from consents import ledger
    from consents.ledger import event_hash
    from consents.models import LegalBasis, Purpose, PurposeNotice
    from consents.services import policy_version_in_force

    purposes = list(Purpose.objects.filter(legal_basis=LegalBasis.CONSENT).order_by("pk"))
    notices = {
        p.pk: PurposeNotice.objects.filter(purpose=p).order_by("-version").first() for p in purposes
    }
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    start = datetime(2026, 1, 1, tzinfo=UTC)
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
            purpose = purposes[i % len(purposes)]
            notice = notices[purpose.pk]
            decision = "granted" if (i // len(purposes)) % 2 == 0 else "withdrawn"
            event_uuid, created = uuid.uuid4(), start + timedelta(seconds=i)
            digest = event_hash(
                uuid=event_uuid,
                subject_id=subject,
                purpose_id=purpose.pk,
                notice_hash=notice.content_hash,
                policy_version_id=policy_id,
                policy_hash=policy_hash,
                decision=decision,
                method="panel",
                created_at=created,
                ip_truncated="203.0.113.0",
                user_agent_family="Firefox",
            )
            copy.write_row(
                (
                    event_uuid,
                    subject,
                    purpose.pk,
                    notice.pk,
                    policy_id,
                    decision,
                    "panel",
                    created,
                    "203.0.113.0",
                    "Firefox",
                    False,
                    "",
                    digest,
                )
            )
    while ledger.seal().sealed:
        pass


def fill_emails(subject: uuid.UUID, address: str, total: int) -> None:
    from portal.models import OutboxItem

    now = datetime.now(UTC)
    OutboxItem.objects.bulk_create(
        [
            OutboxItem(
                kind="policy_update" if i % 2 else "email",
                topic="emails/bench",
                recipient=address,
                subject_id=subject if i % 2 else None,
                title=f"Message {i}",
                status=OutboxItem.Status.SENT,
                attempts=1,
                sent_at=now,
            )
            for i in range(total)
        ],
        batch_size=1000,
    )


def customer(email: str, events: int, emails: int):
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from rights.models import DataExport
    from rights.services import request_create

    user = get_user_model().objects.create_user(email=email, password=None)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    fill_events(user.subject_id, events)
    fill_emails(user.subject_id, email, emails)
    request = request_create(user=user, kind="access")
    return user, DataExport.objects.create(
        subject_id=user.subject_id, user=user, request=request, language="en"
    )


def run(script: str, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if completed.returncode != 0:
        sys.exit(f"a measure failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def build(export, env: dict[str, str], *, trace: bool) -> dict:
    script = BUILD.replace("EXPORT", str(export.uuid)).replace("TRACE", str(trace))
    return run(script, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--emails", type=int, default=1_000)
    parser.add_argument("--trace", action="store_true", help="also measure with tracemalloc")
    args = parser.parse_args()

    url = fresh_database("export")
    from consents.demo import seed_inventory
    from policies.demo import seed_policies

    seed_inventory()
    seed_policies()
    _small_user, small = customer("small@bench.example", 100, 10)
    big_user, big = customer("big@bench.example", args.events, args.emails)

    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "DATABASE_URL": url, "RIGHTS_EXPORT_ROOT": root}
        env.pop("REDIS_URL", None)
        small_mem = build(small, env, trace=False)
        big_mem = build(big, env, trace=False)
        print(f"1. memory of a build, each in its own process (events / emails: 100 / 10 vs "
              f"{args.events:,} / {args.emails:,})")  # fmt: skip
        print(
            f"  process VmHWM:            {small_mem['hwm'] / 1024:6.1f} MiB vs "
            f"{big_mem['hwm'] / 1024:6.1f} MiB: ratio {big_mem['hwm'] / small_mem['hwm']:.2f}"
        )
        print(
            f"  ZIP size: {small_mem['size'] / 1024:,.0f} KiB vs {big_mem['size'] / 1024:,.0f} KiB"
        )

        if args.trace:
            small_traced = build(small, env, trace=True)
            big_traced = build(big, env, trace=True)
            print(
                f"  Python allocations, peak: {small_traced['traced_peak'] / 2**20:6.2f} MiB vs "
                f"{big_traced['traced_peak'] / 2**20:6.2f} MiB: ratio "
                f"{big_traced['traced_peak'] / small_traced['traced_peak']:.2f}"
            )
        timed = big_mem
        dump = run(
            DUMP.replace("SUBJECT", str(big_user.subject_id))
            .replace("EMAIL", big_user.email)
            .replace("PATH", os.path.join(root, "dump.zip")),
            env,
        )
        print(f"2. time of the big copy ({args.events:,} events, {args.emails:,} emails)")
        print(
            f"  build {timed['seconds']:6.2f} s ({args.events / timed['seconds']:,.0f} events/s) "
            f"vs plain dump of the same rows {dump['seconds']:5.2f} s: ratio "
            f"{timed['seconds'] / dump['seconds']:.1f}"
        )


if __name__ == "__main__":
    main()
