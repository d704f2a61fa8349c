"""Insight benchmark (issue 11: "Speed and memory"), on PostgreSQL.

1. The dashboard (the admin page, as a privacy analyst, per week: the widest
   page) over a large ledger (5,000,000 events of 1,000,000 people) against
   the same page over 50,000 events. The page reads only the rollup tables, so
   the ratio should stay near 1.0 (target <= 1.5). Two databases are built in
   the run (the small one, then a copy of it filled up to the large size) and
   the renders are taken in turn, so that both sizes see the same load.
   Events are written by one INSERT ... SELECT per million (their content
   hashes computed by the database, with the verifier's own expression), spread
   over a year, for events / 5 people, and folded by the real rollup
   (insight.rollup.ledger_rollup).
2. Rolling up a day of 100,000 new events (half by people of the large
   ledger, with their history; half by new people, two events each) against a
   plain GROUP BY over the same rows (counts per week, purpose, decision and
   method, in one statement that knows nothing of earlier events).

Usage: python bench/insight.py [--events 5000000] [--small 50000] [--day 100000] [--renders 7]
       python bench/insight.py --compare SMALL_DB LARGE_DB  (two databases it built)
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("STAFF_REQUIRE_MFA", "0")
from _setup import fresh_database

# (decision, method, weight in %): what a year of decisions looks like.
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
CHUNK = 1_000_000  # events per INSERT

# People are md5(pool || number)::uuid: a pool's people can be drawn again later.
FILL_SQL = """
INSERT INTO consents_consentevent (uuid, subject_id, purpose_id, notice_id,
    policy_version_id, decision, method, created_at, ip_truncated,
    user_agent_family, gpc_signal, prev_hash, hash)
SELECT e.uuid, e.subject_id, e.purpose_id, e.notice_id, e.policy_version_id,
       e.decision, e.method, e.created_at, e.ip_truncated, e.user_agent_family,
       e.gpc_signal, '', {hash}
FROM (
    SELECT g.i, gen_random_uuid() AS uuid,
           md5(CASE WHEN random() < %(old_share)s
                    THEN %(old_pool)s || floor(random() * %(old_people)s)::bigint
                    ELSE %(pool)s || floor(random() * %(people)s)::bigint END)::uuid
               AS subject_id,
           pn.purpose_id, pn.notice_id, %(policy)s::bigint AS policy_version_id,
           k.decision, k.method, %(start)s::timestamptz + %(step)s * g.i AS created_at,
           '203.0.113.0' AS ip_truncated, 'Firefox' AS user_agent_family,
           k.method = 'gpc' AS gpc_signal
    FROM (SELECT i, floor(random() * 100)::int AS r
          FROM generate_series(%(first)s, %(last)s) AS i) AS g
    JOIN (SELECT * FROM unnest(%(purposes)s::bigint[], %(notices)s::bigint[],
                               %(notice_hashes)s::text[])
              WITH ORDINALITY AS x (purpose_id, notice_id, hash, n)) AS pn
        ON pn.n = g.i %% %(purpose_count)s + 1
    JOIN (SELECT * FROM unnest(%(lows)s::int[], %(highs)s::int[], %(decisions)s::text[],
                               %(methods)s::text[]) AS x (lo, hi, decision, method)) AS k
        ON g.r >= k.lo AND g.r < k.hi
) AS e
LEFT JOIN (SELECT unnest(%(notices)s::bigint[]) AS id,
                  unnest(%(notice_hashes)s::text[]) AS hash) AS n ON n.id = e.notice_id
LEFT JOIN (SELECT %(policy)s::bigint AS id, %(policy_hash)s::text AS hash) AS p
    ON p.id = e.policy_version_id
ORDER BY e.i
"""


def fill(total: int, *, pool: str, people: int, start, span: timedelta,
         old_pool: str = "", old_people: int = 1, old_share: float = 0.0) -> None:  # fmt: skip
    """`total` events at moments spread over `span` from `start`, by people of
    `pool` (and `old_share` of them by people of `old_pool`), each with its
    valid content hash; the current states follow."""
    from django.db import connection

    from consents.ledger import _SQL_EVENT_HASH
    from consents.models import ConsentEvent, LegalBasis, Purpose, PurposeNotice
    from consents.services import policy_version_in_force

    notices = [
        PurposeNotice.objects.filter(purpose=p).order_by("-version").first()
        for p in Purpose.objects.filter(legal_basis=LegalBasis.CONSENT).order_by("pk")
    ]
    policy_id, policy_hash = policy_version_in_force() or (None, "")
    lows, highs, low = [], [], 0
    for _d, _m, weight in MIX:
        lows.append(low)
        low += weight
        highs.append(low)
    assert low == 100
    after = ConsentEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    params = {
        "pool": pool,
        "people": people,
        "old_pool": old_pool,
        "old_people": old_people,
        "old_share": old_share,
        "policy": policy_id,
        "policy_hash": policy_hash,
        "start": start,
        "step": span / total,
        "purposes": [n.purpose_id for n in notices],
        "notices": [n.pk for n in notices],
        "notice_hashes": [n.content_hash for n in notices],
        "purpose_count": len(notices),
        "lows": lows,
        "highs": highs,
        "decisions": [d for d, _m, _w in MIX],
        "methods": [m for _d, m, _w in MIX],
    }
    sql = FILL_SQL.format(hash=_SQL_EVENT_HASH)
    with connection.cursor() as cursor:
        for first in range(0, total, CHUNK):
            last = min(first + CHUNK, total) - 1
            cursor.execute(sql, {**params, "first": first, "last": last})
            progress(f"filled {last + 1:,} of {total:,}")
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
    _check_hashes(after)


def progress(what: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def _check_hashes(after: int) -> None:
    """A few of the new events hash as the ledger's Python says (the fill is
    a valid ledger, not rows that only look like one)."""
    from consents.ledger import event_hash_of
    from consents.models import ConsentEvent

    for event in ConsentEvent.objects.filter(id__gt=after).order_by("id")[:3]:
        assert event.hash == event_hash_of(event), event.pk


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


def renders_in_turn(names: list[str], renders: int) -> dict[str, tuple[int, float]]:
    """Renders of the page over databases already built, taken in turn, so
    that every size sees the same load on the machine: {name: (events,
    median seconds)}."""
    from django.db import connection

    from consents.models import ConsentEvent

    times: dict[str, list[float]] = {name: [] for name in names}
    sizes = {}
    for _round in range(renders):
        for name in names:
            _use(name)
            sizes[name] = ConsentEvent.objects.count()
            times[name].append(render_seconds(3))
    connection.close()
    return {name: (sizes[name], statistics.median(times[name])) for name in names}


def _use(name: str) -> None:
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def print_renders(small: str, large: str, renders: int) -> None:
    found = renders_in_turn([small, large], renders)
    (n_small, a), (n_large, b) = found[small], found[large]
    print(f"1. dashboard per week, renders taken in turn ({renders} rounds of 3, medians)")
    print(f"  {n_small:>10,} events  {a * 1000:8.1f} ms")
    print(f"  {n_large:>10,} events  {b * 1000:8.1f} ms   ratio {b / a:.2f} (target <= 1.5)")


def compare(small: str, large: str, renders: int) -> None:
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{small}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    print_renders(small, large, renders)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3], renders=7)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--day", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=7)
    args = parser.parse_args()
    fresh_database("insight_small")
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
    now = timezone.now()
    year_ago = now - timedelta(days=365)
    span_small = timedelta(days=365) * args.small / args.events
    small_db = connection.settings_dict["NAME"]
    large_db = small_db.removesuffix("_small")

    fill(args.small, pool="s", people=max(args.small // 5, 1), start=year_ago, span=span_small)
    ledger_rollup()
    figures_take()

    # The large database: a copy of the small one, filled up to the large size.
    connection.close()
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{large_db}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{large_db}" TEMPLATE "{small_db}"')
    _use(large_db)
    rest = args.events - args.small
    people = max(rest // 5, 1)
    started = time.perf_counter()
    fill(rest, pool="l", people=people, start=year_ago + span_small,
         span=timedelta(days=365) - span_small - timedelta(days=1))  # fmt: skip
    fill_s = time.perf_counter() - started
    progress("folding the large ledger")
    started = time.perf_counter()
    ledger_rollup()
    fold_all_s = time.perf_counter() - started
    figures_take()

    progress("rendering")
    print_renders(small_db, large_db, args.renders)
    print(
        f"  (large ledger: {people + args.small // 5:,} people, filled in {fill_s:.0f} s; "
        f"folded from scratch in {fold_all_s:.0f} s, "
        f"{rest / fold_all_s:,.0f} events/s)"
    )

    # 2. A day of new events: the fold against a plain GROUP BY of the same rows.
    from consents.models import ConsentEvent

    _use(large_db)
    before = ConsentEvent.objects.order_by("-id").values_list("id", flat=True).first()
    fill(args.day, pool="d", people=args.day // 4, start=now - timedelta(days=1),
         span=timedelta(hours=23), old_pool="l", old_people=people, old_share=0.5)  # fmt: skip
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(PLAIN_GROUP_BY, [settings.TIME_ZONE, before])
        groups = len(cursor.fetchall())
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    folded = ledger_rollup()
    fold_s = time.perf_counter() - started
    assert folded == args.day, folded
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM consents_consentevent e WHERE e.id <= %s AND e.subject_id IN "
            "(SELECT subject_id FROM consents_consentevent WHERE id > %s)",
            [before, before],
        )
        history = cursor.fetchone()[0]
    print(
        f"2. a day of {args.day:,} new events (half by people of the ledger, "
        f"{history:,} earlier events of theirs read)"
    )
    print(f"  plain GROUP BY (count distinct, {groups} groups)  {plain_s:6.2f} s")
    print(
        f"  ledger_rollup                                {fold_s:6.2f} s   "
        f"ratio {fold_s / plain_s:.2f}"
    )


def _admin():
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], dbname="postgres",
        autocommit=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
