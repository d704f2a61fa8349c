"""`make run` as a newcomer starts it: runserver and a real Celery worker on
kombu's filesystem broker, on SQLite, whatever DATABASE_URL and REDIS_URL the
test run itself has (CI sets both). Nothing here runs a task in this process."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.worker_support import (
    DemoProcess,
    free_port,
    live_group_members,
    post_form,
    wait_for_http,
)

ROOT = Path(__file__).resolve().parents[2]
DELIVER = "portal.tasks.outbox_send"


def _beside_the_demo(demo, code: str) -> None:
    """Python run by `manage.py shell` against the running demo's database,
    its tasks queued to the demo's own worker (the filesystem broker)."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**demo.env, "TASK_BROKER": "filesystem"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def _demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment `make run` gives its processes, on a database of this test's own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "TASK_BROKER", "SITE_URL", "DEBUG"}
    }
    return {
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
        "EMAIL_URL": "console://",
        "CELERY_QUEUE": "clareza",
        "PYTHONUNBUFFERED": "1",
        # The demo shop's receiver: a port of this test's own, not 8001.
        "DEMO_SHOP_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/webhooks/clareza",
        **extra,
    }


def _settings_seen_with(env: dict[str, str]) -> dict | str:
    script = (
        "import json; from django.conf import settings as s; from portal.celery import app; "
        "print(json.dumps({'broker': app.conf.broker_url, 'eager': app.conf.task_always_eager, "
        "'cache': s.CACHES['default']['BACKEND'].rsplit('.', 1)[1], "
        "'folders': sorted(k for k in app.conf.broker_transport_options if 'folder' in k)}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        return result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_a_broker_tasks_run_eagerly_with_a_cache_in_memory(tmp_path):
    seen = _settings_seen_with(_demo_env(tmp_path))

    assert seen == {"broker": "memory://", "eager": True, "cache": "LocMemCache", "folders": []}


def test_the_filesystem_broker_runs_tasks_in_a_worker_with_a_shared_cache(tmp_path):
    seen = _settings_seen_with(_demo_env(tmp_path, TASK_BROKER="filesystem"))

    assert seen == {
        "broker": "filesystem://localhost//",
        "eager": False,
        "cache": "FileBasedCache",
        "folders": ["control_folder", "data_folder_in", "data_folder_out", "processed_folder"],
    }
    assert {p.name for p in (tmp_path / "var" / "celery").iterdir()} == {
        "control",
        "messages",
        "processed",
    }


def test_the_filesystem_broker_and_redis_are_not_both_taken(tmp_path):
    env = _demo_env(tmp_path, TASK_BROKER="filesystem", REDIS_URL="redis://127.0.0.1:6379/0")

    seen = _settings_seen_with(env)

    assert "TASK_BROKER=filesystem and REDIS_URL are both set" in seen


@pytest.fixture
def demo(tmp_path) -> Iterator[DemoProcess]:
    """`manage.py rundemo` on a migrated, seeded SQLite file, as `make run` starts it."""
    port = free_port()
    # As `make run` does: the site's address is where it serves (the ledger's
    # checkpoints name it, and the sealer refuses a checkpoint of another site).
    env = _demo_env(tmp_path, SITE_URL=f"http://127.0.0.1:{port}")
    for command in (["migrate", "--no-input"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    log = tmp_path / "rundemo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundemo", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    demo = DemoProcess(process, log, f"http://127.0.0.1:{port}", tmp_path / "demo.sqlite3")
    demo.env = env
    try:
        yield demo
    finally:
        demo.kill()


def test_make_run_sends_a_views_email_from_its_worker_and_stops_it_on_ctrl_c(demo):
    pids = demo.wait_for(r"rundemo: worker pid (\d+), web pid (\d+)")
    worker_pid, web_pid = int(pids.group(1)), int(pids.group(2))
    demo.wait_for(r"worker \| .*celery@\S+ ready\.")
    demo.wait_for(r"worker \| .*Connected to filesystem://")
    wait_for_http(f"{demo.url}/health/live/", demo)

    response = post_form(demo.url, "/accounts/password/reset/", {"email": "ana@example.com"})

    assert response.url == f"{demo.url}/accounts/password/reset/done/"
    sent = demo.wait_for(rf"worker \| .*Task {DELIVER}\[([0-9a-f-]+)\] succeeded")
    log = demo.log()
    assert f"Task {DELIVER}[{sent.group(1)}] received" in log
    email_lines = [line for line in log.splitlines() if "To: ana@example.com" in line]
    # The console backend printed the email in the worker process, never in the web one.
    assert email_lines == ["worker | To: ana@example.com"]
    assert "web    | Subject:" not in log
    # Its link uses the address the demo serves at, port included.
    assert f"worker | {demo.url}/accounts/password/reset/key/" in log
    with sqlite3.connect(demo.database) as db:
        rows = db.execute(
            "SELECT status, attempts FROM portal_outboxitem WHERE recipient = 'ana@example.com'"
        ).fetchall()
    assert rows == [("sent", 1)]
    # The periodic sweeps run too: beat sits inside the demo's worker (their first
    # run is a minute after a fresh start, too long to wait for here).
    assert re.search(r"worker \| .*/Beat\] beat: Starting\.\.\.", log)

    # The demo shop hears of a withdrawal: the worker delivers the webhook to
    # its receiver (integrations/examples/consent_sync.py), which logs it.
    shop_pid = int(demo.wait_for(r"shop pid (\d+)").group(1))
    demo.wait_for(r"shop   \| .*in step: \d+ changes applied", timeout=60)
    withdraw = (
        "from consents.models import Decision, Method, Purpose; "
        "from consents.services import consent_record; "
        "from django.contrib.auth import get_user_model; "
        "ana = get_user_model().objects.get(email='ana@example.com'); "
        "consent_record(subject_id=ana.subject_id, purpose=Purpose.objects.get(key='newsletter'), "
        "decision=Decision.WITHDRAWN, method=Method.PANEL)"
    )
    _beside_the_demo(demo, withdraw)
    demo.wait_for(r"shop   \| .*consent\.withdrawn +subject \w+ newsletter: stopped \(panel\)")

    # Staff delete João's account in the admin (the erasure at once): the shop
    # forgets him and completes its task through the API; the CRM's waits.
    erase = (
        "from django.contrib.auth import get_user_model; "
        "from rights.services import user_erase; User = get_user_model(); "
        "user_erase(user=User.objects.get(email='joao@example.com'), "
        "acting_user=User.objects.get(email='staff@example.com'))"
    )
    _beside_the_demo(demo, erase)
    demo.wait_for(
        r"shop   \| .*rights_request\.assigned +subject \w+: erasure task \w+: Erased", timeout=60
    )
    with sqlite3.connect(demo.database) as db:
        tasks = db.execute(
            "SELECT s.key, t.status, r.status FROM integrations_systemtask t "
            "JOIN integrations_connectedsystem s ON s.id = t.system_id "
            "JOIN rights_rightsrequest r ON r.id = t.request_id ORDER BY s.key"
        ).fetchall()
    assert tasks == [("crm", "open", "in_progress"), ("shop", "completed", "in_progress")]
    # The sealer, every few seconds in the worker, trusts the seed's checkpoint.
    assert "LedgerIntegrityError" not in demo.log()

    # Ctrl-C in the terminal: SIGINT to the launcher's process group.
    os.killpg(demo.process.pid, signal.SIGINT)

    assert demo.process.wait(timeout=40) == 0, demo.log()
    assert "Warm shutdown" in demo.log()
    # Nothing is left: not the worker, its pool or beat, not runserver or its reloader.
    assert live_group_members(worker_pid) == []
    assert live_group_members(web_pid) == []
    assert live_group_members(shop_pid) == []
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{demo.url}/health/live/", timeout=2)  # noqa: S310


def test_an_email_waits_in_the_filesystem_broker_until_a_worker_takes_it(tmp_path):
    """With no worker running, queueing an email leaves it unsent and its task
    waiting as a file: the worker of `make run` is what sends it."""
    env = _demo_env(tmp_path, TASK_BROKER="filesystem")
    script = (
        "from django.db import transaction; from portal.mail import outbound_email_queue; "
        "from portal.models import OutboxItem as E\n"
        "with transaction.atomic():\n"
        "    outbound_email_queue(to='wait@example.com', subject='S', body_text='B')\n"
        "print(list(E.objects.values_list('status', 'attempts')))"
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[('pending', 0)]"
    assert "wait@example.com" not in result.stdout + result.stderr
    messages = list((tmp_path / "var" / "celery" / "messages").iterdir())
    assert [re.sub(r"^\d+_[0-9a-f-]+\.", "", m.name) for m in messages] == ["clareza.msg"]
    assert DELIVER in messages[0].read_text()
