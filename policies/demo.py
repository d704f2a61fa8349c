"""The demo's privacy policy: version 1 published, and a material version 2
waiting as a draft for staff to preview and publish in the admin."""

from __future__ import annotations

from django.db import transaction

from consents.models import Purpose
from policies import services
from policies.models import Policy, PolicyVersion

V1 = """## Who we are

Loja Clareza Demo Ltda. sells coffee, food and kitchen goods online. This policy says what we do with your personal data.

## What we collect

We collect what you give us when you create an account and order: your name, email address and delivery address. With your consent, and only then, we use more, purpose by purpose, as listed on our privacy page.

## Your rights

You can see, correct, download or delete your data, and withdraw any consent at any time, in your account."""

V1_PT = """## Quem somos

A Loja Clareza Demo Ltda. vende café, alimentos e utensílios de cozinha pela internet. Esta política diz o que fazemos com os seus dados pessoais.

## O que coletamos

Coletamos o que você nos dá ao criar uma conta e fazer pedidos: seu nome, e-mail e endereço de entrega. Com o seu consentimento, e só então, usamos mais, finalidade por finalidade, como mostra a nossa página de privacidade.

## Seus direitos

Você pode ver, corrigir, baixar ou apagar seus dados, e retirar qualquer consentimento a qualquer momento, na sua conta."""

V2 = V1.replace(
    "as listed on our privacy page.",
    "as listed on our privacy page.\n\nPersonalised recommendations now also use the "
    "products you viewed in our mobile app, not only on our website.",
)
V2_PT = V1_PT.replace(
    "como mostra a nossa página de privacidade.",
    "como mostra a nossa página de privacidade.\n\nAs recomendações personalizadas agora "
    "também usam os produtos que você viu no nosso aplicativo, não só no site.",
)


@transaction.atomic
def seed_policies() -> str:
    policy, _created = Policy.objects.get_or_create(
        slug="privacy", defaults={"title": "Privacy policy", "title_pt": "Política de privacidade"}
    )
    if policy.versions.exists():
        return "kept"
    v1 = services.policy_version_draft_save(
        version=PolicyVersion(
            policy=policy,
            body=V1,
            body_pt=V1_PT,
            summary="Our first privacy policy.",
            summary_pt="Nossa primeira política de privacidade.",
            effective_date=services.earliest_effective_date(material=False),
        )
    )
    services.policy_version_publish(version=v1)
    v2 = services.policy_version_draft_save(
        version=PolicyVersion(
            policy=policy,
            body=V2,
            body_pt=V2_PT,
            summary="Personalised recommendations will also use what you view in our app.",
            summary_pt="As recomendações personalizadas vão usar também o que você vê no app.",
            material=True,
            effective_date=services.earliest_effective_date(material=True),
        )
    )
    v2.changed_purposes.set(Purpose.objects.filter(key="recommendations"))
    return "created"
