from __future__ import annotations

from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from consents.models import Purpose
from policies import selectors, services
from policies.models import Policy, PolicyVersion


class Command(BaseCommand):
    help = (
        "Publish a new version of a policy and email everyone it concerns, "
        "as the admin's 'Preview and publish' does. For automation."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="the policy, e.g. privacy")
        parser.add_argument("--body", required=True, help="Markdown file with the full text")
        parser.add_argument("--summary", required=True, help="what changed, in plain words")
        parser.add_argument("--material", action="store_true", help="a material change")
        parser.add_argument(
            "--language",
            default="en",
            choices=["en", "pt-br"],
            help="the language of --body and --summary; the other language's text is "
            "carried over from the current version",
        )
        parser.add_argument("--effective-date", help="YYYY-MM-DD (default: earliest allowed)")
        parser.add_argument(
            "--changed-purpose",
            action="append",
            default=[],
            metavar="KEY",
            help="a consent purpose whose grants must be given again (repeatable)",
        )

    def handle(self, *args, **options) -> None:
        policy = Policy.objects.filter(slug=options["slug"]).first()
        if policy is None:
            known = ", ".join(Policy.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"No policy {options['slug']!r}. Known: {known}.")
        path = Path(options["body"])
        if not path.is_file():
            raise CommandError(f"--body {path}: no such file.")
        body = path.read_text(encoding="utf-8")
        effective = services.earliest_effective_date(material=options["material"])
        if options["effective_date"]:
            try:
                effective = date.fromisoformat(options["effective_date"])
            except ValueError:
                raise CommandError("--effective-date must be YYYY-MM-DD.") from None
        purposes = list(Purpose.objects.filter(key__in=options["changed_purpose"]))
        unknown = set(options["changed_purpose"]) - {p.key for p in purposes}
        if unknown:
            raise CommandError(f"Unknown purpose(s): {', '.join(sorted(unknown))}.")
        current = selectors.published(policy).first()
        texts = {"body": body, "summary": options["summary"]}
        if options["language"] == "pt-br":
            # The English text is carried over, but never the old summary: what
            # changed is said in Portuguese to everyone rather than wrongly in English.
            texts = {
                "body_pt": body,
                "summary_pt": options["summary"],
                "body": current.body if current else body,
                "summary": options["summary"],
            }
        elif current:
            texts |= {"body_pt": current.body_pt, "summary_pt": current.summary_pt}
        try:
            with transaction.atomic():
                draft = services.policy_version_draft_save(
                    version=PolicyVersion(
                        policy=policy,
                        material=options["material"],
                        effective_date=effective,
                        **texts,
                    )
                )
                draft.changed_purposes.set(purposes)
                result = services.policy_version_publish(version=draft)
        except services.PolicyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Published {result.version} (effective {result.version.effective_date}); "
                f"{result.notifications} notification(s) queued."
            )
        )
