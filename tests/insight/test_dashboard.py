"""The dashboard in the admin, its exports, and the privacy analysts who see
them and nothing that names a person."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from consents.ledger import verify
from insight.demo import seed_history
from insight.models import PrivacyBudget, Release, Tally
from insight.rollup import insight_refresh
from insight.services import ANALYSTS, analyst_group_ensure
from tests.conftest import make_user
from tests.consents.test_panel import parse

DASHBOARD = "/admin/insight/tally/"
EXPORTS = ["/admin/insight/tally/export.csv", "/admin/insight/tally/export.json"]


@pytest.fixture
def analyst(db):
    user = make_user("analyst@example.com", staff=True)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    user.groups.set([Group.objects.get(name=ANALYSTS)])
    return user


@pytest.fixture
def population(purposes):
    seed_history(people=300, seed=3)
    insight_refresh()


def test_the_migrations_made_the_analysts_group_with_two_permissions(db):
    group = Group.objects.get(name=ANALYSTS)
    mine = ["release_figures", "view_figures"]
    assert sorted(p.codename for p in group.permissions.all()) == mine
    group.permissions.add(*Permission.objects.filter(codename="view_user"))
    group.delete()
    again = analyst_group_ensure()
    assert sorted(p.codename for p in again.permissions.all()) == mine


def test_an_analyst_sees_the_dashboard_linked_from_the_admin_index(client, analyst, population):
    client.force_login(analyst)
    index = parse(client.get("/admin/"))
    links = {a.attrs.get("href") for a in index.find_all("a")}
    assert DASHBOARD in links
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    html = parse(page)
    assert html.find("h2", {"id": "insight-consent_level"})
    assert len(html.find_all("svg")) > 5
    # Each chart's figures are in a table, for screen readers, in a region a keyboard reaches.
    for box in html.find_all("div", cls="table-scroll"):
        assert box.attrs["tabindex"] == "0" and box.attrs["role"] == "region"
        assert box.find("table").find("caption")
    # The page says how many cells it hid, and why.
    assert "are hidden because they count fewer than 10 people" in page.content.decode()


@pytest.mark.parametrize("period", ["week", "month"])
def test_the_page_shows_no_small_count(client, analyst, population, period):
    client.force_login(analyst)
    page = parse(client.get(DASHBOARD, {"period": period}))
    for td in page.find_all("td"):
        if "insight-days" in td.attrs.get("class", ""):
            continue  # days taken to answer, not people
        text = td.text.strip().split(" ")[0].replace(",", "")
        if text.isdigit():
            assert int(text) == 0 or int(text) >= 10, td


def test_an_analyst_gets_403_on_every_admin_list_of_rows(client, analyst):
    client.force_login(analyst)
    lists = [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model not in (Tally, Release, PrivacyBudget)  # figures, and who released them
    ]
    assert "/admin/portal/user/" in lists and "/admin/rights/rightsrequest/" in lists
    for url in lists:
        assert client.get(url).status_code == 403, url


def test_staff_without_the_permission_and_customers_are_kept_out(client, customer, db):
    clerk = make_user("clerk@example.com", staff=True)
    clerk.is_superuser = False
    clerk.save(update_fields=["is_superuser"])
    client.force_login(clerk)
    for url in [DASHBOARD, *EXPORTS]:
        assert client.get(url).status_code == 403
    client.force_login(customer)
    for url in [DASHBOARD, *EXPORTS]:
        assert client.get(url).status_code == 302  # to the admin's login
    client.logout()
    for url in [DASHBOARD, *EXPORTS]:
        assert client.get(url).status_code == 302


def test_an_unknown_period_is_refused_with_a_message(client, analyst):
    client.force_login(analyst)
    for url in [DASHBOARD, *EXPORTS]:
        response = client.get(url, {"period": "decade"})
        assert response.status_code == 400
        assert "choose week or month" in response.content.decode()


def test_the_figures_cannot_be_added_changed_or_deleted(client, analyst, staff, population):
    rows = list(Tally.objects.values_list("id", "count"))
    one = rows[0][0]
    for user in (analyst, staff):
        client.force_login(user)
        for url in ["add/", f"{one}/change/", f"{one}/delete/"]:
            assert client.post(DASHBOARD + url, {"count": 1, "post": "yes"}).status_code == 404
    assert list(Tally.objects.values_list("id", "count")) == rows


def test_the_exports_carry_the_same_suppressed_figures(client, analyst, population):
    client.force_login(analyst)
    data = json.loads(client.get(EXPORTS[1], {"period": "week"}).content)
    assert data["min_cell"] == 10
    rows = list(csv.DictReader(io.StringIO(client.get(EXPORTS[0], {"period": "week"}).text)))
    hidden = [r for r in rows if r["hidden"]]
    assert hidden and all(r["value"] == "" for r in hidden)
    assert len([r for r in hidden if r["hidden"] == "small"]) == data["hidden"]["small"]
    for row in rows:
        if row["value"] and row["table"] not in ("consent_level",):
            value = int(row["value"])
            assert value == 0 or value >= 10 or row["column"] in ("median days", "worst days")
    json_values = {
        (t["id"], r["label"], j): c["value"]
        for t in data["tables"]
        for r in t["rows"]
        for j, c in enumerate(r["cells"])
    }
    csv_values = {}
    for row in rows:
        csv_values.setdefault((row["table"], row["row"]), []).append(
            int(row["value"]) if row["value"] else None
        )
    for (table, label, j), value in json_values.items():
        assert csv_values[table, label][j] == value


def test_a_purpose_name_cannot_become_a_spreadsheet_formula(client, analyst, purposes, population):
    purposes["newsletter"].name = '=HYPERLINK("http://x")'
    purposes["newsletter"].save(update_fields=["name"])
    client.force_login(analyst)
    text = client.get(EXPORTS[0]).text
    assert "'=HYPERLINK" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text


def test_the_dashboards_queries_do_not_grow_with_the_ledger(
    client, analyst, purposes, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(analyst)
    seed_history(people=50, seed=1)
    insight_refresh()
    with CaptureQueriesContext(connection) as small:
        client.get(DASHBOARD, {"period": "week"})
    seed_history(people=500, seed=2, marker="198.51.100.1")  # a second history beside
    insight_refresh()
    with django_assert_max_num_queries(len(small)):
        client.get(DASHBOARD, {"period": "week"})


def test_the_demo_history_keeps_the_ledger_verifiable(purposes):
    from consents.ledger import seal
    from policies.demo import seed_policies

    seed_policies()
    assert seed_history(people=120, seed=7) > 120
    assert seed_history(people=120, seed=7) == 0  # once
    seal()
    verdict = verify()
    assert verdict.intact, verdict.problem
