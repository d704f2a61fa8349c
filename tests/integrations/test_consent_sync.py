"""integrations/examples/consent_sync.py, the script a company copies, keeps
a copy of every customer's consents in step with a live portal through
withdrawals, GPC, erasures and a missed webhook: its receiver runs in a
thread on loopback, the portal's webhooks reach it as deliveries (tasks run
eagerly, in this process, when each change commits), and the script reads
the API of a live server. Rights tasks are checked against a small fake of
the tasks API (CONTRACT: helper A builds the real one beside this)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import standardwebhooks

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record, gpc_apply
from integrations.api import services as api_services
from integrations.examples import consent_sync
from integrations.models import ApiScope, WebhookEndpoint
from integrations.webhooks import services as webhook_services
from portal import events
from rights import services as rights_services
from rights.models import Kind
from tests.conftest import make_user

SCOPES = [ApiScope.CONSENTS_READ, ApiScope.AUDIENCE_READ, ApiScope.RIGHTS_HANDLE]
SHOP_EVENTS = [
    events.CONSENT_GRANTED,
    events.CONSENT_WITHDRAWN,
    events.CONSENT_REFUSED,
    events.CONSENT_LAPSED,
    events.GPC_OPT_OUT,
    events.ACCOUNT_ERASED,
]
PATH = "/webhooks/clareza"


def decide(person, purpose, decision=Decision.GRANTED):
    return consent_record(
        subject_id=person.subject_id, purpose=purpose, decision=decision, method=Method.PANEL
    )


class Running:
    """The script's receiver serving in a thread."""

    def __init__(self, sync: consent_sync.ConsentSync) -> None:
        self.sync = sync
        self.server = consent_sync.make_server(sync, ("127.0.0.1", 0), PATH)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def shop(live_server, settings, staff, tmp_path):
    """The shop as a company sets it up: a key and an endpoint made in the
    admin (here through the same services), the script's receiver listening."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # DEBUG is off in tests
    key = api_services.api_key_create(name="Shop", scopes=SCOPES, acting_user=staff).secret
    copy = consent_sync.Copy(tmp_path / "copy.json")
    sync = consent_sync.ConsentSync(consent_sync.Portal(live_server.url, key), copy, [])
    running = Running(sync)
    hook = webhook_services.endpoint_create(
        name="Shop", url=running.url, events=SHOP_EVENTS, acting_user=staff
    )
    sync.secrets = [hook.secret]
    running.endpoint = hook.endpoint
    yield running
    running.close()


def held(sync, person, purpose_key):
    return sync.copy.people.get(str(person.subject_id), {}).get(purpose_key)


def test_the_copy_follows_withdrawals_gpc_erasures_and_a_missed_webhook(
    flushed_after, shop, staff, tmp_path, capsys
):
    purposes = {p.key: p for p in seed_inventory()}
    news, recs, ads = purposes["newsletter"], purposes["recommendations"], purposes["ad-partners"]
    ana, bia, caio = (make_user(f"{n}@example.com") for n in ("ana", "bia", "caio"))
    sync = shop.sync
    # Before the shop listened: the initial sync learns them from the audiences.
    decide(ana, news)
    decide(bia, news)
    decide(bia, ads)
    sync.copy.people.clear()  # what webhooks brought meanwhile: start from the API alone
    sync.sync()
    assert held(sync, ana, "newsletter")["allowed"] is True
    assert held(sync, bia, "ad-partners")["allowed"] is True
    assert held(sync, caio, "newsletter") is None
    assert set(sync.copy.cursors) >= {"newsletter", "recommendations", "ad-partners"}

    # A customer withdraws: the webhook arrives before the call returns.
    decide(ana, news, Decision.WITHDRAWN)
    assert held(sync, ana, "newsletter")["allowed"] is False
    assert held(sync, ana, "newsletter")["source"] == "consent.withdrawn"
    # A grant counts once the API confirms it.
    decide(caio, recs)
    assert held(sync, caio, "recommendations")["allowed"] is True
    assert held(sync, caio, "recommendations")["source"] == "api"

    # Global Privacy Control withdraws the sharing.
    gpc_apply(subject_id=bia.subject_id)
    assert held(sync, bia, "ad-partners")["allowed"] is False
    assert held(sync, bia, "ad-partners")["method"] == "gpc"

    # An erasure: the copy forgets the person, whatever order the deliveries take.
    rights_services.user_erase(user=bia, acting_user=staff)
    assert str(bia.subject_id) not in sync.copy.people

    # Missed webhooks (the endpoint turned off) are caught up by the changes.
    webhook_services.endpoint_update(
        endpoint=shop.endpoint, name="Shop", url=shop.url, events=SHOP_EVENTS,
        is_active=False, acting_user=staff,
    )  # fmt: skip
    decide(ana, recs)
    decide(caio, recs, Decision.WITHDRAWN)
    rights_services.request_create(user=ana, kind=Kind.RESTRICTION, purposes=[recs])
    decide(caio, news)
    assert held(sync, ana, "recommendations") is None
    assert held(sync, caio, "recommendations")["allowed"] is True
    sync.sync()
    # Ana granted, then restricted it: out of the audience (the restriction is a change).
    assert (
        not held(sync, ana, "recommendations") or not held(sync, ana, "recommendations")["allowed"]
    )
    assert held(sync, caio, "recommendations")["allowed"] is False
    assert held(sync, caio, "newsletter")["allowed"] is True
    assert str(bia.subject_id) not in sync.copy.people  # the erased stay forgotten

    # What is on disk is the copy, readable by its owner only.
    saved = json.loads((tmp_path / "copy.json").read_text())
    assert saved["people"] == sync.copy.people
    assert stat.S_IMODE((tmp_path / "copy.json").stat().st_mode) == 0o600
    # One readable line per event received.
    out = capsys.readouterr().out
    assert f"consent.withdrawn        subject {str(ana.subject_id)[:8]} newsletter" in out
    assert f"account.erased           subject {str(bia.subject_id)[:8]}: forgotten" in out
    assert "consent.gpc_opt_out" in out


def test_the_command_line_syncs_once_from_a_config_file(
    flushed_after, live_server, staff, tmp_path, capsys
):
    purposes = {p.key: p for p in seed_inventory()}
    ana = make_user("ana@example.com")
    decide(ana, purposes["newsletter"])
    key = api_services.api_key_create(name="Shop", scopes=SCOPES, acting_user=staff).secret
    config = tmp_path / "shop.json"
    config.write_text(json.dumps({"portal": live_server.url, "api_key": key, "state": "c.json"}))

    assert consent_sync.main(["--config", str(config), "--once"]) == 0

    copy = json.loads((tmp_path / "c.json").read_text())
    assert copy["people"][str(ana.subject_id)]["newsletter"]["allowed"] is True
    assert "in step: 1 changes applied, 1 people held" in capsys.readouterr().out


# Signatures, checked by hand ---------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()


def signed(body: str, secret: str = SECRET, *, at: float | None = None, msg_id="msg_1") -> dict:
    """Headers as the `standardwebhooks` package signs them."""
    moment = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, moment, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


BODY = json.dumps({"type": "account.erased", "timestamp": "x", "data": {"subject_id": "s"}})


def test_a_signature_made_by_the_standard_library_verifies():
    assert consent_sync.verify([SECRET], signed(BODY), BODY.encode())["type"] == "account.erased"


def test_a_forged_or_altered_body_is_refused():
    with pytest.raises(consent_sync.InvalidSignature, match="no signature matches"):
        consent_sync.verify([SECRET], signed(BODY, OTHER), BODY.encode())
    with pytest.raises(consent_sync.InvalidSignature, match="no signature matches"):
        consent_sync.verify([SECRET], signed(BODY), BODY.replace('"s"', '"t"').encode())
    with pytest.raises(consent_sync.InvalidSignature, match="missing"):
        consent_sync.verify([SECRET], {"webhook-id": "m"}, BODY.encode())


def test_a_stale_or_future_timestamp_is_refused_though_signed():
    for moment in (time.time() - 301, time.time() + 301):
        with pytest.raises(consent_sync.InvalidSignature, match="outside the tolerance"):
            consent_sync.verify([SECRET], signed(BODY, at=moment), BODY.encode())
    consent_sync.verify([SECRET], signed(BODY, at=time.time() - 299), BODY.encode())


def test_during_a_rotation_either_secret_verifies_among_several_signatures():
    headers = signed(BODY, OTHER)
    headers["webhook-signature"] += " " + signed(BODY, SECRET)["webhook-signature"]
    assert consent_sync.verify([SECRET], headers, BODY.encode())
    assert consent_sync.verify([OTHER], headers, BODY.encode())
    assert consent_sync.verify(["whsec_not-base64!", SECRET], headers, BODY.encode())


# The receiver over HTTP, with a fake of the rights tasks API --------------------------


class FakeTasksApi:
    """The contract's rights operations, answering as the portal would:
    GET /api/v1/rights/tasks, POST .../acknowledge and .../complete (409 the
    second time). What it was sent is kept in `calls`."""

    def __init__(self, open_tasks=()) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.completed: set[str] = set()
        self.cancelled: set[str] = set()
        self.open_tasks = list(open_tasks)
        self.rate_limited = 0  # GETs answered 429 before the real answer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.calls.append(("GET", self.path, {}))
                if fake.rate_limited:
                    fake.rate_limited -= 1
                    data = b'{"status": 429}'
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                if self.path.startswith("/api/v1/rights/tasks"):
                    return self._send(200, {"items": fake.open_tasks})
                return self._send(200, {"purposes": []})  # the inventory

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.calls.append(("POST", self.path, body))
                task = self.path.split("/")[-2]
                if task in fake.cancelled:
                    return self._send(409, {"status": 409, "detail": "Cancelled."})
                if self.path.endswith("/complete"):
                    if task in fake.completed:
                        return self._send(409, {"status": 409, "detail": "Completed already."})
                    fake.completed.add(task)
                return self._send(200, {"id": task})

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_portal():
    fake = FakeTasksApi()
    yield fake
    fake.close()


@pytest.fixture
def receiver(fake_portal, tmp_path):
    copy = consent_sync.Copy(tmp_path / "copy.json")
    sync = consent_sync.ConsentSync(consent_sync.Portal(fake_portal.url, "clz_x"), copy, [SECRET])
    running = Running(sync)
    yield running
    running.close()


def post(url: str, body: str, headers: dict) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def deliver(receiver, kind: str, data: dict, *, secret=SECRET, at=None) -> int:
    body = json.dumps({"type": kind, "timestamp": "2026-11-29T20:00:00+00:00", "data": data})
    return post(receiver.url, body, signed(body, secret, at=at, msg_id=f"msg_{uuid.uuid4()}"))


def assigned(kind: str, subject: str, purposes=()) -> dict:
    return {
        "task": str(uuid.uuid4()),
        "request": str(uuid.uuid4()),
        "kind": kind,
        "subject_id": subject,
        "purposes": list(purposes),
        "due_at": "2026-12-14T20:00:00+00:00",
        "system": "shop",
    }


def test_forged_and_stale_webhooks_are_refused_and_change_nothing(receiver, capsys):
    receiver.sync.copy.set("s1", "newsletter", allowed=True)
    data = {"subject_id": "s1"}
    assert deliver(receiver, "account.erased", data, secret=OTHER) == 401
    assert deliver(receiver, "account.erased", data, at=time.time() - 3600) == 401
    assert receiver.sync.copy.allowed("s1", "newsletter")
    assert "refused  a webhook: no signature matches" in capsys.readouterr().out
    assert deliver(receiver, "account.erased", data) == 200
    assert "s1" not in receiver.sync.copy.people


def test_the_same_webhook_twice_is_applied_once(receiver):
    body = json.dumps({"type": "account.erased", "timestamp": "t", "data": {"subject_id": "s1"}})
    headers = signed(body, msg_id="msg_same")
    assert post(receiver.url, body, headers) == 200
    receiver.sync.copy.set("s1", "newsletter", allowed=True)  # held again since
    assert post(receiver.url, body, headers) == 200
    assert receiver.sync.copy.allowed("s1", "newsletter")


def test_an_older_withdrawal_does_not_undo_a_later_grant(receiver):
    receiver.sync.copy.set(
        "s1", "newsletter", allowed=True, decision="granted", decided_at="2026-11-29T20:00:00+00:00"
    )
    late = {"subject_id": "s1", "purpose": "newsletter", "decision": "withdrawn",
            "decided_at": "2026-11-29T19:00:00+00:00", "method": "panel"}  # fmt: skip
    assert deliver(receiver, "consent.withdrawn", late) == 200
    assert receiver.sync.copy.allowed("s1", "newsletter")


def test_an_erasure_task_forgets_the_person_and_is_completed(receiver, fake_portal):
    receiver.sync.copy.set("s1", "newsletter", allowed=True)
    data = assigned("erasure", "s1")
    assert deliver(receiver, "rights_request.assigned", data) == 200
    assert "s1" not in receiver.sync.copy.people
    ((method, path, body),) = fake_portal.calls
    assert (method, path) == ("POST", f"/api/v1/rights/tasks/{data['task']}/complete")
    assert "deleted" in body["done"]
    assert "data" not in body


def test_a_copy_task_is_completed_with_what_the_copy_holds(receiver, fake_portal):
    receiver.sync.copy.set("s1", "newsletter", allowed=True, decision="granted")
    data = assigned("copy", "s1")
    assert deliver(receiver, "rights_request.assigned", data) == 200
    ((_method, _path, body),) = fake_portal.calls
    assert body["data"]["consents"]["newsletter"]["decision"] == "granted"
    assert "s1" in receiver.sync.copy.people


@pytest.mark.parametrize("kind", ["objection", "restriction"])
def test_an_objection_or_restriction_is_acknowledged_applied_and_completed(
    receiver, fake_portal, kind
):
    receiver.sync.copy.set("s1", "newsletter", allowed=True)
    receiver.sync.copy.set("s1", "recommendations", allowed=True)
    data = assigned(kind, "s1", ["newsletter"])
    assert deliver(receiver, "rights_request.assigned", data) == 200
    assert [path.rsplit("/", 1)[1] for _m, path, _b in fake_portal.calls] == [
        "acknowledge",
        "complete",
    ]
    assert not receiver.sync.copy.allowed("s1", "newsletter")
    assert receiver.sync.copy.allowed("s1", "recommendations")
    # Delivered again (a new webhook-id, as a replay would not be): done already.
    fake_portal.calls.clear()
    assert deliver(receiver, "rights_request.assigned", data) == 200
    assert fake_portal.calls == []


def test_a_task_completed_elsewhere_is_not_an_error(receiver, fake_portal):
    data = assigned("erasure", "s1")
    fake_portal.completed.add(data["task"])
    assert deliver(receiver, "rights_request.assigned", data) == 200


def test_open_tasks_whose_webhook_never_came_are_handled_at_the_sync(receiver, fake_portal):
    receiver.sync.copy.set("s2", "newsletter", allowed=True)
    task = assigned("erasure", "s2")
    fake_portal.open_tasks = [{"id": task["task"], "status": "open", **task}]
    receiver.sync.sync()
    assert "s2" not in receiver.sync.copy.people
    assert ("GET", "/api/v1/rights/tasks?status=open", {}) in fake_portal.calls
    assert fake_portal.completed == {task["task"]}


def test_the_receiver_answers_404_elsewhere_and_401_unsigned(receiver):
    assert post(receiver.url.replace(PATH, "/other"), "{}", {}) == 404
    assert post(receiver.url, "{}", {}) == 401


def test_a_secret_is_checked_by_hmac_over_id_timestamp_and_body():
    """The signature, computed as the Standard Webhooks text says, by hand."""
    stamp = str(int(time.time()))
    mac = hmac.new(base64.b64decode(SECRET[6:]), f"m.{stamp}.{BODY}".encode(), hashlib.sha256)
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }
    assert consent_sync.verify([SECRET], headers, BODY.encode())["data"] == {"subject_id": "s"}


def test_an_endpoint_kept_by_the_portal_signs_what_the_script_verifies(db, staff, settings):
    """The portal's own signing (integrations.webhooks.signing) and the script agree."""
    from integrations.webhooks import signing

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    hook = webhook_services.endpoint_create(
        name="Shop", url="http://127.0.0.1:9/h", events=SHOP_EVENTS, acting_user=staff
    )
    endpoint = WebhookEndpoint.objects.get(pk=hook.endpoint.pk)
    stamp = int(time.time())
    headers = signing.headers(
        webhook_id="msg_p", timestamp=stamp, body=BODY, secrets=endpoint.secrets()
    )
    assert consent_sync.verify([hook.secret], headers, BODY.encode())


def test_a_rate_limited_call_waits_retry_after_and_tries_again(fake_portal):
    fake_portal.rate_limited = 1
    started = time.monotonic()
    answer = consent_sync.Portal(fake_portal.url, "clz_x").get("/api/v1/inventory")
    assert answer == {"purposes": []}
    assert time.monotonic() - started >= 1
    assert len(fake_portal.calls) == 2


def test_a_cancelled_objection_task_is_left_alone(receiver, fake_portal):
    receiver.sync.copy.set("s1", "newsletter", allowed=True)
    data = assigned("objection", "s1", ["newsletter"])
    fake_portal.cancelled.add(data["task"])
    assert deliver(receiver, "rights_request.assigned", data) == 200
    assert [path.rsplit("/", 1)[1] for _m, path, _b in fake_portal.calls] == ["acknowledge"]
    assert receiver.sync.copy.allowed("s1", "newsletter")  # nothing to stop any more


def test_each_line_is_written_whole_whatever_thread_logs_it(monkeypatch):
    """Under `make run` the syncer's line and a webhook's ran together as one."""
    writes: list[str] = []

    class Slow:
        def write(self, text: str) -> None:
            writes.append(text)
            time.sleep(0.001)  # room for another thread between two writes

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stdout", Slow())
    threads = [
        threading.Thread(target=lambda n=n: [consent_sync.log(f"t{n} {i}") for i in range(20)])
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(writes) == 80
    assert all(text.endswith("\n") and text.count("\n") == 1 for text in writes)
