"""Control panel benchmarks (issue: the customer's control panel).

Under gunicorn (2 sync workers, production settings) on PostgreSQL, with wrk on
loopback, logged in as the demo customer:
1. GET /me/ requests per second, against the bare view /health/live/ on the same
   server in the same run (the baseline), as a ratio;
2. POST /me/consents/<key>/ (the switch, alternating on and off, each a ledger
   event) against the same baseline.

Usage: python bench/panel.py [--seconds 10] [--connections 16]
Needs wrk (apt-get install wrk) and PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import ROOT, fresh_database

SECRET = "bench-" + "x" * 60
SWITCH_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  local decision = (n %% 2 == 0) and "withdrawn" or "granted"
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "%(cookie)s",
    ["X-CSRFToken"] = "%(csrf)s",
  }, "decision=" .. decision)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: int, connections: int, *extra: str) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} error responses from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    production = {
        "DEBUG": "0",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": "http://127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(production)
    os.environ.pop("REDIS_URL", None)
    url = fresh_database("panel")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret
    from django.test import Client

    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    static_root = tempfile.mkdtemp(prefix="clareza-static-")
    env = {**os.environ, "DATABASE_URL": url, "STATIC_ROOT": static_root}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    client = Client()
    user = get_user_model().objects.get(email="joao@example.com")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.cookies["sessionid"].value
    csrf_secret = _get_new_csrf_string()
    cookie = f"sessionid={session}; csrftoken={csrf_secret}"

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm both workers' caches (templates, connections) before measuring.
        wrk(f"{base}/health/live/", 2, 4)
        wrk(f"{base}/me/", 2, 4, "-H", f"Cookie: {cookie}")

        bare = wrk(f"{base}/health/live/", args.seconds, args.connections)
        panel = wrk(f"{base}/me/", args.seconds, args.connections, "-H", f"Cookie: {cookie}")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                SWITCH_SCRIPT
                % {
                    "path": "/me/consents/newsletter/",
                    "cookie": cookie,
                    "csrf": _mask_cipher_secret(csrf_secret),
                }
            )
        switch = wrk(
            f"{base}/me/consents/newsletter/", args.seconds, args.connections, "-s", script.name
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"control panel under gunicorn -w 2, wrk -c{args.connections}, {args.seconds} s each")
    print(f"  baseline  {bare:8.0f} req/s  GET /health/live/ (bare view)")
    print(f"  /me/      {panel:8.0f} req/s  ratio {panel / bare:.3f}")
    print(
        f"  switch    {switch:8.0f} req/s  ratio {switch / bare:.3f}  (POST, a ledger event each)"
    )


if __name__ == "__main__":
    main()
