"""Baseline models: consumption regressed on degree days and day types.

One design serves daily, monthly (billing) and hourly data. Drivers are daily
(a daily mean temperature, a working-day flag, an optional occupancy); a *layout*
maps days to periods:

* day: one period per day;
* month: a period sums its days, so the intercept column counts days, the working-day
  column counts working days and the degree-day columns are monthly degree-day sums
  (the PRISM / ASHRAE inverse-model form, which handles months of unequal length and
  partial months at the edges of a period);
* hour: each hour gets 1/24 of its day's degree days, and the intercept and day-type
  terms become hour-of-day (or hour-of-day x day-type) indicator columns, a reduced
  time-of-week model. Only daily temperatures are asked of the user, so an hour's
  weather term is its day's.

Candidate forms: intercept only; heating degree days (HDD); cooling degree days (CDD);
both. Each with and without a day-type term (and an occupancy term where the calendar
gives one). Balance points are found by a grid search (every 0.5 °C over CalTRACK 2.0's
range, section 3.2.1: 30-90 °F, i.e. -1 to 32 °C, for heating and cooling alike), with
the heating balance point not above the cooling one, and count as parameters of the model
(an ASHRAE 3P change-point model has p = 3). Slopes must be positive (heating and
cooling use rise away from the balance point); a balance point must leave at least
`MIN_DD_SHARE` of the periods with non-zero degree days. Within a form the balance
points minimise the residual sum of squares; across forms the stated criterion
(adjusted R² by default, or AIC/BIC) picks the model.

The grid search is exact and vectorised: the fixed columns are projected out once
(Frisch-Waugh-Lovell), after which each balance point (pair) is a 1- or 2-column
regression solved in closed form for the whole grid at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from verification import stats

# Balance-point grid (°C): CalTRACK 2.0 section 3.2.1 searches 30-90 °F (-1.1..32.2 °C) for
# heating and cooling balance points alike, at most 3 °F (1.7 K) apart; here -1..32 °C in 0.5 K steps.
HEATING_GRID_C = np.arange(-1.0, 32.01, 0.5)
COOLING_GRID_C = np.arange(-1.0, 32.01, 0.5)
# A balance point must leave at least this share of periods with non-zero degree days
# (and at least MIN_DD_POINTS of them), so a slope is not fitted to a handful of points.
MIN_DD_SHARE = 0.10
MIN_DD_POINTS = 3
# A degree-day slope must be significant: one-sided p < 0.05 (t above the 95 % quantile),
# else a balance point found by searching 67 candidates can fit noise (CalTRACK uses a
# similar p-value rule).
SLOPE_CONFIDENCE = 0.95
HOURS_PER_DAY = 24
KINDS = ("mean", "hdd", "cdd", "hdd_cdd")
CRITERIA = ("adj_r2", "aic", "bic")


@dataclass(frozen=True)
class Layout:
    """How days map to periods. For `day` and `hour`, `codes[i]` is the day position of
    period i; for `month`, `codes[d]` is the period of day d. `hour` is the hour of day
    of each period (hourly only)."""

    granularity: str
    codes: np.ndarray
    n_periods: int
    hour: np.ndarray | None = None

    def aggregate(self, daily: np.ndarray) -> np.ndarray:
        """Period values (P, k) of daily quantities (D, k): sums for months, the day's
        value for days, 1/24 of it for hours."""
        daily = np.asarray(daily, float)
        if daily.ndim == 1:
            daily = daily[:, None]
        if self.granularity == "month":
            out = np.zeros((self.n_periods, daily.shape[1]))
            np.add.at(out, self.codes, daily)
            return out
        if self.granularity == "hour":
            return daily[self.codes] / HOURS_PER_DAY
        return daily[self.codes]

    def period_working(self, working: np.ndarray) -> np.ndarray:
        """Per period: working days (month: a count; day/hour: 0/1 of its day)."""
        return self.aggregate(working)[:, 0] * (HOURS_PER_DAY if self.granularity == "hour" else 1)


@dataclass(frozen=True)
class ModelSpec:
    """A model form and its balance points."""

    kind: str
    day_type: bool = False
    occupancy: bool = False
    heating_base_c: float | None = None
    cooling_base_c: float | None = None

    @property
    def n_balance_points(self) -> int:
        return {"mean": 0, "hdd": 1, "cdd": 1, "hdd_cdd": 2}[self.kind]

    @property
    def name(self) -> str:
        """e.g. 'HDD+CDD + day type (Tb,h=15°C, Tb,c=22°C)'."""
        name = {"mean": "intercept", "hdd": "HDD", "cdd": "CDD", "hdd_cdd": "HDD+CDD"}[self.kind]
        name += " + day type" * self.day_type + " + occupancy" * self.occupancy
        points = [f"Tb,{k}={v:g}°C" for k, v in (("h", self.heating_base_c), ("c", self.cooling_base_c)) if v is not None]
        return f"{name} ({', '.join(points)})" if points else name


def fixed_columns(spec: ModelSpec, drivers: pd.DataFrame, layout: Layout) -> tuple[np.ndarray, list[str]]:
    """The columns that do not depend on balance points: intercept (days), day type,
    occupancy; hour-of-day indicators for hourly data."""
    working = drivers["working"].to_numpy(float)
    if layout.granularity == "hour":
        assert layout.hour is not None
        w = working[layout.codes] if spec.day_type else np.zeros(layout.n_periods)
        group = layout.hour + HOURS_PER_DAY * w.astype(int)
        n_groups = HOURS_PER_DAY * (2 if spec.day_type else 1)
        cols = (group[:, None] == np.arange(n_groups)[None, :]).astype(float)
        names = [f"h{g % HOURS_PER_DAY:02d}_{'work' if g >= HOURS_PER_DAY else ('off' if spec.day_type else 'all')}"
                 for g in range(n_groups)]
        keep = cols.any(axis=0)
        cols, names = cols[:, keep], [n for n, k in zip(names, keep, strict=True) if k]
    else:
        daily = [np.ones(len(drivers))]
        names = ["days"]
        if spec.day_type:
            daily.append(working)
            names.append("working_days")
        cols = layout.aggregate(np.column_stack(daily))
    if spec.occupancy:
        occ = layout.aggregate(drivers["occupancy"].to_numpy(float))
        cols = np.column_stack([cols, occ])
        names = [*names, "occupancy"]
    return cols, names


def design(spec: ModelSpec, drivers: pd.DataFrame, layout: Layout) -> tuple[np.ndarray, list[str]]:
    """Full design matrix of a model with its balance points set."""
    cols, names = fixed_columns(spec, drivers, layout)
    temp = drivers["temp_c"].to_numpy(float)
    extra, extra_names = [], []
    if spec.kind in ("hdd", "hdd_cdd"):
        extra.append(layout.aggregate(stats.heating_degree_days(temp, spec.heating_base_c))[:, 0])
        extra_names.append("hdd")
    if spec.kind in ("cdd", "hdd_cdd"):
        extra.append(layout.aggregate(stats.cooling_degree_days(temp, spec.cooling_base_c))[:, 0])
        extra_names.append("cdd")
    if extra:
        cols = np.column_stack([cols, *extra])
    return cols, names + extra_names


@dataclass
class BaselineModel:
    """A fitted model: form, coefficients (per column name), fit statistics, and what
    its uncertainty needs: J, the Jacobian of the fitted periods (`jacobian`), their
    integer time positions, and rho_ar1, the AR(1) coefficient of its errors
    (verification.stats.ar1_rho on J)."""

    spec: ModelSpec
    columns: list[str]
    coef: np.ndarray
    stats: stats.FitStats
    fitted: np.ndarray
    J: np.ndarray
    positions: np.ndarray
    rho_ar1: float
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def p(self) -> int:
        """Parameters: independent coefficients plus searched balance points."""
        return self.stats.p

    @property
    def n_effective(self) -> float:
        """n' = n (1 - rho) / (1 + rho) at rho_ar1."""
        return stats.effective_n(self.stats.n, self.rho_ar1)

    @property
    def rmse(self) -> float:
        """sqrt(SSE / (n - p)) (energy units per period): CV(RMSE) times the mean."""
        return self.stats.cvrmse * self.stats.mean_y

    def design_matrix(self, drivers: pd.DataFrame, layout: Layout) -> np.ndarray:
        """The model's design rows on other drivers, in the order of `columns`."""
        X, names = design(self.spec, drivers, layout)
        # Hour groups absent from the fitting data get no column; align by name.
        index = {n: i for i, n in enumerate(names)}
        Xa = np.zeros((X.shape[0], len(self.columns)))
        for j, name in enumerate(self.columns):
            if name in index:
                Xa[:, j] = X[:, index[name]]
        return Xa

    def predict(self, drivers: pd.DataFrame, layout: Layout) -> np.ndarray:
        return self.design_matrix(drivers, layout) @ self.coef

    def jacobian(self, drivers: pd.DataFrame, layout: Layout) -> np.ndarray:
        """Derivatives of the predictions per period with respect to every parameter
        (see `balance_point_columns`), the Gauss-Newton linearization of the model."""
        return np.column_stack([self.design_matrix(drivers, layout),
                                *balance_point_columns(self.spec, self.coefficients(), drivers, layout)])

    def coefficients(self) -> dict[str, float]:
        return {n: float(c) for n, c in zip(self.columns, self.coef, strict=True)}


def balance_point_columns(spec: ModelSpec, coef: dict[str, float], drivers: pd.DataFrame,
                          layout: Layout) -> list[np.ndarray]:
    """Per searched balance point, the derivative of the predictions with respect to it:
    the slope times the days beyond it (heating: d HDD / d Tb = days below Tb; cooling:
    minus the days above Tb), per period. With the design columns (the derivatives with
    respect to the coefficients) they make the Jacobian of the change-point model, through
    which the uncertainty takes the balance points as estimated parameters."""
    temp = drivers["temp_c"].to_numpy(float)
    cols = []
    if spec.heating_base_c is not None:
        cols.append(layout.aggregate(coef["hdd"] * (temp < spec.heating_base_c))[:, 0])
    if spec.cooling_base_c is not None:
        cols.append(layout.aggregate(-coef["cdd"] * (temp > spec.cooling_base_c))[:, 0])
    return cols


def _rank(X: np.ndarray) -> int:
    """Column rank of a tall matrix, from its column-scaled Gram matrix."""
    scale = np.sqrt(np.einsum("ij,ij->j", X, X))
    Xs = X / np.where(scale > 0, scale, 1.0)
    return int(np.linalg.matrix_rank(Xs.T @ Xs, hermitian=True))


class _Residualizer:
    """Residuals of columns after least-squares regression on the fixed columns F
    (normal equations on the small Gram matrix; its pseudo-inverse copes with
    indicator columns that are empty)."""

    def __init__(self, F: np.ndarray):
        self.F = F
        gram = F.T @ F
        self.gram_inv = np.linalg.pinv(gram, rcond=1e-12, hermitian=True)
        self.rank = _rank(F)

    def __call__(self, M: np.ndarray) -> np.ndarray:
        return M - self.F @ (self.gram_inv @ (self.F.T @ M))


def _min_points(n: int) -> int:
    return max(MIN_DD_POINTS, int(np.ceil(MIN_DD_SHARE * n)))


def _search(kind: str, resid: _Residualizer, y: np.ndarray, H: np.ndarray,
            C: np.ndarray) -> tuple[int | None, int | None, np.ndarray | None]:
    """Best grid index (heating, cooling) and SSE of a form, or (None, None, inf) when
    no balance point gives significant positive slopes."""
    n = len(y)
    yr = resid(y[:, None])[:, 0]
    need = _min_points(n)
    syy = float(yr @ yr)
    if kind == "mean":
        return None, None, yr
    n_slopes = 1 if kind != "hdd_cdd" else 2
    dof = n - resid.rank - n_slopes - n_slopes  # coefficients and balance points
    if dof < 1:
        return None, None, None
    t_min = stats.t_value(2 * SLOPE_CONFIDENCE - 1, dof)
    if kind in ("hdd", "cdd"):
        M = H if kind == "hdd" else C
        Mr = resid(M)
        ss = np.einsum("ij,ij->j", Mr, Mr)
        g = Mr.T @ yr
        ok = (ss > 1e-12) & ((M > 0).sum(axis=0) >= need)
        beta = np.divide(g, ss, out=np.zeros_like(g), where=ok)
        sse = np.maximum(syy - beta * g, 0.0)
        t = beta * np.sqrt(np.divide(ss * dof, sse, out=np.full_like(sse, np.inf), where=sse > 0))
        sse = np.where(ok & (t > t_min), sse, np.inf)
        best = int(np.argmin(sse))
        if not np.isfinite(sse[best]):
            return None, None, None
        e = yr - Mr[:, best] * beta[best]
        return (best, None, e) if kind == "hdd" else (None, best, e)
    Hr, Cr = resid(H), resid(C)
    a = np.einsum("ij,ij->j", Hr, Hr)[:, None]
    c = np.einsum("ij,ij->j", Cr, Cr)[None, :]
    b = Hr.T @ Cr
    gh = (Hr.T @ yr)[:, None]
    gc = (Cr.T @ yr)[None, :]
    det = a * c - b * b
    ok = np.abs(det) > 1e-9 * np.maximum(a * c, 1e-300)
    ok &= (HEATING_GRID_C[:, None] <= COOLING_GRID_C[None, :])
    ok &= ((H > 0).sum(axis=0) >= need)[:, None] & ((C > 0).sum(axis=0) >= need)[None, :]
    safe = np.where(ok, det, 1.0)
    bh = (c * gh - b * gc) / safe
    bc = (a * gc - b * gh) / safe
    sse = np.maximum(syy - bh * gh - bc * gc, 0.0)
    s2 = sse / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        th = bh / np.sqrt(s2 * c / safe)
        tc = bc / np.sqrt(s2 * a / safe)
    th = np.where(sse > 0, th, np.where(bh > 0, np.inf, -np.inf))
    tc = np.where(sse > 0, tc, np.where(bc > 0, np.inf, -np.inf))
    sse = np.where(ok & (det > 0) & (th > t_min) & (tc > t_min), sse, np.inf)
    i, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
    if not np.isfinite(sse[i, j]):
        return None, None, None
    return int(i), int(j), yr - Hr[:, i] * bh[i, j] - Cr[:, j] * bc[i, j]


def _score(fs: stats.FitStats, criterion: str) -> float:
    """Lower is better."""
    return {"adj_r2": -fs.adj_r2, "aic": fs.aic, "bic": fs.bic}[criterion]


def _term_options(drivers: pd.DataFrame, layout: Layout, ok: np.ndarray, use_day_type: bool,
                  use_occupancy: bool) -> list[tuple[bool, bool]]:
    """(day_type, occupancy) combinations worth trying: a term only where its driver varies."""
    # Share of working days per period: a day-type term needs it to vary (for months,
    # a constant share would make the term collinear with the day count).
    share = (layout.aggregate(drivers["working"].to_numpy(float)) / layout.aggregate(np.ones(len(drivers))))[ok, 0]
    day_types = [False]
    if use_day_type and len(share) and np.ptp(share) > 0:
        day_types.append(True)
    occupancies = [False]
    if use_occupancy and "occupancy" in drivers and np.ptp(drivers["occupancy"].to_numpy(float)) > 0:
        occupancies.append(True)
    return [(dt, occ) for dt in day_types for occ in occupancies]


def _candidate(kind: str, day_type: bool, occupancy: bool, resid: _Residualizer, yo: np.ndarray, H: np.ndarray,
               C: np.ndarray, criterion: str, positions: np.ndarray) -> tuple[dict, float, ModelSpec | None]:
    """A form's row of the candidates table, its score (inf: not accepted) and its spec."""
    ih, ic, e = _search(kind, resid, yo, H, C)
    if e is None:
        return ({"model": ModelSpec(kind, day_type, occupancy).name, "accepted": False,
                 "reason": "no balance point gives significant positive slopes"}, np.inf, None)
    spec = ModelSpec(kind, day_type, occupancy,
                     None if ih is None else float(HEATING_GRID_C[ih]),
                     None if ic is None else float(COOLING_GRID_C[ic]))
    # fixed columns + one slope and one balance point per degree-day term
    p = resid.rank + 2 * spec.n_balance_points
    fs = stats.fit_stats(yo, yo - e, p, positions)
    score = _score(fs, criterion) if len(yo) > p + 1 else np.inf
    row = {"model": spec.name, "accepted": bool(np.isfinite(score)), "reason": "",
           "heating_base_c": spec.heating_base_c, "cooling_base_c": spec.cooling_base_c,
           "n": fs.n, "p": p, "r2": fs.r2, "adj_r2": fs.adj_r2, "cvrmse": fs.cvrmse,
           "nmbe": fs.nmbe, "aic": fs.aic, "bic": fs.bic, "score": score}
    return row, score, spec


def _refit(spec: ModelSpec, drivers: pd.DataFrame, layout: Layout, ok: np.ndarray, yo: np.ndarray,
           positions: np.ndarray) -> BaselineModel:
    """The chosen form fitted on its full design (columns that are all zero dropped)."""
    X, names = design(spec, drivers, layout)
    X = X[ok]
    keep = np.abs(X).sum(axis=0) > 0
    Xk = X[:, keep]
    columns = [n for n, k in zip(names, keep, strict=True) if k]
    coef = stats.ols(Xk, yo)
    fitted = Xk @ coef
    fs = stats.fit_stats(yo, fitted, _rank(Xk) + spec.n_balance_points, positions)
    J = np.column_stack([Xk, *(c[ok] for c in balance_point_columns(spec, dict(zip(columns, coef, strict=True)),
                                                                     drivers, layout))])
    return BaselineModel(spec, columns, coef, fs, fitted, J, positions, stats.ar1_rho(J, yo - fitted, positions))


def fit_baseline(y: np.ndarray, drivers: pd.DataFrame, layout: Layout, criterion: str = "adj_r2",
                 use_day_type: bool = True, use_occupancy: bool = True,
                 positions: np.ndarray | None = None) -> BaselineModel:
    """Fit every candidate form (balance points by search) to the period values `y`
    and return the one the criterion prefers, with the table of candidates.

    Periods with a NaN in `y` are left out of the fit. `positions`: integer time
    position of each period (default 0..P-1: consecutive periods), for the
    autocorrelation over adjacent periods only.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}")
    y = np.asarray(y, float)
    ok = np.isfinite(y)
    yo = y[ok]
    used_positions = (np.arange(len(y)) if positions is None else np.asarray(positions, np.int64))[ok]
    temp = drivers["temp_c"].to_numpy(float)
    H = layout.aggregate(stats.heating_degree_days(temp, HEATING_GRID_C))[ok]
    C = layout.aggregate(stats.cooling_degree_days(temp, COOLING_GRID_C))[ok]
    options = _term_options(drivers, layout, ok, use_day_type, use_occupancy)
    residualizers = {(dt, occ): _Residualizer(fixed_columns(ModelSpec("mean", dt, occ), drivers, layout)[0][ok])
                     for dt, occ in options}
    rows, best = [], None
    for kind in KINDS:
        for dt, occ in options:
            row, score, spec = _candidate(kind, dt, occ, residualizers[(dt, occ)], yo, H, C, criterion,
                                          used_positions)
            rows.append(row)
            if np.isfinite(score) and (best is None or score < best[0] - 1e-12):
                best = (score, spec)
    if best is None:
        raise ValueError("no baseline model could be fitted (too few data points)")
    model = _refit(best[1], drivers, layout, ok, yo, used_positions)
    table = pd.DataFrame(rows)
    table["selected"] = table["model"] == model.spec.name
    model.candidates = table
    return model
