"""Starting real Celery worker processes against the pytest test database
(tests/portal/test_worker.py, tests/policies/test_fanout_reliability.py), and
the demo of `make run` with its own (tests/portal/test_demo.py).

A worker is a subprocess in a process group of its own, so that a test can
SIGKILL it together with its pool children, and teardown never leaves one
behind. It consumes a queue of the test's own (CELERY_QUEUE and -Q)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import quote, urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest
from django.conf import settings
from django.db import connection
from kombu import Exchange, Queue

from portal.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]

NEEDS_REDIS = (
    "needs REDIS_URL: without a broker Celery runs tasks eagerly in-process "
    "and there is no worker to start (CI sets REDIS_URL and runs these)"
)
NEEDS_POSTGRESQL = (
    "needs DATABASE_URL on PostgreSQL: the worker process must reach the test "
    "database, and SQLite's test database lives in this process's memory"
)


def skip_unless_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(NEEDS_POSTGRESQL)


def subprocess_database_url() -> str:
    """This process's (test) database as a DATABASE_URL for a subprocess."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    query = f"?{urlencode(db['OPTIONS'])}" if db.get("OPTIONS") else ""
    return f"postgres://{user}{password}@{db['HOST']}{port}/{quote(db['NAME'], safe='')}{query}"


def new_queue_name() -> str:
    return f"clareza-test-{uuid.uuid4().hex[:12]}"


@contextmanager
def default_queue(name: str) -> Iterator[str]:
    """This process publishes unrouted tasks to `name`; the queue is purged and
    deleted afterwards (on the broker the app points at by then)."""
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = name
    try:
        yield name
    finally:
        celery_app.conf.task_default_queue = previous
        with celery_app.connection_for_write() as conn:
            declared = Queue(name, Exchange(name, "direct"), routing_key=name)(conn.default_channel)
            declared.declare()
            declared.purge()
            declared.delete()


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path, nodename: str) -> None:
        self.process = process
        self.log_path = log
        self.nodename = nodename

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker log never showed {pattern!r}:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once: no warm shutdown,
        no task acknowledged or rejected, leases left as they were."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 10) -> None:
        """Warm shutdown (SIGTERM); SIGKILL the group if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Pool children outlive a main process that died abruptly: end them too.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_worker(
    *,
    queue: str,
    log: Path,
    redis_url: str | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30,
) -> Worker:
    """Start `celery worker` on the test database, consuming `queue` only; wait until ready."""
    nodename = f"{queue}@localhost"
    environ = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": redis_url or settings.REDIS_URL,
        "CELERY_QUEUE": queue,
        "EMAIL_URL": "console://",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                "-Q",
                queue,
                "-n",
                nodename,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches the pool too
        )
    worker = Worker(process, log, nodename)
    try:
        worker.wait_for(rf"{re.escape(nodename)} ready\.", timeout=ready_timeout)
    except BaseException:
        worker.stop()
        raise
    return worker


class DemoProcess(Worker):
    """`manage.py rundemo` (started in a session of its own), its output, its address."""

    def __init__(self, process: subprocess.Popen, log: Path, url: str, database: Path) -> None:
        super().__init__(process, log, nodename="rundemo")
        self.url = url
        self.database = database

    def kill(self) -> None:
        """SIGKILL the launcher and every process group it started, whatever state they are in."""
        groups = [self.process.pid]
        if match := re.search(r"worker pid (\d+), web pid (\d+)", self.log()):
            groups += [int(match.group(1)), int(match.group(2))]
        if match := re.search(r"shop pid (\d+)", self.log()):
            groups.append(int(match.group(1)))
        for group in groups:
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_group_members(pgid: int) -> list[int]:
    """The processes of a process group that still run (zombies waiting to be
    reaped do not count). Linux: read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def wait_for_http(url: str, process: Worker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), build_opener().open(url, timeout=2) as response:
            if response.status == 200:
                return
        if process.process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200:\n{process.log()}")


def post_form(base_url: str, path: str, fields: dict[str, str]):
    """GET a form page for its CSRF cookie and token, then POST it, as a browser does."""
    opener = build_opener(HTTPCookieProcessor(CookieJar()))
    with opener.open(base_url + path, timeout=30) as page:
        html = page.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token, f"no CSRF token in {path}"
    data = urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
    request = Request(base_url + path, data=data, headers={"Referer": base_url + path})  # noqa: S310
    with opener.open(request, timeout=30) as response:
        response.read()
        return response
