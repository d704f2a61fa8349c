"""The auditor's evidence export (issue 11): asked for in the admin, built by
the outbox's worker with progress, downloaded after reauthentication (each
download audited), and checked offline by its own script, which names what
was tampered with."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from consents import merkle
from consents import verify_offline as vo
from consents.ledger import seal
from consents.models import ConsentEvent, Decision, Method
from consents.services import consent_record
from insight import evidence, services
from insight.models import EvidenceExport, EvidenceStatus
from portal import outbox
from rights.models import AuditAction, AuditEntry
from rights.retention import retention_enforce
from tests.conftest import PASSWORD, make_user
from tests.html_support import shown_text
from tests.insight.conftest import local
from tests.rights.conftest import grant

LIST = "/admin/insight/evidenceexport/"
ASK = LIST + "add/"
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 31)


@pytest.fixture
def history(purposes, customer, other_customer, at):
    """Decisions before, inside and after March 2026; sealed, but for one
    decision inside the range made after the last seal."""
    offers, newsletter = purposes["tailored-offers"], purposes["newsletter"]
    at(local(2026, 2, 27, 12))
    grant(customer, newsletter)
    for turn, day in enumerate((1, 2, 15, 31)):
        at(local(2026, 3, day, 10))
        decision = Decision.GRANTED if turn % 2 == 0 else Decision.WITHDRAWN
        decide(customer, offers, decision)
        decide(other_customer, newsletter, decision)
    at(local(2026, 4, 2, 9))
    grant(other_customer, offers)
    seal()
    at(local(2026, 3, 31, 23, 30))
    decide(customer, newsletter, Decision.WITHDRAWN)
    at(local(2026, 5, 1, 9))
    return ConsentEvent.objects.filter(
        created_at__gte=local(2026, 3, 1), created_at__lt=local(2026, 4, 1)
    )


def decide(person, purpose, decision):
    return consent_record(
        subject_id=person.subject_id, purpose=purpose, decision=decision, method=Method.PANEL
    )


def built(export: EvidenceExport) -> EvidenceExport:
    assert outbox.outbox_send(kind=evidence.EVIDENCE_KIND) == 1
    export.refresh_from_db()
    assert export.status == EvidenceStatus.READY, export.last_error
    return export


def unpacked(export: EvidenceExport, folder: Path) -> Path:
    with zipfile.ZipFile(evidence.evidence_path(export)) as archive:
        archive.extractall(folder)
    return folder


def verify(where: Path, *extra: str) -> subprocess.CompletedProcess:
    """The export's own script, with a bare Python, from the export's folder
    (or, for the ZIP itself, the script taken out of it beside it)."""
    folder = where if where.is_dir() else where.parent
    if not where.is_dir():
        with zipfile.ZipFile(where) as archive:
            archive.extract("verify_offline.py", folder)
    return subprocess.run(
        [sys.executable, "-I", str(folder / "verify_offline.py"), "--evidence", str(where), *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reauthenticate(client) -> None:
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302


def status_url(export: EvidenceExport) -> str:
    return reverse("admin:insight_evidenceexport_status", args=[export.uuid])


def test_staff_ask_watch_reauthenticate_download_and_the_export_verifies(
    client, staff, customer, history, tmp_path
):
    client.force_login(staff)
    page = client.get(LIST)
    assert page.status_code == 200 and "Ask for the evidence" in page.content.decode()
    response = client.post(ASK, {"date_from": "2026-03-01", "date_to": "2026-03-31"})
    export = EvidenceExport.objects.get()
    assert response.status_code == 302 and response["Location"] == status_url(export)
    asked = AuditEntry.objects.get(action=AuditAction.EVIDENCE_REQUEST)
    assert asked.actor == staff and asked.details == {"from": "2026-03-01", "to": "2026-03-31"}

    waiting = client.get(status_url(export)).content.decode()
    assert "waiting for a worker" in waiting and "Check again" in waiting
    # Without JavaScript nothing polls: the page says how to see progress, and
    # static/js/polling.js shows the hidden claim only once htmx polls.
    assert "Reload this page, or use Check again" in shown_text(waiting)
    assert "updates by itself" not in shown_text(waiting)
    assert "<span data-when-polling hidden>This page updates by itself.</span>" in waiting
    assert '<script src="/static/js/polling.js" defer></script>' in waiting
    assert 'hx-trigger="every 2s"' in waiting
    assert '<progress id="evidence-progress" max="100" value="0">' in waiting
    # The part htmx polls, alone.
    part = client.get(status_url(export), HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith('<div id="evidence-status"')
    assert "updates by itself" not in shown_text(part) and "Reload this page" in shown_text(part)

    export = built(export)
    assert export.progress == 100 and export.events == history.count() == 9
    ready = client.get(status_url(export)).content.decode()
    assert "hx-trigger" not in ready and "Download the evidence" in ready
    # The link on the page (its token carries the second it was signed).
    link = re.search(r'href="([^"]*/download/[^"]+)"', ready).group(1)
    assert link.startswith(f"{status_url(export)}download/")

    # Not without a fresh reauthentication, and nothing audited then.
    response = client.get(link)
    assert response.status_code == 302 and "/accounts/reauthenticate/" in response["Location"]
    assert not AuditEntry.objects.filter(action=AuditAction.EVIDENCE_DOWNLOAD).exists()
    reauthenticate(client)
    response = client.get(link)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    downloaded = AuditEntry.objects.get(action=AuditAction.EVIDENCE_DOWNLOAD)
    assert downloaded.actor == staff and downloaded.details["sha256"] == export.sha256
    assert downloaded.target == f"insight.evidenceexport:{export.uuid}"

    path = tmp_path / "evidence.zip"
    path.write_bytes(body)
    result = verify(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "9 events give their hashes" in result.stdout
    assert "1 events were not sealed yet" in result.stdout

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = set(archive.namelist())
        events = [json.loads(line) for line in archive.read("events.jsonl").splitlines()]
        readme = archive.read("README.txt").decode()
    assert {
        "events.jsonl",
        "notices.json",
        "policies.json",
        "checkpoints.json",
        "jwks.json",
        "record_of_processing.csv",
        "retention.json",
        "manifest.json",
        "README.txt",
        "verify_offline.py",
    } == names
    assert "python3 -I verify_offline.py --evidence ." in readme
    # Pseudonymous: opaque ids, never an address.
    assert customer.email not in json.dumps(events)
    assert {e["subjectId"] for e in events} >= {str(customer.subject_id)}
    assert [e["leaf"] is None for e in events] == [False] * 8 + [True]


@pytest.fixture
def unzipped(staff, history, tmp_path) -> Path:
    export = services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST)
    folder = unpacked(built(export), tmp_path / "evidence")
    assert verify(folder).returncode == 0
    return folder


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def _flipped(decision: str) -> str:
    return "granted" if decision == "withdrawn" else "withdrawn"


def _write_events(folder: Path, events: list[dict]) -> None:
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_an_altered_event_is_named(unzipped):
    events = _events(unzipped)
    events[3]["decision"] = _flipped(events[3]["decision"])
    _write_events(unzipped, events)
    result = verify(unzipped)
    assert result.returncode == 1
    assert f"FAIL  event {events[3]['uuid']} (line 4 of events.jsonl)" in result.stdout
    assert "the event was altered" in result.stdout


def test_an_event_altered_with_a_new_hash_breaks_the_range_proof(unzipped):
    events = _events(unzipped)
    notices = {
        n["id"]: n["contentHash"]
        for n in json.loads((unzipped / "notices.json").read_text())["notices"]
    }
    policies = {
        p["id"]: p["contentHash"]
        for p in json.loads((unzipped / "policies.json").read_text())["policyVersions"]
    }
    event = events[2]
    event["decision"] = _flipped(event["decision"])
    event["hash"] = vo.event_hash(
        event, notices[event["noticeId"]], policies.get(event["policyVersionId"], "")
    )
    _write_events(unzipped, events)
    result = verify(unzipped)
    assert result.returncode == 1
    assert "the range proof does not recompute the root of checkpoint #" in result.stdout


def test_a_removed_event_is_named(unzipped):
    events = _events(unzipped)
    del events[4]
    _write_events(unzipped, events)
    result = verify(unzipped)
    assert result.returncode == 1
    assert f"event {events[4]['uuid']} (line 5 of events.jsonl) is at leaf" in result.stdout


def test_an_altered_notice_text_is_named(unzipped):
    def change(data):
        data["notices"][0]["content"]["en"] = {"text": "We never share anything."}

    _rewrite(unzipped / "notices.json", change)
    result = verify(unzipped)
    assert result.returncode == 1
    assert "FAIL  notice " in result.stdout and "its text does not give its hash" in result.stdout


def test_an_altered_range_proof_is_named(unzipped):
    def change(data):
        outside = data["checkpoints"][-1]["outside"]
        outside[0]["hash"] = "00" * 32

    _rewrite(unzipped / "checkpoints.json", change)
    result = verify(unzipped)
    assert result.returncode == 1
    assert "the range proof does not recompute the root of checkpoint #" in result.stdout


def test_a_checkpoint_signed_by_another_key_is_named(unzipped):
    def change(data):
        data["keys"][0]["x"] = vo.b64url_encode(b"\x01" * 32)

    _rewrite(unzipped / "jwks.json", change)
    result = verify(unzipped)
    assert result.returncode == 1 and "FAIL  key" in result.stdout


def test_the_range_proof_recomputes_every_root_of_small_trees():
    """Every range of every tree up to 40 leaves: the pieces the export sends
    and the script's fold give the tree's root."""
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(40)]
    for size in range(1, 41):
        frontier = merkle.Frontier()
        for leaf in leaves[:size]:
            frontier.append(leaf)
        perfect = _perfect(leaves[:size])
        for lo in range(size):
            for hi in range(lo + 1, size + 1):
                outside = {
                    (s, e): merkle.range_hash(s, e, perfect)
                    for s, e, inside in evidence.range_pieces(lo, hi, size)
                    if not inside
                }
                folder = vo._RangeRoot(lo, hi, size, outside, "test")
                for leaf in leaves[lo:hi]:
                    folder.feed(leaf)
                assert folder.root() == frontier.root(), (lo, hi, size)
                assert len(outside) <= 2 * size.bit_length()


def _perfect(leaves):
    def perfect(level, index):
        nodes = leaves[index << level : (index + 1) << level]
        while len(nodes) > 1:
            nodes = [merkle.node_hash(a, b) for a, b in zip(nodes[0::2], nodes[1::2], strict=True)]
        return nodes[0]

    return perfect


def test_the_script_and_the_export_split_the_tree_with_the_same_lines():
    assert evidence.range_pieces is vo.range_pieces


# Permissions and input ---------------------------------------------------------------------


def _plain_staff(email: str = "plain@example.com"):
    user = make_user(email, staff=True)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    return user


def test_plain_staff_and_analysts_are_refused_everything(client, staff, history):
    export = built(services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST))
    link = reverse(
        "admin:insight_evidenceexport_download",
        args=[export.uuid, evidence.download_token(export)],
    )
    analyst = _plain_staff("analyst@example.com")
    analyst.groups.add(Group.objects.get(name=services.ANALYSTS))
    for person in (_plain_staff(), analyst):
        client.force_login(person)
        assert client.get(LIST).status_code == 403
        assert (
            client.post(ASK, {"date_from": "2026-03-01", "date_to": "2026-03-02"}).status_code
            == 403
        )
        assert client.get(status_url(export)).status_code == 403
        reauthenticate(client)
        assert client.get(link).status_code == 403
    assert EvidenceExport.objects.count() == 1
    assert not AuditEntry.objects.filter(action=AuditAction.EVIDENCE_DOWNLOAD).exists()
    with pytest.raises(services.EvidenceError):
        services.evidence_request(acting_user=analyst, date_from=FIRST, date_to=LAST)


def test_staff_given_the_permission_may_ask(client, purposes):
    auditor = _plain_staff()
    auditor.user_permissions.add(
        Permission.objects.get(content_type__app_label="insight", codename="export_evidence")
    )
    client.force_login(auditor)
    assert client.get(LIST).status_code == 200
    assert client.post(ASK, {"date_from": "2026-03-01", "date_to": "2026-03-02"}).status_code == 302
    assert EvidenceExport.objects.get().requested_by == auditor


@pytest.mark.parametrize(
    "form",
    [
        {"date_from": "2026-03-31", "date_to": "2026-03-01"},
        {"date_from": "2026-03-01", "date_to": ""},
        {"date_from": "not a day", "date_to": "2026-03-02"},
        {"date_from": "2000-01-01", "date_to": "2026-03-02"},
    ],
)
def test_a_bad_range_is_refused_and_changes_nothing(client, staff, form):
    client.force_login(staff)
    response = client.post(ASK, form)
    assert response.status_code == 400
    assert not EvidenceExport.objects.exists() and not AuditEntry.objects.exists()


def test_a_range_in_the_future_is_refused(staff):
    tomorrow = timezone.localdate() + timedelta(days=1)
    with pytest.raises(services.EvidenceError, match="future"):
        services.evidence_request(acting_user=staff, date_from=tomorrow, date_to=tomorrow)


def test_the_file_goes_after_its_days_and_the_link_with_it(
    staff, history, settings, django_capture_on_commit_callbacks
):
    export = built(services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST))
    path = evidence.evidence_path(export)
    token = evidence.download_token(export)
    assert path.is_file() and evidence.downloadable(export=export, token=token)
    later = timezone.now() + timedelta(days=settings.INSIGHT_EVIDENCE_DAYS, minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_enforce(now=later)
    assert report.counts["evidence-exports"] == 1
    export.refresh_from_db()
    assert export.status == EvidenceStatus.EXPIRED and not path.exists()
    assert not evidence.downloadable(export=export, token=token)


def test_the_daily_task_removes_what_a_killed_worker_left(staff, purposes):
    import os

    from rights.tasks import retention_enforce as daily

    export = services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST)
    kept = evidence.evidence_root() / f"{export.uuid}.zip.part"  # still being built
    stray = evidence.evidence_root() / "0f4e2b8a-1111-4222-8333-944455556666.zip.part"
    for path in (kept, stray):
        path.write_bytes(b"half a ZIP")
        os.utime(path, (0, 0))
    daily()
    assert kept.exists() and not stray.exists()


@pytest.mark.parametrize("gpc", [False, True])
@pytest.mark.parametrize("policy", [None, 7])
def test_the_script_hashes_events_as_the_ledger_does(gpc, policy):
    """Both formats: the tree's (2) and the hash chain's before it (1)."""
    from datetime import UTC, datetime

    from consents import ledger

    moment = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    fields = {
        "uuid": "0196f0a0-0000-7000-8000-000000000001",
        "subject_id": "5d0c4d1e-7a7b-4c43-9d43-2f6a5c0e8d11",
        "purpose_id": 3,
        "notice_hash": "ab" * 32,
        "policy_version_id": policy,
        "decision": "granted",
        "method": "panel",
        "created_at": moment,
        "ip_truncated": "203.0.113.0",
        "user_agent_family": "Firefox",
        "gpc_signal": gpc,
    }
    line = {
        "uuid": fields["uuid"],
        "subjectId": fields["subject_id"],
        "purposeId": 3,
        "policyVersionId": policy,
        "decision": "granted",
        "method": "panel",
        "createdAt": ledger.event_timestamp(moment),
        "ipTruncated": "203.0.113.0",
        "userAgentFamily": "Firefox",
        "gpc": gpc,
    }
    assert vo.event_hash(
        {**line, "format": ledger.EVENT_FORMAT}, "ab" * 32, "cd" * 32
    ) == ledger.event_hash(**fields, policy_hash="cd" * 32)
    assert vo.event_hash(
        {**line, "format": "clareza-event-v1", "seq": 42, "prevHash": "ef" * 32}, "ab" * 32, ""
    ) == ledger.chain_hash_v1(**fields, seq=42, prev_hash="ef" * 32)


def test_progress_is_written_as_the_build_goes(staff, history, monkeypatch):
    from portal import artifacts

    seen = []
    real = artifacts.Progress.step

    def spy(self, step, rows=1, *, force=False):
        real(self, step, rows, force=force)
        if force:
            seen.append((step, EvidenceExport.objects.get(pk=self.export.pk).progress))

    monkeypatch.setattr(artifacts.Progress, "step", spy)
    export = built(services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST))
    assert seen == [("proof", 95), ("records", 95)] and export.progress == 100


def test_anonymous_visitors_go_to_the_login_and_wrong_methods_are_refused(client, staff, history):
    export = built(services.evidence_request(acting_user=staff, date_from=FIRST, date_to=LAST))
    link = reverse(
        "admin:insight_evidenceexport_download",
        args=[export.uuid, evidence.download_token(export)],
    )
    for url in (LIST, status_url(export), link):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(staff)
    assert client.post(status_url(export)).status_code == 405
    assert client.post(link).status_code == 405
    assert client.get(status_url(export)).status_code == 200
    assert "<progress" not in client.get(status_url(export)).content.decode()


def test_the_form_speaks_the_staff_members_language(client, staff):
    """The labels are translated per request, not once when the module loads."""
    staff.language = "pt-br"
    staff.save(update_fields=["language"])
    client.force_login(staff)
    page = client.get(LIST, HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    assert "Primeiro dia" in page and "Último dia (incluído)" in page
    assert "First day" not in page
