"""Differential privacy for figures that leave the admin (OpenDP).

What a release covers: for one kind of period (week or month) and the
dashboard's window of periods (26 weeks or 12 months, the current one last),
the dashboard's five counting tables: grants at sign-up, grants later,
withdrawals, lapses and Global Privacy Control opt-outs, per period and per
consent purpose. Every cell of that grid is released, zeros included: a cell
left out because it is empty would say that it is empty.

Sensitivity. A person counts at most once in a cell, but may count in many
cells of one release: several purposes, several periods, several measures (a
year of weekly decisions could put one person in hundreds of cells). So a
release does not read the rollups, which no longer say who is in which cell:
it counts again from the ledger, person by person. Each person's cells are
found as the rollup finds them (insight.rollup._cells); when they are more
than C = INSIGHT_DP_CELLS_PER_PERSON, C of them are chosen at random and the
rest left out (at random, not the earliest, so that no period loses more than
another). Adding or removing one person then changes at most C cells, each by
1: the L1 sensitivity of the whole release is C, and Laplace noise of scale
C / epsilon on every cell makes the release epsilon-differentially private
for each person ("add or remove one person", across all its cells at once).

The noise is OpenDP's make_laplace on a vector of integers: an exact discrete
Laplace sampler (Canonne, Kamath and Steinke 2020) fed by the operating
system's randomness, with no floating-point arithmetic on the counts, so the
floating-point attacks on textbook Laplace code (Mironov 2012) do not apply.
The scale is found by OpenDP's binary_search_param: the smallest scale whose
privacy map, for an input distance of C, gives at most epsilon.

After the noise everything is post-processing, which spends nothing: noisy
counts below 0 become 0, then small-cell and complementary suppression
(insight.suppression) hide what would show fewer than INSIGHT_MIN_CELL, and
row totals are the sums of the noisy cells.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from insight import rollup
from insight.models import Period

MEASURES = (
    rollup.GRANT_SIGNUP,
    rollup.GRANT_LATER,
    rollup.WITHDRAW,
    rollup.LAPSE,
    rollup.GPC_OPT_OUT,
)
MECHANISM = "Laplace (discrete), OpenDP 0.16 make_laplace"
CONFIDENCE = 0.95
_choices = random.SystemRandom()


def _opendp():
    import opendp.prelude as dp

    # make_laplace is in OpenDP's "contrib" set: vetted and proven, but not yet
    # reviewed by the OpenDP team's external process.
    dp.enable_features("contrib")
    return dp


def _space(dp):
    return dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)


def scale_for(epsilon: Decimal | float, cells_per_person: int) -> float:
    """The Laplace scale that spends `epsilon` on a release in which one person
    changes at most `cells_per_person` cells by 1 (about C / epsilon)."""
    dp = _opendp()
    space = _space(dp)
    return float(
        dp.binary_search_param(
            lambda scale: dp.m.make_laplace(*space, scale=scale),
            d_in=cells_per_person,
            d_out=float(epsilon),
        )
    )


def spent(scale: float, cells_per_person: int) -> float:
    """The epsilon that OpenDP's privacy map states for this scale."""
    dp = _opendp()
    return float(dp.m.make_laplace(*_space(dp), scale=scale).map(cells_per_person))


def noisy(values: list[int], *, scale: float) -> list[int]:
    """Each value plus independent discrete Laplace noise of this scale."""
    if not values:
        return []
    dp = _opendp()
    return list(dp.m.make_laplace(*_space(dp), scale=scale)(list(values)))


def margin(scale: float) -> int:
    """Half-width of the interval that holds the noise 95% of the time:
    P(|noise| > t) is about exp(-t / scale)."""
    return math.ceil(scale * math.log(1 / (1 - CONFIDENCE)))


@dataclass
class Grid:
    """The cells of one release: counts[measure][period index][purpose index]."""

    period: str
    starts: list[date]
    purposes: list  # consents.models.Purpose, the dashboard's columns
    counts: dict[str, list[list[int]]]

    def flat(self) -> list[int]:
        return [n for m in MEASURES for row in self.counts[m] for n in row]

    def refill(self, values: list[int]) -> Grid:
        width, it = len(self.purposes), iter(values)
        counts = {m: [[next(it) for _j in range(width)] for _i in self.starts] for m in MEASURES}
        return Grid(self.period, self.starts, self.purposes, counts)


def _window_begins(starts: list[date]) -> datetime:
    return timezone.make_aware(datetime.combine(starts[0], time.min))


def bounded_counts(
    period: str,
    starts: list[date],
    purposes: list,
    *,
    cells_per_person: int,
    choose=_choices.sample,
) -> Grid:
    """The release's cells counted from the ledger, each person in at most
    `cells_per_person` of them (the module says why). Reads the window's
    committed events in the order of their people, one person at a time."""
    from consents.ledger import committed_barrier
    from consents.models import ConsentEvent

    if period not in (Period.WEEK, Period.MONTH):
        raise ValueError(period)
    index = {start: i for i, start in enumerate(starts)}
    place = {p.pk: j for j, p in enumerate(purposes)}
    counts = {m: [[0] * len(purposes) for _s in starts] for m in MEASURES}

    def add(cells: set) -> None:
        chosen = (
            cells if len(cells) <= cells_per_person else choose(sorted(cells), cells_per_person)
        )
        for measure, i, j in chosen:
            counts[measure][i][j] += 1

    events = (
        ConsentEvent.objects.filter(
            id__lte=committed_barrier(), created_at__gte=_window_begins(starts)
        )
        .order_by("subject_id", "id")
        .values_list(*rollup._COLUMNS)
    )
    person, cells = None, set()
    for event in events.iterator(chunk_size=5000):
        if event[1] != person:
            add(cells)
            person, cells = event[1], set()
        for kind, start, measure, purpose, _version in rollup._cells(event):
            if kind == period and start in index and measure in MEASURES and purpose in place:
                cells.add((measure, index[start], place[purpose]))
    add(cells)
    return Grid(period, starts, purposes, counts)


def draw(grid: Grid, *, epsilon: Decimal, cells_per_person: int) -> tuple[Grid, float]:
    """The grid with noise calibrated to (cells_per_person, epsilon), counts
    below 0 made 0; and the scale used."""
    scale = scale_for(epsilon, cells_per_person)
    if spent(scale, cells_per_person) > float(epsilon) * (1 + 1e-9):
        raise ValueError("OpenDP's privacy map exceeds the epsilon asked for")
    values = [max(n, 0) for n in noisy(grid.flat(), scale=scale)]
    return grid.refill(values), scale


def cells_per_person() -> int:
    return settings.INSIGHT_DP_CELLS_PER_PERSON
