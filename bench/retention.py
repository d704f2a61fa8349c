"""Retention benchmark (issue 10: "Speed and memory"), on PostgreSQL.

The retention task (rights.retention.retention_enforce, every rule) over N
subjects (default 1,000,000), filled with COPY: one account each, half of
them open, half closed six years ago (past the contract's 1,825 days); each
person has a delivery address (contract) and an interest (consent, which
nobody granted: data left behind). So the task erases every interest and
the closed half's addresses, 1.5 rows per subject, and keeps the rest.

1. Time of the task against a plain DELETE of exactly the same rows (two
   statements that already know the answer, one transaction each), measured
   on the same data, refilled between the two.
2. Locks: the task deletes RETENTION_BATCH rows a transaction; the longest
   DELETE statement of the task (its rows stay locked until the COMMIT that
   follows at once) against the plain DELETE's, which locks every row it
   deletes until it ends.
3. Memory: the task's peak (VmHWM, a process of its own) at N/10 and N
   subjects: flat means a ratio of ~1.0.

Usage: python bench/retention.py [--subjects 1000000] [--batch 1000]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

# The child process prints what it measured as JSON: seconds, VmHWM before and
# after (KiB), rows erased, and the longest DELETE statement (ms).
TASK = """
import json, time
import django
django.setup()
from django.db import connection


def hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


longest = [0.0]


def timed(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        if sql.startswith("DELETE"):
            longest[0] = max(longest[0], time.perf_counter() - started)


from rights.retention import retention_enforce

before = hwm()
started = time.perf_counter()
with connection.execute_wrapper(timed):
    report = retention_enforce(batch=BATCH)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "hwm_before": before, "hwm": hwm(),
                  "erased": report.total, "longest_delete_ms": longest[0] * 1000}))
"""

PLAIN_DELETE = [
    "DELETE FROM consents_personaldatum d USING portal_user u "
    "WHERE u.subject_id = d.subject_id AND NOT u.is_active AND d.field = 'postal_address'",
    "DELETE FROM consents_interest",
]


def fill(subjects: int) -> None:
    """Accounts, addresses and interests of `subjects` new people, by COPY."""
    from django.db import connection

    closed_at = datetime.now(UTC) - timedelta(days=6 * 365)
    joined = closed_at - timedelta(days=365)
    with connection.cursor() as cursor:
        raw = cursor.connection
        with (
            raw.cursor() as c1,
            c1.copy(
                "COPY portal_user (password, last_login, is_superuser, first_name, last_name, "
                "is_staff, is_active, date_joined, email, subject_id, language) FROM STDIN"
            ) as users,
        ):
            people = []
            for i in range(subjects):
                subject = uuid.uuid4()
                people.append(subject)
                active = i % 2 == 0
                users.write_row(
                    (
                        "!",
                        None if active else closed_at,
                        False,
                        "",
                        "",
                        False,
                        active,
                        joined,
                        f"p{i}@bench.example",
                        subject,
                        "en",
                    )
                )
        fill_data(people)
        people.clear()
    vacuum()


def fill_data(people: list[uuid.UUID]) -> None:
    from django.db import connection

    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        raw = cursor.connection
        with (
            raw.cursor() as c1,
            c1.copy(
                "COPY consents_personaldatum (subject_id, field, value, updated_at) FROM STDIN"
            ) as data,
        ):
            for subject in people:
                data.write_row((subject, "postal_address", "Rua Exemplo 100, São Paulo", now))
        with (
            raw.cursor() as c2,
            c2.copy(
                "COPY consents_interest (subject_id, category_id, created_at) FROM STDIN"
            ) as copy,
        ):
            for subject in people:
                copy.write_row((subject, "books", now))


def refill_data() -> None:
    """The people's data again, as fill() made it (after a run erased some)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE consents_personaldatum, consents_interest")
        cursor.execute("SELECT subject_id FROM portal_user ORDER BY id")
        people = [row[0] for row in cursor.fetchall()]
    fill_data(people)
    vacuum()


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("portal_user", "consents_personaldatum", "consents_interest"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE consents_personaldatum, consents_interest, portal_user CASCADE")


def remaining() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM consents_personaldatum) + "
            "(SELECT count(*) FROM consents_interest)"
        )
        return cursor.fetchone()[0]


def task(env: dict[str, str], batch: int) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", TASK.replace("BATCH", str(batch))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"the retention task failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def plain_delete() -> tuple[int, float, float]:
    """(rows, seconds, longest statement's seconds) of the baseline."""
    from django.db import connection, transaction

    rows, longest = 0, 0.0
    started = time.perf_counter()
    for statement in PLAIN_DELETE:
        began = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
            rows += cursor.rowcount
        longest = max(longest, time.perf_counter() - began)
    return rows, time.perf_counter() - started, longest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args, _others = parser.parse_known_args()  # bench/run.py passes every benchmark's options
    if args.subjects < 1000:
        sys.exit("--subjects must be at least 1000")
    os.environ.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("REDIS_URL", None)
    url = fresh_database("retention")
    from consents.demo import seed_inventory
    from shop.demo import seed_catalogue

    seed_inventory()
    seed_catalogue()
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    small, large = args.subjects // 10, args.subjects
    expected = lambda n: n // 2 + n  # noqa: E731 (closed half's addresses, every interest)
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    fill(small)
    at_small = task(env, args.batch)
    assert at_small["erased"] == expected(small), at_small
    reset()

    started = time.perf_counter()
    fill(large)
    fill_s = time.perf_counter() - started
    kept = 2 * large - expected(large)
    rows, plain_s, plain_lock_s = plain_delete()
    assert rows == expected(large) and remaining() == kept, (rows, remaining())
    refill_data()
    at_large = task(env, args.batch)
    assert at_large["erased"] == expected(large) and remaining() == kept, at_large

    mib = 1024
    print(
        f"retention over {large:,} subjects ({2 * large:,} rows of personal data, "
        f"{expected(large):,} past their period; filled by COPY in {fill_s:.0f} s)"
    )
    print(
        f"  task     {expected(large) / at_large['seconds']:10,.0f} rows/s erased "
        f"({at_large['seconds']:.1f} s, batches of {args.batch:,})"
    )
    print(
        f"  baseline {rows / plain_s:10,.0f} rows/s plain DELETE of the same rows "
        f"({plain_s:.1f} s, {len(PLAIN_DELETE)} statements)"
    )
    print(f"  ratio    {plain_s / at_large['seconds']:10.2f} (task rate / plain DELETE rate)")
    print(
        f"  locks    longest DELETE {at_large['longest_delete_ms']:.0f} ms (task) vs "
        f"{plain_lock_s * 1000:,.0f} ms (plain)"
    )
    print(
        f"  memory   {at_small['hwm'] / mib:.0f} MiB at {small:,} subjects vs "
        f"{at_large['hwm'] / mib:.0f} MiB at {large:,} "
        f"(ratio {at_large['hwm'] / at_small['hwm']:.2f}: flat means ~1.0); growth over "
        f"Django loaded +{(at_small['hwm'] - at_small['hwm_before']) / mib:.0f} vs "
        f"+{(at_large['hwm'] - at_large['hwm_before']) / mib:.0f} MiB"
    )
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
