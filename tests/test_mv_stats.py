"""Hand-checked statistics of savings verification, and properties of the baseline fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verification import stats
from verification.baseline import COOLING_GRID_C, HEATING_GRID_C, Layout, ModelSpec, design, fit_baseline


def test_cvrmse_by_hand():
    # residuals -1, 0, 1, 0: SSE = 2, n - p = 2, RMSE = 1, mean(y) = 13
    assert stats.cvrmse(np.array([10, 12, 14, 16.0]), np.array([11, 12, 13, 16.0]), p=2) == pytest.approx(1 / 13)


def test_nmbe_by_hand():
    # residuals 1, 1, 0, 1: sum 3, (n - p) * mean = 2 * 13
    assert stats.nmbe(np.array([10, 12, 14, 16.0]), np.array([9, 11, 14, 15.0]), p=2) == pytest.approx(3 / 26)


def test_degree_days_by_hand():
    t = np.array([10.0, 15.0, 18.0, 25.0])
    assert stats.heating_degree_days(t, 18.0).tolist() == [8.0, 3.0, 0.0, 0.0]
    assert stats.cooling_degree_days(t, 18.0).tolist() == [0.0, 0.0, 0.0, 7.0]
    grid = stats.heating_degree_days(t, np.array([12.0, 18.0]))
    assert grid.shape == (4, 2)
    assert grid[:, 0].tolist() == [2.0, 0.0, 0.0, 0.0]


@given(st.lists(st.floats(-40, 45), min_size=1, max_size=50), st.floats(0, 30))
def test_degree_days_identity(temps, base):
    t = np.array(temps)
    hdd, cdd = stats.heating_degree_days(t, base), stats.cooling_degree_days(t, base)
    assert (hdd >= 0).all() and (cdd >= 0).all()
    assert np.allclose(hdd - cdd, base - t)
    assert ((hdd == 0) | (cdd == 0)).all()


def test_lag1_autocorrelation_by_hand():
    assert stats.lag1_autocorrelation(np.array([1.0, -1, 1, -1])) == pytest.approx(-3 / 4)
    assert stats.lag1_autocorrelation(np.array([1.0, 2, 3])) == pytest.approx(8 / 14)


def test_effective_n_by_hand():
    assert stats.effective_n(100, 0.5) == pytest.approx(100 * 0.5 / 1.5)
    assert stats.effective_n(100, -0.3) == 100  # negative rho never narrows the interval


def test_savings_uncertainty_by_hand():
    # G14 Annex B: t(0.95, 10) = 1.812 (table); 1.812 * 1.26 * 0.10 * sqrt((12/12)(1 + 2/12)/12) * 1000
    expected = 1.812 * 1.26 * 0.10 * math.sqrt((1 + 2 / 12) / 12) * 1000
    got = stats.savings_uncertainty(cv=0.10, n=12, p=2, m=12, rho=0.0, confidence=0.90, baseline_total=1000)
    assert got == pytest.approx(expected, abs=0.05)
    assert got == pytest.approx(71.21, abs=0.01)
    # rho = 0.5: n' = 4, so n/n' = 3 widens the interval by sqrt(3)
    wide = stats.savings_uncertainty(cv=0.10, n=12, p=2, m=12, rho=0.5, confidence=0.90, baseline_total=1000)
    assert wide == pytest.approx(got * math.sqrt(3))
    # fractional form: divided by the savings fraction F = 0.2
    fsu = stats.fractional_savings_uncertainty(cv=0.10, n=12, p=2, m=12, rho=0.0, confidence=0.90, savings_fraction=0.2)
    assert fsu == pytest.approx(got / 1000 / 0.2)
    # 68 %: t(0.84, 10) = 1.046
    assert stats.t_value(0.68, 10) == pytest.approx(1.046, abs=1e-3)


def test_fit_stats_by_hand():
    y = np.array([1.0, 2, 3, 4])
    yhat = np.array([1.5, 1.5, 3.5, 3.5])
    fs = stats.fit_stats(y, yhat, p=2)
    # SSE = 4 * 0.25 = 1; SST = 5
    assert fs.r2 == pytest.approx(0.8)
    assert fs.adj_r2 == pytest.approx(1 - 0.2 * 3 / 2)
    assert fs.aic == pytest.approx(4 * math.log(1 / 4) + 4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=3), st.integers(10, 60))
def test_ols_recovers_exact_coefficients(coef, n):
    rng = np.random.default_rng(n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(0, 10, n)])
    assert np.allclose(stats.ols(X, X @ np.array(coef)), coef, atol=1e-8)


def _drivers(n_days: int = 365, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_days, freq="D")
    doy = np.arange(n_days)
    temp = 12 - 15 * np.cos(2 * np.pi * doy / 365) + rng.normal(0, 2, n_days)
    return pd.DataFrame({"date": dates, "temp_c": temp, "working": (dates.day_of_week < 5).astype(float)})


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(list(HEATING_GRID_C[10:25])), st.sampled_from(list(COOLING_GRID_C[20:30])),
       st.floats(20, 200), st.floats(20, 200), st.floats(0, 500))
def test_fit_finds_true_balance_points_without_noise(tb, tc, sh, sc, work):
    tc = max(tc, tb + 2)
    d = _drivers()
    t = d["temp_c"].to_numpy()
    y = 1000 + sh * np.maximum(tb - t, 0) + sc * np.maximum(t - tc, 0) + work * d["working"].to_numpy()
    layout = Layout("day", np.arange(len(d)), len(d))
    model = fit_baseline(y, d, layout)
    assert model.spec.kind == "hdd_cdd"
    assert model.spec.heating_base_c == pytest.approx(tb)
    assert model.spec.cooling_base_c == pytest.approx(tc)
    coef = model.coefficients()
    assert coef["hdd"] == pytest.approx(sh, rel=1e-6)
    assert coef["cdd"] == pytest.approx(sc, rel=1e-6)
    assert model.stats.cvrmse == pytest.approx(0, abs=1e-6)


def test_monthly_layout_sums_days_and_fit_counts_balance_points():
    d = _drivers(366)
    month = d["date"].dt.to_period("M")
    codes, uniques = pd.factorize(month, sort=True)
    layout = Layout("month", codes.astype(np.int64), len(uniques))
    spec = ModelSpec("hdd", heating_base_c=16.0)
    X, names = design(spec, d, layout)
    assert names == ["days", "hdd"]
    assert X[:, 0].tolist() == [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    jan = d["temp_c"].to_numpy()[:31]
    assert X[0, 1] == pytest.approx(np.maximum(16 - jan, 0).sum())
    y = X @ np.array([900.0, 80.0])
    model = fit_baseline(y, d, layout)
    assert model.spec.heating_base_c == 16.0
    assert model.p == 3  # intercept, slope and the balance point (an ASHRAE 3P model)


def test_intercept_only_when_use_ignores_weather():
    d = _drivers(seed=4)
    rng = np.random.default_rng(404)
    y = 500 + rng.normal(0, 5, len(d))
    model = fit_baseline(y, d, Layout("day", np.arange(len(d)), len(d)), criterion="bic")
    assert model.spec.kind == "mean"
    assert model.coefficients()["days"] == pytest.approx(y.mean())
    assert model.candidates["selected"].sum() == 1


def test_hourly_layout_uses_hour_of_day_groups():
    d = _drivers(365)
    hours = np.tile(np.arange(24), 365)
    layout = Layout("hour", np.repeat(np.arange(365), 24), 365 * 24, hour=hours)
    profile = np.where((hours >= 8) & (hours < 18), 300.0, 100.0)
    t = d["temp_c"].to_numpy()[layout.codes]
    y = profile + 5.0 * np.maximum(18 - t, 0)  # 5 kWh/K per hour = 120 per degree day
    model = fit_baseline(y, d, layout)
    assert model.spec.kind == "hdd" and model.spec.heating_base_c == 18.0
    assert model.coefficients()["hdd"] == pytest.approx(120.0)
    assert model.coefficients()["h09_all"] == pytest.approx(300.0)


@given(st.floats(0.01, 0.5), st.integers(12, 2000), st.integers(1, 8), st.integers(1, 2000), st.floats(-0.9, 0.95),
       st.floats(1.0, 1e7))
def test_uncertainty_scales_as_the_formula_says(cv, n, p, m, rho, total):
    if n <= p + 1:
        return
    base = stats.savings_uncertainty(cv, n, p, m, rho, 0.90, total)
    assert base > 0
    assert stats.savings_uncertainty(2 * cv, n, p, m, rho, 0.90, total) == pytest.approx(2 * base)
    assert stats.savings_uncertainty(cv, n, p, 4 * m, rho, 0.90, total) == pytest.approx(base / 2)
    assert stats.savings_uncertainty(cv, n, p, m, rho, 0.90, 3 * total) == pytest.approx(3 * base)
    assert stats.savings_uncertainty(cv, n, p, m, rho, 0.68, total) < base
    assert stats.savings_uncertainty(cv, n, p, m, max(rho, 0) + 0.04, 0.90, total) > base * (1 - 1e-12)


@given(st.integers(28, 800), st.integers(0, 10_000))
def test_month_layout_conserves_totals(n_days, seed):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=n_days, freq="D") + pd.Timedelta(days=seed % 365)
    codes, uniques = pd.factorize(dates.to_period("M"), sort=True)
    daily = rng.uniform(0, 100, (n_days, 3))
    out = Layout("month", codes.astype(np.int64), len(uniques)).aggregate(daily)
    assert out.shape == (len(uniques), 3)
    assert np.allclose(out.sum(axis=0), daily.sum(axis=0))
