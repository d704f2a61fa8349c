"""The dashboard's and the exports' figures: read from the rollup tables
only (a few hundred rows whatever the ledger's size), suppressed before
anything leaves this module."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from consents.models import LegalBasis, Purpose
from insight import rollup
from insight.models import Figure, Period, Tally
from insight.suppression import COMPLEMENT, SMALL, Cell, round_to, suppress_row

WINDOW = {Period.WEEK: 26, Period.MONTH: 12}  # periods shown, the current one last


@dataclass
class Row:
    label: str
    cells: list[Cell]
    total: Cell | None = None
    shares: list[int | None] = field(default_factory=list)  # level tables: % of people known

    @property
    def items(self) -> list[tuple[Cell, int | None]]:
        return list(zip(self.cells, self.shares or [None] * len(self.cells), strict=True))


@dataclass
class Table:
    slug: str
    title: str
    description: str
    row_heading: str
    columns: list[str]
    rows: list[Row]
    with_total: bool = False
    kind: str = "count"  # "count", "level" (rounded to k) or "days"
    charts: list[dict] = field(default_factory=list)

    def cells(self):
        for row in self.rows:
            yield from row.cells
            if row.total is not None:
                yield row.total


@dataclass
class Dashboard:
    period: str
    k: int
    starts: list[date]
    tables: list[Table]
    hidden_small: int = 0
    hidden_complement: int = 0
    taken_at: object = None
    folded_up_to: int = 0


# The counting tables, per period and purpose: the dashboard's, and what a
# differential-privacy release covers (insight.privacy).
COUNT_TABLES = [
    (
        rollup.GRANT_SIGNUP,
        gettext_lazy("Grants at sign-up"),
        gettext_lazy("People who granted the purpose on the sign-up or newsletter form."),
    ),
    (
        rollup.GRANT_LATER,
        gettext_lazy("Grants later"),
        gettext_lazy(
            "People who granted the purpose after signing up: in the control panel, "
            "from an email link, or through staff at their request."
        ),
    ),
    (
        rollup.WITHDRAW,
        gettext_lazy("Withdrawals"),
        gettext_lazy("People who withdrew their consent."),
    ),
    (
        rollup.LAPSE,
        gettext_lazy("Lapses"),
        gettext_lazy(
            "Grants that lapsed because the person did not give them again after a change."
        ),
    ),
    (
        rollup.GPC_OPT_OUT,
        gettext_lazy("Global Privacy Control opt-outs"),
        gettext_lazy("People whose browser's Global Privacy Control signal opted them out."),
    ),
]


def min_cell() -> int:
    return settings.INSIGHT_MIN_CELL


def period_starts(period: str, today: date | None = None) -> list[date]:
    """The window's periods, oldest first, ending with the current one."""
    today = today or timezone.localdate()
    if period == Period.WEEK:
        last = today - timedelta(days=today.weekday())
        return [last - timedelta(weeks=n) for n in range(WINDOW[period] - 1, -1, -1)]
    starts, month = [], today.replace(day=1)
    for _n in range(WINDOW[period]):
        starts.append(month)
        month = (month - timedelta(days=1)).replace(day=1)
    return starts[::-1]


def period_label(period: str, start: date) -> str:
    if period == Period.WEEK:
        return _("week of %(date)s") % {"date": date_format(start, "SHORT_DATE_FORMAT")}
    return date_format(start, "YEAR_MONTH_FORMAT")


def _consent_purposes() -> list[Purpose]:
    return list(Purpose.objects.filter(legal_basis=LegalBasis.CONSENT).order_by("order", "key"))


def _versions() -> list[tuple[int, str]]:
    from policies.models import PolicyVersion

    versions = (
        PolicyVersion.objects.filter(number__isnull=False)
        .select_related("policy")
        .order_by("policy__order", "policy__slug", "number")
    )
    return [(v.pk, f"{v.policy.display_title} v{v.number}") for v in versions]


def _count_table(
    k, *, slug, title, description, row_heading, labels, columns, values, with_total=True
) -> Table:
    rows = []
    for label, row_values in zip(labels, values, strict=True):
        cells, total = suppress_row(row_values, k, with_total=with_total)
        rows.append(Row(label, cells, total))
    return Table(slug, title, description, row_heading, columns, rows, with_total)


def dashboard(period: str = Period.MONTH, *, today: date | None = None) -> Dashboard:
    k = min_cell()
    starts = period_starts(period, today)
    labels = [period_label(period, s) for s in starts]
    purposes = _consent_purposes()
    names = [p.display_name for p in purposes]
    index = {s: i for i, s in enumerate(starts)}
    place = {p.pk: j for j, p in enumerate(purposes)}

    counts: dict[str, list[list[int]]] = defaultdict(lambda: [[0] * len(purposes) for _ in starts])
    people = [0] * len(starts)
    for t in Tally.objects.filter(period=period, start__in=starts).only(
        "start", "measure", "purpose_id", "count"
    ):
        if t.measure == rollup.NEW_PEOPLE:
            people[index[t.start]] += t.count
        elif t.purpose_id in place:
            counts[t.measure][index[t.start]][place[t.purpose_id]] += t.count

    tables = [_levels(k, period, starts, labels, purposes, names, counts, people)]
    for measure, title, description in COUNT_TABLES:
        tables.append(
            _count_table(
                k,
                slug=measure,
                title=str(title),
                description=str(description),
                row_heading=_("Period"),
                labels=labels,
                columns=names,
                values=counts[measure],
            )
        )
    tables += _per_version(k, purposes, names)
    tables += _value_tables(k)
    tables.append(_rights_table(k, period, starts, labels))
    board = Dashboard(period, k, starts, tables)
    for table in tables:
        for cell in table.cells():
            board.hidden_small += cell.hidden == SMALL
            board.hidden_complement += cell.hidden == COMPLEMENT
        table.charts = _charts(table)
    taken = Figure.objects.order_by("-taken_at").values_list("taken_at", flat=True).first()
    board.taken_at = taken
    return board


def _levels(k, period, starts, labels, purposes, names, counts, people) -> Table:
    """People holding a grant at the end of each period, rounded to k, and
    their share of the people the ledger knew by then (from rounded figures)."""
    before = {
        row["purpose_id"]: row["n"]
        for row in Tally.objects.filter(
            period=period, start__lt=starts[0], measure=rollup.NET_GRANTED
        )
        .values("purpose_id")
        .annotate(n=Sum("count"))
        .order_by()
    }
    known = (
        Tally.objects.filter(
            period=period, start__lt=starts[0], measure=rollup.NEW_PEOPLE
        ).aggregate(n=Sum("count"))["n"]
        or 0
    )
    level = [before.get(p.pk, 0) for p in purposes]
    rows = []
    for i, label in enumerate(labels):
        known += people[i]
        level = [level[j] + counts[rollup.NET_GRANTED][i][j] for j in range(len(purposes))]
        known_rounded = round_to(known, k)
        cells, shares = [], []
        for value in level:
            rounded = round_to(value, k)
            cells.append(Cell(rounded, "", value))
            shares.append(round(100 * rounded / known_rounded) if known_rounded else None)
        rows.append(Row(label, cells, Cell(known_rounded, "", known), shares))
    return Table(
        "consent_level",
        _("Consent rate"),
        _(
            "People holding a grant at the end of the period, and their share of the people "
            "who had made any decision by then. Rounded to the nearest %(k)s, so that two "
            "neighbouring periods cannot be subtracted to find a small group."
        )
        % {"k": k},
        _("Period"),
        names,
        rows,
        with_total=True,
        kind="level",
    )


def _per_version(k, purposes, names) -> list[Table]:
    versions = _versions()
    ids = [pk for pk, _label in versions]
    place = {p.pk: j for j, p in enumerate(purposes)}
    lapses = {pk: [0] * len(purposes) for pk in ids}
    unsubscribes = dict.fromkeys(ids, 0)
    for t in Tally.objects.filter(period=Period.VERSION, policy_version_id__in=ids):
        if t.measure == rollup.LAPSE and t.purpose_id in place:
            lapses[t.policy_version_id][place[t.purpose_id]] += t.count
        elif t.measure == rollup.UNSUBSCRIBE:
            unsubscribes[t.policy_version_id] += t.count
    emails = {str(pk): dict.fromkeys(rollup.EMAIL_MEASURES, 0) for pk in ids}
    for figure in Figure.objects.filter(measure__in=rollup.EMAIL_MEASURES, key__in=emails):
        emails[figure.key][figure.measure] = figure.count
    labels = [label for _pk, label in versions]
    return [
        _count_table(
            k,
            slug="lapse_by_version",
            title=_("Lapses after each policy version"),
            description=_(
                "Grants that lapsed while each policy version was in force: did a change cost "
                "trust?"
            ),
            row_heading=_("Policy version"),
            labels=labels,
            columns=names,
            values=[lapses[pk] for pk in ids],
        ),
        _count_table(
            k,
            slug="emails",
            title=_("Policy emails"),
            description=_(
                "Notices of each policy version: delivered to the mail server, refused by it "
                "for good, and still waiting. Bounces that arrive later by mail are not recorded."
            ),
            row_heading=_("Policy version"),
            labels=labels,
            columns=[_("delivered"), _("refused"), _("waiting")],
            values=[[emails[str(pk)][m] for m in rollup.EMAIL_MEASURES] for pk in ids],
        ),
        _count_table(
            k,
            slug="unsubscribe",
            title=_("One-click unsubscribes"),
            description=_(
                "People who stopped their optional emails from a link in an email, under each "
                "policy version in force."
            ),
            row_heading=_("Policy version"),
            labels=labels,
            columns=[_("people")],
            values=[[unsubscribes[pk]] for pk in ids],
            with_total=False,
        ),
    ]


def _value_tables(k) -> list[Table]:
    from shop.models import ProductCategory

    figures = {
        (f.measure, f.key): f.count
        for f in Figure.objects.filter(
            measure__in=[
                rollup.RECOMMENDATIONS_IN_USE,
                rollup.OFFERS_IN_USE,
                rollup.DIETARY_FILTER_IN_USE,
                rollup.INTEREST,
            ]
        )
    }
    categories = list(ProductCategory.objects.order_by("order", "key"))
    now = _("Now")
    return [
        _count_table(
            k,
            slug="value_exchange",
            title=_("The value exchange"),
            description=_(
                "People receiving what each purpose gives back: recommendations from their "
                "interests, tailored offers, the dietary filter."
            ),
            row_heading=_("When"),
            labels=[now],
            columns=[_("recommendations"), _("offers"), _("dietary filter")],
            values=[
                [
                    figures.get((rollup.RECOMMENDATIONS_IN_USE, ""), 0),
                    figures.get((rollup.OFFERS_IN_USE, ""), 0),
                    figures.get((rollup.DIETARY_FILTER_IN_USE, ""), 0),
                ]
            ],
            with_total=False,
        ),
        _count_table(
            k,
            slug="interests",
            title=_("Interests"),
            description=_("People who told us they like each category (counts, never lists)."),
            row_heading=_("When"),
            labels=[now],
            columns=[c.display_name for c in categories],
            values=[[figures.get((rollup.INTEREST, c.key), 0) for c in categories]],
            with_total=False,
        ),
    ]


def _rights_table(k, period, starts, labels) -> Table:
    keys = [f"{period}:{start}" for start in starts]
    figures = {
        (f.measure, f.key): f.count
        for f in Figure.objects.filter(
            key__in=keys,
            measure__in=[
                rollup.RIGHTS_OPENED,
                rollup.RIGHTS_ANSWERED,
                rollup.RIGHTS_LATE,
                rollup.RIGHTS_MEDIAN_DAYS,
                rollup.RIGHTS_WORST_DAYS,
            ],
        )
    }
    rows = []
    for key, label in zip(keys, labels, strict=True):
        counts = [
            figures.get((m, key), 0)
            for m in (rollup.RIGHTS_OPENED, rollup.RIGHTS_ANSWERED, rollup.RIGHTS_LATE)
        ]
        cells, _total = suppress_row(counts, k, with_total=False)
        answered = counts[1]
        for measure in (rollup.RIGHTS_MEDIAN_DAYS, rollup.RIGHTS_WORST_DAYS):
            days = figures.get((measure, key))
            if days is None:
                cells.append(Cell(None, "", 0))
            elif answered < k:  # a median of a few requests tells about those few
                cells.append(Cell(None, SMALL, days))
            else:
                cells.append(Cell(days, "", days))
        rows.append(Row(label, cells))
    deadlines = settings.RIGHTS_DEADLINES
    return Table(
        "rights",
        _("Rights requests"),
        _(
            "Requests opened and answered, answers after the deadline (LGPD %(lgpd)s days, "
            "GDPR %(gdpr)s month(s)), and the median and worst days taken to answer."
        )
        % {"lgpd": deadlines["lgpd"]["days"], "gdpr": deadlines["gdpr"]["months"]},
        _("Period"),
        [_("opened"), _("answered"), _("answered late"), _("median days"), _("worst days")],
        rows,
        kind="days",
    )


# Charts: bar charts drawn by the server (inline SVG), one per column.

CHART_HEIGHT = 100


def _charts(table: Table) -> list[dict]:
    columns = range(3) if table.slug == "rights" else range(len(table.columns))
    charts = []
    for j in columns:
        series = [(row.label, row.cells[j]) for row in table.rows]
        top = max([c.value or 0 for _label, c in series] + [1])
        width = 100 / max(len(series), 1)
        bars = []
        for i, (label, cell) in enumerate(series):
            height = (
                CHART_HEIGHT * 0.15 if cell.value is None else CHART_HEIGHT * 0.9 * cell.value / top
            )
            bars.append(
                {
                    "x": f"{i * width + width * 0.1:.2f}",
                    "width": f"{width * 0.8:.2f}",
                    "y": f"{CHART_HEIGHT - height:.2f}",
                    "height": f"{height:.2f}",
                    "hidden": cell.hidden,
                    "label": label,
                    "value": cell.value,
                }
            )
        charts.append(
            {
                "title": table.columns[j],
                "bars": bars,
                "top": top,
                "first": series[0][0] if series else "",
                "last": series[-1][0] if series else "",
            }
        )
    return charts


# Differential privacy: the month's budget, and a stored release as tables ---------


@dataclass
class Budget:
    month: date
    epsilon: Decimal
    spent: Decimal
    set_by: str = ""  # empty: the default of INSIGHT_DP_EPSILON_PER_MONTH

    @property
    def left(self) -> Decimal:
        return max(self.epsilon - self.spent, Decimal(0))


def budget_month(today: date | None = None) -> date:
    """The calendar month whose budget a release made today spends."""
    return (today or timezone.localdate()).replace(day=1)


def budget(month: date | None = None) -> Budget:
    from insight.models import PrivacyBudget, Release

    month = month or budget_month()
    row = PrivacyBudget.objects.filter(month=month).first()
    spent = Release.objects.filter(budget_month=month).aggregate(n=Sum("epsilon"))["n"]
    epsilon = row.epsilon if row else settings.INSIGHT_DP_EPSILON_PER_MONTH
    cents = Decimal("0.01")
    return Budget(
        month,
        Decimal(epsilon).quantize(cents),
        Decimal(spent or 0).quantize(cents),
        row.set_by_email if row else "",
    )


def release_board(release) -> Dashboard:
    """A stored release's noisy counts as the dashboard's count tables,
    suppressed with the smallest count of its time (post-processing: the same
    numbers at every download)."""
    from consents.models import Purpose

    figures = release.figures
    starts = [date.fromisoformat(s) for s in figures["starts"]]
    labels = [period_label(release.period, s) for s in starts]
    ids = [pk for pk, _key, _name in figures["purposes"]]
    current = {p.pk: p.display_name for p in Purpose.objects.filter(pk__in=ids)}
    names = [current.get(pk, name) for pk, _key, name in figures["purposes"]]
    tables = []
    for measure, title, description in COUNT_TABLES:
        tables.append(
            _count_table(
                release.min_cell,
                slug=measure,
                title=str(title),
                description=str(description),
                row_heading=_("Period"),
                labels=labels,
                columns=names,
                values=figures["counts"][measure],
            )
        )
    board = Dashboard(release.period, release.min_cell, starts, tables, taken_at=release.made_at)
    for table in tables:
        for cell in table.cells():
            board.hidden_small += cell.hidden == SMALL
            board.hidden_complement += cell.hidden == COMPLEMENT
    return board
