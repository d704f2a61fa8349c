from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from policies.models import Acknowledgement, PolicyVersion

PRIVACY = "privacy"


def published(policy_slug: str) -> QuerySet[PolicyVersion]:
    return PolicyVersion.objects.filter(
        policy__slug=policy_slug, status=PolicyVersion.Status.PUBLISHED
    ).order_by("-number")


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
        .prefetch_related("changed_purposes")
        .order_by("published_at")
    )
