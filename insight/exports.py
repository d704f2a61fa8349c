"""The dashboard's figures as CSV and JSON, suppressed exactly as the page:
both are made from the same insight.selectors.Dashboard, and a hidden cell
leaves as an empty value with the reason beside it, never as its count."""

from __future__ import annotations

import csv
import io

from insight.selectors import Dashboard, Table

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: object) -> str:
    """A label that a spreadsheet would run as a formula is quoted as text."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(cell) -> dict:
    return {"value": cell.value, "hidden": cell.hidden or None}


def _table(table: Table) -> dict:
    rows = []
    for row in table.rows:
        item = {"label": row.label, "cells": [_cell(c) for c in row.cells]}
        if row.total is not None:
            item["total"] = _cell(row.total)
        if row.shares:
            item["percent_of_people"] = row.shares
        rows.append(item)
    return {
        "id": table.slug,
        "title": table.title,
        "description": table.description,
        "kind": table.kind,
        "row_heading": table.row_heading,
        "columns": table.columns,
        "rows": rows,
    }


def as_json(board: Dashboard) -> dict:
    return {
        "format": "clareza-insight-v1",
        "period": board.period,
        "min_cell": board.k,
        "periods": [start.isoformat() for start in board.starts],
        "taken_at": board.taken_at.isoformat() if board.taken_at else None,
        "hidden": {"small": board.hidden_small, "complement": board.hidden_complement},
        "tables": [_table(t) for t in board.tables],
    }


def as_csv(board: Dashboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "row", "column", "value", "hidden", "min_cell", "period"])
    for table in board.tables:
        columns = list(table.columns) + (["total"] if table.with_total else [])
        for row in table.rows:
            cells = list(row.cells) + ([row.total] if row.total is not None else [])
            for column, cell in zip(columns, cells, strict=True):
                writer.writerow(
                    [
                        table.slug,
                        _text(row.label),
                        _text(column),
                        "" if cell.value is None else cell.value,
                        cell.hidden,
                        board.k,
                        board.period,
                    ]
                )
    return out.getvalue()


# Differential-privacy releases ---------------------------------------------------

NOISY = "noisy: differential privacy"


def _privacy(release) -> dict:
    from insight.privacy import CONFIDENCE, margin

    return {
        "noisy": True,
        "epsilon": str(release.epsilon),
        "mechanism": release.mechanism,
        "noise_scale": release.noise_scale,
        "cells_per_person": release.cells_per_person,
        "l1_sensitivity": release.cells_per_person,
        "noise_within": {"plus_or_minus": margin(release.noise_scale), "chance": CONFIDENCE},
        "budget": {
            "month": f"{release.budget_month:%Y-%m}",
            "epsilon": str(release.budget_epsilon),
            "spent_with_this_release": str(release.budget_spent),
        },
        "note": (
            "Every count has random noise added (differential privacy, epsilon-DP for each "
            "person across the whole release); each person counts in at most cells_per_person "
            "cells. Noisy counts below 0 are shown as 0, then small and complementary cells "
            "are hidden. Totals are sums of noisy cells. Figures are not exact."
        ),
    }


def release_as_json(release, board: Dashboard) -> dict:
    data = as_json(board)
    data["format"] = "clareza-insight-dp-v1"
    data["release"] = str(release.uuid)
    data["made_at"] = release.made_at.isoformat()
    data["differential_privacy"] = _privacy(release)
    del data["taken_at"]
    return data


def release_as_csv(release, board: Dashboard) -> str:
    """One row per cell, each stating that it is noisy, the epsilon, the
    mechanism and the noise scale of the release it belongs to."""
    rows = list(csv.reader(io.StringIO(as_csv(board))))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            *rows[0],
            "figures",
            "epsilon",
            "mechanism",
            "noise_scale",
            "cells_per_person",
            "budget_month",
            "budget_epsilon",
            "release",
        ]
    )
    extra = [
        NOISY,
        str(release.epsilon),
        release.mechanism,
        f"{release.noise_scale:g}",
        release.cells_per_person,
        f"{release.budget_month:%Y-%m}",
        str(release.budget_epsilon),
        str(release.uuid),
    ]
    for row in rows[1:]:
        writer.writerow([*row, *extra])
    return out.getvalue()
