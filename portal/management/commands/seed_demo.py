"""Demo data for `make run`. Safe to run again: it converges, it never duplicates."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_PASSWORD = "clareza-demo"  # noqa: S105 - printed for the newcomer on purpose

DEMO_USERS = [
    # email, first name, language, staff, granted at sign-up, interests
    ("ana@example.com", "Ana", "en", False, {"newsletter"}, []),
    (
        "joao@example.com",
        "João",
        "pt-br",
        False,
        {"recommendations", "tailored-offers"},
        ["bakery", "coffee-tea"],
    ),
    ("staff@example.com", "Sofia", "en", True, set(), []),
]
# Staff who see the figures and nothing that names a person (insight.services).
ANALYST = "analyst@example.com"


class Command(BaseCommand):
    help = "Create or refresh the demo customers and the demo staff member (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        from consents.demo import seed_customer_history, seed_inventory
        from shop.demo import seed_catalogue, seed_interests

        purposes = seed_inventory()
        self.stdout.write(f"  inventory: {len(purposes)} purposes")
        self.stdout.write(f"  catalogue: {seed_catalogue()} products")
        from policies.demo import seed_policies

        self.stdout.write(f"  privacy policy: v1 published, v2 draft ({seed_policies()})")
        User = get_user_model()
        for email, first_name, language, staff, granted, interests in DEMO_USERS:
            user, created = User.objects.get_or_create(
                email=email,
                defaults={"first_name": first_name, "language": language},
            )
            user.is_staff = user.is_superuser = staff
            user.is_active = True
            user.set_password(DEMO_PASSWORD)
            user.save()
            EmailAddress.objects.update_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
            if not staff:
                recorded = seed_customer_history(subject_id=user.subject_id, granted=granted)
                if recorded and interests:
                    seed_interests(user=user, keys=interests)
            verb = "created" if created else "refreshed"
            self.stdout.write(f"  {verb} {'staff' if staff else 'customer'} {email}")
        from insight.demo import seed_history
        from insight.services import analyst_group_ensure

        self.stdout.write(f"  insight: {seed_history():,} decisions of a year of history added")
        analyst, created = User.objects.get_or_create(
            email=ANALYST, defaults={"first_name": "Rui", "language": "pt-br"}
        )
        analyst.is_staff, analyst.is_superuser, analyst.is_active = True, False, True
        analyst.set_password(DEMO_PASSWORD)
        analyst.save()
        analyst.groups.set([analyst_group_ensure()])
        EmailAddress.objects.update_or_create(
            user=analyst, email=ANALYST, defaults={"verified": True, "primary": True}
        )
        self.stdout.write(f"  {'created' if created else 'refreshed'} privacy analyst {ANALYST}")
        from insight.demo import seed_privacy_budget

        staff = User.objects.get(email="staff@example.com")
        self.stdout.write(f"  privacy budget: {seed_privacy_budget(acting_user=staff)}")
        from consents.ledger import seal

        # The worker's beat seals every few seconds; sealing now gives the demo's
        # receipts their inclusion proofs from the first page view.
        self.stdout.write(f"  ledger: {seal().sealed} decisions sealed")
        from insight.rollup import insight_refresh

        self.stdout.write(f"  insight: {insight_refresh()[0]:,} decisions folded into the figures")
        # The demo shop: a connected system whose receiver `make run` starts (rundemo).
        from integrations.demo_shop import config_path
        from integrations.demo_shop import seed as seed_demo_shop

        shop_endpoint, shop_key = seed_demo_shop()
        self.stdout.write(
            f"  demo shop: webhooks to {shop_endpoint.url}, API key {shop_key.prefix}…, "
            f"both in {config_path()}"
        )
        # The company's connected systems that rights requests reach: the shop
        # (by webhook, answering through the API) and a CRM a person updates.
        from integrations.systems import seed_demo_systems

        systems = seed_demo_systems(shop_endpoint=shop_endpoint, shop_key=shop_key)
        self.stdout.write("  connected systems: " + ", ".join(system.name for system in systems))
        self.stdout.write(
            self.style.SUCCESS(
                "Demo logins (password for all: "
                f"{DEMO_PASSWORD}):\n"
                "  customer  ana@example.com   (English)\n"
                "  customer  joao@example.com  (Português)\n"
                "  staff     staff@example.com (superuser, /admin/)\n"
                "  analyst   analyst@example.com (privacy analyst: /admin/insight/tally/,\n"
                "            'Release with differential privacy')"
            )
        )
