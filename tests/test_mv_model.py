"""The pure model layer of savings verification on frames (no store): phase frames, sufficiency findings,
fit/predict, savings arithmetic, contract settlement; and that `verify` only adds the store reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
)
from verification.project import Adjustment, Contract
from verification.result import Sources, evaluate
from verification.sufficiency import phase_findings, resolution_findings, silent_meters

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
    days = _days("2024-01-01", "2024-06-30")
    dates = pd.DatetimeIndex(days["date"])
    cons = _cons(dates[dates >= pd.Timestamp("2024-04-05")], np.full(87, 100.0))
    failures, warnings = phase_findings(meter_span(cons, days, 1, "day"), "baseline", "day", cons["period"].max())
    assert [(f.code, f.field) for f in failures] == [("baseline_short", "baseline.start")]
    assert failures[0].values == {"periods_with_data": 87, "min_periods": 90, "baseline_days": 182}
    # 92 measured days pass the minimum; the coverage (92 of 182) does not
    cons = _cons(dates[dates >= pd.Timestamp("2024-03-31")], np.full(92, 100.0))
    failures, warnings = phase_findings(meter_span(cons, days, 1, "day"), "baseline", "day", cons["period"].max())
    assert [f.code for f in failures] == ["coverage"] and failures[0].values["coverage"] == pytest.approx(92 / 182)
    assert [f.code for f in warnings] == ["baseline_under_a_year"] and warnings[0].values["baseline_days"] == 182
    cons = _cons(dates[5:], np.full(len(dates) - 5, 100.0))
    failures, warnings = phase_findings(meter_span(cons, days, 1, "day"), "reporting", "day", cons["period"].max())
    assert failures == [] and [(f.code, f.values["periods"] - f.values["periods_with_data"]) for f in warnings] == [
        ("gaps", 5)]


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


def test_interval_is_the_g14_formula():
    fit = stats.FitStats(n=12, p=2, sse=0, r2=0, adj_r2=0, cvrmse=0.10, nmbe=0, aic=0, bic=0, rho=0.0, mean_y=1)
    totals = savings.Savings(m=12, baseline=1000.0, adjusted_baseline=1000.0, actual=900.0, avoided=100.0,
                             non_routine=0.0)
    interval = savings.savings_interval(fit, totals)
    assert interval.half[0.90] == pytest.approx(71.21, abs=0.01)  # test_mv_stats: t(0.95, 10) 1.812 x 1.26 x ...
    assert interval.low(0.90) == pytest.approx(100 - 71.21, abs=0.01) and interval.significant
    assert interval.fsu[0.68] == pytest.approx(interval.half[0.68] / 100) and interval.fsu68_below_limit
    assert savings.verdict(totals, interval, "kWh") == "savings verified: 100 kWh (10.0%), 90 % interval above zero"
    weak = savings.Savings(12, 1000.0, 1000.0, 950.0, 50.0, 0.0)
    assert not savings.savings_interval(fit, weak).significant
    assert savings.verdict(weak, savings.savings_interval(fit, weak), "kWh").startswith("no significant savings")


def test_fit_and_predict_on_frames_recover_the_savings():
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=7)
    baseline, reporting = _case_spans(case)
    model = bm.fit(baseline, "day", "adj_r2")
    assert model.spec.kind == "hdd_cdd" and model.stats.n == 366
    pred = bm.predict(model, reporting)
    assert pred.columns.tolist() == ["date", "predicted", "temp_c", "hdd", "cdd", "working"]
    assert len(pred) == 365 and pred["working"].sum() == 261
    frame = savings.avoided_energy(pred, reporting.periods["actual"].to_numpy(float), np.zeros(365))
    totals = savings.savings_totals(frame)
    interval = savings.savings_interval(model.stats, totals)
    assert interval.low(0.90) <= case.true_savings_kwh <= interval.high(0.90)
    assert totals.fraction == pytest.approx(0.15, abs=0.01)


def test_ashrae_and_extrapolation_findings():
    fit = stats.FitStats(n=365, p=6, sse=0, r2=0, adj_r2=0, cvrmse=0.253, nmbe=0.01, aic=0, bic=0, rho=0, mean_y=1)
    meets, found = savings.ashrae14(fit, 0.25, 0.05)
    assert not meets and found[0].code == "ashrae14_not_met" and found[0].values["cvrmse"] == 0.253
    assert savings.ashrae14(fit, 0.26, 0.05) == (True, [])
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
