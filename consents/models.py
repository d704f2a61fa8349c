"""The data inventory, the purposes' notices, and the consent ledger.

Inventory rows (DataCategory, Purpose) are edited by staff. What a customer
reads about a purpose is frozen as a PurposeNotice, content-hashed, so that
every ledger event can point at the exact text that was shown. Ledger events
(ConsentEvent) are never updated or deleted: the database refuses it. Each
carries its own content hash; the sealer folds them into a Merkle tree
(LedgerLeaf, LedgerNode) whose signed heads (LedgerSeal) and checkpoints kept
outside the database (LedgerCheckpoint) let verify_ledger prove it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from consents.dpv import DPVTermValidator
from portal.localized import Localized, localized  # noqa: F401 (policies and others import them here)


class LegalBasis(models.TextChoices):
    CONSENT = "consent", _("Consent")
    CONTRACT = "contract", _("Performance of a contract")
    LEGAL_OBLIGATION = "legal_obligation", _("Legal obligation")
    LEGITIMATE_INTEREST = "legitimate_interest", _("Legitimate interest")


# The article of each law, and the W3C DPV term, for each basis. DPV has no LGPD
# extension, so LGPD bases carry their article as their code (shared/REQUIREMENTS.md).
LEGAL_BASIS_CODES = {
    LegalBasis.CONSENT: {
        "gdpr": "GDPR Art. 6(1)(a)",
        "lgpd": "LGPD Art. 7, I",
        "dpv": "dpv:Consent",
    },
    LegalBasis.CONTRACT: {
        "gdpr": "GDPR Art. 6(1)(b)",
        "lgpd": "LGPD Art. 7, V",
        "dpv": "dpv:Contract",
    },
    LegalBasis.LEGAL_OBLIGATION: {
        "gdpr": "GDPR Art. 6(1)(c)",
        "lgpd": "LGPD Art. 7, II",
        "dpv": "dpv:LegalObligation",
    },
    LegalBasis.LEGITIMATE_INTEREST: {
        "gdpr": "GDPR Art. 6(1)(f)",
        "lgpd": "LGPD Art. 7, IX",
        "dpv": "dpv:LegitimateInterest",
    },
}


# Special-category (sensitive) data rests on explicit consent: GDPR Art. 9(2)(a)
# beside Art. 6(1)(a), and LGPD Art. 11, I in place of Art. 7, I.
EXPLICIT_CONSENT_CODES = {
    "label": _("Explicit consent"),
    "gdpr": "GDPR Art. 6(1)(a) and Art. 9(2)(a)",
    "lgpd": "LGPD Art. 11, I",
    "dpv": "dpv:ExplicitlyExpressedConsent",
}


def legal_basis_codes(basis: str, *, sensitive: bool) -> dict:
    """The label, the articles of each law and the DPV term that a purpose's
    processing rests on; `sensitive` when it uses special-category data."""
    basis = LegalBasis(basis)
    if sensitive and basis == LegalBasis.CONSENT:
        return EXPLICIT_CONSENT_CODES
    return {"label": basis.label, **LEGAL_BASIS_CODES[basis]}


class DataCategory(models.Model):
    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name (English)"), max_length=120)
    name_pt = models.CharField(_("name (Portuguese)"), max_length=120, blank=True)
    description = models.TextField(_("description (English)"), blank=True)
    description_pt = models.TextField(_("description (Portuguese)"), blank=True)
    sensitive = models.BooleanField(
        _("sensitive"),
        default=False,
        help_text=_("Special category data: GDPR Art. 9, LGPD Art. 11 (health, religion, ...)."),
    )
    dpv_code = models.CharField(
        _("DPV code"),
        max_length=80,
        blank=True,
        validators=[DPVTermValidator("pd")],
        help_text=_("A W3C DPV personal data term, for example pd:EmailAddress."),
    )

    class Meta:
        verbose_name = _("data category")
        verbose_name_plural = _("data categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    display_name = Localized("name")
    display_description = Localized("description")


class Purpose(models.Model):
    """Why data is processed. Customer-facing texts are edited here; each change
    freezes a new PurposeNotice (consents.services.purpose_save)."""

    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name (English)"), max_length=120)
    name_pt = models.CharField(_("name (Portuguese)"), max_length=120, blank=True)
    description = models.TextField(_("description (English)"))
    description_pt = models.TextField(_("description (Portuguese)"), blank=True)
    benefit = models.CharField(
        _("what the customer gets (English)"),
        max_length=200,
        blank=True,
        # xgettext:no-python-format
        help_text=_('The value offered in exchange, e.g. "10% off your next order".'),
    )
    benefit_pt = models.CharField(
        _("what the customer gets (Portuguese)"), max_length=200, blank=True
    )
    legal_basis = models.CharField(_("legal basis"), max_length=24, choices=LegalBasis.choices)
    data_categories = models.ManyToManyField(
        DataCategory, related_name="purposes", verbose_name=_("data categories")
    )
    retention_days = models.PositiveIntegerField(
        _("retention (days)"),
        help_text=_("How long data kept for this purpose is kept after its last use."),
    )
    recipients = models.TextField(_("recipients and third parties (English)"), blank=True)
    recipients_pt = models.TextField(_("recipients and third parties (Portuguese)"), blank=True)
    transfers_abroad = models.TextField(
        _("transfers abroad (English)"),
        blank=True,
        help_text=_("Countries and safeguards; leave empty when data stays in the country."),
    )
    transfers_abroad_pt = models.TextField(_("transfers abroad (Portuguese)"), blank=True)
    is_sale_or_sharing = models.BooleanField(
        _("sale, sharing or cross-context advertising"),
        default=False,
        help_text=_("Global Privacy Control opts people out of these purposes."),
    )
    offered_in_newsletter = models.BooleanField(_("offered in the newsletter form"), default=False)
    dpv_code = models.CharField(
        _("DPV purpose"),
        max_length=80,
        blank=True,
        validators=[DPVTermValidator("dpv")],
        help_text=_("A W3C DPV purpose term, for example dpv:Personalisation."),
    )
    order = models.PositiveSmallIntegerField(_("order"), default=100)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        ordering = ["order", "key"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_optional(self) -> bool:
        """Only consent can be given or withdrawn; other bases are explained, not asked."""
        return self.legal_basis == LegalBasis.CONSENT

    @property
    def is_active(self) -> bool:
        return self.retired_at is None

    display_name = Localized("name")
    display_description = Localized("description")
    display_benefit = Localized("benefit")
    display_recipients = Localized("recipients")
    display_transfers_abroad = Localized("transfers_abroad")


class PurposeNotice(models.Model):
    """The exact customer-facing text of a purpose at one moment. Never edited."""

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="notices")
    version = models.PositiveIntegerField()
    content = models.JSONField(help_text="The notice in every language, as shown.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical content.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("purpose notice")
        verbose_name_plural = _("purpose notices")
        ordering = ["purpose", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["purpose", "version"], name="notice_version_unique"),
            models.UniqueConstraint(fields=["purpose", "content_hash"], name="notice_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose.key} v{self.version}"

    def text(self, language: str | None = None) -> dict:
        language = (language or translation.get_language() or "en").lower()
        key = "pt-br" if language.startswith("pt") else "en"
        return self.content.get(key) or self.content["en"]


class Decision(models.TextChoices):
    GRANTED = "granted", _("Granted")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    REFUSED = "refused", _("Refused")


class Method(models.TextChoices):
    SIGNUP = "signup", _("Sign-up form")
    NEWSLETTER = "newsletter", _("Newsletter form")
    PANEL = "panel", _("Control panel")
    EMAIL_LINK = "email_link", _("Email link")
    GPC = "gpc", _("Global Privacy Control")
    STAFF = "staff", _("Staff, at the customer's request")
    EXPIRY = "expiry", _("Expiry")
    # Decisions made in another of the company's channels and recorded through
    # the API (integrations.api), against the notice version shown there.
    CHECKOUT = "checkout", _("Shop checkout (through the API)")
    CALL_CENTRE = "call_centre", _("Call centre (through the API)")
    IN_STORE = "in_store", _("In store (through the API)")


class ConsentEvent(models.Model):
    """One decision. UPDATE and DELETE are refused by a database trigger
    (migration 0002). `hash` covers every field, the notice text and the policy
    version (consents.ledger); the sealer gives the event its place in the
    Merkle tree (LedgerLeaf). Decisions are inserted without a global lock: the
    order of the ledger is the order of `id`, sealed seconds later."""

    # Events of ledger format 1 (a hash chain, before the Merkle tree) keep the
    # place and the previous hash their chain hash covers; later events have neither.
    # Unique where set (migration 0012): a decision writes no entry for it.
    seq = models.BigIntegerField(
        null=True, blank=True, help_text="Place in the hash chain of format 1."
    )
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject_id = models.UUIDField(help_text="Opaque id of the person; never an email or name.")
    # No foreign-key constraint in the database (migration 0014): checking one
    # share-locks the purpose's and the notice's rows at every commit, the same
    # few rows for every customer deciding at once. Nothing is lost: notices
    # are never deleted (a trigger), a purpose with a notice cannot be, and
    # verify_ledger names an event whose purpose or notice is missing. Django's
    # PROTECT still refuses deleting them through the ORM.
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="events", db_constraint=False
    )
    # No index either (migration 0016): nothing looks events up by their notice.
    notice = models.ForeignKey(
        PurposeNotice,
        on_delete=models.PROTECT,
        related_name="events",
        db_constraint=False,
        db_index=False,
    )
    # The policy version in force: filled by the policies app.
    policy_version_id = models.BigIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    method = models.CharField(max_length=12, choices=Method.choices)
    created_at = models.DateTimeField()
    ip_truncated = models.CharField(max_length=45, blank=True)
    user_agent_family = models.CharField(max_length=40, blank=True)
    gpc_signal = models.BooleanField(
        default=False, help_text="The request carried Sec-GPC: 1 when this was decided."
    )
    prev_hash = models.CharField(max_length=64, blank=True)  # format 1 only
    # Not indexed (migration 0011): nothing looks an event up by its hash, and
    # two events never share one, since it covers the event's unique uuid.
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        indexes = [
            # A person's history, newest first (control panel, receipts, data export).
            models.Index(fields=["subject_id", "-id"], name="event_subject_order_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["seq"], condition=models.Q(seq__isnull=False), name="event_chain_seq_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.uuid} {self.decision} {self.purpose_id}"


class ConsentState(models.Model):
    """The current decision per person and purpose, derived from the ledger in
    the same transaction, for fast reads."""

    subject_id = models.UUIDField()
    # Neither key has an index of its own (migration 0012): state_purpose_decision_idx
    # starts with the purpose, and nothing looks a state up by its event (events
    # are never deleted). Each index is a write on every decision. The purpose
    # has no constraint in the database either, as the event's (0014); the
    # state's event keeps its own (the row just inserted: no one else's lock).
    purpose = models.ForeignKey(
        Purpose,
        on_delete=models.PROTECT,
        related_name="states",
        db_index=False,
        db_constraint=False,
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    event = models.ForeignKey(
        ConsentEvent, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = _("consent state")
        verbose_name_plural = _("consent states")
        constraints = [
            models.UniqueConstraint(fields=["subject_id", "purpose"], name="state_subject_purpose"),
        ]
        indexes = [
            # Aggregate figures and "who may be emailed": states by purpose and decision.
            models.Index(fields=["purpose", "decision"], name="state_purpose_decision_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose_id}: {self.decision}"

    @property
    def is_granted(self) -> bool:
        return self.decision == Decision.GRANTED


class ReconsentRequest(models.Model):
    """People who granted a purpose before `asked_at` are asked to decide again,
    because a material policy version changed the purpose or staff widened what
    it does (a new notice). Their grant stands until `effective_date`; then it
    lapses (method: expiry) unless they granted it again since `asked_at`,
    under the new terms. Acknowledging a policy's text (policies.Acknowledgement)
    is a different act and answers none of this."""

    class Reason(models.TextChoices):
        POLICY = "policy", _("A policy change")
        NOTICE = "notice", _("A change to what the purpose does")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="reconsent_requests"
    )
    reason = models.CharField(max_length=10, choices=Reason.choices)
    # The policy version that asked (reason "policy"); consents does not import policies.
    policy_version_id = models.BigIntegerField(null=True, blank=True)
    # The notice that widened the purpose, and the one before it (reason "notice").
    notice = models.ForeignKey(
        PurposeNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    previous_notice = models.ForeignKey(
        PurposeNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    differences = models.JSONField(
        default=list, blank=True, help_text="consents.changes: what widened, per language."
    )
    asked_at = models.DateTimeField()
    effective_date = models.DateField(_("grants lapse on"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    lapsed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the grants not given again were withdrawn."
    )

    class Meta:
        verbose_name = _("re-consent request")
        verbose_name_plural = _("re-consent requests")
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "policy_version_id"],
                condition=models.Q(policy_version_id__isnull=False),
                name="reconsent_once_per_policy_version",
            ),
            models.UniqueConstraint(
                fields=["notice"],
                condition=models.Q(notice__isnull=False),
                name="reconsent_once_per_notice",
            ),
        ]
        indexes = [
            # The hourly lapse task: open requests whose effective date has come.
            models.Index(
                fields=["effective_date"],
                name="reconsent_open_idx",
                condition=models.Q(lapsed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"re-consent {self.purpose_id} by {self.effective_date}"


class LedgerLeaf(models.Model):
    """An event's place in the Merkle tree, from 1, given by the sealer in the
    order of the events' ids. Append-only, as the events (migration 0009)."""

    seq = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(ConsentEvent, on_delete=models.PROTECT, related_name="leaf")

    def __str__(self) -> str:
        return f"leaf #{self.seq}"


class LedgerNode(models.Model):
    """The hash of a complete subtree of the Merkle tree: leaves
    [index * 2**level, (index + 1) * 2**level). Only levels from
    consents.ledger.NODE_LEVEL up are kept: an inclusion proof reads a few of
    them and the leaves of one block, whatever the ledger's size."""

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="ledger_node_place"),
        ]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class LedgerSeal(models.Model):
    """A signed tree head: the Merkle tree of the first `size` events, signed
    by the sealer (compact JWS, format clareza-merkle-v1, as the checkpoints).
    Every event with an id up to `last_event_id` is in it. `frontier` holds the
    roots of the complete subtrees on its right edge, from which the next seal
    continues. Append-only (migration 0009)."""

    size = models.BigIntegerField(unique=True)
    root = models.CharField(max_length=64)
    last_event_id = models.BigIntegerField()
    frontier = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    token = models.TextField()

    def __str__(self) -> str:
        return f"ledger seal #{self.size}"


class LedgerCheckpoint(models.Model):
    """A signed statement of the ledger's size and root at a moment, kept and
    published outside the database too (consents.checkpoints): a rollback, a
    truncation, a wipe or a rewrite before it is named by verify_ledger even
    when the database, its triggers and the chain head were all rewritten.
    Append-only in the database, as the events (migration 0008)."""

    size = models.BigIntegerField()  # events covered: #1 .. #size
    # clareza-merkle-v1: the Merkle tree's root; clareza-chain-v1 (before the
    # tree): the chain hash of event #size.
    root = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    token = models.TextField()  # compact JWS (ES256) over format, ledger, size, root, time

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(size__gte=0), name="ledger_checkpoint_size"),
            # Also the index of "the first checkpoint that covers event #n" (receipts)
            # and of the newest checkpoint (the published list, the next checkpoint).
            models.UniqueConstraint(fields=["size"], name="ledger_checkpoint_one_per_size"),
        ]

    def __str__(self) -> str:
        return f"ledger checkpoint #{self.size}"


class NewsletterSignup(models.Model):
    """A visitor without an account. Nothing counts until the emailed link is
    followed: the purposes and the notices shown wait here, unconfirmed ones
    are deleted after a week."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for confirmation")
        CONFIRMED = "confirmed", _("Confirmed")

    CONFIRMATION_DAYS = 7  # how long a confirmation link works

    email = models.EmailField(unique=True)
    subject_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    language = models.CharField(max_length=10, default="en")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    pending_choices = models.JSONField(
        default=list,
        blank=True,
        help_text="[{purpose, notice, granted}] as shown, until confirmed.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("newsletter sign-up")
        verbose_name_plural = _("newsletter sign-ups")
        indexes = [
            # The weekly clean-up: pending rows by age.
            models.Index(fields=["status", "created_at"], name="newsletter_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"newsletter {self.subject_id} ({self.status})"

    @property
    def confirmation_pending(self) -> bool:
        """Whether the latest confirmation link sent to this address still works:
        choices wait for it (a first request, or a confirmed subscriber's new
        one) and it is younger than CONFIRMATION_DAYS."""
        cutoff = timezone.now() - timedelta(days=self.CONFIRMATION_DAYS)
        return bool(self.pending_choices) and self.created_at > cutoff


class PersonalDatum(models.Model):
    """One stored field of personal data (the fields declared to consents.personal_data say
    which, and for which data category)."""

    subject_id = models.UUIDField()
    field = models.CharField(max_length=40)
    value = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject_id", "field"], name="datum_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.field} of a subject"
