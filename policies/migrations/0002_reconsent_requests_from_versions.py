"""Published versions that change consent purposes asked, until now, for
re-consent through their changed_purposes alone. That request is now its own
row (consents.ReconsentRequest), apart from acknowledging the version."""

from __future__ import annotations

from django.db import migrations


def forwards(apps, schema_editor):
    PolicyVersion = apps.get_model("policies", "PolicyVersion")
    ReconsentRequest = apps.get_model("consents", "ReconsentRequest")
    versions = PolicyVersion.objects.filter(status="published").prefetch_related(
        "changed_purposes"
    )
    for version in versions:
        for purpose in version.changed_purposes.all():
            if purpose.legal_basis != "consent":
                continue
            ReconsentRequest.objects.get_or_create(
                purpose=purpose,
                policy_version_id=version.pk,
                defaults={
                    "reason": "policy",
                    "asked_at": version.published_at,
                    "effective_date": version.effective_date,
                    "created_by_id": version.published_by_id,
                },
            )


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0001_initial"),
        ("consents", "0007_reconsent_request"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
