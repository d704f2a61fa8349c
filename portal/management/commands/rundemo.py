"""`make run`: the web server and a Celery worker (with the periodic tasks) side
by side, as production runs them, and stopped together.

Without REDIS_URL the worker's broker is kombu's filesystem transport
(TASK_BROKER=filesystem, files under VAR_DIR), so the demo needs no server.
Once seed_demo has registered the demo shop (integrations.demo_shop), a third
child is its webhook receiver (integrations/examples/consent_sync.py), marked
`shop   |`. Each child runs in a process group of its own, so that stopping one
reaches its pool or autoreloader children too; Ctrl-C, SIGTERM or SIGHUP here,
or the web server or the worker ending, stops them all (the shop ending alone
does not).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from typing import IO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this launcher is killed outright (SIGKILL),
    when it cannot stop its children itself. Elsewhere a no-op."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = (
        "Serve the portal with runserver and run a Celery worker with the periodic "
        "tasks beside it; Ctrl-C stops both."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--concurrency", type=int, default=2, help="worker processes (default 2)"
        )
        parser.add_argument(
            "--noreload", action="store_true", help="runserver without its autoreloader"
        )

    def handle(self, *args, addrport: str, concurrency: int, noreload: bool, **options) -> None:
        env = self._environment(addrport)
        self._stop_requested = threading.Event()
        previous = {sig: signal.signal(sig, self._request_stop) for sig in STOP_SIGNALS}
        children: dict[str, subprocess.Popen] = {}
        relays: list[threading.Thread] = []
        shop_ended = False
        try:
            children["worker"] = self._spawn(self._worker_command(concurrency), env)
            children["web"] = self._spawn(self._web_command(addrport, noreload), env)
            shop = self._shop_command(addrport)
            if shop:
                children["shop"] = self._spawn(shop, env)
            for name, child in children.items():
                relays.append(
                    threading.Thread(
                        target=self._relay, args=(f"{name:<6} | ", child.stdout), daemon=True
                    )
                )
                relays[-1].start()
            pids = ", ".join(f"{name} pid {child.pid}" for name, child in children.items())
            self.stdout.write(f"rundemo: {pids}; Ctrl-C stops them all.")
            self.stdout.flush()
            while not self._stop_requested.is_set():
                ended = [name for name, child in children.items() if child.poll() is not None]
                if "shop" in ended and not shop_ended:
                    # The shop is an example beside the portal (its port may be
                    # taken): the portal goes on without it.
                    shop_ended = True
                    self.stderr.write("rundemo: the demo shop ended; the portal goes on.")
                ended = [name for name in ended if name != "shop"]
                if ended:
                    self.stderr.write(f"rundemo: {ended[0]} ended; stopping the rest.")
                    break
                self._stop_requested.wait(0.2)
        finally:
            self._stop(children)
            for relay in relays:  # the children's last words (the worker's shutdown)
                relay.join(timeout=2)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        failed = {name: child.returncode for name, child in children.items() if child.returncode}
        if failed and not self._stop_requested.is_set():
            raise CommandError(f"rundemo: {failed} ended with an error.")

    def _request_stop(self, signum, frame) -> None:
        self._stop_requested.set()

    def _environment(self, addrport: str) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not env.get("REDIS_URL"):
            env["TASK_BROKER"] = "filesystem"
        host, _, port = addrport.rpartition(":")
        env.setdefault("SITE_URL", f"http://{host or '127.0.0.1'}:{port}")
        if env.get("TASK_BROKER") == "filesystem":
            # Messages handled by a previous run only take room.
            shutil.rmtree(settings.VAR_DIR / "celery" / "processed", ignore_errors=True)
        return env

    def _worker_command(self, concurrency: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--beat",  # the demo's one scheduler: the outbox and policy sweeps run too
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def _web_command(self, addrport: str, noreload: bool) -> list[str]:
        command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "runserver", addrport]
        return [*command, "--noreload"] if noreload else command

    def _shop_command(self, addrport: str) -> list[str] | None:
        """The demo shop's receiver (integrations/examples/consent_sync.py), once
        seed_demo has registered it, calling the API where runserver listens;
        its copy is kept in step every minute."""
        config = settings.VAR_DIR / "demo-shop.json"
        if not config.exists():
            return None
        host, _, port = addrport.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - not a bind
        script = settings.BASE_DIR / "integrations" / "examples" / "consent_sync.py"
        return [
            sys.executable, str(script), "--config", str(config),
            "--portal", f"http://{host}:{port}", "--resync", "60",
        ]  # fmt: skip

    def _spawn(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # both are started before any relay thread
        )
        return child

    def _relay(self, prefix: str, stream: IO[bytes]) -> None:
        """Each line a child prints, marked with the child's name."""
        out = sys.stdout
        for line in iter(stream.readline, b""):
            out.write(prefix + line.decode(errors="replace"))
            out.flush()

    def _stop(self, children: dict[str, subprocess.Popen], timeout: float = 15) -> None:
        """SIGTERM the worker (a warm shutdown: it finishes its current task and
        ends its pool) and runserver's group, then SIGKILL whatever is left after
        the timeout: nothing outlives the launcher."""
        for name, child in children.items():
            with suppress(ProcessLookupError):
                if name == "worker":
                    child.terminate()
                else:
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children.values():
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in children.values():
            # Pool and reloader children may outlive their group leader.
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
