"""A copy of one's data (GDPR Art. 15 and 20, LGPD Art. 18 II and V): asked
from "Your requests", built by the outbox's handler (never in the request),
a ZIP whose every part parses and whose JSON follows the schema it ships,
downloaded by its owner only, after reauthentication, through a signed link
that expires with the file; a failed build leaves nothing on disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.contrib.staticfiles import finders
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from consents.models import ConsentEvent, PurposeNotice
from consents.personal_data import personal_data_update
from consents.receipts import public_jwks, receipt_verify
from policies.demo import seed_policies
from policies.models import PolicyVersion
from policies.services import policy_acknowledge
from portal import outbox
from portal.models import OutboxItem
from rights import export_sections, exports
from rights.models import DataExport, ExportStatus, Kind, RightsRequest, Status
from rights.retention import retention_enforce
from shop.demo import seed_catalogue
from tests.conftest import PASSWORD, make_user
from tests.html_support import shown_text
from tests.rights.conftest import ask, emails, grant

PAGE = reverse("me_requests")
ASK = reverse("me_export_create")
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def status_url(export) -> str:
    return reverse("me_export_status", args=[export.uuid])


def download_url(export) -> str:
    return reverse("me_export_download", args=[export.uuid, exports.export_download_token(export)])


def build() -> int:
    """What a worker does: claim the copy's outbox row and build it."""
    return outbox.outbox_send(kind=exports.EXPORT_KIND)


def asked(person) -> DataExport:
    return exports.export_request(user=person)


def built(person) -> DataExport:
    export = asked(person)
    assert build() == 1
    export.refresh_from_db()
    return export


def reauthenticate(client) -> None:
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302, response.content[:500]


def zip_of(export) -> zipfile.ZipFile:
    return zipfile.ZipFile(exports.export_path(export))


def files_on_disk(settings) -> list[str]:
    return sorted(p.name for p in settings.RIGHTS_EXPORT_ROOT.iterdir())


# Asking ---------------------------------------------------------------------------------


def test_asking_writes_the_request_the_copy_and_its_outbox_row_and_builds_nothing(
    client, customer, django_capture_on_commit_callbacks, settings
):
    client.force_login(customer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(ASK)
    assert response.status_code == 302 and response["Location"].endswith("#copy")
    export = DataExport.objects.get()
    assert export.status == ExportStatus.QUEUED and export.subject_id == customer.subject_id
    assert export.request.kind == Kind.ACCESS and export.request.status == Status.RECEIVED
    item = OutboxItem.objects.get(kind=exports.EXPORT_KIND)
    assert item.payload == {"export": str(export.uuid)} and item.subject_id == customer.subject_id
    assert item.status == OutboxItem.Status.PENDING
    assert len(callbacks) == 1  # the task is queued once the transaction commits
    assert files_on_disk(settings) == []
    page = client.get(PAGE).content.decode()
    assert "waiting to be prepared" in page
    assert f'hx-get="{status_url(export)}"' in page and 'hx-trigger="every 2s"' in page
    assert "Check again" in page  # without JavaScript: a plain link


UPDATES = "This page updates by itself."
RELOAD = "Reload this page, or use Check again, to see whether it is ready."


def test_without_javascript_the_page_does_not_claim_to_update_by_itself(client, customer):
    """The claim is sent hidden; static/js/polling.js shows it once htmx polls
    (tests/browser/test_export.py sees both ways in Chromium)."""
    client.force_login(customer)
    export = asked(customer)
    page = client.get(PAGE).content.decode()
    part = client.get(status_url(export), HTTP_HX_REQUEST="true").content.decode()
    for html in (page, part):
        assert f"<span data-when-polling hidden>{UPDATES}</span>" in html
        assert f"<span data-when-not-polling>{RELOAD}</span>" in html
        shown = shown_text(html)
        assert RELOAD in shown and "Check again" in shown
        assert "updates by itself" not in shown
    assert '<script src="/static/js/polling.js" defer></script>' in page


def test_the_polling_script_swaps_the_two_sentences_once_htmx_polls():
    """What the browser runs: a static file of our own (script-src 'self', no
    inline code), acting on htmx's own signal that it has set a part up, and
    only inside a part that polls."""
    found = finders.find("js/polling.js")
    assert found, "static/js/polling.js is not among the static files"
    script = Path(found).read_text()
    assert 'addEventListener("htmx:load"' in script
    assert """closest('[hx-trigger*="every"]')""" in script
    assert 'note.hidden = note.hasAttribute("data-when-not-polling")' in script


def test_the_access_kind_of_the_request_form_asks_for_a_copy_too(client, customer):
    client.force_login(customer)
    response = client.post(PAGE, {"kind": "access", "jurisdiction": "gdpr", "details": "All"})
    assert response.status_code == 302
    export = DataExport.objects.get()
    assert export.request.jurisdiction == "gdpr" and export.request.details == "All"


def test_one_open_copy_at_a_time_with_a_clear_message(client, customer):
    client.force_login(customer)
    client.post(ASK)
    snapshot = (
        list(DataExport.objects.values()),
        list(RightsRequest.objects.values()),
        OutboxItem.objects.count(),
    )
    response = client.post(ASK, follow=True)
    assert "already being prepared" in response.content.decode()
    response = client.post(ASK, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "already being prepared" in response.content.decode()
    assert snapshot == (
        list(DataExport.objects.values()),
        list(RightsRequest.objects.values()),
        OutboxItem.objects.count(),
    )


def test_an_open_access_request_is_answered_by_the_copy_not_duplicated(customer):
    earlier = ask(customer, kind=Kind.ACCESS)
    export = asked(customer)
    assert export.request == earlier
    assert RightsRequest.objects.count() == 1


def test_anonymous_visitors_and_wrong_methods(client, customer):
    export = asked(customer)
    for response in (client.post(ASK), client.get(status_url(export))):
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = client.get(status_url(export), HTTP_HX_REQUEST="true")
    assert "/accounts/login/" in response["HX-Redirect"]
    client.force_login(customer)
    assert client.get(ASK).status_code == 405
    assert client.post(status_url(export)).status_code == 405
    assert DataExport.objects.count() == 1


# Building --------------------------------------------------------------------------------


def test_the_copy_is_built_by_the_outbox_the_request_completed_and_the_person_emailed(db, settings):
    joao = make_user("joao@example.com", language="pt-br")
    export = built(joao)
    assert export.status == ExportStatus.READY and export.progress == 100
    assert export.ready_at and export.expires_at == export.ready_at + timedelta(days=7)
    path = exports.export_path(export)
    assert files_on_disk(settings) == [path.name]
    assert path.stat().st_mode & 0o777 == 0o600
    assert export.size == path.stat().st_size
    assert export.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    request = export.request
    request.refresh_from_db()
    assert request.status == Status.DONE and request.closed_at is not None
    assert "cópia" in request.answer
    (mail,) = emails("emails/rights_export_ready")
    assert mail.recipient == "joao@example.com" and mail.subject_id == joao.subject_id
    assert mail.title == "A cópia dos seus dados está pronta"
    for body in (mail.payload["body_text"], mail.payload["body_html"]):
        assert settings.SITE_URL + PAGE + "#copy" in body
        assert "senha" in body
    assert build() == 0  # done once


def test_a_new_copy_replaces_the_ready_one(customer, settings, django_capture_on_commit_callbacks):
    first = built(customer)
    with django_capture_on_commit_callbacks(execute=True):
        second = built(customer)
    first.refresh_from_db()
    assert first.status == ExportStatus.EXPIRED and first.file_name == ""
    assert second.status == ExportStatus.READY
    assert files_on_disk(settings) == [exports.export_path(second).name]


@pytest.fixture
def ana(purposes):
    """A customer with something of every kind, some of it hostile."""
    seed_policies()
    seed_catalogue()
    ana = make_user("ana@example.com")
    grant(ana, purposes["newsletter"])
    grant(ana, purposes["recommendations"])
    personal_data_update(user=ana, field_key="first_name", value=HOSTILE)
    personal_data_update(user=ana, field_key="interests", value=["books"])
    policy_acknowledge(
        subject_id=ana.subject_id,
        user=ana,
        version=PolicyVersion.objects.filter(status="published").first(),
        method="web",
    )
    ask(ana, kind=Kind.RECTIFICATION, details=f"My name is not {HOSTILE} & so on")
    return ana


def test_every_section_is_in_the_zip_and_every_part_parses(ana, settings):
    export = built(ana)
    archive = zip_of(export)
    keys = [s.key for s in export_sections.sections()]
    names = set(archive.namelist())
    assert {"data.json", "schema.json", "summary.html", "README.txt"} <= names
    assert {f"csv/{key}.csv" for key in keys} <= names

    data = json.loads(archive.read("data.json"))
    schema = json.loads(archive.read("schema.json"))
    assert data["schema"] == exports.SCHEMA == schema["title"]
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(data)
    assert list(data["sections"]) == keys
    assert data["subjectId"] == str(ana.subject_id)

    for section in export_sections.sections():
        with archive.open(f"csv/{section.key}.csv") as raw:
            rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
        assert len(rows) == len(data["sections"][section.key]), section.key
        if rows:
            assert list(rows[0]) == [c.name for c in section.columns]

    sections = data["sections"]
    assert sections["account"][0]["email"] == "ana@example.com"
    assert {row["field"] for row in sections["personal_data"]} >= {"first_name", "interests"}
    assert [row["category"] for row in sections["interests"]] == ["books"]
    assert sections["policy_acknowledgements"][0]["method"] == "web"
    assert {r["kind"] for r in sections["rights_requests"]} == {"rectification", "access"}
    assert {row["record"] for row in sections["records_kept"]} >= {"data-exports", "sessions"}
    newsletter = next(p for p in sections["purposes"] if p["purpose"] == "newsletter")
    assert newsletter["your_decision"] == "granted" and newsletter["retention"]
    partners = next(p for p in sections["purposes"] if p["purpose"] == "ad-partners")
    assert partners["recipients"]


def test_the_consent_history_carries_the_exact_texts_and_verifiable_receipts(ana):
    data = json.loads(zip_of(built(ana)).read("data.json"))
    history = data["sections"]["consent_history"]
    events = list(ConsentEvent.objects.filter(subject_id=ana.subject_id).order_by("id"))
    assert [row["receipt_id"] for row in history] == [str(e.uuid) for e in events]
    notices = {(n["purpose"], n["version"]): n for n in data["sections"]["notices"]}
    for row, event in zip(history, events, strict=True):
        notice = notices[(row["purpose"], row["notice_version"])]
        assert notice["sha256"] == row["notice_sha256"] == event.notice.content_hash
        assert notice["text"] == PurposeNotice.objects.get(pk=event.notice_id).content
        receipt = receipt_verify(row["receipt"], public_jwks())
        assert receipt["consentReceiptID"] == row["receipt_id"]
        assert receipt["noticeHash"] == row["notice_sha256"]


def test_emails_are_listed_by_their_metadata_never_their_bodies(ana):
    personal = outbox.outbox_queue(
        kind="email",
        recipient="ana@example.com",
        title="Your password reset",
        payload={"body_text": "SECRET-LINK-123", "body_html": "", "headers": {}},
    )
    exports_zip = zip_of(built(ana))
    data = json.loads(exports_zip.read("data.json"))
    subjects = {row["subject"] for row in data["sections"]["emails"]}
    assert personal.title in subjects
    for name in exports_zip.namelist():
        assert b"SECRET-LINK-123" not in exports_zip.read(name)


def test_the_summary_escapes_what_people_typed(ana):
    archive = zip_of(built(ana))
    summary = archive.read("summary.html").decode()
    assert HOSTILE not in summary and "<script" not in summary
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in summary
    assert "&amp; so on" in summary
    # The plain-text README is not HTML: nothing in it is escaped.
    assert "&quot;" not in archive.read("README.txt").decode()
    # Sections without data say so; every section has its heading.
    for section in export_sections.sections():
        assert f'<section id="{section.key}">' in summary


def test_the_copy_is_in_the_persons_language(db):
    joao = make_user("joao@example.com", language="pt-br")
    archive = zip_of(built(joao))
    assert "Seus dados" in archive.read("summary.html").decode() or "seus dados" in (
        archive.read("summary.html").decode()
    )
    assert "Uma cópia dos seus dados" in archive.read("README.txt").decode()


def test_a_section_registered_later_lands_in_every_part(customer, monkeypatch):
    monkeypatch.setattr(export_sections, "_sections", export_sections.sections())
    export_sections.register(
        export_sections.Section(
            "staff_access",
            "Who looked at your data",
            "Staff views of your data, and why.",
            (export_sections.Column("why", export_sections.STRING, "Why"),),
            lambda person: iter([{"why": "Answering your request"}]),
        ),
        after="rights_requests",
    )
    archive = zip_of(built(customer))
    data = json.loads(archive.read("data.json"))
    keys = list(data["sections"])
    assert keys[keys.index("rights_requests") + 1] == "staff_access"
    assert data["sections"]["staff_access"] == [{"why": "Answering your request"}]
    schema = json.loads(archive.read("schema.json"))
    assert "staff_access" in schema["properties"]["sections"]["required"]
    assert "Answering your request" in archive.read("csv/staff_access.csv").decode()
    assert "Answering your request" in archive.read("summary.html").decode()


# Failing -------------------------------------------------------------------------------------


def _broken_section(monkeypatch):
    def rows(person):
        yield {"n": 1}
        raise RuntimeError("the database went away")

    monkeypatch.setattr(export_sections, "_sections", export_sections.sections())
    export_sections.register(
        export_sections.Section(
            "broken", "Broken", "Breaks", (export_sections.Column("n", "integer", "N"),), rows
        )
    )


def test_a_failed_attempt_leaves_nothing_on_disk_and_is_retried(
    client, customer, monkeypatch, settings
):
    _broken_section(monkeypatch)
    export = asked(customer)
    assert build() == 0
    export.refresh_from_db()
    assert export.status == ExportStatus.QUEUED and "database went away" in export.last_error
    assert files_on_disk(settings) == []
    item = OutboxItem.objects.get(kind=exports.EXPORT_KIND)
    assert item.status == OutboxItem.Status.PENDING and item.next_attempt_at > timezone.now()
    client.force_login(customer)
    assert "trying again" in client.get(PAGE).content.decode()
    # Once the cause is gone, the next attempt builds it.
    monkeypatch.undo()
    OutboxItem.objects.filter(pk=item.pk).update(next_attempt_at=None)
    assert build() == 1
    export.refresh_from_db()
    assert export.status == ExportStatus.READY and export.last_error == ""


def test_after_the_last_attempt_the_person_reads_that_it_failed_and_may_ask_again(
    client, customer, monkeypatch, settings
):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    _broken_section(monkeypatch)
    export = asked(customer)
    build()
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and export.finished_at is not None
    assert OutboxItem.objects.get(kind=exports.EXPORT_KIND).status == OutboxItem.Status.FAILED
    assert files_on_disk(settings) == []
    export.request.refresh_from_db()
    assert export.request.is_open  # staff answer it
    client.force_login(customer)
    page = client.get(PAGE).content.decode()
    assert "could not prepare your copy" in page and "hx-trigger" not in page
    monkeypatch.undo()
    again = asked(customer)
    assert again.request == export.request


def test_a_copy_whose_worker_died_at_every_attempt_does_not_block_a_new_one(customer):
    export = asked(customer)
    OutboxItem.objects.filter(kind=exports.EXPORT_KIND).update(status=OutboxItem.Status.FAILED)
    again = asked(customer)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and again.status == ExportStatus.QUEUED


# Progress ------------------------------------------------------------------------------------


def test_progress_is_polled_while_open_and_stops_when_ready(client, customer):
    client.force_login(customer)
    export = asked(customer)
    DataExport.objects.filter(pk=export.pk).update(status=ExportStatus.BUILDING, progress=42)
    response = client.get(status_url(export), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'value="42"' in body and "preparing your copy" in body and "every 2s" in body
    # Without htmx, the address leads to the page.
    response = client.get(status_url(export))
    assert response.status_code == 302 and response["Location"].endswith(PAGE + "#copy")
    DataExport.objects.filter(pk=export.pk).update(status=ExportStatus.QUEUED, progress=0)
    build()
    body = client.get(status_url(export), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in body and "Download your data" in body


def test_progress_is_written_as_the_build_goes(customer, monkeypatch):
    seen = []
    real = exports._Progress.step

    def spy(self, step, rows=1, *, force=False):
        real(self, step, rows, force=force)
        if force:
            seen.append(DataExport.objects.get(pk=self.export.pk).progress)

    monkeypatch.setattr(exports._Progress, "step", spy)
    built(customer)
    assert seen == sorted(seen) and seen[0] < seen[-1] == 90


def test_the_htmx_ask_answers_the_part_with_the_copy(client, customer):
    client.force_login(customer)
    response = client.post(ASK, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="copy-status"' in response.content.decode()
    assert DataExport.objects.count() == 1


# Downloading -------------------------------------------------------------------------------


def test_the_download_needs_a_fresh_reauthentication(client, customer):
    export = built(customer)
    client.force_login(customer)
    # The link on the page (its token is signed in the second the page is made).
    prefix = download_url(export).rsplit("/", 2)[0] + "/"
    page = client.get(PAGE).content.decode()
    assert prefix in page
    url = prefix + page.split(prefix, 1)[1].split('"', 1)[0]
    assert signing.loads(url.rstrip("/").rsplit("/", 1)[1], salt=exports.TOKEN_SALT)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert DataExport.objects.get(pk=export.pk).downloaded_at is None
    reauthenticate(client)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == export.sha256
    assert DataExport.objects.get(pk=export.pk).downloaded_at is not None


def test_another_customer_gets_404(client, customer, other_customer):
    export = built(customer)
    client.force_login(other_customer)
    reauthenticate(client)
    assert client.get(download_url(export)).status_code == 404
    assert client.get(status_url(export), HTTP_HX_REQUEST="true").status_code == 404
    assert export.uuid.hex not in client.get(PAGE).content.decode().replace("-", "")
    assert DataExport.objects.get(pk=export.pk).downloaded_at is None


def test_a_forged_or_old_link_is_refused(client, customer, monkeypatch):
    export = built(customer)
    client.force_login(customer)
    reauthenticate(client)
    forged = reverse("me_export_download", args=[export.uuid, "not-a-signed-token"])
    assert client.get(forged).status_code == 410
    # Signed RIGHTS_EXPORT_DAYS and a minute ago.
    past = timezone.now().timestamp() - 7 * 86400 - 60
    monkeypatch.setattr(signing.time, "time", lambda: past)
    old = exports.export_download_token(export)
    monkeypatch.undo()
    response = client.get(reverse("me_export_download", args=[export.uuid, old]))
    assert response.status_code == 410 and "no longer works" in response.content.decode()
    # A link to another copy of the same person does not fetch this one.
    other = exports.export_download_token(built(customer))
    assert client.get(reverse("me_export_download", args=[export.uuid, other])).status_code == 410


def test_the_link_stops_and_the_file_is_deleted_when_the_copy_expires(
    client, customer, settings, django_capture_on_commit_callbacks
):
    export = built(customer)
    url = download_url(export)
    report = retention_enforce(now=timezone.now() + timedelta(days=6))
    assert report.counts["data-exports"] == 0 and exports.export_path(export).exists()
    with django_capture_on_commit_callbacks(execute=True):
        report = retention_enforce(now=timezone.now() + timedelta(days=7, minutes=1))
    assert report.counts["data-exports"] == 1
    export.refresh_from_db()
    assert export.status == ExportStatus.EXPIRED and export.finished_at is not None
    assert files_on_disk(settings) == []
    client.force_login(customer)
    reauthenticate(client)
    assert client.get(url).status_code == 410
    assert "deleted on" in client.get(PAGE).content.decode()
    assert retention_enforce(now=timezone.now() + timedelta(days=8)).counts["data-exports"] == 0


def test_a_dry_run_deletes_nothing(customer, settings):
    export = built(customer)
    report = retention_enforce(now=timezone.now() + timedelta(days=8), dry_run=True)
    assert report.counts["data-exports"] == 1
    export.refresh_from_db()
    assert export.status == ExportStatus.READY and exports.export_path(export).exists()


def test_the_privacy_page_states_the_period(client, db, settings):
    settings.RIGHTS_EXPORT_DAYS = 5
    page = client.get(reverse("consents:privacy")).content.decode()
    assert "Copies of your data that you asked for: deleted 5 days after they are ready" in page


def test_stray_files_are_removed(customer, settings):
    export = built(customer)
    stray = settings.RIGHTS_EXPORT_ROOT / "0000.zip.part"
    stray.write_bytes(b"half")
    assert exports.stray_files_remove(older_than=timedelta(0)) == 1
    assert files_on_disk(settings) == [exports.export_path(export).name]


def test_erase_for_removes_every_copy_and_file(
    customer, other_customer, settings, django_capture_on_commit_callbacks
):
    kept = built(other_customer)
    built(customer)
    asked(customer)
    with django_capture_on_commit_callbacks(execute=True):
        assert exports.erase_for(customer.subject_id) == 2
    assert list(DataExport.objects.all()) == [kept]
    assert files_on_disk(settings) == [exports.export_path(kept).name]
    assert not OutboxItem.objects.filter(
        kind=exports.EXPORT_KIND, subject_id=customer.subject_id
    ).exists()


def test_the_data_page_links_to_the_copy(client, customer):
    client.force_login(customer)
    page = client.get(reverse("me_data")).content.decode()
    assert f'href="{PAGE}#copy"' in page


def test_a_copy_is_built_by_tasks_allowed_its_own_time_limit(settings):
    handler = outbox.handler_for(exports.EXPORT_KIND)
    assert handler.claim == 1
    limit = settings.RIGHTS_EXPORT_TIME_LIMIT_SECONDS
    assert limit > settings.CELERY_TASK_TIME_LIMIT
    assert handler.task_options == {"time_limit": limit, "soft_time_limit": limit - 60}
    assert outbox.handler_for("email").task_options == {}
