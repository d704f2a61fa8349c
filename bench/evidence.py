"""The auditor's evidence export benchmark (issue 11: "The auditor export of
1,000,000 events: memory flat against 100,000"), on PostgreSQL.

The ledger is filled by COPY with valid content hashes (one day of --small
events, default 100,000, then another day of --events, default 1,000,000,
each event a different pseudonymous person) and sealed into the Merkle tree.

1. Memory: the build of each day's export (insight.evidence.evidence_build:
   the streamed events.jsonl, the notices and policies, the checkpoints with
   the range proof, the record of processing...), each in a process of its
   own: the process's peak resident memory (VmHWM) before and after. Flat
   means a ratio big/small of ~1.0.
2. Time: events per second of each build, and of the export's own script
   checking the big ZIP offline (python3 -I verify_offline.py --evidence),
   with that process's peak memory.

Usage: python bench/evidence.py [--events 1000000] [--small 100000]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

SMALL_DAY, BIG_DAY = date(2026, 1, 5), date(2026, 2, 3)

# The child prints JSON: seconds, VmHWM (KiB) before and after, events, size.
BUILD = """
import json, time
import django
django.setup()
from django.conf import settings
settings.DEBUG = False  # as in production: no query log growing with every query
from insight.evidence import evidence_build
from insight.models import EvidenceExport


def hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


export = EvidenceExport.objects.get(uuid="EXPORT")
EvidenceExport.objects.filter(pk=export.pk).update(status="queued", progress=0)
before = hwm()
started = time.perf_counter()
done = evidence_build(export_uuid="EXPORT")
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "hwm_before": before, "hwm": hwm(),
                  "events": done.events, "size": done.size}))
"""


# The export's script as an auditor runs it, then its own peak memory (VmHWM, KiB)
# on stderr: a child's rusage would count the benchmark's memory from before exec.
CHECK = """
import runpy, sys
script, path = sys.argv[1], sys.argv[2]
sys.argv = [script, "--evidence", path]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            print(line.split()[1], file=sys.stderr)
"""


def fill(day: date, total: int) -> None:
    """`total` decisions of different people on `day` (UTC noon onwards), by
    COPY, with valid content hashes."""
    from django.db import connection

    from consents.ledger import event_hash
    from consents.models import LegalBasis, Purpose, PurposeNotice
    from consents.services import policy_version_in_force

    purposes = list(Purpose.objects.filter(legal_basis=LegalBasis.CONSENT).order_by("pk"))
    notices = {
        p.pk: PurposeNotice.objects.filter(purpose=p).order_by("-version").first() for p in purposes
    }
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    step = timedelta(microseconds=max(1, 36_000_000_000 // total))  # within ten hours
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
            event_uuid, subject, created = uuid.uuid4(), uuid.uuid4(), start + step * i
            digest = event_hash(
                uuid=event_uuid,
                subject_id=subject,
                purpose_id=purpose.pk,
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
                    purpose.pk,
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


def run(script: str, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if completed.returncode != 0:
        sys.exit(f"a measure failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")

    url = fresh_database("evidence")
    from django.contrib.auth import get_user_model
    from django.db import connection

    from consents import ledger
    from consents.demo import seed_inventory
    from insight.models import EvidenceExport
    from policies.demo import seed_policies

    seed_inventory()
    seed_policies()
    started = time.perf_counter()
    fill(SMALL_DAY, args.small)
    fill(BIG_DAY, args.events)
    filled = time.perf_counter() - started
    while ledger.seal().sealed:
        pass
    sealed = time.perf_counter() - started - filled
    with connection.cursor() as cursor:
        for table in ("consentevent", "ledgerleaf", "ledgernode"):
            cursor.execute(f"VACUUM ANALYZE consents_{table}")
    print(f"filled {args.small + args.events:,} events in {filled:.0f} s, sealed in {sealed:.0f} s")
    staff = get_user_model().objects.create_user(
        email="auditor@bench.example", password=None, is_staff=True, is_superuser=True
    )

    def export_of(day: date) -> EvidenceExport:
        return EvidenceExport.objects.create(
            date_from=day, date_to=day, requested_by=staff, requested_by_email=staff.email
        )

    small, big = export_of(SMALL_DAY), export_of(BIG_DAY)
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "DATABASE_URL": url, "RIGHTS_EXPORT_ROOT": root}
        env.pop("REDIS_URL", None)
        small_run = run(BUILD.replace("EXPORT", str(small.uuid)), env)
        big_run = run(BUILD.replace("EXPORT", str(big.uuid)), env)
        assert small_run["events"] == args.small and big_run["events"] == args.events, (
            small_run,
            big_run,
        )
        print(
            f"1. memory of a build, each in its own process ({args.small:,} vs "
            f"{args.events:,} events)"
        )
        print(
            f"  process VmHWM: {small_run['hwm'] / 1024:6.1f} MiB vs "
            f"{big_run['hwm'] / 1024:6.1f} MiB: ratio {big_run['hwm'] / small_run['hwm']:.2f} "
            f"(before the build: {small_run['hwm_before'] / 1024:.1f} / "
            f"{big_run['hwm_before'] / 1024:.1f} MiB)"
        )
        sizes = small_run["size"] / 2**20, big_run["size"] / 2**20
        print(f"  ZIP size: {sizes[0]:,.1f} MiB vs {sizes[1]:,.1f} MiB")
        print("2. time")
        for name, result in (("small", small_run), ("big", big_run)):
            print(
                f"  build {name}: {result['seconds']:6.1f} s "
                f"({result['events'] / result['seconds']:,.0f} events/s)"
            )
        folder = os.path.join(root, "check")
        path = os.path.join(root, "evidence", f"{big.uuid}.zip")
        with zipfile.ZipFile(path) as archive:
            archive.extract("verify_offline.py", folder)
        script = os.path.join(folder, "verify_offline.py")
        started = time.perf_counter()
        checked = subprocess.run(
            ["python3", "-I", "-c", CHECK, script, path],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        assert "PASS" in checked.stdout, checked.stdout + checked.stderr
        peak = int(checked.stderr.strip().splitlines()[-1]) / 1024
        print(
            f"  offline check of the big ZIP (python3 -I verify_offline.py --evidence): "
            f"{seconds:.1f} s ({args.events / seconds:,.0f} events/s), VmHWM {peak:.1f} MiB"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
