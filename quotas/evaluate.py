"""Quota levels (能耗定额) and dual-control targets (双控) evaluation.

`quota_levels(ind, config)`: for every institution and standard indicator, the level
its value meets under the most specific standard (the standard of its category in its
nearest region beats a region-wide one, which beats a general one):
'guide' (<= 引导值), 'baseline' (<= 基准值), 'constraint' (<= 约束值) or 'exceeds'; with
two-level standards 'advanced' (<= 先进值), 'general' (<= 通用值) or 'exceeds';
'no_data' when the institution's value is missing.

`evaluate_targets(config, monthly, as_of)`: year-to-date use against the pro-rated
target and a year-end projection that respects seasonality.

`project_year_end(actual_to_date, monthly_last_year, as_of)`: THE year-end projection
(pure, vectorised over scopes); `evaluate_targets` and `project_scope_totals` (the
dashboard's scopes without a target) both call it, so a scope's projection is the same
with or without a target.

* elapsed share: the share of the year's use that normally falls before `as_of` (data
  up to, not including, `as_of`; a local date, or a local time for a running day,
  which then counts pro rata). With projection 'last_year' it is last year's monthly
  shape of the same scope (the month of `as_of` counted pro rata by days), taken from
  the scope's institutions with data in all twelve months of last year; when there is
  none, or with 'flat', it is the share of days elapsed.
* pro-rated limit = limit x elapsed share; projected = year-to-date / elapsed share
  (so actual > pro-rated limit exactly when projected > limit).
* intensities use the scope's institutions with data this year as denominators.
* status: 'breach' (the year-to-date already exceeds the annual limit),
  'projected_breach' (projected > limit: flagged before it happens), 'warning'
  (projected >= warning_ratio x limit), 'ok'; 'no_data' without any data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from core.registry import RegionTree, region_ancestors_frame
from quotas.config import PROJECTIONS, STANDARD_INDICATORS, TARGET_INDICATORS, THREE_LEVELS, TWO_LEVELS, QuotaConfig

LEVEL_ZH = {"guide": "引导值", "baseline": "基准值", "constraint": "约束值", "advanced": "先进值", "general": "通用值",
            "exceeds": "超约束值", "no_data": "无数据"}
#: Numerator of each target indicator in the monthly indicator frame, its scale to the
#: target's unit, and its denominator (None for totals).
TARGET_FORMULA: dict[str, tuple[str, float, str | None]] = {
    "energy_tce": ("kgce", 1e-3, None),  # 1 tce = 1000 kgce
    "water_m3": ("water_m3", 1.0, None),
    "co2_t": ("t_co2", 1.0, None),
    "kgce_per_m2": ("kgce", 1.0, "floor_area_m2"),
    "kgce_per_person": ("kgce", 1.0, "occupants"),
    "water_m3_per_person": ("water_m3", 1.0, "occupants"),
    "kgco2_per_m2": ("t_co2", 1e3, "floor_area_m2"),  # 1 t = 1000 kg
}
NUMERATORS = ("kgce", "water_m3", "t_co2")


def _standards(config_or_frame) -> pd.DataFrame:
    if isinstance(config_or_frame, QuotaConfig):
        return config_or_frame.standards_frame()
    return config_or_frame


def quota_levels(ind: pd.DataFrame, standards, regions: RegionTree = None) -> pd.DataFrame:
    """Level met per institution and standard indicator (module docstring).

    ind: an indicator frame (one row per institution). standards: a QuotaConfig or its
    `standards_frame()`. regions: Registry / id->parent mapping, so that a standard for
    a region also applies to the regions below it (without: exact region match).
    Returns institution_id, name, region, category, indicator, unit, value, standard_id,
    level, level_zh, guide, baseline, constraint, advanced, general, meets_constraint
    (value within the constraint or general value). Institutions without an applicable
    standard for an indicator have no row for it.
    """
    std = _standards(standards)
    std = std.drop(columns=[c for c in ("name", "source", "unit") if c in std])  # the institution's name wins
    cols = ["institution_id", "name", "region", "category", "indicator", "unit", "value", "standard_id", "level",
            "level_zh", *THREE_LEVELS, *TWO_LEVELS, "meets_constraint"]
    if std.empty or ind.empty:
        return pd.DataFrame(columns=cols)
    base = ind[["institution_id", "region", "category"]].copy()
    base["name"] = ind["name"].to_numpy() if "name" in ind else ""
    anc = region_ancestors_frame(base["region"].dropna().unique(), regions)  # depth 0 = the region itself
    regional = std[std["region"].notna()]
    general = std[std["region"].isna()]
    parts = []
    if len(regional):
        m = base.merge(anc, on="region").merge(regional.drop(columns=["category"]).assign(scat=regional["category"]),
                                               left_on="ancestor", right_on="region", suffixes=("", "_std"))
        parts.append(m.drop(columns=["ancestor", "region_std"]))
    if len(general):
        m = base.merge(general.drop(columns=["category", "region"]).assign(scat=general["category"]), how="cross")
        m["depth"] = 1 << 20
        parts.append(m)
    cand = pd.concat(parts, ignore_index=True)
    cand = cand[cand["scat"].isna() | (cand["scat"] == cand["category"])]
    cand = cand.assign(catspec=cand["scat"].isna().astype(int))
    cand = cand.sort_values(["institution_id", "indicator", "depth", "catspec"], kind="stable")
    best = cand.drop_duplicates(["institution_id", "indicator"], keep="first").reset_index(drop=True)
    # Value of each institution's indicator.
    values = ind.set_index("institution_id")
    v = np.full(len(best), np.nan)
    for indicator in best["indicator"].unique():  # one per standard indicator (few)
        sel = (best["indicator"] == indicator).to_numpy()
        v[sel] = best.loc[sel, "institution_id"].map(values[indicator]).to_numpy(float)
    best["value"] = v
    three = best["constraint"].notna().to_numpy()
    g, b, c = (best[k].to_numpy(float) for k in THREE_LEVELS)
    adv, gen = (best[k].to_numpy(float) for k in TWO_LEVELS)
    finite = np.isfinite(v)
    level = np.where(
        ~finite, "no_data",
        np.where(three,
                 np.select([v <= g, v <= b, v <= c], ["guide", "baseline", "constraint"], "exceeds"),
                 np.select([v <= adv, v <= gen], ["advanced", "general"], "exceeds")))
    best["level"] = level
    best["level_zh"] = best["level"].map(LEVEL_ZH)
    best["meets_constraint"] = finite & np.where(three, v <= c, v <= gen)
    best["unit"] = best["indicator"].map(STANDARD_INDICATORS)
    return best[cols].sort_values(["institution_id", "indicator"]).reset_index(drop=True)


def quota_levels_wide(levels: pd.DataFrame) -> pd.DataFrame:
    """One row per institution, one column per standard indicator (`level_<indicator>`)."""
    if levels.empty:
        return pd.DataFrame({"institution_id": pd.Series(dtype=object)})
    w = levels.pivot(index="institution_id", columns="indicator", values="level")
    w.columns = [f"level_{c}" for c in w.columns]
    return w.reset_index()


def _membership(targets: pd.DataFrame, institutions: pd.DataFrame, regions: RegionTree) -> pd.DataFrame:
    """(t, institution_id) for every target row index t and member institution."""
    parts = []
    inst_t = targets[targets["institution_id"].notna()]
    if len(inst_t):
        parts.append(pd.DataFrame({"t": inst_t.index.to_numpy(), "institution_id": inst_t["institution_id"].to_numpy()}))
    reg_t = targets[targets["institution_id"].isna()]
    if len(reg_t):
        anc = region_ancestors_frame(institutions["region"].dropna().unique(), regions)
        ia = institutions[["institution_id", "region", "category"]].merge(anc.drop(columns="depth"), on="region")
        m = reg_t.reset_index(names="t")[["t", "region", "category"]].merge(
            ia, left_on="region", right_on="ancestor", suffixes=("_t", ""))
        m = m[m["category_t"].isna() | (m["category_t"] == m["category"])]
        parts.append(m[["t", "institution_id"]])
    if not parts:
        return pd.DataFrame({"t": pd.Series(dtype=int), "institution_id": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True)


def _local_as_of(as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    """`as_of` as a naive local timestamp (default: today's local midnight)."""
    ts = pd.Timestamp(as_of if as_of is not None else pd.Timestamp.now().date())
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


def _month_fraction(years: np.ndarray, as_of: pd.Timestamp) -> np.ndarray:
    """[n, 12]: share of each month of year `years[i]` before `as_of` (a local date, or a
    local time: the running day counts pro rata)."""
    out = np.zeros((len(years), 12))
    a_year, a_month = as_of.year, as_of.month
    a_days = (as_of - as_of.replace(day=1).normalize()) / pd.Timedelta(days=1)  # days of the month before as_of
    for m in range(12):  # twelve months
        dim = pd.Period(f"{a_year}-{m + 1:02d}").days_in_month
        past = years < a_year
        out[past, m] = 1.0
        cur = years == a_year
        if m + 1 < a_month:
            out[cur, m] = 1.0
        elif m + 1 == a_month:
            out[cur, m] = a_days / dim
    return out


def _days_fraction(years: np.ndarray, as_of: pd.Timestamp) -> np.ndarray:
    start = pd.to_datetime([f"{y}-01-01" for y in years])
    end = pd.to_datetime([f"{y + 1}-01-01" for y in years])
    elapsed = np.clip(((as_of - start) / pd.Timedelta(days=1)).to_numpy(float), 0, None)
    total = ((end - start) / pd.Timedelta(days=1)).to_numpy(float)
    return np.minimum(elapsed / total, 1.0)


class YearEndProjection(NamedTuple):
    """`project_year_end`'s result, one value per scope."""

    projected: np.ndarray  # year-end value (NaN before any of the year has elapsed)
    elapsed_share: np.ndarray  # share of the year's use normally done before as_of
    method: np.ndarray  # 'last_year' (seasonal shape) | 'flat' (share of days)


def project_year_end(actual_to_date, monthly_last_year, as_of: str | pd.Timestamp | None = None,
                     year: int | None = None, method: str = "last_year") -> YearEndProjection:
    """Year-end projection of running totals, one per scope (module docstring).

    actual_to_date: [n] the year-to-date values (a total, or an intensity over a fixed
    denominator: both scale the same way). monthly_last_year: [n, 12] the scopes' use
    of each month of the year before (the members with data in all twelve months; the
    shape only, so any unit). as_of: data up to (not including) this local date or
    time. year: the projected year (default `as_of`'s year; an earlier year is
    complete: its share is 1). method: 'last_year' (seasonal where last year has all
    twelve months, else flat) or 'flat' (share of days).

    elapsed_share = sum(last_year x month elapsed share) / sum(last_year) (seasonal) or
    days elapsed / days in the year (flat); projected = actual / elapsed_share.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"projection method must be one of {', '.join(PROJECTIONS)}, not {method!r}")
    as_of = _local_as_of(as_of)
    actual = np.asarray(actual_to_date, dtype=float).reshape(-1)
    prev = np.asarray(monthly_last_year, dtype=float).reshape(len(actual), 12)
    years = np.full(len(actual), year or as_of.year)
    seasonal_ok = (prev > 0).all(axis=1) & (method == "last_year")
    total = prev.sum(axis=1)
    seasonal = np.divide((prev * _month_fraction(years, as_of)).sum(axis=1), total, out=np.zeros(len(actual)),
                         where=total > 0)
    share = np.where(seasonal_ok, seasonal, _days_fraction(years, as_of))
    projected = np.divide(actual, share, out=np.full(len(actual), np.nan), where=share > 0)
    return YearEndProjection(projected, share, np.where(seasonal_ok, "last_year", "flat").astype(object))


def _scope_sums(monthly: pd.DataFrame, institutions: pd.DataFrame, member: pd.DataFrame, n_s: int, year: int,
                as_of: pd.Timestamp) -> tuple[dict[str, np.ndarray], pd.DataFrame, np.ndarray]:
    """Per scope (member: t, institution_id): {numerator: [n_s, 2 (last year, this
    year to as_of), 12 months]} (last year from the members with data in all twelve of
    its months), the denominators (floor_area_m2, occupants) and the number of members
    with data this year."""
    period = pd.DatetimeIndex(monthly["period_start"])
    period = period.tz_localize(None) if period.tz is not None else period
    py, pm = period.year.to_numpy(), period.month.to_numpy() - 1
    keep = np.asarray((period < as_of) | (py < year)) & ((py == year) | (py == year - 1))
    universe = pd.Index(institutions["institution_id"])
    ic = universe.get_indexer(monthly["institution_id"].to_numpy())
    n_u = len(universe)
    cell = (ic * 2 + (py == year)) * 12 + pm
    dense = {n: np.bincount(cell[keep], weights=monthly[n].to_numpy(float)[keep], minlength=n_u * 24)
             .reshape(n_u, 2, 12) for n in NUMERATORS}
    has_cur = np.bincount(ic[keep & (py == year)], weights=monthly["has_data"].to_numpy(bool)[keep & (py == year)],
                          minlength=n_u) > 0
    mt = member["t"].to_numpy(np.int64)
    mi = universe.get_indexer(member["institution_id"].to_numpy())
    arr = {}
    for n in NUMERATORS:
        d = dense[n]
        # Last year's shape comes from the members with data in all twelve months of it,
        # so one member's missing month does not bend the scope's shape.
        complete = (d[:, 0, :] > 0).all(axis=1)
        a = np.zeros((n_s, 2, 12))
        for m in range(12):  # twelve months
            a[:, 1, m] = np.bincount(mt, weights=d[mi, 1, m], minlength=n_s)
            a[:, 0, m] = np.bincount(mt, weights=d[mi, 0, m] * complete[mi], minlength=n_s)
        arr[n] = a
    # Denominators: members with data this year.
    hc = has_cur[mi]
    dsum = pd.DataFrame({c: np.bincount(mt, weights=institutions[c].to_numpy(float)[mi] * hc, minlength=n_s)
                         for c in ("floor_area_m2", "occupants")})
    n_inst = np.bincount(mt, weights=hc, minlength=n_s).astype(int)
    return arr, dsum, n_inst


def _institutions(monthly: pd.DataFrame) -> pd.DataFrame:
    return monthly.drop_duplicates("institution_id")[["institution_id", "region", "category", "floor_area_m2",
                                                      "occupants"]]


def _as_of_label(as_of: pd.Timestamp) -> str:
    """A date for a midnight, else the local time to the minute."""
    return as_of.date().isoformat() if as_of == as_of.normalize() else as_of.isoformat(timespec="minutes")


def evaluate_targets(config: QuotaConfig, monthly: pd.DataFrame, as_of: str | pd.Timestamp | None = None,
                     regions: RegionTree = None, year: int | None = None) -> pd.DataFrame:
    """Evaluate every target of `config` (of `year`, default: `as_of`'s year).

    monthly: an indicator frame per institution and month (`models.api.indicators(...,
    by_period='month')` or `indicators_from_sums(..., by_period=True)` of monthly sums)
    covering the target year up to `as_of` and, for the seasonal shape, the year before.
    as_of: data up to (not including) this local date (or local time, for a running
    day); default today.
    regions: Registry / id->parent mapping so a region target covers its subtree.

    Returns one row per target and indicator: target_id, name, year, scope, region,
    category, institution_id, indicator, unit, basis, limit, actual (year to date),
    elapsed_share, prorated_limit, projected (year end), projected_ratio (projected /
    limit), status, method ('last_year' | 'flat'), institutions (members with data),
    as_of, factor_set.
    """
    as_of = _local_as_of(as_of)
    year = year or as_of.year
    cols = ["target_id", "name", "year", "scope", "region", "category", "institution_id", "indicator", "unit",
            "basis", "limit", "actual", "elapsed_share", "prorated_limit", "projected", "projected_ratio", "status",
            "method", "institutions", "as_of", "factor_set"]
    tf = config.targets_frame()
    tf = tf[tf["year"] == year].reset_index(drop=True)
    if tf.empty:
        return pd.DataFrame(columns=cols)
    if "basis" in monthly and len(monthly) and (monthly["basis"] != config.basis).any():
        raise ValueError(f"the quota file's targets are on the {config.basis} basis but the indicators are on "
                         f"{sorted(monthly['basis'].unique())}: recompute them on the same basis")
    # Targets as scopes (one per target id), rows of tf refer to them.
    scopes = tf.drop_duplicates("target_id").reset_index(drop=True)
    sidx = pd.Index(scopes["target_id"]).get_indexer(tf["target_id"])
    institutions = _institutions(monthly)
    member = _membership(scopes, institutions, regions)
    arr, dsum, n_inst = _scope_sums(monthly, institutions, member, len(scopes), year, as_of)

    out = tf.copy()
    actual = np.zeros(len(tf))
    share = np.zeros(len(tf))
    projected = np.full(len(tf), np.nan)
    method = np.empty(len(tf), dtype=object)
    for ind_name, (num, scale, denom) in TARGET_FORMULA.items():  # seven indicators
        sel = (tf["indicator"] == ind_name).to_numpy()
        if not sel.any():
            continue
        s = sidx[sel]
        a = arr[num]
        tot = a[s, 1, :].sum(axis=1) * scale
        if denom is not None:
            d = dsum[denom].to_numpy(float)[s]
            tot = np.divide(tot, d, out=np.full(len(s), np.nan), where=d > 0)
        proj = project_year_end(tot, a[s, 0, :], as_of, year, config.projection)
        actual[sel] = tot
        share[sel] = proj.elapsed_share
        projected[sel] = proj.projected
        method[sel] = proj.method
    limit = out["limit"].to_numpy(float)
    members = n_inst[sidx]
    ratio = projected / limit
    status = np.select(
        [members == 0, actual > limit, projected > limit, ratio >= config.warning_ratio],
        ["no_data", "breach", "projected_breach", "warning"], "ok")
    out["basis"] = config.basis
    out["actual"] = actual
    out["elapsed_share"] = share
    out["prorated_limit"] = limit * share
    out["projected"] = projected
    out["projected_ratio"] = ratio
    out["status"] = status
    out["method"] = method
    out["institutions"] = members
    out["as_of"] = _as_of_label(as_of)
    out["factor_set"] = monthly["factor_set"].iloc[0] if "factor_set" in monthly and len(monthly) else ""
    return out[cols]


#: The totals of a scope the dashboard projects when the scope has no target.
TOTAL_INDICATORS: tuple[str, ...] = ("energy_tce", "water_m3", "co2_t")


def project_scope_totals(monthly: pd.DataFrame, as_of: str | pd.Timestamp | None = None, year: int | None = None,
                         method: str = "last_year", institution_ids=None) -> pd.DataFrame:
    """Year-end projection of one scope's totals, for a scope without a target.

    The same arithmetic as `evaluate_targets` (same members' seasonal shape, same
    `project_year_end`), so a scope's projection does not change when a target is set.
    monthly: the monthly indicator frame (as for `evaluate_targets`); institution_ids:
    the scope's institutions (default: every institution of `monthly`); method: the
    quota file's `projection`. Returns one row per total indicator (energy_tce tce,
    water_m3 m3, co2_t tCO2): indicator, unit, actual (year to date), elapsed_share,
    projected (NaN without data), method, institutions (members with data this year).
    """
    as_of = _local_as_of(as_of)
    year = year or as_of.year
    if len(monthly) and institution_ids is not None:
        monthly = monthly[monthly["institution_id"].isin(list(institution_ids))]
    if len(monthly):
        institutions = _institutions(monthly)
        member = pd.DataFrame({"t": 0, "institution_id": institutions["institution_id"].to_numpy()})
        arr, _dsum, n_inst = _scope_sums(monthly, institutions, member, 1, year, as_of)
    else:
        arr, n_inst = {n: np.zeros((1, 2, 12)) for n in NUMERATORS}, np.zeros(1, int)
    nums = [TARGET_FORMULA[i] for i in TOTAL_INDICATORS]
    actual = np.array([arr[num][0, 1, :].sum() * scale for num, scale, _denom in nums])
    prev = np.stack([arr[num][0, 0, :] for num, _scale, _denom in nums])
    proj = project_year_end(actual, prev, as_of, year, method)
    members = int(n_inst[0])
    return pd.DataFrame({"indicator": list(TOTAL_INDICATORS), "unit": [TARGET_INDICATORS[i] for i in TOTAL_INDICATORS],
                         "actual": actual, "elapsed_share": proj.elapsed_share,
                         "projected": np.where(members > 0, proj.projected, np.nan), "method": proj.method,
                         "institutions": members})

__all__ = ["LEVEL_ZH", "TARGET_FORMULA", "TARGET_INDICATORS", "TOTAL_INDICATORS", "YearEndProjection",
           "evaluate_targets", "project_scope_totals", "project_year_end", "quota_levels", "quota_levels_wide"]
