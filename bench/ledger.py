"""Consent ledger benchmarks (issue: inventory, opt-in and ledger).

1. Decisions per second through consents.services.consent_record plus a signed
   receipt, one transaction each, against a plain single-row ORM insert measured
   in the same run (the baseline).
2. verify_ledger over N events (default 1,000,000): time and peak memory, against
   a plain scan of the same rows in the same chunks (the baseline), and peak
   memory at N/10 to show it stays flat.

Usage: python bench/ledger.py [--decisions 2000] [--events 1000000]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database, peak_rss_mib

SCAN = """
import django, sys
django.setup()
from consents.ledger import _rows
n = sum(1 for _ in _rows(5000))
print(n)
"""


def decisions(count: int) -> tuple[float, float]:
    from consents.models import Decision, Method, Purpose
    from consents.receipts import receipt_jws
    from consents.services import consent_record
    from portal.models import OutboxItem

    purposes = list(
        Purpose.objects.filter(legal_basis="consent").prefetch_related("data_categories")
    )
    # Warm both paths (connections, caches, the signing key) before timing.
    consent_record(
        subject_id=uuid.uuid4(), purpose=purposes[0], decision=Decision.GRANTED, method=Method.PANEL
    )
    OutboxItem.objects.create(kind="email", recipient="warm@example.com", title="s")

    started = time.perf_counter()
    for i in range(count):
        event = consent_record(
            subject_id=uuid.uuid4(),
            purpose=purposes[i % len(purposes)],
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
        receipt_jws(event)
    service_rate = count / (time.perf_counter() - started)

    started = time.perf_counter()
    for i in range(count):
        OutboxItem.objects.create(kind="email", recipient=f"b{i}@example.com", title="s")
    baseline_rate = count / (time.perf_counter() - started)
    return service_rate, baseline_rate


def fill_ledger(total: int) -> None:
    """Append `total` well-chained events fast (COPY), then move the signed head."""
    from django.db import connection

    from consents.ledger import GENESIS, event_hash, head_signature
    from consents.models import ConsentEvent, LedgerHead, Purpose

    notices = {
        p.pk: p.notices.order_by("-version").first()
        for p in Purpose.objects.filter(legal_basis="consent")
    }
    purpose_ids = list(notices)
    last = ConsentEvent.objects.order_by("-seq").first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    columns = (
        "seq, uuid, subject_id, purpose_id, notice_id, decision, method, created_at, "
        "ip_truncated, user_agent_family, gpc_signal, prev_hash, hash"
    )
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(
            f"COPY consents_consentevent ({columns}) FROM STDIN"
        ) as copy,
    ):
        for i in range(total):
            seq += 1
            purpose_id = purpose_ids[i % len(purpose_ids)]
            notice = notices[purpose_id]
            event_uuid, subject = uuid.uuid4(), uuid.uuid4()
            created = start + timedelta(milliseconds=seq)
            digest = event_hash(
                seq=seq,
                uuid=event_uuid,
                subject_id=subject,
                purpose_id=purpose_id,
                notice_hash=notice.content_hash,
                policy_version_id=None,
                decision="granted",
                method="panel",
                created_at=created,
                ip_truncated="203.0.113.0",
                user_agent_family="Firefox",
                prev_hash=prev,
            )
            copy.write_row(
                (
                    seq,
                    event_uuid,
                    subject,
                    purpose_id,
                    notice.pk,
                    "granted",
                    "panel",
                    created,
                    "203.0.113.0",
                    "Firefox",
                    False,
                    prev,
                    digest,
                )
            )
            prev = digest
    LedgerHead.objects.update_or_create(
        pk=1, defaults={"seq": seq, "hash": prev, "signature": head_signature(seq, prev)}
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE consents_consentevent")


def verify_run(env: dict[str, str]) -> tuple[float, float, float, float]:
    python = sys.executable
    verify_s, verify_mib, out = peak_rss_mib([python, "manage.py", "verify_ledger"], env)
    assert "Ledger intact" in out, out
    scan_s, scan_mib, _ = peak_rss_mib([python, "-c", SCAN], env)
    return verify_s, verify_mib, scan_s, scan_mib


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    url = fresh_database("ledger")
    from consents.demo import seed_inventory

    seed_inventory()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)

    service_rate, baseline_rate = decisions(args.decisions)
    print(f"decisions: {args.decisions} through consent_record + signed receipt")
    print(f"  service  {service_rate:8.0f} decisions/s")
    print(f"  baseline {baseline_rate:8.0f} plain ORM inserts/s")
    print(f"  ratio    {service_rate / baseline_rate:8.2f} (service / baseline)")

    small = max(args.events // 10, 1)
    from consents.models import ConsentEvent

    fill_ledger(small - ConsentEvent.objects.count())
    _small_s, v_small_mib, _scan_s, _scan_mib = verify_run(env)
    fill_ledger(args.events - ConsentEvent.objects.count())
    verify_s, verify_mib, scan_s, scan_mib = verify_run(env)
    print(f"verify_ledger: {args.events} events")
    print(
        f"  verify   {verify_s:8.1f} s  ({args.events / verify_s:,.0f} events/s), "
        f"peak {verify_mib:.0f} MiB"
    )
    print(f"  baseline {scan_s:8.1f} s  plain scan of the same rows, peak {scan_mib:.0f} MiB")
    print(f"  ratio    {verify_s / scan_s:8.2f} (verify time / scan time)")
    print(
        f"  memory   {v_small_mib:.0f} MiB at {small} events vs {verify_mib:.0f} MiB "
        f"at {args.events} "
        f"(ratio {verify_mib / v_small_mib:.2f}: flat means ~1.0)"
    )


if __name__ == "__main__":
    main()
