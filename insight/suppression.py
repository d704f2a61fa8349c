"""Small-cell and complementary suppression.

A published count is either 0 or at least k people (INSIGHT_MIN_CELL). A row
of a table that publishes its total is made safe against subtraction: the
hidden cells of a row must add up to 0 or to at least k, so that the total
minus the published cells never gives a group smaller than k. When a row
has a single hidden cell, or hidden cells that add up to fewer than k, the
smallest published non-zero cells of the row are hidden too (complementary
suppression); when even that cannot reach k, the total is hidden as well.
Tables publish totals per row only (per period, per policy version), never
per column across periods, so each row's safety stands on its own and no two
windows of periods can be subtracted from each other.

Levels (how many people hold a grant at the end of a period) are published
rounded to a multiple of k: two neighbouring levels then differ by a multiple
of k, and their difference cannot give back a small group."""

from __future__ import annotations

from dataclasses import dataclass

SMALL = "small"  # fewer than k people
COMPLEMENT = "complement"  # hidden so that a small cell cannot be recovered by subtraction


@dataclass
class Cell:
    value: int | None  # None when hidden
    hidden: str = ""  # "", SMALL or COMPLEMENT
    exact: int = 0  # the count before suppression: never published, never rendered


def suppress_row(values: list[int], k: int, *, with_total: bool) -> tuple[list[Cell], Cell | None]:
    """The row's cells and its total (None when the row has none), hidden as
    the module says."""
    hidden = [SMALL if 0 < v < k else "" for v in values]
    total = sum(values)
    if not with_total:
        cells = [Cell(None if h else v, h, v) for v, h in zip(values, hidden, strict=True)]
        return cells, None
    hidden_sum = sum(v for v, h in zip(values, hidden, strict=True) if h)
    while 0 < hidden_sum < k:
        candidates = [i for i, v in enumerate(values) if v > 0 and not hidden[i]]
        if not candidates:
            break
        smallest = min(candidates, key=lambda i: (values[i], i))
        hidden[smallest] = COMPLEMENT
        hidden_sum += values[smallest]
    if 0 < total < k:
        total_hidden = SMALL
    elif 0 < hidden_sum < k:
        total_hidden = COMPLEMENT
    else:
        total_hidden = ""
    cells = [Cell(None if h else v, h, v) for v, h in zip(values, hidden, strict=True)]
    return cells, Cell(None if total_hidden else total, total_hidden, total)


def round_to(value: int, k: int) -> int:
    """The nearest multiple of k (halves up)."""
    return ((max(value, 0) + k // 2) // k) * k
