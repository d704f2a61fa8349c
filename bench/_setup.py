"""Shared set-up for the benchmarks: a fresh PostgreSQL database of their own,
migrated, so that no figure depends on what an earlier run left behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/clareza_bench"


def bench_database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def fresh_database(benchmark: str) -> str:
    """Drop and create this benchmark's own database (BENCH_DATABASE_URL's name
    plus "_<benchmark>", so two benchmarks never drop each other's); point
    Django at it; migrate."""
    import psycopg

    parts = urlsplit(bench_database_url())
    name = parts.path.lstrip("/")
    parts = parts._replace(path=f"/{name}_{benchmark}")
    url = urlunsplit(parts)
    name = f"{name}_{benchmark}"
    if parts.scheme not in {"postgres", "postgresql"} or "bench" not in name:
        sys.exit(
            f"BENCH_DATABASE_URL must name a PostgreSQL database with 'bench' in its name: {url}"
        )
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(
        admin_url.replace("postgres://", "postgresql://", 1), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def peak_rss_mib(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command; return (seconds, peak resident memory in MiB, stdout)."""
    import subprocess
    import time

    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    out = process.stdout.read() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{out}")
    return elapsed, usage.ru_maxrss / 1024, out
