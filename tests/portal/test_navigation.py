"""What a customer finds on every page: the policies, and a greeting by name."""

from __future__ import annotations

import pytest

from consents.demo import seed_inventory
from consents.personal_data import personal_data_update
from tests.consents.test_panel import parse


def links(response) -> set[str]:
    return {a.attrs.get("href") for a in parse(response).find_all("a")}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/privacy/", "/newsletter/", "/accounts/login/"])
def test_every_page_links_to_the_policies_for_a_visitor(client, url):
    assert "/policies/" in links(client.get(url))


@pytest.mark.parametrize("url", ["/", "/me/", "/me/data/", "/me/policies/"])
def test_every_page_links_to_the_policies_for_a_customer(client, customer, url):
    client.force_login(customer)
    assert "/policies/" in links(client.get(url))


def test_the_panels_policies_section_points_to_all_policies_and_their_history(client, customer):
    client.force_login(customer)
    content = parse(client.get("/me/policies/")).find(cls="panel-content")
    assert "/policies/" in {a.attrs["href"] for a in content.find_all("a")}


def test_a_customer_with_a_first_name_is_welcomed_by_it(client, customer):
    seed_inventory()  # a purpose on contract keeps the name
    personal_data_update(user=customer, field_key="first_name", value="Ana")
    client.force_login(customer)
    heading = parse(client.get("/")).find("h1", {"id": "home-title"}).text
    assert heading == "Welcome back, Ana"


def test_a_customer_without_a_first_name_is_welcomed_by_email(client, customer):
    client.force_login(customer)
    heading = parse(client.get("/")).find("h1", {"id": "home-title"}).text
    assert heading == f"Welcome back, {customer.email}"
