from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from policies.models import Acknowledgement, Policy, PolicyVersion

PRIVACY = "privacy"


def published(policy: Policy | str) -> QuerySet[PolicyVersion]:
    """A policy's published versions, newest first (the policy or its slug)."""
    by = {"policy__slug": policy} if isinstance(policy, str) else {"policy": policy}
    return PolicyVersion.objects.filter(status=PolicyVersion.Status.PUBLISHED, **by).order_by(
        "-number"
    )


def current_versions() -> list[tuple[Policy, PolicyVersion]]:
    """Each policy with a published version, and that latest version."""
    pairs = [(p, published(p).first()) for p in Policy.objects.order_by("order", "slug")]
    return [(policy, version) for policy, version in pairs if version is not None]


def version_in_force_id() -> int | None:
    """The latest published privacy policy: the one a person is shown when they
    decide, and which the ledger records with each decision."""
    return published(PRIVACY).values_list("pk", flat=True).first()


def unacknowledged_material(user) -> list[PolicyVersion]:
    """Material versions published since the person joined that they have not
    acknowledged yet (they saw the then-current text when they signed up)."""
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
        .select_related("policy")
        .order_by("published_at")
    )
