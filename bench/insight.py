"""Insight benchmark (issue 11: "Speed and memory"), on PostgreSQL.

1. The dashboard (the admin page, as a privacy analyst, per week: the widest
   page) over a large ledger against the same page over 50,000 events. The
   page reads only the rollup tables, so the ratio should stay near 1.0
   (target <= 1.5). Events are filled with COPY (valid content hashes, the
   current state beside them), spread over a year, for SUBJECTS = events / 5
   people, then folded by the real rollup (insight.rollup.ledger_rollup).
2. Rolling up a day of 100,000 new events (the beat task's fold, with its
   look-up of those people's earlier decisions) against a plain GROUP BY over
   the same rows (counts per week, purpose, decision and method, in one
   statement that knows nothing of earlier events).

Usage: python bench/insight.py [--events 5000000] [--day 100000] [--renders 15]
       python bench/insight.py --compare SMALL_DB LARGE_DB  (two databases it built:
       renders taken in turn, when the machine's load moves between the two sizes)
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("STAFF_REQUIRE_MFA", "0")
from _setup import fresh_database

# (decision, method, weight): what a year of decisions looks like.
MIX = [
    ("granted", "signup", 30),
    ("refused", "signup", 30),
    ("granted", "panel", 12),
    ("withdrawn", "panel", 12),
    ("withdrawn", "email_link", 5),
    ("withdrawn", "expiry", 5),
    ("withdrawn", "gpc", 3),
    ("granted", "email_link", 3),
]


def fill(total: int, *, people: int, start, span: timedelta, rng: random.Random) -> None:
    """`total` events by COPY, at moments spread over `span` from `start`, each
    with its valid content hash; the current states follow."""
    from django.db import connection

    from consents.ledger import event_hash
    from consents.models import ConsentEvent, LegalBasis, Purpose, PurposeNotice
    from consents.services import policy_version_in_force

    notices = {
        p.pk: PurposeNotice.objects.filter(purpose=p).order_by("-version").first()
        for p in Purpose.objects.filter(legal_basis=LegalBasis.CONSENT)
    }
    purpose_ids = list(notices)
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    kinds = [(d, m) for d, m, _w in MIX]
    weights = [w for _d, _m, w in MIX]
    after = ConsentEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    step = span / total
    columns = (
        "uuid, subject_id, purpose_id, notice_id, policy_version_id, decision, method, "
        "created_at, ip_truncated, user_agent_family, gpc_signal, prev_hash, hash"
    )
    subjects = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(people)]
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(
            f"COPY consents_consentevent ({columns}) FROM STDIN"
        ) as copy,
    ):
        for i in range(total):
            purpose_id = purpose_ids[i % len(purpose_ids)]
            notice = notices[purpose_id]
            decision, method = rng.choices(kinds, weights)[0]
            event_uuid, subject = uuid.uuid4(), subjects[rng.randrange(people)]
            created = start + step * i
            gpc = method == "gpc"
            digest = event_hash(
                uuid=event_uuid,
                subject_id=subject,
                purpose_id=purpose_id,
                notice_hash=notice.content_hash,
                policy_version_id=policy_id,
                policy_hash=policy_hash,
                decision=decision,
                method=method,
                created_at=created,
                ip_truncated="203.0.113.0",
                user_agent_family="Firefox",
                gpc_signal=gpc,
            )
            copy.write_row(
                (event_uuid, subject, purpose_id, notice.pk, policy_id, decision, method,
                 created, "203.0.113.0", "Firefox", gpc, "", digest)
            )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consents_consentstate (subject_id, purpose_id, decision, event_id, "
            "updated_at) SELECT DISTINCT ON (subject_id, purpose_id) subject_id, purpose_id, "
            "decision, id, created_at FROM consents_consentevent WHERE id > %s "
            "ORDER BY subject_id, purpose_id, id DESC "
            "ON CONFLICT (subject_id, purpose_id) DO UPDATE SET decision = excluded.decision, "
            "event_id = excluded.event_id, updated_at = excluded.updated_at",
            [after],
        )
        for table in ("consents_consentevent", "consents_consentstate", "insight_tally"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def render_seconds(renders: int) -> float:
    """Median time of the dashboard page, as a privacy analyst, per week, with
    templates cached as in production (the demo's DEBUG parses them per request)."""
    import copy

    from django.conf import settings
    from django.test import Client, override_settings

    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["OPTIONS"]["loaders"] = [
        (
            "template_partials.loader.Loader",
            [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
        )
    ]
    with override_settings(TEMPLATES=templates):
        return _render_seconds(renders, Client)


def _render_seconds(renders: int, Client) -> float:

    from insight.services import analyst_group_ensure
    from portal.models import User

    analyst, _created = User.objects.get_or_create(
        email="analyst@bench.example", defaults={"is_staff": True}
    )
    analyst.groups.set([analyst_group_ensure()])
    client = Client()
    client.force_login(analyst)
    times = []
    for _n in range(renders + 2):
        started = time.perf_counter()
        response = client.get("/admin/insight/tally/", {"period": "week"})
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return statistics.median(times[2:])  # the first two warm the caches


PLAIN_GROUP_BY = (
    "SELECT date_trunc('week', created_at AT TIME ZONE %s), purpose_id, decision, method, "
    "count(DISTINCT subject_id) FROM consents_consentevent WHERE id > %s "
    "GROUP BY 1, 2, 3, 4"
)


def compare(small: str, large: str, renders: int) -> None:
    """Renders of the page over two databases already built by this script,
    taken in turn, so that both sizes see the same load on the machine."""
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{small}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from consents.models import ConsentEvent

    setup_test_environment()
    times: dict[str, list[float]] = {small: [], large: []}
    sizes = {}
    for _round in range(renders):
        for name in (small, large):
            connection.close()
            connection.settings_dict["NAME"] = name
            sizes[name] = ConsentEvent.objects.count()
            times[name].append(render_seconds(3))
    a, b = (statistics.median(times[n]) for n in (small, large))
    print(f"1. dashboard per week, renders taken in turn ({renders} rounds of 3)")
    print(f"  {sizes[small]:>10,} events  {a * 1000:8.1f} ms")
    print(f"  {sizes[large]:>10,} events  {b * 1000:8.1f} ms   ratio {b / a:.2f} (target <= 1.5)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3], renders=7)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--day", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=15)
    args = parser.parse_args()
    fresh_database("insight")
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from consents.demo import seed_inventory
    from insight.rollup import figures_take, ledger_rollup
    from policies.demo import seed_policies

    setup_test_environment()  # the test client's host
    seed_inventory()
    seed_policies()
    rng = random.Random(11)
    now = timezone.now()
    year_ago = now - timedelta(days=365)
    span_small = timedelta(days=365) * args.small / args.events

    fill(args.small, people=max(args.small // 5, 1), start=year_ago, span=span_small, rng=rng)
    ledger_rollup()
    figures_take()
    small = render_seconds(args.renders)

    started = time.perf_counter()
    rest = args.events - args.small
    fill(rest, people=max(rest // 5, 1), start=year_ago + span_small,
         span=timedelta(days=365) - span_small - timedelta(days=1), rng=rng)  # fmt: skip
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    ledger_rollup()
    fold_all_s = time.perf_counter() - started
    figures_take()
    large = render_seconds(args.renders)

    print(f"1. dashboard per week, as a privacy analyst (median of {args.renders} renders)")
    print(f"  {args.small:>10,} events  {small * 1000:8.1f} ms")
    print(
        f"  {args.events:>10,} events  {large * 1000:8.1f} ms   "
        f"ratio {large / small:.2f} (target <= 1.5)"
    )
    print(
        f"  (large ledger filled by COPY in {fill_s:.0f} s; "
        f"folded from scratch in {fold_all_s:.0f} s)"
    )

    # 2. A day of new events: the fold against a plain GROUP BY of the same rows.
    from consents.models import ConsentEvent

    before = ConsentEvent.objects.order_by("-id").values_list("id", flat=True).first()
    fill(args.day, people=args.day // 2, start=now - timedelta(days=1),
         span=timedelta(hours=23), rng=rng)  # fmt: skip
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(PLAIN_GROUP_BY, [settings.TIME_ZONE, before])
        groups = len(cursor.fetchall())
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    folded = ledger_rollup()
    fold_s = time.perf_counter() - started
    assert folded == args.day, folded
    print(f"2. a day of {args.day:,} new events (half of them by people seen before)")
    print(f"  plain GROUP BY (count distinct, {groups} groups)  {plain_s:6.2f} s")
    print(
        f"  ledger_rollup                                {fold_s:6.2f} s   "
        f"ratio {fold_s / plain_s:.2f}"
    )


if __name__ == "__main__":
    main()
