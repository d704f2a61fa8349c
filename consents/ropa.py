"""GDPR Art. 30(1): the record of processing activities, from the inventory,
with the erasure rules that the retention task enforces (one row per purpose,
then one per record the portal keeps to run itself). Served as a CSV in the
admin (Purposes) and carried by the auditor's evidence export (insight)."""

from __future__ import annotations

import csv

from django.conf import settings
from django.utils import translation

from consents import selectors
from consents.models import legal_basis_codes

SECURITY_MEASURES = (
    "TLS in transit; Argon2 password hashing; optional TOTP/passkey MFA; pseudonymous "
    "subject ids in the consent ledger; append-only, hash-chained ledger; truncated IPs; "
    "strict CSP"
)


def record_of_processing_write(out) -> None:
    """Write the record as CSV rows to `out` (a text file or a response)."""
    from rights import retention

    writer = csv.writer(out)
    writer.writerow(
        [
            "controller",
            "controller contact",
            "data protection officer",
            "purpose",
            "purpose key",
            "description",
            "legal basis",
            "GDPR article",
            "LGPD article",
            "categories of data subjects",
            "categories of personal data",
            "special categories",
            "recipients",
            "transfers abroad",
            "erasure time limit (days)",
            "sale or sharing",
            "security measures",
            "DPV purpose",
            "erasure rule (enforced)",
        ]
    )
    controller = [
        settings.CONTROLLER_NAME,
        settings.CONTROLLER_EMAIL,
        f"{settings.DPO_NAME} <{settings.DPO_EMAIL}>",
    ]
    for purpose in selectors.active_purposes():
        categories = list(purpose.data_categories.all())
        codes = legal_basis_codes(
            purpose.legal_basis, sensitive=any(c.sensitive for c in categories)
        )
        with translation.override("en"):
            rule = retention.purpose_rule(purpose)
        writer.writerow(
            [
                *controller,
                purpose.name,
                purpose.key,
                purpose.description,
                str(codes["label"]),
                codes["gdpr"],
                codes["lgpd"],
                "customers; newsletter subscribers",
                "; ".join(c.name for c in categories),
                "; ".join(c.name for c in categories if c.sensitive),
                purpose.recipients or "none",
                purpose.transfers_abroad or "none",
                purpose.retention_days,
                "yes" if purpose.is_sale_or_sharing else "no",
                SECURITY_MEASURES,
                purpose.dpv_code,
                rule,
            ]
        )
    for record in retention.housekeeping_rules():
        with translation.override("en"):
            label, stated = str(record.label), record.stated()
        writer.writerow(
            [
                *controller,
                label,
                f"record:{record.key}",
                stated,
                *[""] * 3,  # a record the portal keeps to run itself, under no purpose's basis
                "customers; newsletter subscribers",
                *[""] * 4,
                record.period().days,
                "no",
                SECURITY_MEASURES,
                "",
                stated,
            ]
        )
