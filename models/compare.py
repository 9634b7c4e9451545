"""Year-on-year change (and any comparison with a previous period): the one formula and the one rule of when it is shown.

A change is shown only where both periods meet the completeness rule
(`models.completeness`: every month of the span at >= 90 % of its unit-days complete,
`complete_span`); otherwise it is blank with the reason (`YOY_REASONS`). The ranking,
the overview, the monthly report and the assessment all call `comparable_change`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Why a year-on-year value is blank (checked in this order).
YOY_REASONS = ("current_incomplete", "previous_incomplete", "no_previous")


def yoy_change(current: np.ndarray | pd.Series, previous: np.ndarray | pd.Series) -> np.ndarray:
    """(current - previous) / previous as a fraction (-0.05 = 5 % lower); NaN where the
    previous value is missing, zero or negative (no base to compare with)."""
    c = np.asarray(current, dtype=float)
    p = np.asarray(previous, dtype=float)
    return np.divide(c - p, p, out=np.full(np.broadcast(c, p).shape, np.nan), where=p > 0)


def comparable_change(current, previous, current_complete, previous_complete) -> tuple[np.ndarray, np.ndarray]:
    """`yoy_change` where both periods are complete (bool arrays of the same length),
    else NaN; and the reason of each blank ('' where a change is shown): the first of
    `YOY_REASONS` that applies (current_incomplete, previous_incomplete, no_previous:
    the previous value is missing or not positive)."""
    change = yoy_change(current, previous)
    cur_ok = np.asarray(current_complete, dtype=bool)
    prev_ok = np.asarray(previous_complete, dtype=bool)
    reason = np.select([~cur_ok, ~prev_ok, ~np.isfinite(change)], list(YOY_REASONS), "").astype(object)
    return np.where(reason == "", change, np.nan), reason


__all__ = ["YOY_REASONS", "comparable_change", "yoy_change"]
