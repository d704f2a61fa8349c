#!/usr/bin/env python3
"""Keep a copy of every customer's consents in step with a Clareza portal.

An example for the company's other systems (the shop, the email platform):
copy it, change what `apply` does with a change, and run it beside them.
Python 3.9 or newer, its standard library only. It uses nothing but the portal's public API
and its signed webhooks:

* at start, and every --resync seconds, for each purpose on consent in the
  inventory (GET /api/v1/inventory): the audience, page by page, the first
  time (GET /api/v1/purposes/{key}/audience), then only who joined or left
  since the cursor it kept (GET .../audience/changes). A webhook that never
  arrived (the receiver was down, the endpoint disabled) is caught up there.
* a webhook receiver (POST, Standard Webhooks signatures checked by hand:
  HMAC-SHA256 of "id.timestamp.body", a timestamp tolerance, several
  signatures during a secret's rotation) that applies each decision at once:
  consent.granted, .withdrawn, .refused, .lapsed, consent.gpc_opt_out, and
  account.erased (the person is forgotten).
* rights requests assigned to this system (rights_request.assigned, and the
  open tasks at each resync): an erasure forgets the person, a copy answers
  with what is held, an objection or a restriction stops the purposes; each
  task is then completed through the API (POST /api/v1/rights/tasks/...).
  A task called off in the portal (rights_request.cancelled: the request was
  cancelled or refused) is dropped: a late or retried assignment of it, or
  the task list, never has it carried out.

The copy is a JSON file (--state), written atomically (a new file renamed
over the old), readable by its owner only. Per person and purpose it holds
`allowed` (may the person be contacted or processed for it now) and what is
known of the decision behind it.

A withdrawal is applied from the webhook at once. A grant is applied only
after the person's consents are read back from the API: a late or replayed
grant must never undo a later withdrawal.

    export CLAREZA_API_KEY=clz_...  # scopes consents:read, audience:read, rights:handle
    export CLAREZA_WEBHOOK_SECRET=whsec_...  # the endpoint's (two, space-separated, in a rotation)
    python consent_sync.py --portal https://privacy.example.com --listen 0.0.0.0:8001 \\
        --state consents-copy.json

or, in the demo that `make run` starts: --config var/demo-shop.json.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOLERANCE_SECONDS = 300  # Standard Webhooks' usual tolerance for webhook-timestamp
MAX_BODY = 1_000_000
SEEN_KEPT = 2000  # webhook-ids remembered to drop a delivery seen already
PAGE = 1000
WITHDRAWING = {
    "consent.withdrawn",
    "consent.refused",
    "consent.lapsed",
    "consent.gpc_opt_out",
}


_LOG_LOCK = threading.Lock()


def log(line: str) -> None:
    """One readable line per thing that happened, on stdout, in one write:
    print() writes the text and its newline apart, and the receiver's threads
    and the syncer's then ran two lines together (seen under `make run`)."""
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")  # noqa: UP017 - 3.9 has no UTC
    with _LOG_LOCK:
        sys.stdout.write(f"{stamp} {line}\n")
        sys.stdout.flush()


def short(subject: str | None) -> str:
    return (subject or "?")[:8]


# Signatures ---------------------------------------------------------------------------


class InvalidSignature(Exception):
    pass


def verify(
    secrets: list[str],
    headers,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> dict:
    """The webhook's JSON if one of its signatures is one of `secrets`' and
    its timestamp is within `tolerance` seconds of now; InvalidSignature
    otherwise. `headers` is anything with .get() (http.server's headers are
    case-insensitive)."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    now = time.time() if now is None else now
    if abs(now - sent) > tolerance:
        raise InvalidSignature(f"timestamp {sent} is outside the tolerance of {tolerance} s")
    signed = f"{msg_id}.{sent}.".encode() + body
    for secret in secrets:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            continue
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        for signature in signatures.split():
            version, _, value = signature.partition(",")
            # compare_digest: no timing difference tells a forger how close they came.
            if version == "v1" and hmac.compare_digest(value.encode(), expected):
                try:
                    return json.loads(body)
                except ValueError:
                    raise InvalidSignature("the body is not JSON") from None
    raise InvalidSignature("no signature matches")


# The portal's API ---------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, problem: dict, retry_after: str | None = None) -> None:
        self.status, self.problem = status, problem
        self.retry_after = retry_after if (retry_after or "").isdigit() else None
        title = problem.get("title") or problem.get("detail") or ""
        super().__init__(f"{status} {title}".strip())


class Portal:
    """The portal's API with one key: JSON in, JSON out, problems as ApiError."""

    def __init__(self, url: str, key: str, *, timeout: float = 30) -> None:
        self.url, self.key, self.timeout = url.rstrip("/"), key, timeout

    def call(self, method: str, path: str, *, params: dict | None = None, body=None) -> dict:
        """One call; answered 429 (the key's rate limit), it waits Retry-After
        and tries again, a few times."""
        for _attempt in range(5):
            try:
                return self._call(method, path, params=params, body=body)
            except ApiError as error:
                if error.status != 429:
                    raise
                time.sleep(min(60, max(1, int(error.retry_after or 1))))
        return self._call(method, path, params=params, body=body)

    def _call(self, method: str, path: str, *, params: dict | None, body) -> dict:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our portal
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                problem = json.loads(error.read() or b"{}")
            except ValueError:
                problem = {}
            raise ApiError(error.code, problem, error.headers.get("Retry-After")) from None

    def get(self, path: str, **params) -> dict:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.call("POST", path, body=body or {})


# The copy -----------------------------------------------------------------------------


class Copy:
    """The consents held, and the cursors and webhook-ids that keep them in
    step, in one JSON file. Every change happens under `lock`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        data = json.loads(path.read_text()) if path.exists() else {}
        self.people: dict[str, dict[str, dict]] = data.get("people", {})
        self.cursors: dict[str, str] = data.get("cursors", {})
        self.seen: list[str] = data.get("webhooks_seen", [])
        self.tasks_done: list[str] = data.get("tasks_done", [])
        self.tasks_cancelled: list[str] = data.get("tasks_cancelled", [])

    def save(self) -> None:
        """Atomically: a reader (or a crash) sees the old file or the new one."""
        with self.lock:
            data = {
                "people": self.people,
                "cursors": self.cursors,
                "webhooks_seen": self.seen[-SEEN_KEPT:],
                "tasks_done": self.tasks_done[-SEEN_KEPT:],
                "tasks_cancelled": self.tasks_cancelled[-SEEN_KEPT:],
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(handle, "w") as out:  # mkstemp's file is the owner's only (0600)
                    json.dump(data, out, indent=1, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(name, self.path)
            except BaseException:
                unlink_quietly(name)
                raise

    def allowed(self, subject: str, purpose: str) -> bool:
        return bool(self.people.get(subject, {}).get(purpose, {}).get("allowed"))

    def set(self, subject: str, purpose: str, *, create: bool = True, **values) -> None:
        if subject not in self.people and not create:
            return
        entry = self.people.setdefault(subject, {}).setdefault(purpose, {})
        entry.update(values, updated_at=now_iso())

    def forget(self, subject: str) -> bool:
        return self.people.pop(subject, None) is not None

    def newer_known(self, subject: str, purpose: str, decided_at: str | None) -> bool:
        """Whether the copy already holds a decision taken after `decided_at`
        (webhooks arrive at least once, in any order)."""
        known = self.people.get(subject, {}).get(purpose, {}).get("decided_at")
        return bool(known and decided_at and parse_time(known) > parse_time(decided_at))


def unlink_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Keeping in step ----------------------------------------------------------------------


class ConsentSync:
    def __init__(self, portal: Portal, copy: Copy, secrets: list[str]) -> None:
        self.portal, self.copy, self.secrets = portal, copy, [s for s in secrets if s]

    # From the API: the audience, then its changes.

    def consent_purposes(self) -> list[str]:
        inventory = self.portal.get("/api/v1/inventory")
        return [p["key"] for p in inventory.get("purposes", []) if p.get("optional")]

    def sync(self) -> int:
        """Bring every purpose up to date; returns how many people changed."""
        changed = 0
        purposes = self.consent_purposes()
        for purpose in purposes:
            try:
                if purpose in self.copy.cursors:
                    changed += self.catch_up(purpose)
                else:
                    changed += self.walk(purpose)
                    changed += self.catch_up(purpose)
            except ApiError as error:
                if error.problem.get("type", "").endswith("#problem-invalid-cursor"):
                    # A cursor the portal no longer takes: walk the audience again.
                    log(f"sync   {purpose}: cursor refused, walking the audience again")
                    with self.copy.lock:
                        self.copy.cursors.pop(purpose, None)
                    continue
                raise
        # A purpose gone from the inventory (retired): nobody may be processed for it.
        for purpose in set(self.copy.cursors) - set(purposes):
            with self.copy.lock:
                self.copy.cursors.pop(purpose)
                for subject, consents in self.copy.people.items():
                    if consents.get(purpose, {}).get("allowed"):
                        self.copy.set(subject, purpose, allowed=False, source="retired")
                        changed += 1
            log(f"sync   {purpose}: no longer in the inventory, nobody allowed")
        changed += self.open_tasks()
        self.copy.save()
        return changed

    def walk(self, purpose: str) -> int:
        """The whole audience of `purpose`, page by page; whoever the copy
        allowed and is not in it any more is no longer allowed. The cursor
        for the changes is fixed by the first page: what happens during the
        walk comes in the changes that follow."""
        members: set[str] = set()
        params: dict = {"limit": PAGE}
        while True:
            page = self.portal.get(f"/api/v1/purposes/{purpose}/audience", **params)
            members.update(item["subject_id"] for item in page["items"])
            if page["next_cursor"] is None:
                break
            params = {"limit": PAGE, "cursor": page["next_cursor"]}
        changed = 0
        with self.copy.lock:
            for subject in members:
                if not self.copy.allowed(subject, purpose):
                    self.copy.set(
                        subject, purpose, allowed=True, decision="granted", source="audience"
                    )
                    changed += 1
            for subject in list(self.copy.people):
                if subject not in members and self.copy.allowed(subject, purpose):
                    self.copy.set(subject, purpose, allowed=False, source="audience")
                    changed += 1
            self.copy.cursors[purpose] = page["changes_cursor"]
            self.copy.save()
        log(f"sync   {purpose}: audience of {len(members)}, {changed} changed in the copy")
        return changed

    def catch_up(self, purpose: str) -> int:
        """Who joined or left the audience since the cursor."""
        changed = 0
        while True:
            # Under the lock from the read to the write: a webhook applied in
            # between would otherwise be overwritten by an older answer.
            with self.copy.lock:
                page = self.portal.get(
                    f"/api/v1/purposes/{purpose}/audience/changes",
                    cursor=self.copy.cursors[purpose],
                    limit=PAGE,
                )
                for item in page["items"]:
                    subject, present = item["subject_id"], item["in_audience"]
                    if self.copy.allowed(subject, purpose) == present:
                        continue
                    if present:
                        self.copy.set(
                            subject, purpose, allowed=True, decision="granted", source="changes"
                        )
                    else:
                        # Someone the copy never held stays out of it (an erasure, say).
                        self.copy.set(subject, purpose, create=False, allowed=False,
                                      source="changes")  # fmt: skip
                    changed += 1
                    log(
                        f"sync   {purpose}: subject {short(subject)} "
                        f"{'joined' if present else 'left'} (changes since the cursor)"
                    )
                self.copy.cursors[purpose] = page["next_cursor"]
                self.copy.save()
            if not page["more"]:
                return changed

    def refresh_person(self, subject: str) -> bool:
        """The person's consents as the portal has them now; False (and the
        person forgotten) when the portal knows them no more."""
        try:
            answer = self.portal.get(f"/api/v1/subjects/{subject}/consents")
        except ApiError as error:
            if error.status == 404:
                self.copy.forget(subject)
                return False
            raise
        for consent in answer["consents"]:
            self.copy.set(
                subject,
                consent["purpose"],
                allowed=consent["processing_allowed"],
                decision=consent["decision"],
                decided_at=consent["decided_at"],
                notice_version=consent["notice_version"],
                method=consent["method"],
                source="api",
            )
        return True

    # From webhooks.

    def receive(self, headers, body: bytes) -> tuple[int, str]:
        """(HTTP status, one line for the log) for one POST."""
        try:
            message = verify(self.secrets, headers, body)
        except InvalidSignature as refused:
            return 401, f"refused  a webhook: {refused}"
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return 400, "refused  a webhook: not the {type, timestamp, data} shape"
        msg_id = headers.get("webhook-id")
        kind, data = str(message.get("type", "?")), message["data"]
        with self.copy.lock:
            if msg_id in self.copy.seen:
                return 200, f"again    {kind} {msg_id} (seen already, nothing to do)"
            try:
                outcome = self.apply(kind, data)
            except (ApiError, OSError) as error:
                # Not applied: a 5xx has the portal send it again later.
                who = short(data.get("subject_id"))
                return 503, f"{kind:<24} subject {who}: not applied ({error}); the portal retries"
            self.copy.seen.append(msg_id)
            del self.copy.seen[:-SEEN_KEPT]
            self.copy.save()
        purpose = f" {data['purpose']}" if data.get("purpose") else ""
        return 200, f"{kind:<24} subject {short(data.get('subject_id'))}{purpose}: {outcome}"

    def apply(self, kind: str, data: dict) -> str:
        """What the copy does with one event; a line saying it."""
        subject, purpose = data.get("subject_id"), data.get("purpose")
        if kind in WITHDRAWING and subject and purpose:
            if self.copy.newer_known(subject, purpose, data.get("decided_at")):
                return "older than what the copy holds, ignored"
            if subject not in self.copy.people:
                # Not held, so not processed: nothing to stop. (Deliveries come in
                # any order: an erasure's withdrawals may follow its account.erased.)
                return "not held, nothing to stop"
            self.copy.set(
                subject,
                purpose,
                allowed=False,
                decision=data.get("decision", "withdrawn"),
                decided_at=data.get("decided_at"),
                notice_version=data.get("notice_version"),
                method=data.get("method"),
                source=kind,
            )
            return f"stopped ({data.get('method')})"
        if kind == "consent.granted" and subject and purpose:
            if self.copy.newer_known(subject, purpose, data.get("decided_at")):
                return "older than what the copy holds, ignored"
            if not self.refresh_person(subject):  # confirmed by the API before it counts
                return "unknown to the portal now (erased?): not held"
            allowed = self.copy.allowed(subject, purpose)
            return "allowed" if allowed else "granted, but not allowed now (confirmed by the API)"
        if kind == "account.erased" and subject:
            return "forgotten" if self.copy.forget(subject) else "not held, nothing to forget"
        if kind == "rights_request.assigned":
            return self.handle_task(data)
        if kind == "rights_request.cancelled":
            return self.drop_task(data)
        return "nothing to do"

    # Rights requests assigned to this system.

    def handle_task(self, task: dict) -> str:
        """Carry out a task (from the webhook's data or the API's list) and
        complete it through the API."""
        task_id = task.get("task") or task.get("id")
        subject, kind = task.get("subject_id"), task.get("kind")
        purposes = task.get("purposes") or []
        if not task_id or task_id in self.copy.tasks_done:
            return "done already"
        if task_id in self.copy.tasks_cancelled:
            return f"{kind} task {short(task_id)}: called off in the portal, not done"
        data = None
        if kind == "erasure":
            held = self.copy.forget(subject)
            done = "Erased: this system's copy of the person's consents " + (
                "was deleted." if held else "held nothing about them."
            )
        elif kind == "copy":
            data = {"consents": self.copy.people.get(subject, {})}
            count = len(data["consents"])
            records = "record" if count == 1 else "records"
            done = f"Sent the {count} consent {records} this system holds."
        elif kind in ("objection", "restriction"):
            # Acknowledged first: the portal shows staff it is in hand.
            if not self._task_call(task_id, "acknowledge"):
                self.copy.tasks_done.append(task_id)
                return f"{kind} task {short(task_id)}: closed in the portal already"
            stopped = purposes or list(self.copy.people.get(subject, {}))
            for purpose in stopped:
                self.copy.set(subject, purpose, allowed=False, source=kind)
            what = "stopped" if kind == "objection" else "restricted"
            done = f"Processing {what} in this system for: {', '.join(stopped) or 'nothing held'}."
        else:
            return f"a task of kind {kind!r} this script does not know: left open"
        body = {"done": done, **({"data": data} if data is not None else {})}
        if not self._task_call(task_id, "complete", body):
            done = "closed in the portal already (completed or cancelled)"
        self.copy.tasks_done.append(task_id)
        return f"{kind} task {short(task_id)}: {done}"

    def drop_task(self, cancelled: dict) -> str:
        """The portal called a task off: whatever this system would still do
        for it is dropped (its assignment may yet arrive, late or retried,
        and is then ignored)."""
        task_id, kind = cancelled.get("task"), cancelled.get("kind")
        if not task_id:
            return "no task named, nothing to drop"
        reason = cancelled.get("reason") or "no reason given"
        if task_id in self.copy.tasks_done:
            return f"{kind} task {short(task_id)}: called off ({reason}), but done here already"
        if task_id not in self.copy.tasks_cancelled:
            self.copy.tasks_cancelled.append(task_id)
            del self.copy.tasks_cancelled[:-SEEN_KEPT]
        return f"{kind} task {short(task_id)}: called off ({reason}), dropped"

    def _task_call(self, task_id: str, action: str, body: dict | None = None) -> bool:
        """POST an action on a task; False when the portal answers 409 (the
        task is completed already, or cancelled)."""
        try:
            self.portal.post(f"/api/v1/rights/tasks/{task_id}/{action}", body)
        except ApiError as error:
            if error.status != 409:
                raise
            return False
        return True

    def open_tasks(self) -> int:
        """Tasks whose webhook never arrived. A key without rights:handle, or a
        portal without the operation, has none."""
        try:
            tasks = self.portal.get("/api/v1/rights/tasks", status="open")["items"]
        except ApiError as error:
            if error.status in (403, 404):
                return 0
            raise
        handled = 0
        for task in tasks:
            if task.get("status") not in ("open", "acknowledged"):
                continue
            with self.copy.lock:
                log(f"task   {task.get('kind')} for subject {short(task.get('subject_id'))}: "
                    f"{self.handle_task(task)} (caught up)")  # fmt: skip
            handled += 1
        return handled


# The receiver -------------------------------------------------------------------------


def make_server(sync: ConsentSync, address: tuple[str, int], path: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.split("?")[0] != path:
                return self._answer(404, {"error": "not here"})
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._answer(411, {"error": "Content-Length needed"})
            if not 0 <= length <= MAX_BODY:
                return self._answer(413, {"error": "too large"})
            status, line = sync.receive(self.headers, self.rfile.read(length))
            log(line)
            return self._answer(status, {"ok": status < 300})

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass  # one line per event is written by do_POST

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    return server


def keep_in_step(sync: ConsentSync, every: float, stop: threading.Event) -> None:
    """Sync now (again and again until the portal answers: it may be starting
    too), then every `every` seconds."""
    waited = False
    while not stop.is_set():
        try:
            changed = sync.sync()
        except ApiError as error:
            # Refused (a revoked key, a missing scope): asking again at once would
            # only be refused again.
            log(f"sync   the portal refused: {error}; trying again in {every:g} s")
            stop.wait(every)
            continue
        except OSError as error:
            if not waited:
                log(f"sync   the portal is not answering ({error}); trying again every 5 s")
            waited = True
            stop.wait(5)
            continue
        if waited or changed:
            log(f"sync   in step: {changed} changes applied, {len(sync.copy.people)} people held")
        waited = False
        stop.wait(every)


# Configuration ------------------------------------------------------------------------


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a JSON file with portal, api_key, webhook_secret, "
                        "listen, path and state (the demo's var/demo-shop.json)")  # fmt: skip
    parser.add_argument("--portal", help="the portal's address (env CLAREZA_URL)")
    parser.add_argument("--key", help="the API key (env CLAREZA_API_KEY)")
    parser.add_argument(
        "--secret",
        action="append",
        help="the webhook endpoint's secret, whsec_...; twice during a rotation "
        "(env CLAREZA_WEBHOOK_SECRET, space-separated)",
    )
    parser.add_argument("--listen", help="host:port for the receiver (default 127.0.0.1:8001)")
    parser.add_argument("--path", help="the receiver's path (default /webhooks/clareza)")
    parser.add_argument("--state", help="the copy's JSON file (default consents-copy.json)")
    parser.add_argument(
        "--resync", type=float, default=300, help="seconds between syncs (default 300)"
    )
    parser.add_argument("--once", action="store_true", help="sync once and exit, no receiver")
    args = parser.parse_args(argv)
    config: dict = {}
    base = Path.cwd()
    if args.config:
        config_path = Path(args.config)
        config = json.loads(config_path.read_text())
        base = config_path.resolve().parent
    env = os.environ
    args.portal = args.portal or env.get("CLAREZA_URL") or config.get("portal")
    args.key = args.key or env.get("CLAREZA_API_KEY") or config.get("api_key")
    secrets = args.secret or env.get("CLAREZA_WEBHOOK_SECRET", "").split()
    if not secrets:
        configured = config.get("webhook_secret", [])
        secrets = configured if isinstance(configured, list) else configured.split()
    args.secrets = secrets
    args.listen = args.listen or config.get("listen") or "127.0.0.1:8001"
    args.path = args.path or config.get("path") or "/webhooks/clareza"
    state = args.state or config.get("state") or "consents-copy.json"
    args.state = state if args.state else str(base / state)
    missing = [name for name in ("portal", "key") if not getattr(args, name)]
    if not args.once and not args.secrets:
        missing.append("secret")
    if missing:
        parser.error("needed: " + ", ".join(f"--{name}" for name in missing))
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    sync = ConsentSync(Portal(args.portal, args.key), Copy(Path(args.state)), args.secrets)
    if args.once:
        changed = sync.sync()
        log(f"sync   in step: {changed} changes applied, {len(sync.copy.people)} people held")
        return 0
    host, _, port = args.listen.rpartition(":")
    try:
        server = make_server(sync, (host or "127.0.0.1", int(port)), args.path)
    except OSError as error:
        log(f"cannot listen on {args.listen}: {error.strerror or error}")
        return 1
    stop = threading.Event()
    syncer = threading.Thread(target=keep_in_step, args=(sync, args.resync, stop), daemon=True)
    syncer.start()
    log(
        f"listening on http://{args.listen}{args.path} for {args.portal}'s webhooks; "
        f"copy in {args.state}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
