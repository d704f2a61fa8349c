"""Policy-update fan-out benchmarks (issue: policy-change notifications).

On PostgreSQL and Redis, with an SMTP sink on loopback (aiosmtpd, in a process
of its own), and production settings (DEBUG off):
1. A material version published to N recipients (default 100,000), drained by
   one `celery worker --concurrency 2` (two pool processes, the default two
   senders): messages per second from the publish to the last row sent,
   against the same number of pre-rendered messages (policies.emails, rendered
   untimed) sent over ONE SMTP connection by a plain loop in this process (the
   baseline), as a ratio.
2. The worker's peak memory (VmHWM of its main process and its pool children,
   summed) at N/10 and at N recipients, as a ratio: flat means ~1.

Usage: python bench/fanout.py [--recipients 100000]
Needs PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/clareza_bench) and Redis (REDIS_URL, default
redis://127.0.0.1:6379/0; the benchmark uses a queue of its own there).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

SECRET = "bench-" + "x" * 60
# The sink: accepts every message, counts them, prints the count when stopped.
SINK = """
import signal, sys, threading
from aiosmtpd.controller import Controller

class Count:
    n = 0

    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 Message accepted for delivery"

controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
while not done.wait(0.2):
    pass
controller.stop()
print(Count.n, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Stop it; how many messages it accepted."""
        self.process.send_signal(signal.SIGTERM)
        out, _err = self.process.communicate(timeout=30)
        return int(out.split()[-1])


def make_recipients(start: int, stop: int) -> None:
    """Customers with a verified primary address, in bulk (untimed)."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    User = get_user_model()
    for low in range(start, stop, 5000):
        users = User.objects.bulk_create(
            [
                User(
                    email=f"customer{i}@example.com",
                    password="!",  # unusable: nobody logs in  # noqa: S106
                    language="pt-br" if i % 5 == 0 else "en",
                )
                for i in range(low, min(low + 5000, stop))
            ]
        )
        EmailAddress.objects.bulk_create(
            [EmailAddress(user=u, email=u.email, verified=True, primary=True) for u in users]
        )


def material_draft(number: int):
    from policies import services
    from policies.demo import V1
    from policies.models import Policy, PolicyVersion

    return services.policy_version_draft_save(
        version=PolicyVersion(
            policy=Policy.objects.get(slug="privacy"),
            body=V1 + f"\n\nChange {number}: we now keep your wish list.",
            summary="We now keep your wish list.",
            material=True,
            effective_date=services.earliest_effective_date(material=True),
        )
    )


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids += process_tree(int(child))
    return pids


def peak_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


class Worker:
    """`celery worker --concurrency 2` on the bench database, on its own queue."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "portal",
                    "worker",
                    "--concurrency=2",
                    "-Q",
                    env["CELERY_QUEUE"],
                    "-n",
                    f"{env['CELERY_QUEUE']}@localhost",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)

    def peak_mib(self) -> tuple[float, int]:
        """(summed VmHWM of the main process and its children, how many processes)."""
        pids = process_tree(self.process.pid)
        return sum(peak_mib(pid) for pid in pids), len(pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def fanout(count: int, number: int, env: dict[str, str], logs: Path) -> tuple[float, float, int]:
    """Publish a material version to `count` recipients with a fresh worker
    running; (messages/s from publish to last row sent, worker peak MiB, processes)."""
    from django.db.models import Max
    from django.utils import timezone

    from policies import services
    from policies.notices import notices_of

    draft = material_draft(number)
    sink = Sink(int(env["EMAIL_URL"].rsplit(":", 1)[1]))
    worker = Worker(env, logs / f"worker-{count}.log")
    try:
        started = timezone.now()
        published = services.policy_version_publish(version=draft)
        assert published.notifications == count, published.notifications
        rows = notices_of(published.version)
        deadline = time.monotonic() + max(600, count / 20)
        while rows.exclude(status="sent").exists():
            if time.monotonic() > deadline or worker.process.poll() is not None:
                sys.exit(f"the fan-out stalled; worker log: {worker.log}")
            time.sleep(0.2)
        finished = rows.aggregate(last=Max("sent_at"))["last"]
        memory, processes = worker.peak_mib()
    finally:
        worker.stop()
        received = sink.stop()
    assert received == count, f"the sink received {received} messages for {count} recipients"
    return count / (finished - started).total_seconds(), memory, processes


def baseline(version_id: int, port: int) -> tuple[float, int]:
    """The same messages, rendered first (untimed), then sent over one SMTP
    connection by a plain loop; messages/s."""
    from django.core import mail

    from policies import emails
    from policies.models import PolicyVersion
    from policies.notices import Notice, notices_of

    connection = mail.get_connection(fail_silently=False)
    version = PolicyVersion.objects.select_related("policy").get(pk=version_id)
    messages = [
        emails.policy_update(Notice(row, version), connection=connection)
        for row in notices_of(version_id).order_by("id").iterator(chunk_size=2000)
    ]
    sink = Sink(port)
    try:
        connection.open()
        started = time.perf_counter()
        for message in messages:
            connection.send_messages([message])
        elapsed = time.perf_counter() - started
        connection.close()
    finally:
        received = sink.stop()
    assert received == len(messages), f"the sink received {received} of {len(messages)}"
    return len(messages) / elapsed, len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()
    total = args.recipients
    small = max(total // 10, 1)

    port = free_port()
    queue = f"clareza-bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": SECRET,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": "http://127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_HSTS_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "CELERY_QUEUE": queue,
            "EMAIL_URL": f"smtp://127.0.0.1:{port}",
        }
    )
    url = fresh_database("fanout")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    from policies.demo import seed_policies
    from policies.models import PolicyVersion

    seed_policies()  # v1 published (nobody to tell), a material v2 draft
    PolicyVersion.objects.filter(status=PolicyVersion.Status.DRAFT).delete()
    logs = Path(tempfile.mkdtemp(prefix="clareza-fanout-"))
    try:
        make_recipients(0, small)
        _small_rate, small_mib, _n = fanout(small, 2, env, logs)
        make_recipients(small, total)
        rate, mib, processes = fanout(total, 3, env, logs)
        version_id = PolicyVersion.objects.get(number=3).pk
        base_rate, sent = baseline(version_id, port)
    finally:
        from kombu import Exchange, Queue

        from portal.celery import app

        with app.connection_for_write() as conn:  # the bench's queue, purged and deleted
            declared = Queue(queue, Exchange(queue, "direct"), routing_key=queue)(
                conn.default_channel
            )
            declared.declare()
            declared.purge()
            declared.delete()
    assert sent == total
    print(
        f"policy-update fan-out to {total} recipients: celery worker --concurrency 2, "
        "PostgreSQL, Redis, SMTP sink on loopback"
    )
    print(f"  baseline {base_rate:8.0f} msg/s  pre-rendered, one SMTP connection, plain loop")
    print(f"  fan-out  {rate:8.0f} msg/s  publish to last row sent")
    print(f"  ratio    {rate / base_rate:8.2f} (fan-out / baseline)")
    print(
        f"  memory   {small_mib:.0f} MiB at {small} recipients vs {mib:.0f} MiB at {total} "
        f"(worker VmHWM over {processes} processes; ratio {mib / small_mib:.2f}: flat means ~1.0)"
    )


if __name__ == "__main__":
    main()
