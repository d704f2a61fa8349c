"""The demo inventory of an online shop, for `seed_demo` (the catalogue is the
shop's own: shop.demo). Idempotent: running it again updates texts (freezing a
new notice only where a text changed)."""

from __future__ import annotations

from django.db import transaction

from consents.models import DataCategory, LegalBasis, Purpose
from consents.services import purpose_notice_refresh

CATEGORIES = [
    # key, name, name_pt, DPV, sensitive
    ("email", "Email address", "Endereço de e-mail", "pd:EmailAddress", False),
    ("name", "Name", "Nome", "pd:Name", False),
    ("postal-address", "Delivery address", "Endereço de entrega", "pd:PhysicalAddress", False),
    ("orders", "Order history", "Histórico de pedidos", "pd:PurchasesAndSpendingHabit", False),
    (
        "browsing",
        "Pages and products viewed on our site",
        "Páginas e produtos vistos no nosso site",
        "pd:BrowsingBehaviour",
        False,
    ),
    (
        "interests",
        "Interests you tell us",
        "Interesses que você nos informa",
        "pd:Preference",
        False,
    ),
    ("survey-answers", "Survey answers", "Respostas a pesquisas", "pd:Opinion", False),
    (
        "advertising-id",
        "Advertising identifier",
        "Identificador de publicidade",
        "pd:Identifier",
        False,
    ),
    (
        "dietary-health",
        "Allergies and dietary restrictions",
        "Alergias e restrições alimentares",
        "pd:HealthRecord",
        True,
    ),
]

PURPOSES = [
    {
        "key": "account-orders",
        "order": 10,
        "legal_basis": LegalBasis.CONTRACT,
        "dpv_code": "dpv:ServiceProvision",
        "categories": ["email", "name", "postal-address", "orders"],
        "retention_days": 1825,
        "name": "Your account and orders",
        "name_pt": "Sua conta e seus pedidos",
        "description": "We use your details to run your account, deliver what you buy, and handle "
        "returns and invoices.",
        "description_pt": "Usamos seus dados para manter sua conta, entregar o que você compra e "
        "cuidar de trocas e notas fiscais.",
        "benefit": "",
        "benefit_pt": "",
        "recipients": "Our payment processor and the carrier that delivers your order.",
        "recipients_pt": "Nossa processadora de pagamentos e a transportadora que entrega "
        "seu pedido.",
    },
    {
        "key": "newsletter",
        "order": 20,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:DirectMarketing",
        "categories": ["email", "name"],
        "retention_days": 30,
        "offered_in_newsletter": True,
        "name": "Newsletter",
        "name_pt": "Newsletter",
        "description": "One email a week with new arrivals, guides and events.",
        "description_pt": "Um e-mail por semana com novidades, guias e eventos.",
        "benefit": "Early access to sales, a day before everyone else",
        "benefit_pt": "Acesso antecipado às promoções, um dia antes de todo mundo",
    },
    {
        "key": "recommendations",
        "order": 30,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:PersonalisedBenefits",
        "categories": ["interests", "orders", "browsing"],
        "retention_days": 365,
        "name": "Personalised recommendations",
        "name_pt": "Recomendações personalizadas",
        "description": "We suggest products from the interests you pick and what you bought and "
        "viewed here. The interests are kept only for this.",
        "description_pt": "Sugerimos produtos a partir dos interesses que você escolhe e do que "
        "comprou e viu aqui. Os interesses são guardados só para isso.",
        "benefit": "Recommendations that fit your interests",
        "benefit_pt": "Recomendações que combinam com seus interesses",
    },
    {
        "key": "tailored-offers",
        "order": 40,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:PersonalisedAdvertising",
        "categories": ["email", "orders"],
        "retention_days": 365,
        "offered_in_newsletter": True,
        "name": "Tailored offers",
        "name_pt": "Ofertas sob medida",
        "description": "Discounts chosen from your order history, sent by email and shown in your "
        "account.",
        "description_pt": "Descontos escolhidos a partir do seu histórico de pedidos, enviados por "
        "e-mail e mostrados na sua conta.",
        "benefit": "10% off your next order, and personal offers after that",
        "benefit_pt": "10% de desconto no próximo pedido e ofertas pessoais depois",
    },
    {
        "key": "product-research",
        "order": 50,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:ResearchAndDevelopment",
        "categories": ["email", "survey-answers"],
        "retention_days": 180,
        "name": "Product research surveys",
        "name_pt": "Pesquisas sobre produtos",
        "description": "Now and then, a short survey about products you bought. Answers are "
        "analysed in aggregate.",
        "description_pt": "De vez em quando, uma pesquisa curta sobre produtos que você comprou. "
        "As respostas são analisadas em conjunto.",
        "benefit": "A R$ 15 voucher for each survey you complete",
        "benefit_pt": "Um vale de R$ 15 por pesquisa respondida",
    },
    {
        "key": "ad-partners",
        "order": 60,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:SellDataToThirdParties",
        "categories": ["advertising-id", "browsing", "orders"],
        "retention_days": 90,
        "is_sale_or_sharing": True,
        "name": "Sharing with advertising partners",
        "name_pt": "Compartilhamento com parceiros de publicidade",
        "description": "We share an advertising identifier and what you viewed with partners, "
        "who show you our ads on other sites.",
        "description_pt": "Compartilhamos um identificador de publicidade e o que você viu com "
        "parceiros, que mostram nossos anúncios em outros sites.",
        "benefit": "Free shipping on your next order",
        "benefit_pt": "Frete grátis no próximo pedido",
        "recipients": "AdNetwork Exemplo S.A. and Retarget Demo Inc.",
        "recipients_pt": "AdNetwork Exemplo S.A. e Retarget Demo Inc.",
        "transfers_abroad": "United States, under standard contractual clauses.",
        "transfers_abroad_pt": "Estados Unidos, com cláusulas contratuais padrão.",
    },
    {
        "key": "dietary-suggestions",
        "order": 70,
        "legal_basis": LegalBasis.CONSENT,
        "dpv_code": "dpv:PersonalisedBenefits",
        "categories": ["dietary-health"],
        "retention_days": 365,
        "name": "Allergy-safe suggestions",
        "name_pt": "Sugestões seguras para alergias",
        "description": "Tell us your allergies or dietary restrictions and we hide products that "
        "contain them. This is health data: it is used for nothing else.",
        "description_pt": "Conte suas alergias ou restrições alimentares e escondemos os produtos "
        "que as contêm. São dados de saúde: não são usados para mais nada.",
        "benefit": "A shop that never suggests what you cannot eat",
        "benefit_pt": "Uma loja que nunca sugere o que você não pode comer",
    },
]


@transaction.atomic
def seed_inventory() -> list[Purpose]:
    categories = {}
    for key, name, name_pt, dpv, sensitive in CATEGORIES:
        categories[key], _created = DataCategory.objects.update_or_create(
            key=key,
            defaults={"name": name, "name_pt": name_pt, "dpv_code": dpv, "sensitive": sensitive},
        )
    purposes = []
    for spec in PURPOSES:
        spec = dict(spec)
        keys = spec.pop("categories")
        defaults = {
            "recipients": "",
            "recipients_pt": "",
            "transfers_abroad": "",
            "transfers_abroad_pt": "",
            "is_sale_or_sharing": False,
            "offered_in_newsletter": False,
            **spec,
        }
        purpose, _created = Purpose.objects.update_or_create(key=spec["key"], defaults=defaults)
        purpose.data_categories.set([categories[k] for k in keys])
        purpose_notice_refresh(purpose=purpose)
        purposes.append(purpose)
    return purposes


def seed_customer_history(*, subject_id, granted: set[str]) -> bool:
    """A demo customer's sign-up choices, recorded once: a second run finds the
    history there and leaves it (the ledger is never rewritten). False then."""
    from consents.models import ConsentEvent, Method
    from consents.services import consent_record_choices, current_notices

    if ConsentEvent.objects.filter(subject_id=subject_id).exists():
        return False
    purposes = [p for p in Purpose.objects.filter(retired_at__isnull=True) if p.is_optional]
    consent_record_choices(
        subject_id=subject_id,
        choices={p: p.key in granted for p in purposes},
        notices=current_notices(purposes),
        method=Method.SIGNUP,
    )
    return True
