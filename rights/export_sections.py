"""What a copy of a person's data holds: a list of sections, each a kind of
data with its columns and a generator of its rows (GDPR Art. 15 and 20, LGPD
Art. 18 II and V, Art. 19).

The builder (rights/exports.py) writes every section three ways from one pass
over its rows: into data.json, into csv/<key>.csv and into summary.html; the
JSON Schema (schema.json) and the README in the ZIP are generated from the
same columns, so that what is documented is what is written.

Adding a section is one `register(Section(...))` call, from this module or
from the app that owns the data (its AppConfig.ready()), for example:

    register(Section(
        "orders", _("Your orders"), _("..."),
        columns=(Column("at", DATETIME, _("When")), Column("total", STRING, _("Total")), ...),
        rows=lambda person: orders_of(person.subject_id),
    ), after="rights_requests")

Rows are dicts of plain values (str, int, bool, None, datetime, a list of
str, or a JSON object for JSON columns), read with .iterator(chunk_size=...)
so that memory stays flat however long the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

CHUNK = 500
HISTORY_CHUNK = 100

STRING, INTEGER, BOOLEAN, DATETIME, LIST, JSON = (
    "string",
    "integer",
    "boolean",
    "datetime",
    "list",
    "json",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of STRING, INTEGER, BOOLEAN, DATETIME, LIST, JSON
    description: Promise
    # Left out of the readable summary (a signed receipt is for machines).
    in_summary: bool = True


@dataclass
class Person:
    """Whose copy is being written: their ledger id, account (if any), the
    addresses we know for them, and the language of the copy."""

    subject_id: uuid.UUID
    user: object | None
    language: str
    addresses: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, *, subject_id: uuid.UUID, user, language: str) -> Person:
        from allauth.account.models import EmailAddress

        from consents.models import NewsletterSignup

        addresses = []
        if user is not None:
            addresses = [user.email]
            addresses += EmailAddress.objects.filter(user=user).values_list("email", flat=True)
        addresses += NewsletterSignup.objects.filter(subject_id=subject_id).values_list(
            "email", flat=True
        )
        return cls(
            subject_id=subject_id,
            user=user,
            language=language,
            addresses=sorted({a for a in addresses if a}, key=str.lower),
        )


@dataclass(frozen=True)
class Section:
    key: str
    title: Promise
    description: Promise
    columns: tuple[Column, ...]
    rows: Callable[[Person], Iterable[dict]]
    # How many rows, for the progress bar; sections without one count as one row.
    count: Callable[[Person], int] | None = None


_sections: list[Section] = []


def register(section: Section, *, after: str | None = None) -> None:
    """Add a section (replacing one with the same key), at the end or after
    the section `after`."""
    for i, existing in enumerate(_sections):
        if existing.key == section.key:
            _sections[i] = section
            return
    keys = [s.key for s in _sections]
    position = keys.index(after) + 1 if after in keys else len(_sections)
    _sections.insert(position, section)


def sections() -> list[Section]:
    return list(_sections)


# The sections -----------------------------------------------------------------------


def _account(person: Person) -> Iterator[dict]:
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator

    user = person.user
    if user is None:
        return
    addresses = EmailAddress.objects.filter(user=user).order_by("email")
    yield {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "language": user.language,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "active": user.is_active,
        "email_addresses": [
            f"{a.email} ({'verified' if a.verified else 'not verified'}"
            f"{', primary' if a.primary else ''})"
            for a in addresses
        ],
        # Which kinds of second factor, never their secrets.
        "second_factors": sorted(
            set(Authenticator.objects.filter(user=user).values_list("type", flat=True))
        ),
    }


def _personal_data(person: Person) -> Iterator[dict]:
    from consents import personal_data
    from consents.models import PersonalDatum

    stored = {
        row.field: row
        for row in PersonalDatum.objects.filter(subject_id=person.subject_id).iterator(CHUNK)
    }
    for data_field in personal_data.fields():
        value, updated = None, None
        if data_field.store == "user":
            value = getattr(person.user, data_field.key, None) if person.user else None
        elif data_field.rows is not None:
            keys = personal_data.stored_keys(data_field, subject_id=person.subject_id)
            value = ", ".join(keys) if keys else None
        elif data_field.key in stored:
            value, updated = stored[data_field.key].value, stored[data_field.key].updated_at
        if value in (None, ""):
            continue
        yield {
            "field": data_field.key,
            "label": str(data_field.label),
            "data_category": data_field.category,
            "value": value,
            "updated_at": updated,
        }


def _purposes(person: Person) -> Iterator[dict]:
    from consents.models import ConsentState, legal_basis_codes
    from consents.selectors import active_purposes
    from rights import retention
    from rights.selectors import limited_purpose_ids

    decisions = dict(
        ConsentState.objects.filter(subject_id=person.subject_id).values_list(
            "purpose_id", "decision"
        )
    )
    limited = limited_purpose_ids(subject_id=person.subject_id)
    for purpose in active_purposes().prefetch_related("data_categories"):
        categories = list(purpose.data_categories.all())
        codes = legal_basis_codes(
            purpose.legal_basis, sensitive=any(c.sensitive for c in categories)
        )
        yield {
            "purpose": purpose.key,
            "name": purpose.display_name,
            "description": purpose.display_description,
            "legal_basis": str(codes["label"]),
            "gdpr_article": codes["gdpr"],
            "lgpd_article": codes["lgpd"],
            "data_categories": [c.display_name for c in categories],
            "recipients": purpose.display_recipients or None,
            "transfers_abroad": purpose.display_transfers_abroad or None,
            "retention_days": purpose.retention_days,
            "retention": retention.purpose_rule(purpose),
            "your_decision": decisions.get(purpose.pk),
            "stopped_at_your_request": purpose.pk in limited,
            "sale_or_sharing": purpose.is_sale_or_sharing,
        }


def _records_kept(person: Person) -> Iterator[dict]:
    from rights import retention

    for rule in retention.housekeeping_rules():
        yield {"record": rule.key, "label": str(rule.label), "period": rule.stated()}


def _consent_state(person: Person) -> Iterator[dict]:
    from consents.models import ConsentState

    rows = (
        ConsentState.objects.filter(subject_id=person.subject_id)
        .select_related("purpose", "event")
        .order_by("purpose__order", "purpose__key")
    )
    for state in rows.iterator(CHUNK):
        yield {
            "purpose": state.purpose.key,
            "name": state.purpose.display_name,
            "decision": state.decision,
            "since": state.updated_at,
            "receipt_id": str(state.event.uuid),
        }


def _events(person: Person):
    from consents.models import ConsentEvent

    return ConsentEvent.objects.filter(subject_id=person.subject_id)


def _consent_history(person: Person) -> Iterator[dict]:
    from consents import receipts

    site = settings.SITE_URL
    rows = (
        _events(person)
        .select_related("purpose", "notice")
        .prefetch_related("purpose__data_categories")
        .order_by("id")
    )
    # Receipts are signed a chunk at a time: a few queries per chunk, not per
    # receipt; one that fails its integrity check is None (nothing is signed).
    # A smaller chunk than other sections': each event comes with its notice,
    # its purpose's categories and a receipt of about 4 KiB.
    signer = receipts.ReceiptSigner(language=person.language)
    chunk: list = []
    for event in rows.iterator(HISTORY_CHUNK):
        chunk.append(event)
        if len(chunk) == HISTORY_CHUNK:
            yield from _history_rows(chunk, signer.sign(chunk), person, site)
            chunk = []
    if chunk:
        yield from _history_rows(chunk, signer.sign(chunk), person, site)


def _history_rows(events: list, signed: list, person: Person, site: str) -> Iterator[dict]:
    for event, receipt in zip(events, signed, strict=True):
        text = event.notice.text(person.language)
        yield {
            "receipt_id": str(event.uuid),
            "at": event.created_at,
            "purpose": event.purpose.key,
            "name": text.get("name", event.purpose.key),
            "decision": event.decision,
            "method": event.method,
            "notice_version": event.notice.version,
            "notice_sha256": event.notice.content_hash,
            "policy_version_id": event.policy_version_id,
            "gpc_signal": event.gpc_signal,
            "ip_truncated": event.ip_truncated or None,
            "user_agent_family": event.user_agent_family or None,
            "ledger_hash": event.hash,
            "receipt_url": site + reverse("consents:receipt_page", args=[event.uuid]),
            "receipt": receipt,
        }


def _notices(person: Person) -> Iterator[dict]:
    from consents.models import PurposeNotice

    seen = _events(person).values("notice_id")
    rows = (
        PurposeNotice.objects.filter(pk__in=seen)
        .select_related("purpose")
        .order_by("purpose__key", "version")
    )
    for notice in rows.iterator(CHUNK):
        yield {
            "purpose": notice.purpose.key,
            "version": notice.version,
            "sha256": notice.content_hash,
            "created_at": notice.created_at,
            "text": notice.content,
        }


def _acknowledgements(person: Person) -> Iterator[dict]:
    from policies.models import Acknowledgement

    rows = (
        Acknowledgement.objects.filter(subject_id=person.subject_id)
        .select_related("version__policy")
        .order_by("acknowledged_at", "pk")
    )
    for ack in rows.iterator(CHUNK):
        yield {
            "policy": ack.version.policy.slug,
            "version": ack.version.number,
            "title": ack.version.display_title,
            "text_sha256": ack.version.content_hash or None,
            "method": ack.method,
            "acknowledged_at": ack.acknowledged_at,
        }


def _newsletter(person: Person) -> Iterator[dict]:
    from consents.models import NewsletterSignup

    for signup in NewsletterSignup.objects.filter(subject_id=person.subject_id).iterator(CHUNK):
        yield {
            "email": signup.email,
            "status": signup.status,
            "language": signup.language,
            "created_at": signup.created_at,
            "confirmed_at": signup.confirmed_at,
            "waiting_for_confirmation": [
                str(choice.get("purpose")) for choice in signup.pending_choices or []
            ],
        }


def _emails_rows(person: Person):
    from portal.models import OutboxItem
    from rights.exports import EXPORT_KIND

    mine = Q(subject_id=person.subject_id)
    if person.addresses:
        mine |= Q(recipient__in=person.addresses)
    return OutboxItem.objects.filter(mine).exclude(kind=EXPORT_KIND)


def _emails(person: Person) -> Iterator[dict]:
    # Metadata only: the body (and its links) is never read, nor kept once sent.
    rows = (
        _emails_rows(person)
        .order_by("id")
        .only("kind", "topic", "title", "recipient", "status", "attempts", "created_at", "sent_at")
    )
    for item in rows.iterator(CHUNK):
        yield {
            "kind": item.kind,
            "template": item.topic or None,
            "subject": item.title,
            "to": item.recipient,
            "status": item.status,
            "attempts": item.attempts,
            "created_at": item.created_at,
            "sent_at": item.sent_at,
        }


def _sessions_rows(person: Person):
    from allauth.usersessions.models import UserSession

    if person.user is None:
        return UserSession.objects.none()
    return UserSession.objects.filter(user=person.user)


def _sessions(person: Person) -> Iterator[dict]:
    for session in _sessions_rows(person).order_by("created_at", "pk").iterator(CHUNK):
        yield {
            "logged_in_at": session.created_at,
            "last_seen_at": session.last_seen_at,
            "ip": session.ip,
            "user_agent": session.user_agent,
        }


def _rights_requests(person: Person) -> Iterator[dict]:
    from rights.models import RightsRequest

    rows = (
        RightsRequest.objects.filter(subject_id=person.subject_id)
        .prefetch_related("purposes")
        .order_by("received_at", "pk")
    )
    for request in rows.iterator(CHUNK):
        yield {
            "id": str(request.uuid),
            "kind": request.kind,
            "status": request.status,
            "jurisdiction": request.jurisdiction,
            "channel": request.channel,
            "received_at": request.received_at,
            "due_at": request.due_at,
            "closed_at": request.closed_at,
            "purposes": [p.key for p in request.purposes.all()],
            "details": request.details or None,
            "extension_reason": request.extension_reason or None,
            "refusal_reason": request.refusal_reason or None,
            "answer": request.answer or None,
        }


def _staff_access_rows(person: Person):
    from rights.models import AuditEntry

    return AuditEntry.objects.filter(subject_id=person.subject_id)


def _staff_access(person: Person) -> Iterator[dict]:
    from rights import audit

    return audit.accesses(person.subject_id)


def _copies(person: Person) -> Iterator[dict]:
    from rights.models import DataExport

    rows = DataExport.objects.filter(subject_id=person.subject_id).order_by("created_at", "pk")
    for export in rows.iterator(CHUNK):
        yield {
            "id": str(export.uuid),
            "status": export.status,
            "asked_at": export.created_at,
            "ready_at": export.ready_at,
            "expires_at": export.expires_at,
            "downloaded_at": export.downloaded_at,
            "size": export.size,
            "sha256": export.sha256 or None,
        }


def _datetime(name: str, description) -> Column:
    return Column(name, DATETIME, description)


for _section in (
    Section(
        "account",
        _("Your account"),
        _("The account you log in with, its addresses and the kinds of second factor set up."),
        (
            Column("email", STRING, _("Email address you log in with")),
            Column("first_name", STRING, _("First name")),
            Column("last_name", STRING, _("Last name")),
            Column("language", STRING, _("Language of the portal and of our emails")),
            _datetime("date_joined", _("When the account was made")),
            _datetime("last_login", _("Last login")),
            Column("active", BOOLEAN, _("Whether the account is open")),
            Column("email_addresses", LIST, _("Every address on the account")),
            Column("second_factors", LIST, _("Kinds of second factor (never their secrets)")),
        ),
        _account,
    ),
    Section(
        "personal_data",
        _("Your personal data"),
        _("Every field of personal data we keep about you, and its data category."),
        (
            Column("field", STRING, _("Field")),
            Column("label", STRING, _("What it is")),
            Column("data_category", STRING, _("Data category (see the purposes that use it)")),
            Column("value", STRING, _("Value")),
            _datetime("updated_at", _("Last changed")),
        ),
        _personal_data,
    ),
    Section(
        "purposes",
        _("Why we use data, who receives it, how long we keep it"),
        _(
            "Every purpose: its legal basis, the data it uses, who receives it, transfers "
            "abroad, how long it keeps data, and what you decided."
        ),
        (
            Column("purpose", STRING, _("Purpose key")),
            Column("name", STRING, _("Purpose")),
            Column("description", STRING, _("What it does")),
            Column("legal_basis", STRING, _("Legal basis")),
            Column("gdpr_article", STRING, _("GDPR article")),
            Column("lgpd_article", STRING, _("LGPD article")),
            Column("data_categories", LIST, _("Data it uses")),
            Column("recipients", STRING, _("Who receives the data")),
            Column("transfers_abroad", STRING, _("Transfers abroad")),
            Column("retention_days", INTEGER, _("Retention (days)")),
            Column("retention", STRING, _("How long it is kept, as enforced")),
            Column("your_decision", STRING, _("Your decision (consent purposes)")),
            Column(
                "stopped_at_your_request",
                BOOLEAN,
                _("Stopped by your objection or restriction"),
            ),
            Column("sale_or_sharing", BOOLEAN, _("Sale, sharing or cross-context advertising")),
        ),
        _purposes,
    ),
    Section(
        "records_kept",
        _("Records the portal keeps to run"),
        _("Other records about you, each deleted when its period ends."),
        (
            Column("record", STRING, _("Record key")),
            Column("label", STRING, _("Record")),
            Column("period", STRING, _("How long it is kept")),
        ),
        _records_kept,
    ),
    Section(
        "consent_state",
        _("Your choices now"),
        _("Your current decision for each purpose you decided on."),
        (
            Column("purpose", STRING, _("Purpose key")),
            Column("name", STRING, _("Purpose")),
            Column("decision", STRING, _("Decision (granted, withdrawn, refused)")),
            _datetime("since", _("Since")),
            Column("receipt_id", STRING, _("Receipt of that decision")),
        ),
        _consent_state,
    ),
    Section(
        "consent_history",
        _("Your consent history"),
        _(
            "Every decision, oldest first, with the version and hash of the exact text you "
            "read (in notices) and its signed receipt (a JWS, Kantara Consent Receipt v1.1)."
        ),
        (
            Column("receipt_id", STRING, _("Receipt id")),
            _datetime("at", _("When")),
            Column("purpose", STRING, _("Purpose key")),
            Column("name", STRING, _("Purpose, as you read it")),
            Column("decision", STRING, _("Decision (granted, withdrawn, refused)")),
            Column("method", STRING, _("How it was made")),
            Column("notice_version", INTEGER, _("Version of the text you read")),
            Column("notice_sha256", STRING, _("SHA-256 of that text")),
            Column("policy_version_id", INTEGER, _("Privacy policy version in force")),
            Column("gpc_signal", BOOLEAN, _("Global Privacy Control was on")),
            Column("ip_truncated", STRING, _("IP address, shortened")),
            Column("user_agent_family", STRING, _("Browser family")),
            Column("ledger_hash", STRING, _("Hash of the ledger entry")),
            Column("receipt_url", STRING, _("The receipt in the portal")),
            Column(
                "receipt",
                STRING,
                _("Signed receipt (compact JWS; verify with our published keys)"),
                in_summary=False,
            ),
        ),
        _consent_history,
        count=lambda person: _events(person).count(),
    ),
    Section(
        "notices",
        _("The exact texts you decided on"),
        _("Each version of a purpose's text that a decision of yours was made on, in full."),
        (
            Column("purpose", STRING, _("Purpose key")),
            Column("version", INTEGER, _("Version")),
            Column("sha256", STRING, _("SHA-256 of the text")),
            _datetime("created_at", _("Written on")),
            Column("text", JSON, _("The text, in every language it was shown in")),
        ),
        _notices,
    ),
    Section(
        "policy_acknowledgements",
        _("Policies you acknowledged"),
        _("Each policy version you said you read."),
        (
            Column("policy", STRING, _("Policy")),
            Column("version", INTEGER, _("Version")),
            Column("title", STRING, _("Title")),
            Column("text_sha256", STRING, _("SHA-256 of its text")),
            Column("method", STRING, _("Where (web or email link)")),
            _datetime("acknowledged_at", _("When")),
        ),
        _acknowledgements,
    ),
    Section(
        "newsletter",
        _("Newsletter sign-up"),
        _("Your newsletter subscription without an account, if you have one."),
        (
            Column("email", STRING, _("Address")),
            Column("status", STRING, _("Status")),
            Column("language", STRING, _("Language")),
            _datetime("created_at", _("Asked on")),
            _datetime("confirmed_at", _("Confirmed on")),
            Column("waiting_for_confirmation", LIST, _("Choices waiting for confirmation")),
        ),
        _newsletter,
    ),
    Section(
        "emails",
        _("Emails we sent you"),
        _(
            "Every email to you that we still keep a record of: its subject and when; "
            "never its content."
        ),
        (
            Column("kind", STRING, _("Kind")),
            Column("template", STRING, _("Which email")),
            Column("subject", STRING, _("Subject")),
            Column("to", STRING, _("Sent to")),
            Column("status", STRING, _("Status (sent, pending, failed)")),
            Column("attempts", INTEGER, _("Attempts")),
            _datetime("created_at", _("Written on")),
            _datetime("sent_at", _("Sent on")),
        ),
        _emails,
        count=lambda person: _emails_rows(person).count(),
    ),
    Section(
        "sessions",
        _("Your sessions and logins"),
        _("Each login session we still keep: when it began, when it was last used, from where."),
        (
            _datetime("logged_in_at", _("Logged in")),
            _datetime("last_seen_at", _("Last seen")),
            Column("ip", STRING, _("IP address")),
            Column("user_agent", STRING, _("Browser")),
        ),
        _sessions,
        count=lambda person: _sessions_rows(person).count(),
    ),
    Section(
        "rights_requests",
        _("Your requests"),
        _("Every request you made about your data, and our answers."),
        (
            Column("id", STRING, _("Request id")),
            Column("kind", STRING, _("Kind")),
            Column("status", STRING, _("Status")),
            Column("jurisdiction", STRING, _("Law")),
            Column("channel", STRING, _("How it reached us")),
            _datetime("received_at", _("Received")),
            _datetime("due_at", _("Due by")),
            _datetime("closed_at", _("Closed")),
            Column("purposes", LIST, _("Purposes concerned")),
            Column("details", STRING, _("Your details")),
            Column("extension_reason", STRING, _("Why we needed more time")),
            Column("refusal_reason", STRING, _("Why we refused")),
            Column("answer", STRING, _("Our answer")),
        ),
        _rights_requests,
    ),
    Section(
        "staff_access",
        _("Who at the company looked at your data, and why"),
        _(
            "Each time a member of our staff opened your data or acted on it, with the "
            "request it served or the reason they gave."
        ),
        (
            _datetime("at", _("When")),
            Column("staff", STRING, _("Who")),
            Column("staff_email", STRING, _("Their work address")),
            Column("action", STRING, _("What (code)")),
            Column("action_label", STRING, _("What")),
            Column("looked", BOOLEAN, _("A look at your data (not a change)")),
            Column("request", STRING, _("The request it served")),
            Column("request_kind", STRING, _("Kind of request")),
            Column("reason", STRING, _("The reason given")),
        ),
        _staff_access,
        count=lambda person: _staff_access_rows(person).count(),
    ),
    Section(
        "data_copies",
        _("Copies of your data"),
        _("The copies of your data you asked for, this one included."),
        (
            Column("id", STRING, _("Copy id")),
            Column("status", STRING, _("Status")),
            _datetime("asked_at", _("Asked on")),
            _datetime("ready_at", _("Ready on")),
            _datetime("expires_at", _("Deleted on")),
            _datetime("downloaded_at", _("Last downloaded")),
            Column("size", INTEGER, _("Size (bytes)")),
            Column("sha256", STRING, _("SHA-256 of the ZIP")),
        ),
        _copies,
    ),
):
    register(_section)


def json_schema() -> dict:
    """JSON Schema (2020-12) of data.json, from the sections' columns."""
    types = {
        STRING: {"type": ["string", "null"]},
        INTEGER: {"type": ["integer", "null"]},
        BOOLEAN: {"type": ["boolean", "null"]},
        DATETIME: {"type": ["string", "null"], "format": "date-time"},
        LIST: {"type": "array", "items": {"type": "string"}},
        JSON: {},
    }
    from rights.exports import SCHEMA

    section_schemas = {}
    for section in sections():
        section_schemas[section.key] = {
            "description": str(section.description),
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [c.name for c in section.columns],
                "properties": {
                    c.name: {**types[c.type], "description": str(c.description)}
                    for c in section.columns
                },
            },
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{settings.SITE_URL}/schemas/{SCHEMA}.json",
        "title": SCHEMA,
        "type": "object",
        "additionalProperties": False,
        "required": ["schema", "generatedAt", "subjectId", "language", "controller", "sections"],
        "properties": {
            "schema": {"const": SCHEMA},
            "generatedAt": {"type": "string", "format": "date-time"},
            "subjectId": {"type": "string", "format": "uuid"},
            "language": {"type": "string"},
            "controller": {"type": "object"},
            "dataProtectionOfficer": {"type": "object"},
            "sections": {
                "type": "object",
                "additionalProperties": False,
                "required": list(section_schemas),
                "properties": section_schemas,
            },
        },
    }


def plain(value: object, column: Column) -> object:
    """A row's value as JSON holds it."""
    if value is None:
        return [] if column.type == LIST else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Promise):
        return str(value)
    return value
