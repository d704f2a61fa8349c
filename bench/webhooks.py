"""Webhook delivery benchmark (issue 12: signed webhooks).

On PostgreSQL, production settings (DEBUG off), with an HTTP receiver on
loopback in a process of its own (http.server, HTTP/1.1 keep-alive, answers
200 to every POST and counts them):

1. N events (default 5,000) published to one endpoint, in rounds of 1,000 (the
   messages, deliveries and outbox rows are written as the changes would
   write them), then drained through the outbox in this process
   (outbox_send of kind "webhook", batches of OUTBOX_BATCH: claim, sign, POST,
   record the attempt, mark sent): deliveries per second,
2. against a plain loop of the same POSTs (the same bodies, signed the same
   way beforehand, untimed) over one kept-alive http.client connection, as a
   ratio. Issue 12 asks >= 0.5.

Usage: python bench/webhooks.py [--events 5000]
Needs PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/clareza_bench; this one adds _webhooks).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import fresh_database

SECRET = "bench-" + "x" * 60
RECEIVER = """
import signal, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes
    count = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Handler.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
while not done.wait(0.2):
    pass
server.shutdown()
print(Handler.count, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ROUND = 1000


def write(delivery, events, outbox, transaction, first: int, count: int) -> float:
    """Events written as the decisions would write them, without the task each
    commit would start (tasks run eagerly here: it would deliver while writing).
    Returns the seconds it took."""
    dispatch = outbox.outbox_dispatch_on_commit
    outbox.outbox_dispatch_on_commit = lambda **_kwargs: None
    started = time.perf_counter()
    try:
        for start in range(first, first + count, 500):
            with transaction.atomic():
                for i in range(start, min(start + 500, first + count)):
                    delivery.fan_out(
                        events.Event(
                            events.CONSENT_GRANTED,
                            {
                                "event_id": f"00000000-0000-0000-0000-{i:012d}",
                                "subject_id": f"10000000-0000-0000-0000-{i:012d}",
                                "purpose": "newsletter",
                                "notice_version": 1,
                                "decision": "granted",
                                "method": "panel",
                            },
                        )
                    )
    finally:
        outbox.outbox_dispatch_on_commit = dispatch
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    n = args.events

    os.environ.update(
        DEBUG="0",
        SECRET_KEY=SECRET,
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        STAFF_REQUIRE_MFA="1",
        SECURE_SSL_REDIRECT="0",
    )
    os.environ.pop("REDIS_URL", None)  # tasks eager: nothing leaves for a worker
    fresh_database("webhooks")

    from django.contrib.auth import get_user_model
    from django.db import transaction

    from integrations.models import WebhookDelivery, WebhookMessage
    from integrations.webhooks import delivery, services, signing
    from portal import events, outbox

    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout.readline().strip() == "ready"
    try:
        staff = get_user_model().objects.create_user(
            email="bench@example.com", is_staff=True, is_superuser=True
        )
        url = f"http://127.0.0.1:{port}/hooks"
        hook = services.endpoint_create(
            name="bench", url=url, events=[events.CONSENT_GRANTED], acting_user=staff
        )

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.connect()
        # As the delivery client does: without it, headers and body leave in two
        # segments and Nagle's algorithm waits for the delayed ACK (~40 ms a POST).
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        topic = delivery.topic(hook.endpoint)
        written = through_outbox = plain = 0.0
        # In rounds, the two taken in turn, so that the machine's load (shared
        # with other work) weighs on both alike.
        for round_start in range(0, n, ROUND):
            count = min(ROUND, n - round_start)
            written += write(delivery, events, outbox, transaction, round_start, count)
            assert not WebhookDelivery.objects.filter(status="succeeded").count() > round_start

            started = time.perf_counter()
            done = 0
            while sent := outbox.outbox_send(kind=delivery.WEBHOOK, topic=topic):
                done += sent
            through_outbox += time.perf_counter() - started
            assert done == count, f"{done} of {count} delivered"

            # The baseline: the same bodies and signatures, POSTed by a plain loop.
            stamp = int(time.time())
            requests = [
                (
                    body.encode(),
                    signing.headers(
                        webhook_id=f"msg_{uid.hex}", timestamp=stamp, body=body,
                        secrets=[hook.secret],
                    ),
                )
                for uid, body in WebhookMessage.objects.values_list("uuid", "body")
                .order_by("pk")[round_start : round_start + count]
            ]  # fmt: skip
            started = time.perf_counter()
            for body, headers in requests:
                connection.request("POST", "/hooks", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                assert response.status == 200
            plain += time.perf_counter() - started
        connection.close()
    finally:
        receiver.send_signal(signal.SIGTERM)
        out, _err = receiver.communicate(timeout=30)
    received = int(out.split()[-1])
    assert received == 2 * n, f"the receiver counted {received}, expected {2 * n}"

    rate, base = n / through_outbox, n / plain
    print(f"written (message + delivery + outbox row per event): {n / written:,.0f} /s")
    print(f"through the outbox: {n} deliveries in {through_outbox:.2f} s, {rate:,.0f} /s")
    print(f"plain loop of the same POSTs: {n} in {plain:.2f} s, {base:,.0f} /s")
    print(f"ratio: {rate / base:.2f} (issue 12 asks >= 0.5)")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
