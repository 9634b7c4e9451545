"""Pure statistics of savings verification (ASHRAE Guideline 14, IPMVP).

Every function here works on numpy arrays, has no I/O and no loop over rows.
Formulas (domain.md section 7):

* CV(RMSE) = sqrt(sum((y - yhat)^2) / (n - p)) / mean(y)
* NMBE = sum(y - yhat) / ((n - p) * mean(y))
* fractional savings uncertainty (G14-2014 Annex B, eq. B-14, Reddy & Claridge 2000):
  dE/E = t(alpha, n - p) * 1.26 * CV * sqrt((n / n') * (1 + 2 / n) * (1 / m)) / F,
  with n' = n (1 - rho) / (1 + rho) and rho the lag-1 autocorrelation of the residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# G14-2014 Annex B, eq. B-14: empirical factor of the fractional savings uncertainty.
FSU_FACTOR = 1.26


def heating_degree_days(temp_c: np.ndarray, base_c: float | np.ndarray) -> np.ndarray:
    """Heating degree days (K·d) of daily mean temperatures: max(base - T, 0).

    `base_c` may be an array of balance points: the result then has shape
    (len(temp_c), len(base_c)).
    """
    t = np.asarray(temp_c, float)
    b = np.asarray(base_c, float)
    if b.ndim:
        return np.maximum(b[None, :] - t[:, None], 0.0)
    return np.maximum(b - t, 0.0)


def cooling_degree_days(temp_c: np.ndarray, base_c: float | np.ndarray) -> np.ndarray:
    """Cooling degree days (K·d) of daily mean temperatures: max(T - base, 0)."""
    t = np.asarray(temp_c, float)
    b = np.asarray(base_c, float)
    if b.ndim:
        return np.maximum(t[:, None] - b[None, :], 0.0)
    return np.maximum(t - b, 0.0)


def ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of y on the columns of X (no implicit intercept).

    Normal equations on column-scaled X, solved with a symmetric pseudo-inverse (rank
    deficient columns get 0): with a few dozen columns this is ~100x faster than an
    SVD of the tall matrix and exact enough for these well-conditioned designs."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    scale = np.sqrt(np.einsum("ij,ij->j", X, X))
    scale = np.where(scale > 0, scale, 1.0)
    Xs = X / scale
    coef = np.linalg.pinv(Xs.T @ Xs, rcond=1e-12, hermitian=True) @ (Xs.T @ y)
    return coef / scale


def cvrmse(y: np.ndarray, yhat: np.ndarray, p: int) -> float:
    """Coefficient of variation of the RMSE with n - p degrees of freedom (fraction)."""
    y = np.asarray(y, float)
    n = len(y)
    if n <= p:
        return float("nan")
    return float(np.sqrt(np.sum((y - yhat) ** 2) / (n - p)) / np.mean(y))


def nmbe(y: np.ndarray, yhat: np.ndarray, p: int) -> float:
    """Normalised mean bias error with n - p degrees of freedom (fraction)."""
    y = np.asarray(y, float)
    n = len(y)
    if n <= p:
        return float("nan")
    return float(np.sum(y - yhat) / ((n - p) * np.mean(y)))


def lag1_autocorrelation(resid: np.ndarray) -> float:
    """rho = sum(e[i] e[i-1]) / sum(e[i]^2), residuals in time order."""
    e = np.asarray(resid, float)
    denom = float(np.sum(e * e))
    if len(e) < 2 or denom == 0.0:
        return 0.0
    return float(np.sum(e[1:] * e[:-1]) / denom)


def effective_n(n: int, rho: float) -> float:
    """n' = n (1 - rho) / (1 + rho). A negative rho is taken as 0: the correction only
    ever widens the interval (a conservative choice, as in common G14 practice)."""
    r = min(max(rho, 0.0), 0.999)
    return n * (1.0 - r) / (1.0 + r)


def t_value(confidence: float, dof: int) -> float:
    """Two-sided Student t for `confidence` (e.g. 0.90 -> t(0.95, dof))."""
    return float(sps.t.ppf(0.5 + confidence / 2.0, max(dof, 1)))


def savings_uncertainty(cv: float, n: int, p: int, m: int, rho: float, confidence: float,
                        baseline_total: float) -> float:
    """Half-width of the savings interval, in energy units, over m reporting points.

    It is the G14 Annex B fractional savings uncertainty times the savings, written in
    the absolute form that stays finite when the savings are zero:
    dE = t * 1.26 * CV * sqrt((n/n') (1 + 2/n) / m) * E_baseline.
    """
    if m <= 0 or n <= p:
        return float("nan")
    n_eff = effective_n(n, rho)
    t = t_value(confidence, n - p)
    return float(t * FSU_FACTOR * cv * np.sqrt((n / n_eff) * (1.0 + 2.0 / n) / m) * abs(baseline_total))


def fractional_savings_uncertainty(cv: float, n: int, p: int, m: int, rho: float, confidence: float,
                                   savings_fraction: float) -> float:
    """dE/E of G14 Annex B eq. B-14 (a fraction of the savings; inf when F = 0)."""
    if savings_fraction == 0:
        return float("inf")
    half = savings_uncertainty(cv, n, p, m, rho, confidence, 1.0)
    return float(half / abs(savings_fraction))


@dataclass(frozen=True)
class FitStats:
    """Goodness of fit of a regression with p parameters on n points."""

    n: int
    p: int
    sse: float
    r2: float
    adj_r2: float
    cvrmse: float
    nmbe: float
    aic: float
    bic: float
    rho: float
    mean_y: float


def fit_stats(y: np.ndarray, yhat: np.ndarray, p: int) -> FitStats:
    """R², adjusted R², CV(RMSE), NMBE, AIC, BIC (Gaussian, up to a constant) and rho."""
    y = np.asarray(y, float)
    yhat = np.asarray(yhat, float)
    n = len(y)
    resid = y - yhat
    sse = float(np.sum(resid**2))
    sst = float(np.sum((y - y.mean()) ** 2)) if n else 0.0
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - p) if n > p else float("nan")
    sse_n = max(sse / n, 1e-300) if n else float("nan")
    return FitStats(
        n=n, p=p, sse=sse, r2=r2, adj_r2=adj,
        cvrmse=cvrmse(y, yhat, p), nmbe=nmbe(y, yhat, p),
        aic=float(n * np.log(sse_n) + 2 * p),
        bic=float(n * np.log(sse_n) + p * np.log(max(n, 1))),
        rho=lag1_autocorrelation(resid), mean_y=float(y.mean()) if n else float("nan"),
    )
