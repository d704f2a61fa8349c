"""The copy of a person's data (GDPR Art. 15 and 20, LGPD Art. 18 II and V),
end to end.

- export_request: the person asks (from "Your requests"). In one transaction:
  their access request (an open one is reused), a DataExport row (one open
  copy at a time per person: a database constraint) and an outbox row of kind
  "data_export". Nothing is built in the request.
- build_batch, the outbox handler: a worker builds the ZIP (sections from
  rights/export_sections.py) into a `.part` file under RIGHTS_EXPORT_ROOT,
  row by row, reporting progress and keeping its lease, then renames it into
  place. Ready: the access request is completed and the person emailed, in
  their language, through the outbox. When the request also reached the
  company's connected systems (rights.waiting), it completes only with a copy
  built after the last of them answered: export_refresh queues that copy.
  A failed attempt leaves nothing on disk and is retried by the outbox with
  backoff; after the last one the copy is `failed`, which the person reads,
  and the access request stays open for staff.
- export_download_token / export_downloadable: the download link is signed
  and stops working after RIGHTS_EXPORT_DAYS, when the retention task deletes
  the file (the Housekeeping rule "data-exports"); the view also requires a
  fresh reauthentication and the owner.
- erase_for(subject_id): every copy of a person, files and rows (for erasure).
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import logging
import tempfile
import uuid
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.template import Context
from django.template.loader import get_template, render_to_string
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from portal import artifacts, outbox
from portal.mail import outbound_email_queue, render_email
from portal.models import OutboxItem
from rights import export_sections, services, waiting
from rights.models import (
    OPEN_EXPORT_STATUSES,
    OPEN_STATUSES,
    DataExport,
    ExportStatus,
    Kind,
    RightsRequest,
    Status,
)

logger = logging.getLogger(__name__)

EXPORT_KIND = "data_export"
SCHEMA = "clareza-export-v1"
TOKEN_SALT = "rights.export.download"  # noqa: S105 (a signing salt, not a secret)


class ExportError(services.RightsError):
    """Asking for a copy is not possible now; the message is for the person."""


LeaseLost = artifacts.LeaseLost
_remove = artifacts.remove


def export_root() -> Path:
    root = Path(settings.RIGHTS_EXPORT_ROOT)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def _final_path(export: DataExport) -> Path:
    return export_root() / f"{export.uuid}.zip"


def _part_path(export: DataExport) -> Path:
    return export_root() / f"{export.uuid}.zip.part"


def _remove_files_on_commit(exports: list[DataExport]) -> None:
    artifacts.remove_on_commit(p for e in exports for p in (_final_path(e), _part_path(e)))


# Asking ------------------------------------------------------------------------------


def _stale(export: DataExport) -> bool:
    """An open copy whose outbox row gave up (its worker died at every attempt)."""
    return OutboxItem.objects.filter(
        kind=EXPORT_KIND, dedupe_key=str(export.uuid), status=OutboxItem.Status.FAILED
    ).exists()


def export_request(*, user, details: str = "", jurisdiction: str = "", purposes=()) -> DataExport:
    """The person asks for a copy of their data. Writes, in one transaction, the
    access request (reusing an open one of theirs), the copy and its outbox row."""
    from django.contrib.auth import get_user_model

    if user is None or not user.is_authenticated:
        raise ExportError(_("Log in to make a request."))
    if list(purposes):
        raise ExportError(
            _("Choose purposes only when you object to a use or ask to restrict one.")
        )
    with transaction.atomic():
        # One person's requests are serialised on their account row.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        for open_copy in DataExport.objects.select_for_update().filter(
            subject_id=user.subject_id, status__in=OPEN_EXPORT_STATUSES
        ):
            if not _stale(open_copy):
                raise ExportError(
                    _(
                        "A copy of your data is already being prepared. It will appear "
                        "here when it is ready, and we will email you."
                    )
                )
            _fail(open_copy, "Gave up: every attempt ended without an answer.")
        request = (
            RightsRequest.objects.select_for_update()
            .filter(subject_id=user.subject_id, kind=Kind.ACCESS, status__in=OPEN_STATUSES)
            .order_by("received_at", "pk")
            .first()
        )
        if request is None:
            request = services.request_create(
                user=user, kind=Kind.ACCESS, details=details, jurisdiction=jurisdiction
            )
        try:
            with transaction.atomic():
                export = DataExport.objects.create(
                    subject_id=user.subject_id,
                    user=user,
                    request=request,
                    language=user.language or settings.LANGUAGE_CODE,
                )
        except IntegrityError:  # a second tab won the race
            raise ExportError(_("A copy of your data is already being prepared.")) from None
        _queue(export)
    return export


def _queue(export: DataExport) -> None:
    outbox.outbox_queue(
        kind=EXPORT_KIND,
        topic=EXPORT_KIND,
        subject_id=export.subject_id,
        payload={"export": str(export.uuid)},
        dedupe_key=str(export.uuid),
    )


def export_refresh(*, request: RightsRequest) -> DataExport | None:
    """Every connected system has answered an access request the person made
    from the portal: a fresh copy, with what they returned, in the caller's
    transaction. None when the request has no copy (staff answer it) or when
    a copy is on its way already (_ready sees whether it holds every answer)."""
    if not request.exports.exists():
        return None
    if DataExport.objects.filter(
        subject_id=request.subject_id, status__in=OPEN_EXPORT_STATUSES
    ).exists():
        return None
    export = DataExport.objects.create(
        subject_id=request.subject_id,
        user=request.user,
        request=request,
        language=(request.user.language if request.user else "") or request.language,
    )
    _queue(export)
    return export


# Building ----------------------------------------------------------------------------


def _cell_csv(value: object, column: export_sections.Column) -> str:
    if value is None:
        return ""
    if column.type == export_sections.LIST:
        return "; ".join(str(v) for v in value)
    if column.type == export_sections.JSON:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if column.type == export_sections.BOOLEAN:
        return "true" if value else "false"
    return str(value)


def _cell_html(value: object, column: export_sections.Column, language: str) -> str:
    """Escaped, always: the data holds what people typed."""
    if value is None or value == []:
        return "—"
    if column.type == export_sections.DATETIME:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        text = formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")
    elif column.type == export_sections.LIST:
        text = ", ".join(str(v) for v in value)
    elif column.type == export_sections.BOOLEAN:
        text = _("Yes") if value else _("No")
    elif column.type == export_sections.JSON:
        if isinstance(value, dict) and ("en" in value or "pt-br" in value):
            key = "pt-br" if language.lower().startswith("pt") else "en"
            value = value.get(key) or value.get("en")
        if isinstance(value, dict):
            lines = []
            for name, item in value.items():
                lines.append(f"<b>{html.escape(str(name))}</b>: {html.escape(_json_text(item))}")
            return "<br>".join(lines)
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return html.escape(text)


def _json_text(item: object) -> str:
    """One value of a JSON object, for reading: a string as it is, a list of
    plain values joined, anything else as JSON (never Python's repr, whose
    quotes and True/None a person would not expect)."""
    if isinstance(item, str):
        return item
    if isinstance(item, list) and all(type(v) in (str, int, float) for v in item):
        return ", ".join(str(v) for v in item)
    return json.dumps(item, ensure_ascii=False)


class _Progress(artifacts.Progress):
    """The last tenth is for copying the CSV files and the summary into the ZIP."""


def _json_dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def _policy_hashes_remembered():
    """Every receipt checks its event against the policy version in force,
    whose hash consents recomputes from the version's text each time (a
    query and a hash per receipt). Published versions never change (the
    database refuses it), so during one build each answer is kept after its
    first check."""
    from consents import ledger

    provider = ledger._policy_hashes_provider
    if provider is None:
        yield
        return
    answers: dict = {}

    def remembered(ids=None):
        key = None if ids is None else tuple(sorted(ids))
        if key not in answers:
            answers[key] = provider(ids)
        return answers[key]

    ledger.set_policy_hashes_provider(remembered)
    try:
        yield
    finally:
        ledger.set_policy_hashes_provider(provider)


def write_zip(export: DataExport, path: Path, *, keep_alive=None) -> None:
    """Write the ZIP of this person's copy to `path`, streaming: every section's
    rows go once through memory, into data.json (written into the ZIP as they
    come) and temporary files for its CSV and its part of the summary, copied
    into the ZIP afterwards."""
    language = export.language
    with translation.override(language), _policy_hashes_remembered():
        person = export_sections.Person.of(
            subject_id=export.subject_id, user=export.user, language=language
        )
        all_sections = export_sections.sections()
        total = sum(s.count(person) if s.count else 1 for s in all_sections)
        progress = _Progress(export, total, keep_alive)
        now = timezone.now()
        scratch = export_root()
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            contextlib.ExitStack() as stack,
        ):
            parts = []
            with archive.open("data.json", "w", force_zip64=True) as raw:
                out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
                head = {
                    "schema": SCHEMA,
                    "generatedAt": now.isoformat(),
                    "subjectId": str(export.subject_id),
                    "language": language,
                    "controller": {
                        "name": settings.CONTROLLER_NAME,
                        "email": settings.CONTROLLER_EMAIL,
                        "address": settings.CONTROLLER_ADDRESS,
                        "phone": settings.CONTROLLER_PHONE,
                    },
                    "dataProtectionOfficer": {
                        "name": settings.DPO_NAME,
                        "email": settings.DPO_EMAIL,
                    },
                }
                out.write(_json_dump(head)[:-1] + ',"sections":{')
                for index, section in enumerate(all_sections):
                    csv_file = stack.enter_context(
                        tempfile.TemporaryFile("w+", encoding="utf-8", newline="", dir=scratch)
                    )
                    html_file = stack.enter_context(
                        tempfile.TemporaryFile("w+", encoding="utf-8", dir=scratch)
                    )
                    parts.append((section, csv_file, html_file))
                    _write_section(section, person, out, csv_file, html_file, progress)
                    out.write("]")
                    if index < len(all_sections) - 1:
                        out.write(",")
                    progress.step(section.key, 0 if section.count else 1, force=True)
                out.write("}}\n")
                out.flush()
                out.detach()
            for section, csv_file, _html_file in parts:
                csv_file.seek(0)
                with archive.open(f"csv/{section.key}.csv", "w", force_zip64=True) as raw:
                    _copy_text(csv_file, raw)
            progress.step("summary", 0, force=True)
            with archive.open("summary.html", "w", force_zip64=True) as raw:
                context = {
                    "sections": all_sections,
                    "generated": now,
                    "controller": settings.CONTROLLER_NAME,
                    "dpo_name": settings.DPO_NAME,
                    "dpo_email": settings.DPO_EMAIL,
                    "LANGUAGE_CODE": language,
                }
                top, bottom = render_to_string("rights/export/summary.html", context).split(
                    "<!-- sections -->"
                )
                raw.write(top.encode())
                for _section, _csv_file, html_file in parts:
                    html_file.seek(0)
                    _copy_text(html_file, raw)
                raw.write(bottom.encode())
            archive.writestr(
                "schema.json",
                json.dumps(export_sections.json_schema(), ensure_ascii=False, indent=2),
            )
            # Plain text, not HTML: rendered without escaping, as emails' text is.
            readme = get_template("rights/export/README.txt").template
            archive.writestr(
                "README.txt",
                readme.render(
                    Context(
                        {"sections": all_sections, "schema": SCHEMA, "generated": now},
                        autoescape=False,
                    )
                ),
            )


def _copy_text(source, raw) -> None:
    while chunk := source.read(64 * 1024):
        raw.write(chunk.encode("utf-8"))


def _write_section(section, person, out, csv_file, html_file, progress) -> int:
    columns = section.columns
    writer = csv.writer(csv_file)
    writer.writerow([c.name for c in columns])
    out.write(f"{_json_dump(section.key)}:[")
    shown = [c for c in columns if c.in_summary]
    html_file.write(
        f'<section id="{html.escape(section.key)}"><h2>{html.escape(str(section.title))}</h2>\n'
        f"<p>{html.escape(str(section.description))}</p>\n"
    )
    count = 0
    for row in section.rows(person):
        values = {c.name: export_sections.plain(row.get(c.name), c) for c in columns}
        if count:
            out.write(",")
        else:
            html_file.write(
                '<div class="table"><table><thead><tr>'
                + "".join(f"<th>{html.escape(str(c.description))}</th>" for c in shown)
                + "</tr></thead><tbody>\n"
            )
        out.write(_json_dump(values))
        writer.writerow([_cell_csv(values[c.name], c) for c in columns])
        html_file.write(
            "<tr>"
            + "".join(f"<td>{_cell_html(values[c.name], c, person.language)}</td>" for c in shown)
            + "</tr>\n"
        )
        count += 1
        if section.count:
            progress.step(section.key)
    if count:
        html_file.write("</tbody></table></div>\n")
    else:
        html_file.write(f"<p>{html.escape(_('Nothing of this kind.'))}</p>\n")
    html_file.write("</section>\n")
    return count


def _start(export_uuid: str, attempt: int) -> DataExport | None:
    """Mark the copy building (again, after a worker died mid-way); None when
    there is nothing to build any more (erased, expired, already done)."""
    with transaction.atomic():
        export = (
            DataExport.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(uuid=export_uuid)
            .first()
        )
        if export is None or export.status not in OPEN_EXPORT_STATUSES:
            return None
        export.status = ExportStatus.BUILDING
        export.started_at = timezone.now()
        export.attempts = attempt
        export.progress = 0
        export.step = ""
        export.save(update_fields=["status", "started_at", "attempts", "progress", "step"])
    return export


def export_build(*, export_uuid: str, attempt: int = 1, keep_alive=None) -> DataExport | None:
    """Build one copy: the ZIP, then ready. Raises on failure with nothing left
    on disk; the caller (the outbox handler) decides whether to try again."""
    export = _start(export_uuid, attempt)
    if export is None:
        return None
    size, digest = artifacts.finish(
        _part_path(export),
        _final_path(export),
        lambda part: write_zip(export, part, keep_alive=keep_alive),
    )
    return _ready(export, size=size, digest=digest)


def _ready(export: DataExport, *, size: int, digest: str) -> DataExport | None:
    now = timezone.now()
    with transaction.atomic():
        locked = DataExport.objects.select_for_update().filter(pk=export.pk).first()
        if locked is None or locked.status != ExportStatus.BUILDING:
            _remove_files_on_commit([export])  # erased or taken over meanwhile
            return None
        locked.status = ExportStatus.READY
        locked.file_name = _final_path(locked).name
        locked.size, locked.sha256 = size, digest
        locked.progress, locked.step = 100, ""
        locked.ready_at = now
        locked.expires_at = now + timedelta(days=settings.RIGHTS_EXPORT_DAYS)
        locked.last_error = ""
        locked.save(
            update_fields=[
                "status",
                "file_name",
                "size",
                "sha256",
                "progress",
                "step",
                "ready_at",
                "expires_at",
                "last_error",
            ]
        )
        # One copy ready at a time: the older ones go now.
        older = list(
            DataExport.objects.select_for_update()
            .filter(subject_id=locked.subject_id, status=ExportStatus.READY)
            .exclude(pk=locked.pk)
        )
        _expire(older, now=now)
        request = RightsRequest.objects.select_for_update().get(pk=locked.request_id)
        if request.status in OPEN_STATUSES and not _waits_for_systems(request, locked):
            with translation.override(locked.language):
                request.answer = _("We prepared a copy of your data on %(date)s.") % {
                    "date": formats.date_format(timezone.localtime(now), "DATE_FORMAT")
                }
            request.status = Status.DONE
            request.closed_at = now
            request.save(update_fields=["answer", "status", "closed_at"])
        # Still open: the connected systems have not all answered, and this copy
        # holds only the portal's part (a complete one follows).
        _email_ready(locked, incomplete=request.status in OPEN_STATUSES)
    return locked


def _waits_for_systems(request: RightsRequest, export: DataExport) -> bool:
    """Whether the request must stay open after this copy: a connected system
    has not answered yet (the last answer queues a fresh copy), or answered
    after this copy began (so it is not in it: a fresh copy is queued now)."""
    if waiting.waiting_on(request.pk):
        return True
    last = waiting.last_answer_at(request.pk)
    if last is not None and export.started_at is not None and last > export.started_at:
        export_refresh(request=request)
        return True
    return False


def _email_ready(export: DataExport, *, incomplete: bool = False) -> None:
    from django.urls import reverse

    user = export.user
    to = user.email if user is not None else export.request.email
    if not to:
        return
    language = (user.language if user is not None else "") or export.language
    with translation.override(language):
        context = {
            "expires": formats.date_format(timezone.localtime(export.expires_at), "DATE_FORMAT"),
            "days": settings.RIGHTS_EXPORT_DAYS,
            "requests_url": settings.SITE_URL + reverse("me_requests") + "#copy",
            "incomplete": incomplete,
        }
    subject, text, body_html = render_email(
        "emails/rights_export_ready", context, language=language
    )
    outbound_email_queue(
        to=to,
        subject=subject,
        body_text=text,
        body_html=body_html,
        template="emails/rights_export_ready",
        subject_id=export.subject_id,
    )


def _fail(export: DataExport, error: str) -> None:
    export.status = ExportStatus.FAILED
    export.finished_at = timezone.now()
    export.last_error = error[:2000]
    export.save(update_fields=["status", "finished_at", "last_error"])
    _remove_files_on_commit([export])


def export_attempt_failed(*, export_uuid: str, error: str, final: bool) -> None:
    """An attempt failed (its `.part` is already gone): back to the queue with
    the error kept, or failed for good after the outbox's last attempt."""
    with transaction.atomic():
        export = DataExport.objects.select_for_update().filter(uuid=export_uuid).first()
        if export is None or export.status not in OPEN_EXPORT_STATUSES:
            return
        if final:
            _fail(export, error)
        else:
            export.status = ExportStatus.QUEUED
            export.progress, export.step = 0, ""
            export.last_error = error[:2000]
            export.save(update_fields=["status", "progress", "step", "last_error"])


def build_batch(batch: outbox.Batch) -> None:
    """The outbox handler of kind "data_export" (one row per claim)."""
    artifacts.run_batch(
        batch,
        payload_key="export",
        build=lambda uuid, **kw: export_build(export_uuid=uuid, **kw),
        attempt_failed=lambda uuid, **kw: export_attempt_failed(export_uuid=uuid, **kw),
        what="copy",
    )


# Downloading -------------------------------------------------------------------------


def export_download_token(export: DataExport) -> str:
    """Names this copy and its content; stops working after RIGHTS_EXPORT_DAYS."""
    return artifacts.download_token(export, salt=TOKEN_SALT)


def export_downloadable(*, export: DataExport, token: str, now: datetime | None = None) -> bool:
    """The link is genuine, for this copy as it is now, not too old, and the
    copy is ready and before its end."""
    return artifacts.downloadable(
        export,
        token,
        salt=TOKEN_SALT,
        days=settings.RIGHTS_EXPORT_DAYS,
        ready=ExportStatus.READY,
        path=_final_path(export),
        now=now,
    )


def export_path(export: DataExport) -> Path:
    return _final_path(export)


def export_downloaded(*, export: DataExport) -> None:
    DataExport.objects.filter(pk=export.pk).update(downloaded_at=timezone.now())


# Expiry and erasure --------------------------------------------------------------------


def _expire(exports: list[DataExport], *, now: datetime) -> int:
    if not exports:
        return 0
    DataExport.objects.filter(pk__in=[e.pk for e in exports]).update(
        status=ExportStatus.EXPIRED, file_name="", finished_at=now
    )
    _remove_files_on_commit(exports)
    return len(exports)


def expired_exports(now: datetime) -> models.QuerySet:
    """Ready copies past their date (the Housekeeping rule's rows)."""
    return DataExport.objects.filter(status=ExportStatus.READY, expires_at__lte=now)


def expire_batch(rows: models.QuerySet, *, now: datetime) -> int:
    """The Housekeeping rule's action on one batch: mark expired, delete the files."""
    return _expire(list(rows.select_for_update()), now=now)


def stray_files_remove(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Files under RIGHTS_EXPORT_ROOT that no copy being built or ready names
    (a worker killed mid-build, a crash between a commit and its deletion)."""
    keep = {
        str(u)
        for u in DataExport.objects.filter(
            Q(status__in=OPEN_EXPORT_STATUSES) | Q(status=ExportStatus.READY)
        ).values_list("uuid", flat=True)
    }
    return artifacts.strays_remove(
        Path(settings.RIGHTS_EXPORT_ROOT), keep, older_than=older_than.total_seconds()
    )


def erase_for(subject_id: uuid.UUID) -> int:
    """Every copy of a person: files and rows (for account erasure). Returns
    how many copies there were. A build under way finds its row gone and
    stops; its outbox row is removed too."""
    with transaction.atomic():
        exports = list(DataExport.objects.select_for_update().filter(subject_id=subject_id))
        OutboxItem.objects.filter(
            kind=EXPORT_KIND, dedupe_key__in=[str(e.uuid) for e in exports]
        ).delete()
        DataExport.objects.filter(pk__in=[e.pk for e in exports]).delete()
        _remove_files_on_commit(exports)
    return len(exports)
