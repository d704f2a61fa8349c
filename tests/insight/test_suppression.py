"""No published figure, alone or with the totals, gives a group of fewer
than k people: checked on rows made at random and on a synthetic population
rolled up and shown as the dashboard shows it."""

from __future__ import annotations

import random

import pytest

from insight import selectors
from insight.demo import seed_history
from insight.models import Period
from insight.rollup import insight_refresh
from insight.suppression import COMPLEMENT, SMALL, round_to, suppress_row

K = 10


def check_row(values, cells, total, k=K):
    """What an attacker learns from one row: each published cell, and the
    total minus the published cells (the hidden cells' sum)."""
    for cell, value in zip(cells, values, strict=True):
        if cell.value is not None:
            assert cell.value == value
            assert cell.value == 0 or cell.value >= k, (values, cells)
        else:
            assert cell.hidden in (SMALL, COMPLEMENT)
    hidden = [v for c, v in zip(cells, values, strict=True) if c.value is None]
    if total is not None and total.value is not None:
        assert total.value == 0 or total.value >= k
        recovered = total.value - sum(c.value for c in cells if c.value is not None)
        assert recovered == sum(hidden)
        # The hidden cells' sum is known: it must not be a small group, and a
        # single hidden cell would be known exactly.
        assert recovered == 0 or recovered >= k, (values, cells)
        assert len(hidden) != 1, (values, cells)


@pytest.mark.parametrize("seed", range(300))
def test_random_rows_reveal_no_small_group(seed):
    rng = random.Random(seed)  # noqa: S311 (synthetic data, repeatable on purpose)
    values = [rng.choice([0, 0, 1, 2, 5, 9, 10, 11, 30, 200]) for _ in range(rng.randint(1, 7))]
    with_total = rng.random() < 0.8
    cells, total = suppress_row(values, K, with_total=with_total)
    check_row(values, cells, total)
    # Nothing is hidden that did not need to be.
    if not any(0 < v < K for v in values):
        assert all(c.value is not None for c in cells)


def test_a_row_with_one_small_cell_hides_the_smallest_other_and_says_why():
    cells, total = suppress_row([3, 40, 12, 0], K, with_total=True)
    assert [c.hidden for c in cells] == [SMALL, "", COMPLEMENT, ""]
    assert total.value == 55
    # Two small cells that together reach k protect each other.
    cells, total = suppress_row([4, 7, 50], K, with_total=True)
    assert [c.hidden for c in cells] == [SMALL, SMALL, ""]
    # A small cell beside zeros only: the total goes too.
    cells, total = suppress_row([3, 0, 0], K, with_total=True)
    assert cells[0].hidden == SMALL and total.hidden == SMALL and total.value is None


def test_levels_are_rounded_to_multiples_of_k():
    assert [round_to(v, 10) for v in (0, 4, 5, 14, 15, 996)] == [0, 0, 10, 10, 20, 1000]


@pytest.mark.parametrize("period", [Period.WEEK, Period.MONTH])
def test_a_synthetic_population_publishes_no_group_smaller_than_k(purposes, settings, period):
    settings.INSIGHT_MIN_CELL = K
    seed_history(people=600, seed=5)
    insight_refresh()
    board = selectors.dashboard(period)
    small_hidden = 0
    for table in board.tables:
        for row in table.rows:
            if table.kind == "level":
                assert all(c.value % K == 0 for c in row.cells)
                assert row.total.value % K == 0
                continue
            counts = row.cells[:3] if table.kind == "days" else row.cells
            values = [c.exact for c in counts]
            check_row(values, counts, row.total)
            small_hidden += sum(c.hidden == SMALL for c in counts)
            for cell in counts:
                if cell.hidden == SMALL:
                    assert 0 < cell.exact < K
    # The population has small groups (a small purpose), and they were hidden.
    assert small_hidden > 0
    assert board.hidden_small >= small_hidden
