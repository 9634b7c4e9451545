"""The pure model layer of savings verification on frames (no store): phase frames, sufficiency findings,
fit/predict, savings arithmetic, contract settlement; and that `verify` only adds the store reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.optimize import brentq

from tests.test_mv_synthetic import make_case, samples_for, write_temps
from verification import InsufficientData, load_project, savings, stats, verify
from verification import model as bm
from verification.contract import annual_use, settle_contract
from verification.findings import Finding
from verification.frames import (
    bill_span,
    bills_frame,
    daily_drivers,
    empty_consumption,
    meter_span,
    sum_meters,
    usable,
)
from verification.project import Adjustment, Contract
from verification.result import Sources, evaluate
from verification.sufficiency import model_data_failures, phase_findings, resolution_findings, silent_meters

BASELINE = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
REPORTING = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def _days(start: str, end: str, temp_c: float | np.ndarray = 10.0) -> pd.DataFrame:
    dates = pd.date_range(start, end, freq="D")
    return daily_drivers(pd.DataFrame({"date": dates, "temp_c": temp_c}), None, dates[0].date(), dates[-1].date())


def _cons(dates: pd.DatetimeIndex, kwh: np.ndarray, n_meters: int = 1, share: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"period": dates.as_unit("us"), "quantity": kwh, "estimated_share": share,
                         "n_meters": n_meters})


def _case_spans(case, granularity: str = "day"):
    """Baseline and reporting spans straight from a synthetic case's daily use (one meter)."""
    cons = _cons(pd.DatetimeIndex(case.daily["date"]), case.daily["use_kwh"].to_numpy(float))
    spans = []
    for start, end in (BASELINE, REPORTING):
        days = daily_drivers(case.temps, None, start, end)
        spans.append(meter_span(cons, days, 1, granularity))
    return spans


def test_sum_meters_by_hand():
    t = pd.Timestamp("2024-03-01", tz="Asia/Shanghai")
    raw = pd.DataFrame({"meter_id": ["A", "B", "A"], "period_start": [t, t, t + pd.Timedelta(days=1)],
                        "quantity": [30.0, 10.0, 5.0], "estimated_share": [0.0, 1.0, 0.5]})
    out = sum_meters(raw)
    assert out["period"].tolist() == [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-02")]
    assert out["quantity"].tolist() == [40.0, 5.0]
    assert out["estimated_share"].tolist() == pytest.approx([10 / 40, 0.5])  # weighted by quantity
    assert out["n_meters"].tolist() == [2, 1]
    assert sum_meters(raw.iloc[:0]).columns.tolist() == empty_consumption().columns.tolist()


def test_meter_span_counts_a_period_only_when_every_meter_has_data():
    days = _days("2024-01-30", "2024-02-02")
    cons = _cons(pd.date_range("2024-01-30", "2024-02-02"), np.array([10.0, 20.0, 30.0, 40.0]), n_meters=2)
    cons.loc[2, "n_meters"] = 1  # 1 February: one of two meters only
    span = meter_span(cons, days, 2, "day")
    assert span.periods["complete"].tolist() == [True, True, False, True]
    assert np.isnan(span.periods["actual"][2]) and span.periods["actual"][3] == 40.0
    month = meter_span(cons, days, 2, "month")
    assert month.periods["date"].tolist() == [pd.Timestamp("2024-01-30"), pd.Timestamp("2024-02-01")]
    assert month.periods["actual"][0] == 30.0 and np.isnan(month.periods["actual"][1])  # February incomplete
    assert month.periods["days"].tolist() == [2, 2]


def test_bill_span_covers_the_days_of_bills_wholly_inside():
    raw = pd.DataFrame({"energy": "electricity", "unit": "MWh", "quantity": [1.0, 2.0, 3.0],
                        "period_start": ["2024-01-05", "2024-02-05", "2024-03-05"],
                        "period_end": ["2024-02-04", "2024-03-04", "2024-04-04"]})
    bills, findings = bills_frame(raw, "electricity", "kWh", "HB-0001")
    assert findings == [] and bills["quantity"].tolist() == [1000.0, 2000.0, 3000.0]
    span = bill_span(bills, _days("2024-01-01", "2024-03-31"))  # the third bill ends after the phase
    assert span.periods["actual"].tolist() == [1000.0, 2000.0]
    assert span.periods["days"].tolist() == [31, 29]
    assert len(span.missing_days) == 4 + 27  # 1-4 January, 5-31 March
    _, findings = bills_frame(raw.assign(period_end=["2024-02-06", "2024-03-04", "2024-04-04"]), "electricity",
                              "kWh", "HB-0001")
    assert [(f.code, f.field, f.values["first"]) for f in findings] == [("bill_overlap", "granularity",
                                                                         "2024-01-05..2024-02-06")]
    _, findings = bills_frame(raw.assign(unit="kJ"), "electricity", "kWh", "HB-0001")
    assert findings[0].code == "bill_unit" and findings[0].values["units"] == ["kJ"]


def test_sufficiency_findings_are_structured():
    days = _days("2024-10-03", "2024-12-31")  # 90 days: accepted before issue 14, not a year
    cons = _cons(pd.DatetimeIndex(days["date"]), np.full(90, 100.0))
    failures, _ = phase_findings(meter_span(cons, days, 1, "day"), "baseline", "day", cons["period"].max())
    assert [(f.code, f.field) for f in failures] == [("baseline_short", "baseline.start")]
    assert failures[0].values == {"days": 90, "min_days": 365, "periods_with_data": 90}
    assert failures[0].message.startswith("baseline spans 90 days; daily models need at least 365 days")
    days = _days("2024-01-01", "2024-12-30")  # 365 days
    failures, _ = phase_findings(meter_span(cons, days, 1, "day"), "baseline", "day", cons["period"].max())
    assert failures[0].code == "coverage"  # a year long, but only 90 days measured
    dates = pd.DatetimeIndex(days["date"])
    # CalTRACK 2.0 2.2.1.2: at most 36 of 365 days missing (coverage 90.1 %); 37 missing (89.9 %) refused
    for missing, refused in ((36, False), (37, True)):
        cons = _cons(dates[missing:], np.full(365 - missing, 100.0))
        failures, warnings = phase_findings(meter_span(cons, days, 1, "day"), "baseline", "day", cons["period"].max())
        assert [f.code for f in failures] == (["coverage"] if refused else [])
        if not refused:
            assert [(f.code, f.values["periods_with_data"]) for f in warnings] == [("gaps", 329)]
    hours = meter_span(_cons(dates, np.full(365, 100.0)), _days("2024-01-01", "2024-12-29"), 1, "hour")
    assert phase_findings(hours, "baseline", "hour", None)[0][0].values["min_days"] == 365
    cons = _cons(dates[5:], np.full(len(dates) - 5, 100.0))
    failures, warnings = phase_findings(meter_span(cons, days, 1, "day"), "reporting", "day", cons["period"].max())
    assert failures == [] and [(f.code, f.values["periods"] - f.values["periods_with_data"]) for f in warnings] == [
        ("gaps", 5)]


def test_model_data_failures_of_a_reporting_period():
    dates = pd.date_range("2025-01-01", "2025-09-30")
    short = meter_span(_cons(dates, np.full(len(dates), 1.0)), _days("2025-01-01", "2025-09-30"), 1, "day")
    assert [f.code for f in model_data_failures(short, "day", "reporting")] == ["baseline_short"]
    year = _days("2025-01-01", "2025-12-31")
    dates = pd.DatetimeIndex(year["date"])
    assert model_data_failures(meter_span(_cons(dates, np.ones(365)), year, 1, "day"), "day", "reporting") == []
    assert model_data_failures(meter_span(_cons(dates, np.ones(365)), year, 1, "month"), "month", "reporting") == []
    gappy = meter_span(_cons(dates[40:], np.ones(325)), year, 1, "day")
    assert [f.code for f in model_data_failures(gappy, "day", "reporting")] == ["coverage"]


def test_resolution_and_silent_meter_findings():
    t = pd.date_range("2024-01-01", periods=12, freq="2h", tz="UTC")
    samples = pd.DataFrame({"meter_id": ["A"] * 12 + ["B"] * 12,
                            "time": t.append(pd.date_range("2024-01-01", periods=12, freq="h", tz="UTC"))})
    found = resolution_findings(samples, "hour")
    assert [(f.code, f.values["meter_id"], f.values["reading_interval_s"]) for f in found] == [
        ("meter_too_coarse", "A", 7200.0)]
    assert resolution_findings(samples, "day") == [] and resolution_findings(samples, "month") == []
    found = silent_meters(["A", "B", "C"], {"B"}, BASELINE[0], REPORTING[1], "meters")
    assert found[0].values["meter_ids"] == ["A", "C"] and found[0].field == "meters"
    assert silent_meters(["A"], set(), BASELINE[0], REPORTING[1], "meters") == []  # no data at all: the coverage says it


def test_non_routine_by_hand():
    days = _days("2025-01-01", "2025-02-28")
    span = meter_span(empty_consumption(), days, 0, "month")
    adjustments = [Adjustment(dt.date(2025, 1, 30), dt.date(2025, 2, 2), 10.0, "fair"),
                   Adjustment(dt.date(2025, 2, 1), dt.date(2025, 2, 28), -1.0, "closed wing")]
    assert savings.non_routine(adjustments, span).tolist() == [20.0, 20.0 - 28.0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1e5), st.just(float("nan"))), min_size=1, max_size=60), st.integers(0, 999))
def test_avoided_energy_totals(actual, seed):
    rng = np.random.default_rng(seed)
    actual = np.array(actual)
    pred = pd.DataFrame({"date": pd.date_range("2025-01-01", periods=len(actual)),
                         "predicted": rng.uniform(0, 1e5, len(actual))})
    nra = rng.uniform(-100, 100, len(actual))
    frame = savings.avoided_energy(pred, actual, nra)
    totals = savings.savings_totals(frame)
    has = np.isfinite(actual)
    assert totals.m == has.sum()
    assert totals.avoided == pytest.approx(totals.adjusted_baseline - totals.actual, abs=1e-6)
    assert totals.adjusted_baseline == pytest.approx(totals.baseline + totals.non_routine, abs=1e-6)
    assert frame["avoided_cumulative"].iloc[-1] == pytest.approx(totals.avoided, abs=1e-6)
    assert np.isnan(frame["avoided"].to_numpy()[~has]).all()


def _hand_model():
    """An intercept-only baseline on 8 days with the fifth missing: 99, 101, 103, 105, -, 100, 102, 104 kWh
    (mean 102, residuals -3, -1, 1, 3 | -2, 0, 2 as in test_mv_stats), every day a working day."""
    days = _days("2024-01-01", "2024-01-08", 10.0).assign(working=1.0)
    y = np.array([99.0, 101, 103, 105, np.nan, 100, 102, 104])
    cons = _cons(pd.DatetimeIndex(days["date"])[np.isfinite(y)], y[np.isfinite(y)])
    return bm.fit(meter_span(cons, days, 1, "day"), "day", "adj_r2")


def _dense_ar1(days: np.ndarray, rho: float) -> np.ndarray:
    return rho ** np.abs(days[:, None] - days[None, :]).astype(float)


def test_savings_interval_by_hand():
    """Avoided energy over 3 reporting days and its interval, recomputed with numpy and
    scipy from the definitions (dense AR(1) matrices), not with verification.stats."""
    model = _hand_model()
    assert model.spec.kind == "mean" and model.coefficients() == {"days": pytest.approx(102.0)}
    assert model.positions.tolist() == [0, 1, 2, 3, 5, 6, 7] and model.p == 1
    assert model.stats.rho == pytest.approx(5 / 28 * 6 / 5)  # adjacent days only (test_mv_stats)
    rdays = _days("2024-02-01", "2024-02-03", 10.0).assign(working=1.0)
    reporting = meter_span(_cons(pd.DatetimeIndex(rdays["date"]), np.array([90.0, 91, 95])), rdays, 1, "day")
    frame = savings.avoided_energy(bm.predict(model, reporting), reporting.periods["actual"].to_numpy(float),
                                   np.zeros(3))
    interval = savings.savings_interval(model, reporting, frame)
    assert interval.estimate == pytest.approx(3 * 102 - 276)  # 30 kWh

    # by hand: rho by the method of moments (the rho whose expected residual autocorrelation
    # tr(MDMR)/tr(MR) is the observed 5/28), n' = 7 (1 - rho) / (1 + rho), t at n' - 1
    e, days = np.array([-3.0, -1, 1, 3, -2, 0, 2]), np.array([0, 1, 2, 3, 5, 6, 7])
    np.testing.assert_allclose(np.array([99.0, 101, 103, 105, 100, 102, 104]) - model.fitted, e, atol=1e-9)
    M = np.eye(7) - np.ones((7, 7)) / 7
    D = np.zeros((7, 7))
    for i in (1, 2, 3, 5, 6):
        D[i, i - 1] = D[i - 1, i] = 0.5
    rho = brentq(lambda r: np.trace(M @ D @ M @ _dense_ar1(days, r)) / np.trace(M @ _dense_ar1(days, r)) - 5 / 28,
                 0.0, 0.99)
    assert model.rho_ar1 == pytest.approx(rho, abs=1e-7)
    n_eff = 7 * (1 - rho) / (1 + rho)
    assert interval.dof == pytest.approx(n_eff - 1)
    # Var = RMSE^2 [w' R_b w + 1' R_r 1], w = (3/7) 1 for an intercept-only model; RMSE^2 = 28 / 6
    var = 28 / 6 * ((3 / 7) ** 2 * _dense_ar1(days, rho).sum() + _dense_ar1(np.arange(3), rho).sum())
    for c, q in ((0.90, 0.95), (0.68, 0.84)):
        assert interval.half[c] == pytest.approx(sps.t.ppf(q, n_eff - 1) * np.sqrt(var), rel=1e-6)
        assert interval.fsu[c] == pytest.approx(interval.half[c] / 30)
    assert interval.low(0.90) == pytest.approx(30 - interval.half[0.90])


def test_normalized_interval_by_hand():
    """Two intercept-only models on a normal year of 10 days: no noise term, the two models'
    errors in quadrature, t at the smaller n' - p."""
    model = _hand_model()
    rdays = _days("2025-01-01", "2025-01-06", 10.0).assign(working=1.0)
    reporting = bm.fit(meter_span(_cons(pd.DatetimeIndex(rdays["date"]), np.array([90.0, 92, 91, 93, 90, 92])),
                                  rdays, 1, "day"), "day", "adj_r2")
    assert reporting.rho_ar1 == 0.0  # 90, 92, 91, 93, 90, 92 alternate: no positive autocorrelation
    normal = meter_span(empty_consumption(), _days("2023-01-01", "2023-01-10", 10.0).assign(working=1.0), 0, "day")
    interval = savings.normalized_interval(model, reporting, normal, 10 * (102 - 91.333333))
    b_days = np.array([0, 1, 2, 3, 5, 6, 7])
    var_b = 28 / 6 * (10 / 7) ** 2 * _dense_ar1(b_days, model.rho_ar1).sum()
    var_r = reporting.rmse**2 * (10 / 6) ** 2 * 6  # rho 0: the six days are independent
    assert reporting.rmse**2 == pytest.approx(((np.array([90, 92, 91, 93, 90, 92]) - 91.333333) ** 2).sum() / 5,
                                              rel=1e-6)
    dof = min(model.n_effective - 1, 6 - 1)
    assert interval.half[0.90] == pytest.approx(sps.t.ppf(0.95, dof) * np.sqrt(var_b + var_r), rel=1e-6)


def test_jacobian_takes_the_balance_points_as_parameters():
    case = make_case(BASELINE, REPORTING, effect=0.0, seed=7)
    baseline, _ = _case_spans(case)
    model = bm.fit(baseline, "day", "adj_r2")
    assert model.spec.kind == "hdd_cdd"
    J = model.jacobian(baseline.drivers, baseline.layout)
    assert J.shape == (366, len(model.columns) + 2) and np.linalg.matrix_rank(J) == model.p == 6
    # the balance-point columns are the derivatives of the prediction (central differences off the kinks)
    t = baseline.drivers["temp_c"].to_numpy()
    for col, field in ((-2, "heating_base_c"), (-1, "cooling_base_c")):
        base = getattr(model.spec, field)
        shifted = [dataclasses.replace(model, spec=dataclasses.replace(model.spec, **{field: base + h}))
                   for h in (-0.01, 0.01)]
        diff = (shifted[1].predict(baseline.drivers, baseline.layout)
                - shifted[0].predict(baseline.drivers, baseline.layout)) / 0.02
        away = np.abs(t - base) > 0.02
        np.testing.assert_allclose(J[away, col], diff[away], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.J, J[usable(baseline, "day")])


def test_verdict_and_payment_conditions():
    """Paid only on a baseline within the ASHRAE 14 limits of its granularity whose savings have
    a fractional uncertainty at 68 % below 50 %; otherwise "not verified", why, and payment 0."""
    totals = savings.Savings(m=365, baseline=1000.0, adjusted_baseline=1000.0, actual=900.0, avoided=100.0,
                             non_routine=0.0)
    good = savings.Interval(100.0, {0.68: 20.0, 0.90: 33.0}, {0.68: 0.2, 0.90: 0.33}, 100.0)
    v = savings.verdict(totals, good, [], "kWh")
    assert v.verified and v.unpayable_because == "" and v.findings == []
    assert v.text == "savings verified: 100 kWh (10.0%), 90 % interval above zero, uncertainty at 68 % 20% of the savings"
    # a daily baseline at CV(RMSE) 25.3 %, above the 25 % limit
    fit = stats.FitStats(n=365, p=6, sse=0, r2=0, adj_r2=0, cvrmse=0.253, nmbe=0.0, aic=0, bic=0, rho=0, mean_y=1)
    meets, ashrae = savings.ashrae14(fit, 0.25, 0.05, "day")
    assert not meets
    v = savings.verdict(totals, good, ashrae, "kWh")
    assert not v.verified and [f.code for f in v.findings] == ["ashrae14_not_met"]
    assert v.text == ("not verified: the baseline model does not meet ASHRAE Guideline 14 for daily data: CV(RMSE) "
                      "25.3% (at most 25%), |NMBE| 0.00% (at most 5%)")
    shared = Contract(type="shared_savings", tariff_cny_per_unit=1.0, contractor_share=0.5)
    items, pay, _ = settle_contract(shared, np.array([60.0, 40.0]), good.low(0.90), 900.0, 365, 0.0, None,
                                    v.unpayable_because)
    assert items["payment_cny"] == 0.0 and pay.tolist() == [0.0, 0.0]
    assert items["payment_basis"].startswith("no payment: savings not verified (the baseline model does not meet")
    items, _, _ = settle_contract(shared, np.array([60.0, 40.0]), good.low(0.90), 900.0, 365, 0.0, None, "")
    assert items["payment_cny"] == 50.0
    # FSU at 68 % of 50 % or more: not verified, not paid, even without the significance rule
    wide = savings.Interval(100.0, {0.68: 50.0, 0.90: 80.0}, {0.68: 0.5, 0.90: 0.8}, 100.0)
    v = savings.verdict(totals, wide, [], "kWh")
    assert [f.code for f in v.findings] == ["fsu_above_limit"] and not v.verified
    assert v.text == "not verified: fractional savings uncertainty at 68 % is 50% of the savings (ASHRAE Guideline 14: below 50%)"
    lax = Contract(type="shared_savings", tariff_cny_per_unit=1.0, contractor_share=0.5, require_significance=False)
    assert settle_contract(lax, np.array([100.0]), 20.0, 900.0, 365, 0.0, None, v.unpayable_because)[0][
        "payment_cny"] == 0.0
    guaranteed = Contract(type="guaranteed_savings", tariff_cny_per_unit=1.0, guaranteed_quantity=50.0, fee_cny=10.0)
    assert settle_contract(guaranteed, np.array([100.0]), 20.0, 900.0, 365, 0.0, None, v.unpayable_because)[0][
        "payment_cny"] == 0.0
    trustee = Contract(type="energy_cost_trusteeship", tariff_cny_per_unit=1.0, baseline_quantity=365.0)
    assert settle_contract(trustee, np.array([100.0]), 20.0, 900.0, 365, 0.0, None, v.unpayable_because)[0][
        "payment_cny"] == pytest.approx(365.0)  # the fee does not rest on measured savings
    # significance: a verified-looking FSU but an interval that includes zero
    zero = savings.Interval(10.0, {0.68: 4.0, 0.90: 12.0}, {0.68: 0.4, 0.90: 1.2}, 100.0)
    v = savings.verdict(savings.Savings(365, 1000.0, 1000.0, 990.0, 10.0, 0.0), zero, [], "kWh")
    assert [f.code for f in v.findings] == ["savings_not_significant"] and v.unpayable_because == ""
    assert v.text == "not verified: no significant savings: the 90 % interval includes zero"


def test_ashrae_and_extrapolation_findings():
    fit = stats.FitStats(n=365, p=6, sse=0, r2=0, adj_r2=0, cvrmse=0.253, nmbe=0.01, aic=0, bic=0, rho=0, mean_y=1)
    meets, found = savings.ashrae14(fit, 0.25, 0.05, "day")
    assert not meets and found[0].code == "ashrae14_not_met" and found[0].values["cvrmse"] == 0.253
    assert savings.ashrae14(fit, 0.26, 0.05, "day") == (True, [])
    base = meter_span(empty_consumption(), _days("2024-01-01", "2024-01-10", np.linspace(0, 20, 10)), 0, "day")
    rep = meter_span(empty_consumption(), _days("2025-01-01", "2025-01-10", np.linspace(-2, 20, 10)), 0, "day")
    found = savings.extrapolation(base, rep)
    assert found[0].code == "extrapolation" and found[0].values["reporting_min_c"] == -2.0
    rep = meter_span(empty_consumption(), _days("2025-01-01", "2025-01-10", np.linspace(-1, 21, 10)), 0, "day")
    assert savings.extrapolation(base, rep) == []  # within the 1 K margin


def test_settle_contract_on_periods_without_data():
    shared = Contract(type="shared_savings", tariff_cny_per_unit=1.0, contractor_share=0.5)
    items, pay, found = settle_contract(shared, np.array([10.0, np.nan, 30.0]), 1.0, 500.0, 3, 0.0, None)
    assert items["payment_cny"] == 20.0 and found == []
    assert pay[0] == 5.0 and np.isnan(pay[1]) and pay[2] == 15.0
    trustee = Contract(type="energy_cost_trusteeship", tariff_cny_per_unit=1.0)
    items, _, found = settle_contract(trustee, np.array([1.0]), 0.0, 90.0, 73, 0.0, {2022: 100.0, 2023: 150.0})
    assert items["trusteeship_rule"].startswith("neither rule") and found[0].code == "trusteeship_baseline_not_agreed"
    assert items["payment_cny"] == pytest.approx(125 * 73 / 365)
    with pytest.raises(ValueError):
        settle_contract(trustee, np.array([1.0]), 0.0, 90.0, 73, 0.0, None)


def test_annual_use_scales_complete_years():
    dates = pd.date_range("2022-01-01", "2024-12-31")
    cons = _cons(dates, np.full(len(dates), 2.0))
    cons = cons[~cons["period"].between("2023-03-01", "2023-03-20")]  # 2023: 345 of 365 days, >= 90 %
    cons.loc[cons["period"].dt.year == 2024, "n_meters"] = np.where(
        cons.loc[cons["period"].dt.year == 2024, "period"].dt.month == 5, 0, 1)  # a meter missing in May 2024
    assert annual_use(cons, 2022, 2024, 1) == {2022: 730.0, 2023: pytest.approx(730.0)}


def test_verify_adds_only_the_store_reads(tmp_path, embedded_store):
    """The thin layer on a store gives the model layer's result on the same data as frames."""
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=11)
    embedded_store.write_samples(samples_for("M1", case.daily))
    write_temps(tmp_path / "temps.csv", case.temps)
    path = tmp_path / "p.yaml"
    path.write_text("id: p\nmeters: [M1]\nbaseline: {start: 2024-01-01, end: 2024-12-31}\n"
                    "reporting: {start: 2025-01-01, end: 2025-12-31}\ntemperature: temps.csv\n", encoding="utf-8")
    project = load_project(path)
    via_store = verify(project, embedded_store)
    baseline, reporting = _case_spans(case)
    model = bm.fit(baseline, "day", project.criterion)
    on_frames = evaluate(project, baseline, reporting, model, [], Sources("kWh", ["M1"], "", "Asia/Shanghai"))
    assert on_frames.summary["model"] == via_store.summary["model"]
    for key in ("n", "avoided", "avoided_low90", "avoided_high90", "cvrmse", "rho"):
        assert on_frames.summary[key] == pytest.approx(via_store.summary[key], rel=1e-9), key
    assert [f.code for f in on_frames.findings] == [f.code for f in via_store.findings]
    assert via_store.warnings == [f.message for f in via_store.findings]
    assert via_store.summary["warnings"] == "; ".join(via_store.warnings)


def test_insufficient_data_is_its_own_error(tmp_path, embedded_store):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=3)
    daily = case.daily[case.daily["date"] >= pd.Timestamp("2024-05-01")].reset_index(drop=True)
    embedded_store.write_samples(samples_for("M1", daily))
    write_temps(tmp_path / "temps.csv", case.temps)
    path = Path(tmp_path / "p.yaml")
    path.write_text("id: p\nmeters: [M1]\ngranularity: month\nbaseline: {start: 2024-01-01, end: 2024-12-31}\n"
                    "reporting: {start: 2025-01-01, end: 2025-12-31}\ntemperature: temps.csv\n", encoding="utf-8")
    with pytest.raises(InsufficientData) as exc:
        verify(load_project(path), embedded_store)
    assert [(p.line, p.field) for p in exc.value.problems] == [(4, "baseline.start")]
    assert [(f.code, f.values["periods_with_data"]) for f in exc.value.findings] == [("baseline_short", 8)]
    assert isinstance(exc.value.findings[0], Finding)
