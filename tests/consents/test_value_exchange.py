"""The value exchange, end to end through the panel: what a consent gives back
(recommendations from the interests you tell us, a discount code, allergy-safe
suggestions) appears while it holds, and goes, with the data, when it is withdrawn."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc.errors import BadSignatureError

from consents.demo import seed_inventory
from consents.models import ConsentEvent, Decision, Method, PersonalDatum
from consents.receipts import public_jwks, receipt_verify
from shop.benefits import discount_code
from shop.demo import seed_catalogue
from shop.models import Interest, Product
from tests.conftest import switch_form
from tests.consents.test_panel import HTMX, Element, parse, top_level_elements

NOT_ALLOWED = "We only keep this while you allow a purpose that uses it. Turn one on first."


@pytest.fixture
def shop(db):
    purposes = {p.key: p for p in seed_inventory()}
    seed_catalogue()
    return purposes


@pytest.fixture
def logged_in(client, customer, shop):
    client.force_login(customer)
    return client


def switch(client, key: str, decision: str):
    response = client.post(f"/me/consents/{key}/", switch_form(key, decision))
    assert response.status_code == 302, response.content
    return response


def recommended(page: Element) -> list[tuple[str, str]]:
    """(category, product) of each recommendation shown."""
    return [
        (item.find(cls="product-category").text, item.find("strong").text)
        for item in page.find_all("li", cls="product")
    ]


def names_in(*category_keys: str) -> set[str]:
    return set(
        Product.objects.filter(category__key__in=category_keys).values_list("name", flat=True)
    )


def test_recommendations_follow_the_interests_and_vanish_with_the_consent(
    logged_in, customer, shop
):
    switch(logged_in, "recommendations", Decision.GRANTED)
    response = logged_in.post("/me/data/interests/", {"interests-value": ["coffee-tea", "books"]})
    assert response.status_code == 302
    assert set(
        Interest.objects.filter(subject_id=customer.subject_id).values_list(
            "category_id", flat=True
        )
    ) == {"coffee-tea", "books"}

    chosen = names_in("coffee-tea", "books")
    others = names_in("bakery", "snacks", "kitchen")
    for url in ("/", "/me/"):
        page = parse(logged_in.get(url))
        shown = recommended(page)
        assert len(shown) == 6
        assert {category for category, _name in shown} == {"Coffee and tea", "Books"}
        assert {name for _category, name in shown} <= chosen
        text = page.text
        assert not [name for name in others if name in text]

    switch(logged_in, "recommendations", Decision.WITHDRAWN)
    for url in ("/", "/me/"):
        page = parse(logged_in.get(url))
        assert recommended(page) == []
        assert not [name for name in chosen if name in page.text]
    assert not Interest.objects.filter(subject_id=customer.subject_id).exists()

    interests = parse(logged_in.get("/me/data/")).by_id("field-interests")
    assert interests.find(cls="value").text == "Nothing stored"
    assert "Coffee and tea" not in interests.text and "Books" not in interests.text

    withdrawal = ConsentEvent.objects.filter(subject_id=customer.subject_id).latest("id")
    assert (withdrawal.decision, withdrawal.method) == (Decision.WITHDRAWN, Method.PANEL)
    newest = parse(logged_in.get("/me/history/")).find("li", cls="event")
    assert newest.find("p", cls="event-head").text.startswith(
        "Withdrawn: Personalised recommendations"
    )
    link = newest.find("a", {"download": ""}).attrs["href"]
    assert link == f"/me/receipts/{withdrawal.uuid}.jws"
    token = logged_in.get(link).content.decode()
    payload = receipt_verify(token, public_jwks())
    assert payload["consentReceiptID"] == str(withdrawal.uuid)
    assert payload["piiPrincipalId"] == str(customer.subject_id)
    assert payload["decision"] == Decision.WITHDRAWN
    assert payload["consented"] is False
    assert payload["ledgerSeq"] == withdrawal.seq


def test_a_tampered_receipt_does_not_verify(logged_in, customer):
    switch(logged_in, "recommendations", Decision.GRANTED)
    event = ConsentEvent.objects.get(subject_id=customer.subject_id)
    token = logged_in.get(f"/me/receipts/{event.uuid}.jws").content.decode()
    assert receipt_verify(token, public_jwks())["decision"] == Decision.GRANTED
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["decision"] = Decision.WITHDRAWN
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        receipt_verify(f"{header}.{forged}.{signature}", public_jwks())


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_interests_cannot_be_saved_without_the_recommendations_consent(
    logged_in, customer, headers
):
    response = logged_in.post(
        "/me/data/interests/", {"interests-value": ["books"]}, headers=headers
    )
    assert response.status_code == (422 if headers else 400)
    assert not Interest.objects.filter(subject_id=customer.subject_id).exists()
    page = parse(response)
    row = page.by_id("field-interests")
    assert NOT_ALLOWED in row.find(attrs={"role": "alert"}).text
    if headers:
        assert [e.attrs.get("id") for e in top_level_elements(response)] == ["field-interests"]


def test_interests_cannot_be_saved_again_after_the_withdrawal(logged_in, customer):
    switch(logged_in, "recommendations", Decision.GRANTED)
    switch(logged_in, "recommendations", Decision.WITHDRAWN)
    response = logged_in.post("/me/data/interests/", {"interests-value": ["books"]})
    assert response.status_code == 400
    assert NOT_ALLOWED in response.content.decode()
    assert not Interest.objects.filter(subject_id=customer.subject_id).exists()


def test_unknown_interests_are_refused(logged_in, customer):
    switch(logged_in, "recommendations", Decision.GRANTED)
    response = logged_in.post("/me/data/interests/", {"interests-value": ["books", "weapons"]})
    assert response.status_code == 400
    assert not Interest.objects.filter(subject_id=customer.subject_id).exists()
    assert parse(response).by_id("field-interests").find(cls="errorlist")


def test_with_recommendations_on_but_no_interests_the_home_page_asks_for_them(logged_in):
    switch(logged_in, "recommendations", Decision.GRANTED)
    page = parse(logged_in.get("/"))
    assert recommended(page) == []
    assert page.find_all("a", {"href": "/me/data/#field-interests"})


def test_tailored_offers_show_a_discount_code_until_withdrawn(logged_in, customer):
    code = discount_code(customer.subject_id)
    for url in ("/", "/me/"):
        assert code not in logged_in.get(url).content.decode()

    switch(logged_in, "tailored-offers", Decision.GRANTED)
    for url in ("/", "/me/"):
        codes = [c.text for c in parse(logged_in.get(url)).find_all("code", cls="code")]
        assert codes == [code]

    switch(logged_in, "tailored-offers", Decision.WITHDRAWN)
    for url in ("/", "/me/"):
        assert code not in logged_in.get(url).content.decode()


def test_allergy_safe_suggestions_hide_products_with_the_customers_allergens(logged_in, customer):
    switch(logged_in, "recommendations", Decision.GRANTED)
    switch(logged_in, "dietary-suggestions", Decision.GRANTED)
    logged_in.post("/me/data/interests/", {"interests-value": ["bakery"]})
    with_gluten = set(
        Product.objects.filter(category__key="bakery", allergens__contains=",gluten,").values_list(
            "name", flat=True
        )
    )
    assert len(with_gluten) == 3
    shown = {name for _category, name in recommended(parse(logged_in.get("/")))}
    assert with_gluten <= shown  # before the allergy is known, they are suggested

    response = logged_in.post("/me/data/dietary/", {"dietary-value": ["gluten"]})
    assert response.status_code == 302
    assert PersonalDatum.objects.get(subject_id=customer.subject_id, field="dietary").value == (
        "gluten"
    )
    for url in ("/", "/me/"):
        shown = {name for _category, name in recommended(parse(logged_in.get(url)))}
        assert shown == names_in("bakery") - with_gluten
    assert "Gluten" in parse(logged_in.get("/me/data/")).by_id("field-dietary").text

    # Withdrawing the health purpose erases the allergies, and stops filtering.
    switch(logged_in, "dietary-suggestions", Decision.WITHDRAWN)
    assert not PersonalDatum.objects.filter(subject_id=customer.subject_id).exists()
    shown = {name for _category, name in recommended(parse(logged_in.get("/")))}
    assert with_gluten <= shown


def test_allergies_cannot_be_saved_without_the_dietary_consent(logged_in, customer):
    switch(logged_in, "recommendations", Decision.GRANTED)
    response = logged_in.post("/me/data/dietary/", {"dietary-value": ["gluten"]})
    assert response.status_code == 400
    assert NOT_ALLOWED in response.content.decode()
    assert not PersonalDatum.objects.filter(subject_id=customer.subject_id).exists()
