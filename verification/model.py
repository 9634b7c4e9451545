"""The baseline model on phase frames (pure): `fit(span) -> BaselineModel`, `predict(model, span) -> frame`.

As eemeter's `fit(df)` / `predict(df)`: the model knows nothing of the store; a span
(verification.frames.Span) carries the periods, their daily drivers and the layout.
The inputs of the savings interval are the fitted model's design, residuals, time
positions and AR(1) coefficient (verification.savings.savings_interval).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from verification import stats
from verification.baseline import BaselineModel, fit_baseline
from verification.frames import Span, usable


def fit(span: Span, granularity: str, criterion: str, y: np.ndarray | None = None) -> BaselineModel:
    """The baseline model fitted on the span's usable periods (complete; measured for days
    and hours) of `y` (energy units per period; default: the span's `actual`).
    Raises ValueError when no candidate form can be fitted."""
    y = span.periods["actual"].to_numpy(float) if y is None else np.asarray(y, float)
    return fit_baseline(np.where(usable(span, granularity), y, np.nan), span.drivers, span.layout, criterion,
                        positions=span.positions())


def degree_days(model: BaselineModel, span: Span) -> tuple[np.ndarray, np.ndarray]:
    """Heating and cooling degree days (K·d) per period at the model's balance points (0 without)."""
    temp = span.drivers["temp_c"].to_numpy(float)
    tb, tc = model.spec.heating_base_c, model.spec.cooling_base_c
    zeros = np.zeros(span.layout.n_periods)
    hdd = span.layout.aggregate(stats.heating_degree_days(temp, tb))[:, 0] if tb is not None else zeros
    cdd = span.layout.aggregate(stats.cooling_degree_days(temp, tc))[:, 0] if tc is not None else zeros
    return hdd, cdd


def predict(model: BaselineModel, span: Span) -> pd.DataFrame:
    """The model on the span's conditions, per period: date, predicted (energy units),
    temp_c (mean °C), hdd, cdd (K·d at the model's balance points), working (days)."""
    hdd, cdd = degree_days(model, span)
    return pd.DataFrame({
        "date": span.periods["date"],
        "predicted": model.predict(span.drivers, span.layout),
        "temp_c": span.period_mean(span.drivers["temp_c"].to_numpy(float)),
        "hdd": hdd, "cdd": cdd, "working": span.period_working(),
    })


def daily_degree_days(model: BaselineModel, drivers: pd.DataFrame) -> pd.DataFrame:
    """The daily drivers with hdd and cdd (K·d) at the model's balance points (0 without)."""
    temp = drivers["temp_c"].to_numpy(float)
    tb, tc = model.spec.heating_base_c, model.spec.cooling_base_c
    out = drivers.copy()
    out["hdd"] = stats.heating_degree_days(temp, tb) if tb is not None else 0.0
    out["cdd"] = stats.cooling_degree_days(temp, tc) if tc is not None else 0.0
    return out
