"""Savings arithmetic on frames (pure): adjustments, avoided energy, its uncertainty, verdict, normalized savings.

Energy figures are in the project's unit (the meters' index unit, e.g. kWh); formulas
in domain.md section 7 and verification.stats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from verification import model as bm
from verification import stats
from verification.baseline import BaselineModel
from verification.findings import Finding
from verification.frames import Span, empty_consumption, meter_span, usable
from verification.project import Adjustment
from verification.sufficiency import min_fit_points

CONFIDENCES = (0.68, 0.90)
SIGNIFICANCE_CONFIDENCE = 0.90
MAX_FSU_68 = 0.50  # G14: savings uncertainty below 50 % of the savings at 68 % confidence
EXTRAPOLATION_MARGIN_C = 1.0  # reporting temperatures this far beyond the baseline's are flagged


def non_routine(adjustments: list[Adjustment], span: Span) -> np.ndarray:
    """Non-routine adjustment per period of `span` (energy units): each adjustment's
    quantity_per_day on every day of [start, end]."""
    days = span.drivers["date"]
    per_day = np.zeros(len(days))
    for a in adjustments:  # a few adjustments, each vectorised over the days
        inside = ((days >= pd.Timestamp(a.start)) & (days <= pd.Timestamp(a.end))).to_numpy(bool)
        per_day += np.where(inside, a.quantity_per_day, 0.0)
    return span.layout.aggregate(per_day)[:, 0]


def avoided_energy(prediction: pd.DataFrame, actual: np.ndarray, non_routine_q: np.ndarray) -> pd.DataFrame:
    """Per reporting period: date, actual, baseline (the model's prediction), adjusted_baseline
    (+ non-routine adjustments), non_routine, avoided (adjusted baseline - actual, NaN
    where there is no actual), avoided_cumulative."""
    baseline = prediction["predicted"].to_numpy(float)
    adjusted = baseline + non_routine_q
    avoided = np.where(np.isfinite(actual), adjusted - actual, np.nan)
    return pd.DataFrame({"date": prediction["date"], "actual": actual, "baseline": baseline,
                         "adjusted_baseline": adjusted, "non_routine": non_routine_q, "avoided": avoided,
                         "avoided_cumulative": np.nancumsum(np.nan_to_num(avoided))})


@dataclass(frozen=True)
class Savings:
    """Totals over the m reporting periods with data (energy units)."""

    m: int
    baseline: float
    adjusted_baseline: float
    actual: float
    avoided: float
    non_routine: float

    @property
    def fraction(self) -> float:
        """Avoided energy as a share of the adjusted baseline (NaN when that is 0)."""
        return self.avoided / self.adjusted_baseline if self.adjusted_baseline else float("nan")


def savings_totals(avoided: pd.DataFrame) -> Savings:
    """Totals of an `avoided_energy` frame over the periods with an actual value."""
    has = np.isfinite(avoided["actual"].to_numpy(float))
    total = {c: float(avoided[c].to_numpy(float)[has].sum())
             for c in ("baseline", "adjusted_baseline", "actual", "avoided", "non_routine")}
    return Savings(m=int(has.sum()), **total)


@dataclass(frozen=True)
class Interval:
    """Savings uncertainty: half-width (energy units) and fractional savings uncertainty
    (None when the savings are 0) per confidence level."""

    avoided: float
    half: dict[float, float]
    fsu: dict[float, float | None]

    def low(self, confidence: float) -> float:
        return self.avoided - self.half[confidence]

    def high(self, confidence: float) -> float:
        return self.avoided + self.half[confidence]

    @property
    def significant(self) -> bool:
        """The interval at SIGNIFICANCE_CONFIDENCE lies above zero."""
        return bool(self.low(SIGNIFICANCE_CONFIDENCE) > 0)

    @property
    def fsu68_below_limit(self) -> bool:
        return bool(self.fsu[0.68] is not None and self.fsu[0.68] <= MAX_FSU_68)


UNCERTAINTY_FORMULA = (f"t(1-a/2, n-p) * {stats.FSU_FACTOR:g} * CV * sqrt((n/n')(1+2/n)/m) * baseline_prediction; "
                       "n' = n(1-rho)/(1+rho), rho >= 0")  # what savings_interval computes, for the report


def savings_interval(fit: stats.FitStats, savings: Savings) -> Interval:
    """ASHRAE Guideline 14 Annex B interval of the avoided energy (verification.stats)."""
    half = {c: stats.savings_uncertainty(fit.cvrmse, fit.n, fit.p, savings.m, fit.rho, c, savings.baseline)
            for c in CONFIDENCES}
    fsu = {c: (half[c] / abs(savings.avoided) if savings.avoided else None) for c in CONFIDENCES}
    return Interval(savings.avoided, half, fsu)


def verdict(savings: Savings, interval: Interval, unit: str) -> str:
    """One sentence: verified, not significant, or consumption increased."""
    if interval.significant:
        return f"savings verified: {savings.avoided:,.0f} {unit} ({savings.fraction:.1%}), 90 % interval above zero"
    if interval.low(0.90) <= 0 <= interval.high(0.90):
        return "no significant savings: the 90 % interval includes zero"
    return "consumption increased: the 90 % interval is below zero"


def ashrae14(fit: stats.FitStats, cvrmse_max: float, nmbe_max: float) -> tuple[bool, list[Finding]]:
    """Whether the fit meets the CV(RMSE) and |NMBE| limits (fractions); a finding if not."""
    meets = bool(fit.cvrmse <= cvrmse_max and abs(fit.nmbe) <= nmbe_max)
    if meets:
        return True, []
    return False, [Finding("ashrae14_not_met", f"the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) "
                                               f"{fit.cvrmse:.1%} <= {cvrmse_max:.0%}, |NMBE| {abs(fit.nmbe):.2%} "
                                               f"<= {nmbe_max:.0%})",
                           {"cvrmse": fit.cvrmse, "cvrmse_max": cvrmse_max, "nmbe": fit.nmbe, "nmbe_max": nmbe_max})]


def extrapolation(baseline: Span, reporting: Span) -> list[Finding]:
    """A finding when reporting temperatures (°C) go beyond the baseline's range."""
    t_base = baseline.drivers["temp_c"].to_numpy(float)
    t_rep = reporting.drivers["temp_c"].to_numpy(float)
    if t_rep.min() >= t_base.min() - EXTRAPOLATION_MARGIN_C and t_rep.max() <= t_base.max() + EXTRAPOLATION_MARGIN_C:
        return []
    values = {"reporting_min_c": float(t_rep.min()), "reporting_max_c": float(t_rep.max()),
              "baseline_min_c": float(t_base.min()), "baseline_max_c": float(t_base.max())}
    return [Finding("extrapolation", f"reporting temperatures ({t_rep.min():.1f}..{t_rep.max():.1f} °C) go beyond "
                                     f"the baseline's ({t_base.min():.1f}..{t_base.max():.1f} °C): the model "
                                     f"extrapolates", values)]


@dataclass(frozen=True)
class Normalized:
    """Normalized savings (energy units) and the models that give them."""

    savings: float
    reporting_model: BaselineModel
    table: pd.DataFrame  # month, baseline_model, reporting_model, normalized_savings


def normalized_savings(model: BaselineModel, reporting: Span, non_routine_q: np.ndarray, normal_days: pd.DataFrame,
                       granularity: str, criterion: str) -> tuple[Normalized | None, list[Finding]]:
    """The baseline model and a model fitted the same way on the reporting period
    (actual minus non-routine adjustments) both predict the normal year (`normal_days`:
    daily drivers); normalized savings = the difference. None with a finding when the
    reporting period cannot be modelled."""
    y = reporting.periods["actual"].to_numpy(float) - non_routine_q
    if np.isfinite(np.where(usable(reporting, granularity), y, np.nan)).sum() < min_fit_points(granularity):
        return None, [Finding("normalized_too_little_data", "normalized savings not computed: too little reporting "
                                                            "data to fit a reporting-period model (the same minimum "
                                                            "as for the baseline)")]
    try:
        reporting_model = bm.fit(reporting, granularity, criterion, y)
    except ValueError as exc:
        return None, [Finding("normalized_no_model", f"normalized savings not computed: {exc}")]
    normal = meter_span(empty_consumption(), normal_days, 0, "month" if granularity == "bill" else granularity)
    nb = bm.predict(model, normal)["predicted"].to_numpy(float)
    nr = bm.predict(reporting_model, normal)["predicted"].to_numpy(float)
    month = pd.DatetimeIndex(normal.periods["date"]).to_period("M").to_timestamp()
    table = (pd.DataFrame({"month": month, "baseline_model": nb, "reporting_model": nr})
             .groupby("month", as_index=False).sum())
    table["normalized_savings"] = table["baseline_model"] - table["reporting_model"]
    return Normalized(float(nb.sum() - nr.sum()), reporting_model, table), []
