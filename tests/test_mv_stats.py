"""Hand-checked statistics of savings verification, and properties of the baseline fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from tests.test_mv_synthetic import ar1_noise
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


HAND_RESIDUALS = np.array([-3.0, -1, 1, 3, -2, 0, 2])  # of an intercept-only fit: they sum to 0
HAND_DAYS = np.array([0, 1, 2, 3, 5, 6, 7])  # day 4 has no data


def test_lag1_autocorrelation_by_hand():
    assert stats.lag1_autocorrelation(np.array([1.0, -1, 1, -1])) == pytest.approx(-3 / 4)
    assert stats.lag1_autocorrelation(np.array([1.0, 2, 3])) == pytest.approx(8 / 14)


def test_lag1_autocorrelation_over_adjacent_days_only():
    # days 0-3 and 5-7 (day 4 missing): residuals -3, -1, 1, 3 | -2, 0, 2; sum of squares 28
    e, days = HAND_RESIDUALS, HAND_DAYS
    # adjacent pairs: 3 - 1 + 3 (days 0-3) + 0 + 0 (days 5-7) = 5 over 5 pairs, rescaled to n - 1 = 6 pairs
    assert stats.lag1_autocorrelation(e, days) == pytest.approx(5 / 28 * 6 / 5)  # 0.214
    # bridging the gap as if days 3 and 5 were adjacent would add 3 * -2: (5 - 6) / 28
    assert stats.lag1_autocorrelation(e) == pytest.approx(-1 / 28)
    assert stats.adjacent_pairs(days).tolist() == [False, True, True, True, False, True, True]


def test_effective_n_by_hand():
    assert stats.effective_n(100, 0.5) == pytest.approx(100 * 0.5 / 1.5)
    assert stats.effective_n(100, -0.3) == 100  # negative rho never narrows the interval


def _dense_ar1(days: np.ndarray, rho: float) -> np.ndarray:
    """R_ij = rho^|t_i - t_j| written out (the independent check of the filters)."""
    return rho ** np.abs(days[:, None] - days[None, :]).astype(float)


def test_ar1_quadratic_by_hand():
    # v = (1, 2, 3) on consecutive days, rho = 0.5: 1 + 4 + 9 + 2 (0.5*2 + 0.25*3 + 0.5*6) = 23.5
    assert stats.ar1_quadratic(np.array([1.0, 2, 3]), 0.5, np.arange(3)) == pytest.approx(23.5)
    # two days two apart: 1 + 1 + 2 * 0.5^2
    assert stats.ar1_quadratic(np.ones(2), 0.5, np.array([0, 2])) == pytest.approx(2.5)
    assert stats.ar1_quadratic(np.ones(4), 0.0, np.arange(4)) == pytest.approx(4.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=40), st.floats(-0.9, 0.99), st.integers(0, 999))
def test_ar1_correlate_is_the_dense_correlation_matrix(steps, rho, seed):
    days = np.cumsum(steps)
    V = np.random.default_rng(seed).normal(size=(len(days), 3))
    np.testing.assert_allclose(stats.ar1_correlate(V, rho, days), _dense_ar1(days, rho) @ V, atol=1e-9)


def test_prediction_sum_variance_by_hand():
    # intercept-only model on 4 consecutive days: w = X (X'X)^-1 a = (m / n) 1; for a sum of m = 2
    # predictions w' R w = (2/4)^2 * 1'R1, 1'R1 = 4 + 2 (3 * 0.5 + 2 * 0.25 + 0.125) = 8.25
    got = stats.prediction_sum_variance(np.ones((4, 1)), np.arange(4), np.array([2.0]), 0.5)
    assert got == pytest.approx(0.25 * 8.25)


def _moment_rho(X: np.ndarray, e: np.ndarray, days: np.ndarray) -> float:
    """ar1_rho written out with dense matrices: the rho at which tr(M D M R) / tr(M R)
    equals sum over adjacent pairs of e_i e_(i-1) / sum of e_i^2."""
    n = len(e)
    M = np.eye(n) - X @ np.linalg.pinv(X.T @ X) @ X.T
    adjacent = np.diff(days) == 1
    D = np.zeros((n, n))
    D[np.arange(1, n)[adjacent], np.arange(n - 1)[adjacent]] = 0.5
    D = D + D.T
    observed = (e @ D @ e) / (e @ e)
    ratio = lambda r: np.trace(M @ D @ M @ _dense_ar1(days, r)) / np.trace(M @ _dense_ar1(days, r))  # noqa: E731
    return brentq(lambda r: ratio(r) - observed, 0.0, 0.99) if observed > ratio(0.0) else 0.0


def test_ar1_rho_is_the_moment_estimate():
    e, days, X = HAND_RESIDUALS, HAND_DAYS, np.ones((7, 1))
    rho = stats.ar1_rho(X, e, days)
    assert rho == pytest.approx(_moment_rho(X, e, days), abs=1e-7)
    assert 0.45 < rho < 0.55  # seven residuals with a lag-1 autocorrelation of 0.21 stand for rho ~ 0.5
    # white noise: for an intercept-only fit E[r1] = -1/n (the classic result); observed at or below it -> 0
    assert stats.ar1_rho(X, np.array([1.0, -1, 1, -1, 1, -1, 0]), np.arange(7)) == 0.0


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.9))
def test_ar1_rho_matches_dense_moments_on_a_seasonal_design(seed, rho):
    rng = np.random.default_rng(seed)
    days = np.sort(rng.choice(60, 45, replace=False))
    X = np.column_stack([np.ones(45), np.cos(2 * np.pi * days / 60), (days % 7 < 5).astype(float)])
    y = ar1_noise(60, 1.0, rho, rng)[days]
    e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    assert stats.ar1_rho(X, e, days) == pytest.approx(_moment_rho(X, e, days), abs=1e-6)


def test_ar1_rho_removes_the_bias_of_the_residuals():
    """Seeded: 200 series of 366 AR(1) days (rho 0.5) with a 20-day gap, regressed on a
    seasonal design: the residuals' lag-1 autocorrelation is biased low, the moment
    estimate is not (within 0.01)."""
    rng = np.random.default_rng(14)
    raw, fixed = [], []
    for _ in range(200):
        keep = np.ones(366, bool)
        start = rng.integers(0, 346)
        keep[start:start + 20] = False
        days = np.arange(366)[keep]
        X = np.column_stack([np.ones(len(days)), np.cos(2 * np.pi * days / 365), np.sin(2 * np.pi * days / 365),
                             (days % 7 < 5).astype(float)])
        y = ar1_noise(366, 1.0, 0.5, rng)[keep]
        e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        raw.append(stats.lag1_autocorrelation(e, days))
        fixed.append(stats.ar1_rho(X, e, days))
    assert np.mean(raw) < 0.485
    assert np.mean(fixed) == pytest.approx(0.5, abs=0.01)


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
@given(st.sampled_from(list(HEATING_GRID_C[22:37])), st.sampled_from(list(COOLING_GRID_C[42:53])),
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


def test_balance_point_search_covers_the_caltrack_range():
    # CalTRACK 2.0 3.2.1: 30-90 °F, i.e. -1.1..32.2 °C, for heating and cooling balance points
    assert (HEATING_GRID_C[0], HEATING_GRID_C[-1]) == (-1.0, 32.0) == (COOLING_GRID_C[0], COOLING_GRID_C[-1])
    assert np.diff(HEATING_GRID_C).max() == pytest.approx(0.5)  # well within CalTRACK's 3 °F (1.7 K) steps
    d = _drivers()
    t = d["temp_c"].to_numpy()
    # a well-insulated building heated only below 2 °C (the old grid started at 5 °C)
    y = 1000 + 80 * np.maximum(2.0 - t, 0) + 60 * np.maximum(t - 25.0, 0)
    model = fit_baseline(y, d, Layout("day", np.arange(len(d)), len(d)), use_day_type=False)
    assert (model.spec.heating_base_c, model.spec.cooling_base_c) == (2.0, 25.0)


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


@given(st.integers(28, 800), st.integers(0, 10_000))
def test_month_layout_conserves_totals(n_days, seed):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=n_days, freq="D") + pd.Timedelta(days=seed % 365)
    codes, uniques = pd.factorize(dates.to_period("M"), sort=True)
    daily = rng.uniform(0, 100, (n_days, 3))
    out = Layout("month", codes.astype(np.int64), len(uniques)).aggregate(daily)
    assert out.shape == (len(uniques), 3)
    assert np.allclose(out.sum(axis=0), daily.sum(axis=0))
