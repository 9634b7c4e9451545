"""Pure statistics of savings verification (ASHRAE Guideline 14, IPMVP, CalTRACK).

Every function here works on numpy arrays, has no I/O and no loop over rows.
Formulas (domain.md sections 7 and 8, docs/mv.md "Uncertainty"):

* CV(RMSE) = sqrt(sum((y - yhat)^2) / (n - p)) / mean(y)
* NMBE = sum(y - yhat) / ((n - p) * mean(y))
* lag-1 autocorrelation over adjacent periods only (a gap in the data breaks the chain);
  its small-sample bias (OLS residuals of a regression understate rho) is removed by
  the method of moments for AR(1) errors (`ar1_rho`);
* the uncertainty of a sum of predictions under AR(1) errors: for avoided energy
  Var = s^2 (w' R_b w + 1' R_r 1), w = X (X'X)^-1 a, a = sum of the reporting periods'
  design rows, R_ij = rho^|t_i - t_j| (`prediction_sum_variance`), with Student t at
  n' - p degrees of freedom, n' = n (1 - rho) / (1 + rho).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq
from scipy.signal import lfilter

RHO_MAX = 0.99  # an autocorrelation at or above this is taken as 0.99 (n' stays positive)


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


def adjacent_pairs(positions: np.ndarray) -> np.ndarray:
    """Per point (in time order): True where it directly follows the previous point
    (positions one period apart); the first point and every point after a gap: False."""
    t = np.asarray(positions, np.int64)
    out = np.zeros(len(t), bool)
    out[1:] = np.diff(t) == 1
    return out


def lag1_autocorrelation(resid: np.ndarray, positions: np.ndarray | None = None) -> float:
    """rho = (n - 1) / n_pairs * sum(e[i] e[i-1]) / sum(e[i]^2) over the pairs of
    adjacent periods only (`positions`: integer time positions, default 0..n-1, i.e.
    no gap). Without gaps this is the classic sum(e[i] e[i-1]) / sum(e[i]^2); with
    gaps the pairs across a gap are left out and the ratio rescaled to n - 1 pairs."""
    e = np.asarray(resid, float)
    adj = adjacent_pairs(np.arange(len(e)) if positions is None else positions)
    denom = float(np.sum(e * e))
    n_pairs = int(adj.sum())
    if n_pairs == 0 or denom == 0.0:
        return 0.0
    return float(np.sum(e[1:] * e[:-1] * adj[1:]) / denom * (len(e) - 1) / n_pairs)


def effective_n(n: int, rho: float) -> float:
    """n' = n (1 - rho) / (1 + rho). A negative rho is taken as 0: the correction only
    ever widens the interval (a conservative choice, as in common G14 practice)."""
    r = min(max(rho, 0.0), RHO_MAX)
    return n * (1.0 - r) / (1.0 + r)


def t_value(confidence: float, dof: float) -> float:
    """Two-sided Student t for `confidence` (e.g. 0.90 -> t(0.95, dof)); dof at least 1."""
    return float(sps.t.ppf(0.5 + confidence / 2.0, max(dof, 1)))


def ar1_correlate(V: np.ndarray, rho: float, positions: np.ndarray) -> np.ndarray:
    """R V for the AR(1) correlation matrix R_ij = rho^|t_i - t_j| of points at integer
    time `positions` (sorted; gaps allowed): the rows are laid on the full time grid
    (zeros in the gaps) and filtered forwards and backwards (scipy.signal.lfilter)."""
    V = np.asarray(V, float)
    t = np.asarray(positions, np.int64)
    vec = V.ndim == 1
    V2 = V[:, None] if vec else V
    if len(t) == 0:
        return V.copy()
    grid = np.zeros((int(t[-1] - t[0]) + 1, V2.shape[1]))
    grid[t - t[0]] = V2
    forward = lfilter([1.0], [1.0, -rho], grid, axis=0)
    backward = lfilter([1.0], [1.0, -rho], grid[::-1], axis=0)[::-1]
    out = (forward + backward - grid)[t - t[0]]
    return out[:, 0] if vec else out


def ar1_quadratic(v: np.ndarray, rho: float, positions: np.ndarray) -> float:
    """v' R v = sum_ij v_i v_j rho^|t_i - t_j| (the variance of sum(v_i e_i) for AR(1)
    errors e of unit variance)."""
    v = np.asarray(v, float)
    return float(v @ ar1_correlate(v, rho, positions))


def _lag1_operator(V: np.ndarray, adjacent: np.ndarray) -> np.ndarray:
    """D V with D symmetric, 1/2 at (i, i-1) and (i-1, i) for each adjacent pair, so
    that e' D e = sum over adjacent pairs of e[i] e[i-1]."""
    a = adjacent[1:, None] * 0.5
    out = np.zeros_like(V)
    out[1:] += a * V[:-1]
    out[:-1] += a * V[1:]
    return out


def ar1_rho(X: np.ndarray, resid: np.ndarray, positions: np.ndarray) -> float:
    """The AR(1) coefficient of the errors of a least-squares fit, free of the
    small-sample bias of the residuals' lag-1 autocorrelation (the residuals of a
    regression are less autocorrelated than its errors: the fit absorbs part of the
    slow variation). Method of moments: the rho at which the expected value of
    `lag1_autocorrelation` of the residuals, for errors e ~ AR(1)(rho) and residual
    maker M = I - X (X'X)^-1 X', equals the observed one:

        E[sum_pairs e_i e_(i-1)] / E[sum e_i^2] = tr(M D M R) / tr(M R)
        tr(M R) = n - tr(G^-1 X'RX),  G = X'X
        tr(M D M R) = n_pairs rho - 2 tr(G^-1 X'DRX) + tr(G^-1 X'DX G^-1 X'RX)

    (D: the lag-1 operator of the adjacent pairs; the ratio of expectations, as in the
    Durbin-Watson moments). Clipped to [0, RHO_MAX]: a rho at or below what white
    noise gives is 0, as in `effective_n`. X: design of the fitted points (n, k)."""
    X = np.asarray(X, float)
    e = np.asarray(resid, float)
    n = len(e)
    adj = adjacent_pairs(positions)
    n_pairs = int(adj.sum())
    if n_pairs == 0 or not np.any(e) or n <= X.shape[1] + 1:
        return 0.0
    observed = lag1_autocorrelation(e, positions) * n_pairs / (n - 1)  # sum over pairs / sum of squares
    gram_inv = np.linalg.pinv(X.T @ X, hermitian=True)
    DX = _lag1_operator(X, adj)
    B = X.T @ DX

    def expected(rho: float) -> float:
        RX = ar1_correlate(X, rho, positions)
        A = X.T @ RX
        num = n_pairs * rho - 2.0 * np.trace(gram_inv @ (DX.T @ RX)) + np.trace(gram_inv @ B @ gram_inv @ A)
        return float(num / (n - np.trace(gram_inv @ A)))

    if observed <= expected(0.0):
        return 0.0
    if observed >= expected(RHO_MAX):
        return RHO_MAX
    return float(brentq(lambda r: expected(r) - observed, 0.0, RHO_MAX, xtol=1e-9))


def prediction_sum_variance(X: np.ndarray, positions: np.ndarray, a: np.ndarray, rho: float) -> float:
    """Variance, in units of the error variance, of a'(beta_hat - beta): the error of a
    sum of the model's predictions whose design rows add up to `a`, when the model was
    fitted by least squares on X (points at `positions`) with AR(1) errors:
    w' R w with w = X (X'X)^-1 a (beta_hat = (X'X)^-1 X'y is linear in y)."""
    X = np.asarray(X, float)
    w = X @ (np.linalg.pinv(X.T @ X, hermitian=True) @ np.asarray(a, float))
    return ar1_quadratic(w, rho, positions)


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


def fit_stats(y: np.ndarray, yhat: np.ndarray, p: int, positions: np.ndarray | None = None) -> FitStats:
    """R², adjusted R², CV(RMSE), NMBE, AIC, BIC (Gaussian, up to a constant) and the
    lag-1 autocorrelation rho of the residuals over adjacent periods (`positions`:
    integer time positions of the points, default 0..n-1)."""
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
        rho=lag1_autocorrelation(resid, positions), mean_y=float(y.mean()) if n else float("nan"),
    )
