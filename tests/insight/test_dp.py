"""Differential-privacy releases: the budget per month, the noise's calibration
(OpenDP), each person's contribution bounded, releases kept and downloaded
again unchanged, suppression after the noise, and who may release."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import threading
import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record
from insight import privacy, selectors
from insight.demo import seed_history, seed_privacy_budget
from insight.models import Period, PrivacyBudget, Release, Tally
from insight.rollup import insight_refresh
from insight.services import (
    ANALYSTS,
    PrivacyError,
    analyst_group_ensure,
    privacy_budget_set,
    release_make,
)
from rights.models import AuditAction, AuditEntry
from tests.conftest import make_user
from tests.consents.test_panel import parse
from tests.insight.conftest import local

DASHBOARD = "/admin/insight/tally/"
RELEASE = "/admin/insight/tally/release/"
RELEASES = "/admin/insight/release/"
BUDGETS = "/admin/insight/privacybudget/"


def _staff(email: str, *groups: str):
    user = make_user(email, staff=True)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


@pytest.fixture
def analyst(db):
    return _staff("analyst@example.com", ANALYSTS)


@pytest.fixture
def population(purposes):
    seed_history(people=300, seed=3)
    insight_refresh()


def files(client, release: Release) -> tuple[str, dict]:
    base = f"{RELEASES}{release.uuid}/export"
    csv_text = client.get(base + ".csv").content.decode()
    data = json.loads(client.get(base + ".json").content)
    return csv_text, data


def snapshot() -> tuple:
    return (
        list(Release.objects.values_list("id", "epsilon", "figures")),
        list(PrivacyBudget.objects.values_list("month", "epsilon", "set_by_email")),
        AuditEntry.objects.count(),
    )


# The noise -----------------------------------------------------------------------------


def test_the_noise_is_calibrated_to_the_stated_scale():
    """20,000 draws at a count of 100 with the scale of the defaults (5): the
    mean is within 0.5 of 100 and the mean distance to 100 within 0.3 of the
    discrete Laplace's (about 5). The standard errors are about 0.05 and 0.035:
    both bounds are more than 8 of them away, so they cannot fail by chance in
    practice, while a scale off by 10% or a bias of 1 fails them."""
    scale, draws = 5.0, 20_000
    values = privacy.noisy([100] * draws, scale=scale)
    assert len(values) == draws and all(isinstance(v, int) for v in values)
    assert abs(statistics.fmean(values) - 100) < 0.5
    q = math.exp(-1 / scale)
    expected_spread = 2 * q / (1 - q * q)  # E|X| of the discrete Laplace, 4.97 here
    spread = statistics.fmean(abs(v - 100) for v in values)
    assert abs(spread - expected_spread) < 0.3
    # The noise is not constant, and reaches the 95% margin about 5% of the time.
    outside = sum(abs(v - 100) > privacy.margin(scale) for v in values) / draws
    assert 0.02 < outside < 0.06


def test_the_scale_follows_the_sensitivity_and_epsilon_by_opendps_privacy_map():
    assert privacy.scale_for(Decimal("1"), 5) == pytest.approx(5.0, rel=1e-6)
    assert privacy.scale_for(Decimal("0.5"), 5) == pytest.approx(10.0, rel=1e-6)
    assert privacy.scale_for(Decimal("2"), 3) == pytest.approx(1.5, rel=1e-6)
    for epsilon, cells in [(Decimal("1"), 5), (Decimal("0.25"), 7)]:
        scale = privacy.scale_for(epsilon, cells)
        assert privacy.spent(scale, cells) <= float(epsilon) * (1 + 1e-9)
        assert privacy.spent(scale * 0.9, cells) > float(epsilon)  # the smallest such scale


# Each person's contribution --------------------------------------------------------------


def test_each_person_counts_in_at_most_the_stated_cells(purposes, at, sealed):
    """Ana decides about three purposes in four weeks (a dozen cells); with a
    bound of 3 she counts in exactly 3, and Bia in her one."""
    ana, bia = uuid.uuid4(), uuid.uuid4()
    keys = ["newsletter", "recommendations", "tailored-offers"]
    for week in range(4):
        at(local(2026, 3, 2 + 7 * week, 10))
        for key in keys:
            decision = Decision.GRANTED if week % 2 == 0 else Decision.WITHDRAWN
            consent_record(
                subject_id=ana, purpose=purposes[key], decision=decision, method=Method.PANEL
            )
    consent_record(
        subject_id=bia,
        purpose=purposes["newsletter"],
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    sealed()
    today = date(2026, 3, 25)
    starts = selectors.period_starts(Period.WEEK, today)
    columns = selectors._consent_purposes()
    free = privacy.bounded_counts(Period.WEEK, starts, columns, cells_per_person=10**6)
    assert sum(free.flat()) == 12 + 1
    bounded = privacy.bounded_counts(Period.WEEK, starts, columns, cells_per_person=3)
    assert sum(bounded.flat()) == 3 + 1
    assert max(bounded.flat()) == 1


def test_without_a_bound_the_counts_are_the_dashboards(population):
    """The release counts the cells the rollup counts: with no person over the
    bound, its true counts are the Tally's."""
    starts = selectors.period_starts(Period.MONTH)
    columns = selectors._consent_purposes()
    grid = privacy.bounded_counts(Period.MONTH, starts, columns, cells_per_person=10**6)
    tallies = {
        (t.measure, t.start, t.purpose_id): t.count
        for t in Tally.objects.filter(period=Period.MONTH, measure__in=privacy.MEASURES)
    }
    for measure in privacy.MEASURES:
        for i, start in enumerate(starts):
            for j, purpose in enumerate(columns):
                assert grid.counts[measure][i][j] == tallies.get((measure, start, purpose.pk), 0)
    assert sum(grid.flat()) > 300


# Releases, the budget, the files ---------------------------------------------------------


def test_an_analyst_releases_from_the_dashboard_and_downloads_the_same_figures_again(
    client, analyst, population
):
    client.force_login(analyst)
    page = client.get(DASHBOARD)
    html = parse(page)
    form = html.find("form", {"action": RELEASE})
    assert form is not None and form.find("button")
    for name in ("period", "epsilon"):  # labelled fields, which a keyboard reaches
        field = form.find(attrs={"name": name})
        assert form.find("label", {"for": field.attrs["id"]})
    assert "epsilon 4.00 left of 4" in page.content.decode()

    response = client.post(RELEASE, {"period": "month", "epsilon": "1"})
    release = Release.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{RELEASES}{release.pk}/change/"
    assert release.made_by == analyst and release.epsilon == Decimal("1.00")
    assert release.noise_scale == pytest.approx(5.0) and release.cells_per_person == 5
    assert selectors.budget().spent == Decimal("1.00")
    entry = AuditEntry.objects.get(action=AuditAction.FIGURES_RELEASE)
    assert entry.actor == analyst and entry.target == f"insight.release:{release.uuid}"

    detail = client.get(response["Location"]).content.decode()
    assert f"{release.uuid}/export.csv" in detail and f"{release.uuid}/export.json" in detail
    assert "These figures are noisy: 95% of them are within 15 of the true count" in detail
    shown = parse(client.get(response["Location"])).find("table", {"class": "insight-table"})
    first_row = shown.find("tbody").find("tr")
    cells = selectors.release_board(release).tables[0].rows[0].cells
    texts = [td.text.strip() for td in first_row.find_all("td")][: len(cells)]
    for text, cell in zip(texts, cells, strict=True):  # the stored noisy figures, suppressed
        assert text.startswith("hidden") if cell.value is None else text == str(cell.value)
    first = files(client, release)
    assert files(client, release) == first  # the same numbers, not drawn again
    assert selectors.budget().spent == Decimal("1.00")
    assert Release.objects.count() == 1

    csv_text, data = first
    dp = data["differential_privacy"]
    assert dp["noisy"] is True and dp["epsilon"] == "1.00"
    assert dp["mechanism"].startswith("Laplace (discrete), OpenDP")
    assert dp["noise_scale"] == pytest.approx(5.0) and dp["l1_sensitivity"] == 5
    assert "not exact" in dp["note"]
    month = f"{timezone.localdate():%Y-%m}"
    assert dp["budget"] == {"month": month, "epsilon": "4.00", "spent_with_this_release": "1.00"}
    assert data["release"] == str(release.uuid) and data["period"] == "month"
    assert [t["id"] for t in data["tables"]] == list(privacy.MEASURES)
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == sum(len(t["rows"]) * (len(t["columns"]) + 1) for t in data["tables"])
    for row in rows:
        assert row["figures"].startswith("noisy") and row["epsilon"] == "1.00"
        assert row["mechanism"] == release.mechanism and row["noise_scale"] == "5"
        assert row["budget_month"] == month and row["budget_epsilon"] == "4.00"
    # Noise was added, and no more than 20 scales (odds below 1e-8 per cell).
    truth = privacy.bounded_counts(
        Period.MONTH,
        selectors.period_starts(Period.MONTH),
        selectors._consent_purposes(),
        cells_per_person=10**6,
    ).flat()
    released = [n for m in privacy.MEASURES for row in release.figures["counts"][m] for n in row]
    assert len(released) == len(truth) and released != truth
    assert all(abs(r - t) <= 100 for r, t in zip(released, truth, strict=True))


def test_a_release_that_would_overspend_is_refused_and_nothing_changes(
    client, analyst, staff, population
):
    privacy_budget_set(month=timezone.localdate(), epsilon="1.5", acting_user=staff)
    client.force_login(analyst)
    assert client.post(RELEASE, {"period": "week", "epsilon": "1"}).status_code == 302
    before = snapshot()
    response = client.post(RELEASE, {"period": "week", "epsilon": "1"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "would spend epsilon 1.00, but only 0.50 of the 1.50" in text
    assert "Nothing was released or spent" in text
    assert snapshot() == before
    with pytest.raises(PrivacyError):
        release_make(period="week", epsilon="0.51", acting_user=analyst)
    assert snapshot() == before
    release_make(period="week", epsilon="0.5", acting_user=analyst)  # exactly what is left
    assert selectors.budget().left == Decimal(0)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"period": "month", "epsilon": "abc"}, "Enter a number."),
        ({"period": "month", "epsilon": "0"}, "greater than or equal to 0.01"),
        ({"period": "month", "epsilon": "0.001"}, "no more than 2 decimal places"),
        ({"period": "decade", "epsilon": "1"}, "Select a valid choice."),
    ],
)
def test_bad_input_is_refused_with_a_message(client, analyst, purposes, data, message):
    client.force_login(analyst)
    before = snapshot()
    response = client.post(RELEASE, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert snapshot() == before


def test_the_budget_is_set_by_staff_audited_and_never_below_what_was_spent(
    client, analyst, staff, population
):
    month = timezone.localdate().replace(day=1)
    release_make(period="month", epsilon="2", acting_user=analyst)
    with pytest.raises(PrivacyError, match=r"already spent epsilon 2\.00"):
        privacy_budget_set(month=month, epsilon="1.99", acting_user=staff)
    budget = privacy_budget_set(month=month, epsilon="6", acting_user=staff)
    assert budget.epsilon == Decimal("6.00") and budget.set_by_email == staff.email
    entry = AuditEntry.objects.filter(action=AuditAction.PRIVACY_BUDGET_SET).get()
    assert entry.actor == staff and entry.details["epsilon"] == "6.00"
    assert selectors.budget().left == Decimal("4.00")
    # In the admin: a superuser changes it through the form; the refusal is a message.
    client.force_login(staff)
    response = client.post(f"{BUDGETS}{budget.pk}/change/", {"epsilon": "1"})
    assert response.status_code == 200
    assert "already spent epsilon 2.00" in response.content.decode()
    # A negative epsilon is refused in words, not by the database constraint's name.
    response = client.post(f"{BUDGETS}add/", {"month": "2027-01-17", "epsilon": "-3"})
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()
    assert "privacy_budget_epsilon_not_negative" not in response.content.decode()
    assert not PrivacyBudget.objects.filter(month=date(2027, 1, 1)).exists()
    response = client.post(f"{BUDGETS}add/", {"month": "2027-01-17", "epsilon": "3"})
    assert response.status_code == 302
    assert PrivacyBudget.objects.get(month=date(2027, 1, 1)).epsilon == Decimal("3.00")
    assert AuditEntry.objects.filter(action=AuditAction.PRIVACY_BUDGET_SET).count() == 2
    # The analyst sees the budgets and the releases, and changes neither.
    client.force_login(analyst)
    listing = client.get(BUDGETS).content.decode()
    assert "2027-01" in listing
    assert client.get(f"{BUDGETS}add/").status_code == 403
    assert client.post(f"{BUDGETS}{budget.pk}/change/", {"epsilon": "99"}).status_code == 403
    assert PrivacyBudget.objects.get(pk=budget.pk).epsilon == Decimal("6.00")
    releases = client.get(RELEASES).content.decode()
    assert "epsilon 4.00 left of 6.00" in releases and "4.00 of 6.00" in releases


def test_suppression_applies_to_the_noisy_counts(db):
    """Post-processing of stored noisy counts: a small noisy cell is hidden, and
    so is its complement in the row; zero stays zero."""
    release = Release(
        period=Period.MONTH,
        min_cell=10,
        made_at=None,
        figures={
            "starts": ["2026-10-01", "2026-11-01"],
            "purposes": [[1, "a", "A"], [2, "b", "B"], [3, "c", "C"]],
            "counts": {m: [[120, 4, 30], [0, 0, 55]] for m in privacy.MEASURES},
        },
    )
    board = selectors.release_board(release)
    row, second = board.tables[0].rows
    assert [c.value for c in row.cells] == [120, None, None]
    assert [c.hidden for c in row.cells] == ["", "small", "complement"]
    assert row.total.value == 154
    assert [c.value for c in second.cells] == [0, 0, 55]
    assert board.hidden_small == 5 and board.hidden_complement == 5


def test_a_real_release_publishes_no_small_count(client, analyst, population):
    client.force_login(analyst)
    client.post(RELEASE, {"period": "week", "epsilon": "1"})
    csv_text, data = files(client, Release.objects.get())
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    hidden = [r for r in rows if r["hidden"]]
    assert hidden and all(r["value"] == "" for r in hidden)  # the small purpose's weeks
    for r in rows:
        assert r["value"] == "" or int(r["value"]) == 0 or int(r["value"]) >= 10
    assert data["hidden"]["small"] == len([r for r in hidden if r["hidden"] == "small"])


# Who may release -------------------------------------------------------------------------


def test_only_analysts_and_superusers_may_release(client, staff, purposes):
    viewer_group = Group.objects.create(name="Viewers")
    viewer_group.permissions.set(Permission.objects.filter(codename="view_figures"))
    viewer = _staff("viewer@example.com", "Viewers")
    clerk = _staff("clerk@example.com")
    before = snapshot()
    client.force_login(viewer)  # sees the figures, may not release them
    assert client.get(DASHBOARD).status_code == 200
    assert RELEASE not in client.get(DASHBOARD).content.decode()
    assert client.post(RELEASE, {"period": "month", "epsilon": "1"}).status_code == 403
    with pytest.raises(PrivacyError):
        release_make(period="month", epsilon="1", acting_user=viewer)
    client.force_login(clerk)  # plain staff: none of it
    for url in [RELEASES, BUDGETS]:
        assert client.get(url).status_code == 403
    assert client.post(RELEASE, {"period": "month", "epsilon": "1"}).status_code == 403
    client.logout()
    assert client.post(RELEASE, {"period": "month", "epsilon": "1"}).status_code == 302
    assert snapshot() == before
    client.force_login(staff)  # a superuser may
    assert client.get(RELEASE).status_code == 405
    assert client.post(RELEASE, {"period": "month", "epsilon": "0.5"}).status_code == 302
    release = Release.objects.get()
    client.force_login(clerk)
    for suffix in ("export.csv", "export.json"):
        assert client.get(f"{RELEASES}{release.uuid}/{suffix}").status_code == 403
    assert client.get(f"{RELEASES}{uuid.uuid4()}/export.csv").status_code == 403


def test_the_demo_gives_a_budget_that_a_newcomer_can_spend(staff, analyst, purposes):
    assert "epsilon 4.00 left of 4.00" in seed_privacy_budget(acting_user=staff)
    assert AuditEntry.objects.filter(action=AuditAction.PRIVACY_BUDGET_SET).count() == 1
    seed_privacy_budget(acting_user=staff)  # once
    assert AuditEntry.objects.filter(action=AuditAction.PRIVACY_BUDGET_SET).count() == 1
    release = release_make(period="month", epsilon="1", acting_user=analyst)
    assert release.budget_month == timezone.localdate().replace(day=1)


@pytest.mark.django_db(transaction=True)
def test_two_analysts_cannot_both_spend_the_last_of_the_budget(monkeypatch):
    """Both pass the first check and count; the lock on the month's row lets
    one spend, and the other finds the budget spent when its turn comes."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time, so there is no race")
    seed_inventory()
    analyst_group_ensure()  # an earlier transactional test's flush took the migration's group
    ana, bia = _staff("ana@example.com", ANALYSTS), _staff("bia@example.com", ANALYSTS)
    counted = threading.Barrier(2)
    count = privacy.bounded_counts

    def count_then_meet(*args, **kwargs):
        grid = count(*args, **kwargs)
        counted.wait(timeout=30)
        return grid

    monkeypatch.setattr(privacy, "bounded_counts", count_then_meet)
    outcomes: list = []

    def release(user) -> None:
        try:
            outcomes.append(release_make(period="month", epsilon="3", acting_user=user))
        except PrivacyError as refused:
            outcomes.append(refused)
        finally:
            connection.close()

    threads = [threading.Thread(target=release, args=(user,)) for user in (ana, bia)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(type(o).__name__ for o in outcomes) == ["PrivacyError", "Release"]
    assert Release.objects.count() == 1 and PrivacyBudget.objects.count() == 1
    assert selectors.budget().spent == Decimal("3.00")
    assert AuditEntry.objects.filter(action=AuditAction.FIGURES_RELEASE).count() == 1


def test_the_files_of_a_release_are_not_served_to_visitors(client, analyst, purposes):
    release = release_make(period="week", epsilon="1", acting_user=analyst)
    for suffix in ("export.csv", "export.json"):
        response = client.get(f"{RELEASES}{release.uuid}/{suffix}")
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_lists_queries_do_not_grow_with_the_releases(
    client, analyst, staff, purposes, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    privacy_budget_set(month=timezone.localdate(), epsilon="10", acting_user=staff)
    privacy_budget_set(month=date(2026, 1, 1), epsilon="2", acting_user=staff)
    release_make(period="week", epsilon="1", acting_user=analyst)
    client.force_login(analyst)
    with CaptureQueriesContext(connection) as one:
        client.get(RELEASES)
        client.get(BUDGETS)
    for _n in range(4):
        release_make(period="month", epsilon="1", acting_user=analyst)
    privacy_budget_set(month=date(2026, 2, 1), epsilon="2", acting_user=staff)
    with django_assert_max_num_queries(len(one)):
        releases = client.get(RELEASES).content.decode()
        budgets = client.get(BUDGETS).content.decode()
    assert releases.count("5.00 of 10.00") == 5
    assert "2026-02" in budgets and "5.00" in budgets
