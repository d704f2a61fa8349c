"""API benchmarks (issue 12), on PostgreSQL, with Redis for the rate limit's
cache when REDIS_URL is set (as in production).

1. Reading one person's consents through the API (GET
   /api/v1/subjects/<id>/consents: key, scope, rate limit, call log, ninja)
   against a bare authenticated view in the same process: the same key
   lookup by hash, the same states read, JSON out, nothing else. Both go
   through Django's whole middleware stack (the test client's handler), one
   process, sequential calls; requests per second, as a ratio (target >= 0.5).
2. The audience of a purpose over N subjects (default 1,000,000, filled with
   generate_series): every page walked with the cursor (limit 10,000), rows per
   second (target >= 100,000), against a plain read of the same rows (the
   same filter, a server-side cursor, nothing built) as the baseline; and the
   walking process's peak memory (VmHWM) after N/10 and after N rows, each
   in a process of its own: flat means a ratio of ~1.0. The walker (the
   same process: the test client) counts each page's rows without parsing.

Usage: python bench/api.py [--subjects 1000000] [--seconds 10]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "bench-" + "x" * 60,
    "ALLOWED_HOSTS": "testserver",
    "SITE_URL": "http://testserver",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_HSTS_SECONDS": "0",
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMITS": "100000000/m/key",
}
PAGE = 10_000
NEXT_CURSOR = re.compile(rb'"next_cursor": ?"([^"]+)"')


def hwm_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# The baseline of 1: a bare view that authenticates the same key and reads the
# same states. Mounted beside the portal's URLs (ROOT_URLCONF is this module).
def bare_consents(request, subject_id):
    from django.http import JsonResponse

    from consents.models import ConsentState
    from integrations.api.services import secret_hash
    from integrations.models import ApiKey

    token = request.headers.get("Authorization", "").partition(" ")[2]
    if not ApiKey.objects.filter(secret_hash=secret_hash(token)).exists():
        return JsonResponse({"error": "unauthenticated"}, status=401)
    rows = ConsentState.objects.filter(subject_id=subject_id).values(
        "purpose__key", "decision", "event__notice__version"
    )
    return JsonResponse({"subject_id": str(subject_id), "consents": list(rows)})


def _urlpatterns():
    from django.urls import include, path

    return [path("bare/<uuid:subject_id>/", bare_consents), path("", include("portal.urls"))]


def fill(subjects: int, purpose_id: int, notice_id: int) -> None:
    """N people, each with a grant of the purpose: events and states in two
    INSERT ... SELECT over generate_series (hashes are placeholders: the
    ledger's checks are not what is measured here)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO consents_consentevent (uuid, subject_id, purpose_id, notice_id,
                decision, method, created_at, ip_truncated, user_agent_family, gpc_signal,
                prev_hash, hash)
            SELECT gen_random_uuid(), gen_random_uuid(), %s, %s, 'granted', 'checkout',
                now(), '', '', false, '', md5(g::text) || md5(g::text)
            FROM generate_series(1, %s) AS g
            """,
            [purpose_id, notice_id, subjects],
        )
        cursor.execute(
            """
            INSERT INTO consents_consentstate (subject_id, purpose_id, decision, event_id,
                updated_at)
            SELECT subject_id, purpose_id, decision, id, created_at
            FROM consents_consentevent WHERE purpose_id = %s AND method = 'checkout' ORDER BY id
            """,
            [purpose_id],
        )
        cursor.execute("VACUUM ANALYZE consents_consentstate")
        cursor.execute("VACUUM ANALYZE consents_consentevent")


def walk(secret: str, key: str, rows: int | None) -> tuple[int, float]:
    """Walk the audience through the API (up to `rows`); (rows, seconds)."""
    from django.test import Client

    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    seen, cursor = 0, None
    started = time.perf_counter()
    while True:
        params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/v1/purposes/{key}/audience", params, **headers)
        if response.status_code != 200:
            sys.exit(f"audience page answered {response.status_code}: {response.content[:300]}")
        # The rows are counted and the cursor read without building 10,000
        # dicts: what is measured is the API's memory, not a client's parse
        # (json.loads of every page made this process grow ~0.5 MiB a page,
        # CPython's allocator keeping fragmented arenas).
        seen += response.content.count(b'"subject_id"')
        found = NEXT_CURSOR.search(response.content)
        cursor = found.group(1).decode() if found else None
        del response
        if cursor is None or (rows is not None and seen >= rows):
            return seen, time.perf_counter() - started


def plain_read(purpose_id: int) -> tuple[int, float]:
    from django.db import connection, transaction

    started = time.perf_counter()
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        server = cursor.connection.cursor(name="plain")
        server.itersize = PAGE
        server.execute(
            "SELECT id, subject_id FROM consents_consentstate "
            "WHERE purpose_id = %s AND decision = 'granted' ORDER BY id",
            [purpose_id],
        )
        for _row in server:
            count += 1
        server.close()
    return count, time.perf_counter() - started


def rates(client, paths: list[str], headers: dict, seconds: float, rounds: int = 10) -> list:
    """Requests per second of each path, measured in interleaved rounds so
    that the load of other processes falls on all of them alike."""
    for path in paths:
        for _ in range(50):  # warm
            client.get(path, **headers)
    calls, spent = [0] * len(paths), [0.0] * len(paths)
    for _round in range(rounds):
        for i, path in enumerate(paths):
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / rounds:
                response = client.get(path, **headers)
                assert response.status_code == 200, response.content
                calls[i] += 1
            spent[i] += time.perf_counter() - started
    return [c / s for c, s in zip(calls, spent, strict=True)]


def child_walk(rows: int) -> None:
    """In a process of its own: walk `rows` rows, print rows, seconds, VmHWM."""
    import django

    django.setup()
    secret = os.environ["BENCH_API_KEY"]
    seen, seconds = walk(secret, "newsletter", rows)
    print(json.dumps({"rows": seen, "seconds": seconds, "hwm_kib": hwm_kib()}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--child-walk", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(PRODUCTION)
    if args.child_walk:
        child_walk(args.child_walk)
        return

    from _setup import fresh_database

    url = fresh_database("api")
    from django.conf import settings
    from django.test import Client

    from consents.demo import seed_inventory
    from consents.models import Decision, Method
    from consents.services import consent_record
    from integrations.api.services import api_key_create
    from portal.models import User

    settings.ROOT_URLCONF = __name__
    sys.modules[__name__].urlpatterns = _urlpatterns()
    staff = User.objects.create_user(email="bench@example.com", is_staff=True)
    person = User.objects.create_user(email="person@example.com")
    purposes = {p.key: p for p in seed_inventory()}
    for key in ("newsletter", "recommendations", "tailored-offers", "product-research"):
        consent_record(
            subject_id=person.subject_id,
            purpose=purposes[key],
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
    secret = api_key_create(
        name="Bench", scopes=["consents:read", "audience:read"], acting_user=staff
    ).secret

    # 1. One person's consents.
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    cache = "Redis" if os.environ.get("REDIS_URL") else "process memory"
    bare, api = rates(
        client,
        [f"/bare/{person.subject_id}/", f"/api/v1/subjects/{person.subject_id}/consents"],
        headers,
        args.seconds,
    )
    print(
        f"1. one person's consents (4 decisions), in process, cache on {cache}: "
        f"API {api:,.0f} req/s, bare authenticated view {bare:,.0f} req/s, "
        f"ratio {api / bare:.2f} (target >= 0.5)"
    )

    # 2. The audience over N subjects.
    purpose = purposes["newsletter"]
    notice = purpose.notices.order_by("-version").first()
    started = time.perf_counter()
    fill(args.subjects, purpose.pk, notice.pk)
    print(f"   ({args.subjects:,} subjects filled in {time.perf_counter() - started:.1f} s)")
    total = args.subjects + 1  # the person above granted it too
    plain_rows, plain_s = plain_read(purpose.pk)
    env = {**os.environ, "DATABASE_URL": url, "BENCH_API_KEY": secret}
    results = {}
    for rows in (total // 10, total):
        out = subprocess.run(
            [sys.executable, __file__, "--child-walk", str(rows)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[rows] = json.loads(out.strip().splitlines()[-1])
    full = results[total]
    if full["rows"] != total or plain_rows != total:
        sys.exit(f"walked {full['rows']} rows, plain read {plain_rows}, expected {total}")
    api_rate = full["rows"] / full["seconds"]
    plain_rate = plain_rows / plain_s
    print(
        f"2. audience of one purpose, {total:,} people, pages of {PAGE:,}: "
        f"{api_rate:,.0f} rows/s ({full['seconds']:.1f} s; target >= 100,000), "
        f"plain server-side read of the same rows {plain_rate:,.0f} rows/s, "
        f"ratio {api_rate / plain_rate:.2f}"
    )
    small = results[total // 10]
    print(
        f"   peak memory of the walking process: {small['hwm_kib'] / 1024:.0f} MiB after "
        f"{small['rows']:,} rows, {full['hwm_kib'] / 1024:.0f} MiB after {full['rows']:,}: "
        f"ratio {full['hwm_kib'] / small['hwm_kib']:.2f} (flat: ~1.0)"
    )


if __name__ == "__main__":
    main()
