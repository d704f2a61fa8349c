"""The demo shop as a company's own app: it declares its fields and its
benefits through consents' registries, reads consent as the API reports it,
and the control panel shows what it gives back as before, in both languages."""

from __future__ import annotations

import pytest

from consents import personal_data, value_exchange
from consents.demo import seed_inventory
from consents.models import Decision, Method, PurposeNotice
from consents.personal_data import personal_data_update
from integrations.api import selectors as consent_api
from integrations.api.services import decision_record
from rights import erasure, export_sections
from shop import benefits
from shop.benefits import discount_code
from shop.demo import seed_catalogue
from shop.models import Interest, Product
from tests.conftest import make_user
from tests.consents.test_panel import parse


@pytest.fixture
def shop(db):
    purposes = {p.key: p for p in seed_inventory()}
    seed_catalogue()
    return purposes


def decide(person, key: str, decision: str = Decision.GRANTED) -> None:
    """As the shop's checkout would: through the API's service."""
    version = PurposeNotice.objects.filter(purpose__key=key).order_by("-version").first().version
    decision_record(
        subject_id=person.subject_id,
        purpose_key=key,
        decision=decision,
        notice_version=version,
        method=Method.CHECKOUT,
    )


def test_the_shop_declares_its_fields_and_consents_only_the_accounts():
    keys = [f.key for f in personal_data.fields()]
    assert keys == ["email", "first_name", "last_name", "postal_address", "interests", "dietary"]
    interests = personal_data.field_for("interests")
    assert interests.rows.model is Interest
    assert interests.category == "interests"
    assert personal_data.field_for("dietary").category == "dietary-health"


def test_erasure_and_the_copy_find_the_shops_interests_where_they_were():
    holders = [h.key for h in erasure.holders()]
    assert holders[holders.index("personal-data") + 1] == "interests"
    sections = [s.key for s in export_sections.sections()]
    assert sections[sections.index("personal_data") + 1] == "interests"


def test_the_shop_gives_what_the_api_says_may_be_processed(monkeypatch, shop, customer):
    """The shop asks integrations.api.selectors, as GET .../consents answers."""
    monkeypatch.setattr(
        consent_api,
        "person_consents",
        lambda subject_id: [
            {"purpose": "tailored-offers", "processing_allowed": True},
            {"purpose": "recommendations", "processing_allowed": False},
        ],
    )
    given = benefits.benefits_for(subject_id=customer.subject_id)
    assert given.discount_code == discount_code(customer.subject_id)
    assert not given.recommendations_on


def test_a_decision_recorded_through_the_api_shows_in_the_panel(client, shop, customer):
    client.force_login(customer)
    decide(customer, "tailored-offers")
    code = discount_code(customer.subject_id)
    for url in ("/", "/me/"):
        assert [c.text for c in parse(client.get(url)).find_all("code", cls="code")] == [code]
    decide(customer, "tailored-offers", Decision.WITHDRAWN)
    for url in ("/", "/me/"):
        assert code not in client.get(url).content.decode()


def test_the_panel_shows_the_shops_benefits_in_portuguese(client, shop):
    joao = make_user("joao@example.com.br", language="pt-br")
    for key in ("recommendations", "tailored-offers"):
        decide(joao, key)
    personal_data_update(user=joao, field_key="interests", value=["books"])
    client.force_login(joao)

    panel = parse(client.get("/me/")).find("section", cls="benefits")
    assert panel.find("h2").text == "O que você ganha agora"
    assert (
        panel.find("p").text == f"Seu código de desconto pessoal: {discount_code(joao.subject_id)}"
    )
    assert panel.find("h3").text == "Recomendados para você"
    books = {p.name_pt for p in Product.objects.filter(category__key="books")}
    shown = [li.find("strong").text for li in panel.find_all("li", cls="product")]
    assert len(shown) == 6 and set(shown) <= books
    assert {li.find(cls="product-category").text for li in panel.find_all("li")} == {"Livros"}

    home = parse(client.get("/"))
    cards = home.find_all("section", cls="benefits")
    assert [bool(c.find_all(attrs={"id": "recommendations-title"})) for c in cards] == [True, False]
    assert cards[0].find("h2").text == "Recomendados para você"
    assert cards[1].find("code").text == discount_code(joao.subject_id)

    data = parse(client.get("/me/data/")).by_id("field-interests")
    assert data.find(cls="value").text == "Livros"


def test_with_no_app_giving_anything_back_the_panel_shows_no_benefits(
    monkeypatch, client, shop, customer
):
    """Consents works on its own: the shop's benefits come only through the registry."""
    decide(customer, "tailored-offers")
    client.force_login(customer)
    assert parse(client.get("/me/")).find_all("section", cls="benefits")
    monkeypatch.setattr(value_exchange, "_providers", {})
    for url in ("/", "/me/"):
        assert not parse(client.get(url)).find_all("section", cls="benefits")
