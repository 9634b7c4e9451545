"""Savings arithmetic on frames (pure): adjustments, avoided energy, its uncertainty, verdict, normalized savings.

Energy figures are in the project's unit (the meters' index unit, e.g. kWh); formulas
in domain.md sections 7 and 8, verification.stats and docs/mv.md "Uncertainty".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from verification import model as bm
from verification import stats
from verification.baseline import BaselineModel
from verification.findings import Finding
from verification.frames import Span, empty_consumption, meter_span
from verification.project import Adjustment
from verification.sufficiency import model_data_failures

CONFIDENCES = (0.68, 0.90)
SIGNIFICANCE_CONFIDENCE = 0.90
MAX_FSU_68 = 0.50  # G14: savings uncertainty below 50 % of the savings at 68 % confidence
EXTRAPOLATION_MARGIN_C = 1.0  # reporting temperatures this far beyond the baseline's are flagged
GRANULARITY_DATA = {"day": "daily", "hour": "hourly", "month": "monthly", "bill": "billing"}


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
    """Uncertainty of a savings figure: half-width (energy units) and fractional savings
    uncertainty (half-width / |estimate|; None when the estimate is 0) per confidence level."""

    estimate: float
    half: dict[float, float]
    fsu: dict[float, float | None]
    dof: float

    def low(self, confidence: float) -> float:
        return self.estimate - self.half[confidence]

    def high(self, confidence: float) -> float:
        return self.estimate + self.half[confidence]

    @property
    def significant(self) -> bool:
        """The interval at SIGNIFICANCE_CONFIDENCE lies above zero."""
        return bool(self.low(SIGNIFICANCE_CONFIDENCE) > 0)

    @property
    def fsu68_below_limit(self) -> bool:
        return bool(self.fsu[0.68] is not None and self.fsu[0.68] < MAX_FSU_68)


UNCERTAINTY_FORMULA = (
    "half-width = t(1-a/2, n'-p) * RMSE * sqrt(w' R_b w + 1' R_r 1); w = J_b (J_b'J_b)^-1 sum(j_r) over the "
    "reporting periods with data, J = the model's Jacobian (design columns and, per balance point, slope x days "
    "beyond it); R_ij = rho^|t_i - t_j| (AR(1), periods apart); rho = AR(1) coefficient of the baseline errors "
    "from the lag-1 autocorrelation of its residuals over adjacent periods, bias-corrected by the method of "
    "moments; n' = n(1-rho)/(1+rho); RMSE = sqrt(SSE/(n-p))")  # savings_interval, for the report


def _interval(estimate: float, variance: float, dof: float) -> Interval:
    """Student-t interval of `estimate` with standard error sqrt(variance) (energy units)."""
    sd = float(np.sqrt(max(variance, 0.0)))
    half = {c: stats.t_value(c, dof) * sd for c in CONFIDENCES}
    fsu = {c: (half[c] / abs(estimate) if estimate else None) for c in CONFIDENCES}
    return Interval(estimate, half, fsu, dof)


def _dof(model: BaselineModel) -> float:
    """Degrees of freedom of the interval: n' - p (as eemeter 4's daily model does)."""
    return model.n_effective - model.p


def savings_interval(model: BaselineModel, reporting: Span, avoided: pd.DataFrame) -> Interval:
    """Interval of the avoided energy (the sum over the reporting periods with data of
    adjusted baseline - actual) under AR(1) errors of the rho the baseline shows:
    the model's error on the sum of its reporting predictions (w' R_b w: the sampling
    error of its parameters, balance points included through the Jacobian, carried to
    the reporting conditions) plus the sum of the reporting periods' own errors
    (1' R_r 1), times RMSE^2. See UNCERTAINTY_FORMULA and docs/mv.md "Uncertainty"."""
    has = np.isfinite(avoided["actual"].to_numpy(float))
    a = model.jacobian(reporting.drivers, reporting.layout)[has].sum(axis=0)
    rho = model.rho_ar1
    noise = stats.ar1_quadratic(np.ones(int(has.sum())), rho, reporting.positions()[has])
    variance = model.rmse**2 * (stats.prediction_sum_variance(model.J, model.positions, a, rho) + noise)
    return _interval(float(np.nansum(avoided["avoided"].to_numpy(float))), variance, _dof(model))


def normalized_interval(baseline_model: BaselineModel, reporting_model: BaselineModel, normal: Span,
                        estimate: float) -> Interval:
    """Interval of normalized savings (the difference of two models' sums over the normal
    year): the two models' coefficient errors carried to the normal year, independent
    (different periods), each under AR(1) errors of its own rho; no noise term, since
    both terms are model predictions (as eemeter's modeled savings combine the
    baseline's and the reporting model's error bands in quadrature)."""
    variance = 0.0
    for m in (baseline_model, reporting_model):
        a = m.jacobian(normal.drivers, normal.layout).sum(axis=0)
        variance += m.rmse**2 * stats.prediction_sum_variance(m.J, m.positions, a, m.rho_ar1)
    return _interval(estimate, variance, min(_dof(baseline_model), _dof(reporting_model)))


PAYMENT_CONDITIONS = ("ashrae14_not_met", "fsu_above_limit")  # finding codes that bar a payment on measured savings


@dataclass(frozen=True)
class Verdict:
    """Whether the savings are verified (`findings` empty), the sentence that says so,
    and the findings that say why not."""

    text: str
    findings: list[Finding]

    @property
    def verified(self) -> bool:
        return not self.findings

    @property
    def unpayable_because(self) -> str:
        """Why no payment may rest on the savings: the baseline fails ASHRAE 14 or the
        FSU at 68 % is not below 50 % ('' when neither; '; '-joined)."""
        return "; ".join(f.message for f in self.findings if f.code in PAYMENT_CONDITIONS)


def verdict(savings: Savings, interval: Interval, ashrae_findings: list[Finding], unit: str) -> Verdict:
    """Savings are verified when the baseline meets ASHRAE Guideline 14 for its
    granularity (`ashrae_findings` empty), their fractional uncertainty at 68 % is below
    50 % (ASHRAE Guideline 14's whole-building requirement; domain.md section 8) and the
    90 % interval lies above zero; otherwise the verdict says "not verified" and each
    reason is a finding."""
    reasons = list(ashrae_findings)
    fsu68 = interval.fsu[0.68]
    if not interval.fsu68_below_limit:
        text = (f"fractional savings uncertainty at 68 % is {fsu68:.0%} of the savings" if fsu68 is not None
                else "the savings are zero")
        reasons.append(Finding("fsu_above_limit", f"{text} (ASHRAE Guideline 14: below {MAX_FSU_68:.0%})",
                               {"fsu68": fsu68, "fsu68_max": MAX_FSU_68}))
    bounds = {"low90": interval.low(0.90), "high90": interval.high(0.90)}
    if interval.low(SIGNIFICANCE_CONFIDENCE) <= 0 <= interval.high(SIGNIFICANCE_CONFIDENCE):
        reasons.append(Finding("savings_not_significant", "no significant savings: the 90 % interval includes zero",
                               bounds))
    elif not interval.significant:
        reasons.append(Finding("consumption_increased", "consumption increased: the 90 % interval is below zero",
                               bounds))
    if reasons:
        return Verdict("not verified: " + "; ".join(f.message for f in reasons), reasons)
    return Verdict(f"savings verified: {savings.avoided:,.0f} {unit} ({savings.fraction:.1%}), 90 % interval above "
                   f"zero, uncertainty at 68 % {fsu68:.0%} of the savings", [])


def ashrae14(fit: stats.FitStats, cvrmse_max: float, nmbe_max: float, granularity: str) -> tuple[bool, list[Finding]]:
    """Whether the fit meets the CV(RMSE) and |NMBE| limits (fractions) of its
    granularity (verification.project.ASHRAE14_LIMITS); a finding if not."""
    meets = bool(fit.cvrmse <= cvrmse_max and abs(fit.nmbe) <= nmbe_max)
    if meets:
        return True, []
    return False, [Finding("ashrae14_not_met", f"the baseline model does not meet ASHRAE Guideline 14 for "
                                               f"{GRANULARITY_DATA[granularity]} data: CV(RMSE) {fit.cvrmse:.1%} (at "
                                               f"most {cvrmse_max:.0%}), |NMBE| {abs(fit.nmbe):.2%} (at most "
                                               f"{nmbe_max:.0%})",
                           {"cvrmse": fit.cvrmse, "cvrmse_max": cvrmse_max, "nmbe": fit.nmbe, "nmbe_max": nmbe_max,
                            "granularity": granularity})]


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
    """Normalized savings (energy units), their interval and the models that give them."""

    savings: float
    interval: Interval
    reporting_model: BaselineModel
    table: pd.DataFrame  # month, baseline_model, reporting_model, normalized_savings


def normalized_savings(model: BaselineModel, reporting: Span, non_routine_q: np.ndarray, normal_days: pd.DataFrame,
                       granularity: str, criterion: str) -> tuple[Normalized | None, list[Finding]]:
    """The baseline model and a model fitted the same way on the reporting period
    (actual minus non-routine adjustments) both predict the normal year (`normal_days`:
    daily drivers); normalized savings = the difference, with its interval
    (normalized_interval). None with a finding when the reporting period does not meet
    the baseline's data-sufficiency rules (verification.sufficiency.model_data_failures)
    or cannot be modelled."""
    y = reporting.periods["actual"].to_numpy(float) - non_routine_q
    short = model_data_failures(reporting, granularity, "reporting")
    if short:
        return None, [Finding("normalized_too_little_data", f"normalized savings not computed: a reporting-period "
                                                            f"model needs the baseline's data: {short[0].message}",
                              dict(short[0].values))]
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
    estimate = float(nb.sum() - nr.sum())
    return Normalized(estimate, normalized_interval(model, reporting_model, normal, estimate), reporting_model,
                      table), []
