from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from policies.models import Acknowledgement, Policy, PolicyVersion

PRIVACY = "privacy"


def published(policy: Policy | str) -> QuerySet[PolicyVersion]:
    """A policy's published versions, newest first (the policy or its slug)."""
    by = {"policy__slug": policy} if isinstance(policy, str) else {"policy": policy}
    return PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED, **by).order_by(
        "-number"
    )


def _day(at: datetime | None) -> date:
    """Effective dates are days in the portal's time zone."""
    return timezone.localdate(at) if at is not None else timezone.localdate()


def in_force(policy: Policy | str, *, at: datetime | None = None) -> PolicyVersion | None:
    """The version that applies at `at` (now by default): the newest published
    version whose effective date has come. A version published with a later
    effective date is announced, but the one before it still applies."""
    return published(policy).filter(effective_date__lte=_day(at)).select_related("policy").first()


def upcoming(policy: Policy | str, *, at: datetime | None = None) -> list[PolicyVersion]:
    """Published versions that do not apply yet at `at`, soonest first: newer
    than the version in force, with an effective date still to come."""
    current = in_force(policy, at=at)
    versions = published(policy).filter(effective_date__gt=_day(at))
    if current is not None:
        versions = versions.filter(number__gt=current.number)
    return list(versions.select_related("policy").order_by("effective_date", "number"))


@dataclass(frozen=True)
class PolicyState:
    policy: Policy
    in_force: PolicyVersion | None
    upcoming: list[PolicyVersion]


def policy_states(*, at: datetime | None = None) -> list[PolicyState]:
    """Each policy with a published version: the version in force and those to come."""
    states = [
        PolicyState(policy=p, in_force=in_force(p, at=at), upcoming=upcoming(p, at=at))
        for p in Policy.objects.order_by("order", "slug")
    ]
    return [s for s in states if s.in_force is not None or s.upcoming]


def policies_document(*, at: datetime | None = None) -> list[dict]:
    """For /privacy.json: each policy, the version in force and those to come."""
    site = settings.SITE_URL

    def described(version: PolicyVersion) -> dict:
        slug = version.policy.slug
        return {
            "version": version.number,
            "effectiveDate": version.effective_date.isoformat(),
            "material": version.material,
            "url": site + reverse("policies:version", args=[slug, version.number]),
        }

    document = []
    for state in policy_states(at=at):
        policy = state.policy
        coming = []
        for version in state.upcoming:
            entry = described(version)
            if state.in_force is not None:
                entry["differencesUrl"] = site + reverse(
                    "policies:diff", args=[policy.slug, state.in_force.number, version.number]
                )
            coming.append(entry)
        document.append(
            {
                "slug": policy.slug,
                "title": {"en": policy.title, "pt-br": policy.title_pt or policy.title},
                "inForce": described(state.in_force) if state.in_force else None,
                "upcoming": coming,
            }
        )
    return document


def version_in_force_id(*, at: datetime | None = None) -> int | None:
    """The privacy policy in force: the one a person is shown when they decide,
    and which the ledger records with each decision."""
    version = in_force(PRIVACY, at=at)
    return version.pk if version is not None else None


def version_in_force_for_ledger() -> tuple[int, str] | None:
    """The privacy policy version in force and the hash of its text, in one query."""
    # Plain SQL: it runs with every decision, whose cost is its statements.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.id, v.content_hash FROM policies_policyversion v "
            "JOIN policies_policy p ON p.id = v.policy_id "
            "WHERE p.slug = %s AND v.status = %s AND v.effective_date <= %s "
            "ORDER BY v.number DESC LIMIT 1",
            [
                PRIVACY,
                PolicyVersion.Status.PUBLISHED,
                connection.ops.adapt_datefield_value(_day(None)),
            ],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def version_content_hash(version: PolicyVersion) -> str:
    """SHA-256 of a published version's canonical text: what it says, in both
    languages, and what it is (number, effective date, material or not)."""
    document = version_document(version)
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_document(version: PolicyVersion) -> dict:
    """What a version's hash covers (the auditor's evidence export carries it)."""
    return {
        "policy": version.policy.slug,
        "number": version.number,
        "body": version.body,
        "body_pt": version.body_pt,
        "summary": version.summary,
        "summary_pt": version.summary_pt,
        "material": version.material,
        "effective_date": version.effective_date.isoformat(),
    }


def version_hashes_checked(ids=None) -> tuple[dict[int, str], str]:
    """For verify_ledger: each published version's hash (or those of `ids`)
    recomputed from its text, or the first version whose text no longer
    matches its hash."""
    hashes = {}
    versions = PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED)
    if ids is not None:
        versions = versions.filter(pk__in=ids)
    for version in versions.select_related("policy").order_by("pk").iterator():
        computed = version_content_hash(version)
        if not hmac.compare_digest(computed, version.content_hash):
            return {}, (
                f"the text of “{version.policy.title}” version {version.number} was changed "
                "after it was published: it no longer matches its hash"
            )
        hashes[version.pk] = computed
    return hashes, ""


def unacknowledged_material(user) -> list[PolicyVersion]:
    """Material versions published since the person joined that they have not
    acknowledged yet (they saw the then-current text when they signed up).
    Each carries `in_effect`: whether its effective date has come."""
    acknowledged = Acknowledgement.objects.filter(
        subject_id=user.subject_id, version=OuterRef("pk")
    )
    return list(
        PolicyVersion.objects.filter(
            status=PolicyVersion.Status.PUBLISHED,
            material=True,
            published_at__gt=user.date_joined,
        )
        .exclude(Exists(acknowledged))
        .annotate(
            in_effect=ExpressionWrapper(
                Q(effective_date__lte=_day(None)), output_field=BooleanField()
            )
        )
        .select_related("policy")
        .order_by("published_at")
    )
