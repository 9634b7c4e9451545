"""The monthly statistical report (`civicwatt report monthly --month YYYY-MM`).

Every figure comes from the models API (`energy_use` -> `indicators` -> `aggregate`),
on the quota file's electricity basis (当量值 by default), so it matches the dashboard,
the ledger and the alerts. Sheets:

* ``institutions``: per institution the month's electricity, water, natural gas, heat,
  vehicle fuel (gasoline, diesel, kg) and the other fuels, kgce and tce, tCO2, the
  month's intensities (kgce/m2, kgce/person, m3/person, kgCO2/m2: one month's worth,
  not annualised), the same month of last year and the year-on-year change of tce,
  electricity and water (a fraction: 0.05 = +5 %), shown only where both months meet
  the completeness rule (`models.compare.comparable_change`,
  `models.completeness.complete_span`), else empty with `yoy_reason`
  (current_incomplete, previous_incomplete, no_previous); groups compare like for
  like, the members complete in both months (ratio of their sums); the
  year to date (tce, water, tCO2), the estimated share and the data completeness.
* ``regions``: the same totals per region, each region with its whole subtree;
  ``categories`` per category; ``region_category`` per region (subtree) and category.
  Intensities of groups are ratios of sums over the institutions with data.
* ``incomplete``: institutions whose month is not fully measured, with the reasons:
  ``no_data`` (nothing at all), ``meter_without_data`` (a registered meter sent no
  sample), ``incomplete_days`` (a meter had days under 90 % of its expected samples,
  domain.md §5, by `models.completeness.completeness_from_counts`, the rule of the
  ``data_completeness`` alert and the dashboard: a day whose samples are all backfilled
  or imported is judged at the resolution it carries, any other day at the meter's
  poll interval), ``estimated`` (part of the month was interpolated over gaps).
* ``about``: month, basis, factor set, store, and the definitions above.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import localtime
from models.api import aggregate, energy_use, indicators
from models.compare import comparable_change
from models.completeness import (
    COMPLETENESS_TARGET,
    complete_span,
    completeness_from_counts,
    completeness_sums,
    judged_days,
    live_meters,
    sums_of_daily,
)
from models.factors import BASIS_LABEL, FactorSet, load_factors, normalize_basis
from quotas.submissions import MeteredSubmissions
from reports.ledger import LABELS
from reports.xlsx import PCT, QTY, Col, new_workbook, write_sheet

MONTH_TOTALS = ["electricity_kwh", "water_m3", "gas_m3", "heat_gj", "gasoline_kg", "diesel_kg", "vehicle_fuel_kg",
                "lpg_kg", "coal_kg", "pv_kwh", "kgce", "tce", "t_co2"]
MONTH_INTENSITIES = ["kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2"]
YOY = [("tce", "yoy_tce"), ("electricity_kwh", "yoy_electricity"), ("water_m3", "yoy_water")]
YTD = [("tce", "ytd_tce"), ("water_m3", "ytd_water_m3"), ("t_co2", "ytd_t_co2")]
REPORT_LABELS = {
    **LABELS,
    "vehicle_fuel_kg": ("车辆用油 汽油+柴油 (kg)", QTY, 12),
    "prev_tce": ("上年同期综合能耗 (tce)", "#,##0.000", 12), "prev_electricity_kwh": ("上年同期电 (kWh)", QTY, 13),
    "prev_water_m3": ("上年同期水 (m3)", QTY, 12),
    "yoy_tce": ("综合能耗同比", PCT, 9), "yoy_electricity": ("用电同比", PCT, 9), "yoy_water": ("用水同比", PCT, 9),
    "ytd_tce": ("本年累计综合能耗 (tce)", "#,##0.000", 12), "ytd_water_m3": ("本年累计用水 (m3)", QTY, 12),
    "ytd_t_co2": ("本年累计二氧化碳 (tCO2)", "#,##0.000", 12),
    "yoy_reason": ("同比空白原因", None, 14),
    "completeness": ("数据完整率 (按表日)", PCT, 10), "water_estimated_share": ("用水估算占比", PCT, 9),
    "reasons": ("原因", None, 36), "meters_without_data": ("无数据计量表", None, 24),
    "incomplete_meter_days": ("不完整表日数", "0", 10), "worst_meter": ("最差计量表", None, 14),
    "worst_day_completeness": ("最差日完整率", PCT, 10),
}
IDENT = ["institution_id", "name", "region", "category", "floor_area_m2", "occupants"]


@dataclass
class ReportTables:
    month: str
    basis: str
    factor_set: str
    institutions: pd.DataFrame
    regions: pd.DataFrame
    categories: pd.DataFrame
    region_category: pd.DataFrame
    incomplete: pd.DataFrame
    about: pd.DataFrame


def parse_month(month: str) -> pd.Timestamp:
    """'YYYY-MM' -> the month's first day (naive); ValueError otherwise."""
    try:
        if len(month) != 7 or month[4] != "-":
            raise ValueError
        return pd.Timestamp(f"{month}-01")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, not {month!r}") from None


def _with_derived(ind: pd.DataFrame) -> pd.DataFrame:
    return ind.assign(vehicle_fuel_kg=ind["gasoline_kg"] + ind["diesel_kg"])


def _add_comparisons(frame: pd.DataFrame, key: list[str], prev: pd.DataFrame, ytd: pd.DataFrame,
                     cur_ok: np.ndarray, prev_ok: np.ndarray, like_for_like: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """prev_<col> (the same month last year), yoy_<col> and yoy_reason
    (`models.compare.comparable_change`: a change only where both months are complete,
    `cur_ok` / `prev_ok` per row of `frame`), ytd_<col>. `like_for_like`: for groups, the
    current and previous sums over the members complete in both months (columns
    cur_<col>, prev_<col> by `key`), of which the change is taken."""
    p = prev.set_index(key)
    y = ytd.set_index(key)
    idx = pd.MultiIndex.from_frame(frame[key]) if len(key) > 1 else pd.Index(frame[key[0]])
    out = frame.copy()
    lfl = like_for_like.set_index(key) if like_for_like is not None and len(like_for_like) else None
    for col, name in YOY:
        prev_vals = p[col].reindex(idx).fillna(0.0) if len(p) else pd.Series(0.0, index=idx)
        out[f"prev_{col}"] = prev_vals.to_numpy(float)
        if like_for_like is None:
            cur_v, prev_v = out[col].to_numpy(float), prev_vals.to_numpy(float)
        elif lfl is None:
            cur_v = prev_v = np.full(len(out), np.nan)
        else:
            cur_v = lfl[f"cur_{col}"].reindex(idx).to_numpy(float)
            prev_v = lfl[f"prev_{col}"].reindex(idx).to_numpy(float)
        out[name], reason = comparable_change(cur_v, prev_v, cur_ok, prev_ok)
        if col == "tce":
            out["yoy_reason"] = reason
    for col, name in YTD:
        out[name] = (y[col].reindex(idx).fillna(0.0) if len(y) else pd.Series(0.0, index=idx)).to_numpy(float)
    return out


def data_completeness(counts: pd.DataFrame, meters: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                      tz: str, live_interval: pd.Series) -> pd.DataFrame:
    """Per meter of `meters` over the local days in [start, end) (naive local
    midnights): days, incomplete_days (under `COMPLETENESS_TARGET` of the expected
    samples), worst_day (lowest share), completeness (mean day share), samples. Each
    day's share is `models.completeness.completeness_from_counts` (the rule of the
    `data_completeness` alert and the dashboard: an all-backfilled/imported day at the
    resolution it carries, any other day at the live poll interval `live_interval`) of
    the materialised day counts `counts` (`Store.period_counts("day", ...)`, starting
    `COMPLETENESS_LOOKBACK_DAYS` before `start`): no raw sample is read. A meter
    absent from it (no poll interval, no sample) has share 0 every day."""
    s0, s1 = localtime.first_instant_of(start, tz), localtime.first_instant_of(end, tz)
    days = judged_days(s0, s1, "span")[0]
    sums = sums_of_daily(completeness_from_counts(counts, live_interval, s0, s1), days)
    return data_completeness_of_sums(sums, meters, len(days))


def data_completeness_of_sums(sums: pd.DataFrame, meters: pd.DataFrame, n_days: int) -> pd.DataFrame:
    """`data_completeness` from the rule's sums over the span (`sums`: SUM_COLUMNS,
    `models.completeness.completeness_sums(..., by='span')`, one row per meter with a
    sample; `n_days` judged days): a day without a sample has share 0."""
    ids = pd.Index(meters["meter_id"].to_numpy(object), name="meter_id")
    s = sums.drop_duplicates("meter_id").set_index("meter_id").reindex(ids)
    present = s["days"].fillna(0).to_numpy(np.int64)
    complete = s["complete"].fillna(0).to_numpy(np.int64)
    worst = np.where(present == n_days, s["share_min"].fillna(0.0).to_numpy(float), 0.0)
    return pd.DataFrame({"meter_id": ids.to_numpy(object), "days": n_days,
                         "incomplete_days": n_days - complete,
                         "worst_day": worst if n_days else np.nan,
                         "completeness": s["share_sum"].fillna(0.0).to_numpy(float) / n_days if n_days else np.nan,
                         "samples": s["samples"].fillna(0).to_numpy(np.int64).astype(int)})


def incomplete_institutions(month_ind: pd.DataFrame, comp: pd.DataFrame, meters: pd.DataFrame) -> pd.DataFrame:
    """The `incomplete` sheet (module docstring) from the month's indicators and the
    meters' completeness."""
    c = comp.merge(meters[["meter_id", "institution_id"]], on="meter_id")
    silent = c[c["samples"] == 0].groupby("institution_id")["meter_id"].agg(lambda s: ", ".join(sorted(s)))
    partial = c[c["samples"] > 0]
    inc_days = partial.groupby("institution_id")["incomplete_days"].sum()
    worst = partial.sort_values(["institution_id", "worst_day", "meter_id"]).drop_duplicates("institution_id")
    worst = worst.set_index("institution_id")
    inst_comp = c.groupby("institution_id")["completeness"].mean()
    df = month_ind[["institution_id", "name", "region", "category", "has_data", "estimated_share",
                    "water_estimated_share"]].copy()
    iid = df["institution_id"]
    df["meters_without_data"] = iid.map(silent).astype(object).fillna("")
    df["incomplete_meter_days"] = iid.map(inc_days).fillna(0).astype(int)
    df["worst_meter"] = iid.map(worst["meter_id"]).astype(object).fillna("")
    df["worst_day_completeness"] = iid.map(worst["worst_day"])
    df["completeness"] = iid.map(inst_comp)
    flags = pd.DataFrame({
        "no_data": ~df["has_data"].to_numpy(bool),
        "meter_without_data": (df["meters_without_data"] != "").to_numpy(),
        "incomplete_days": (df["incomplete_meter_days"] > 0).to_numpy(),
        "estimated": ((df["estimated_share"] > 0) | (df["water_estimated_share"] > 0)).to_numpy(),
    })
    reasons = flags.apply(lambda r: ", ".join(k for k, v in r.items() if v), axis=1) if len(flags) else pd.Series([], dtype=object)
    df["reasons"] = reasons.to_numpy(object)
    return df[flags.any(axis=1).to_numpy()].reset_index(drop=True)


def monthly_report(store, registry, month: str, factors: FactorSet | None = None,
                   basis: str = "equivalent") -> ReportTables:
    """The report tables of `month` ('YYYY-MM', local time) from the store."""
    factors = factors or load_factors()
    basis = normalize_basis(basis)
    tz = registry.timezone
    m0 = parse_month(month)
    m1 = m0 + pd.offsets.MonthBegin(1)
    y0 = m0.replace(month=1)
    p0, p1 = m0 - pd.DateOffset(years=1), m1 - pd.DateOffset(years=1)
    # sums only (the month, the year to date, the month a year before): the store sums
    # every meter but heating ones per month (`energy_use(..., sums="month")`)
    use = energy_use(store, registry, y0, m1, "day", factors, sums="month")
    prev_use = energy_use(store, registry, p0, p1, "day", factors, sums="month")
    in_month = (pd.DatetimeIndex(use["period_start"]) >= localtime.first_instant_of(m0, tz)) if len(use) else np.zeros(0, bool)
    ind = _with_derived(indicators(use[in_month], registry, factors, basis, freq="day"))
    prev = _with_derived(indicators(prev_use, registry, factors, basis, freq="day"))
    ytd = _with_derived(indicators(use, registry, factors, basis, freq="day"))

    meters = registry.meters_frame()
    s0, s1 = localtime.first_instant_of(m0, tz), localtime.first_instant_of(m1, tz)
    live_iv = live_meters(meters).set_index("meter_id")["interval_s"].astype(float)
    # the rule summed per meter over the month by the store (no meter-day in memory); the
    # main meters' sums are also the month's submissions (one month: one group)
    month_sums = completeness_sums(store, live_iv, s0, s1, meters["meter_id"].tolist(), by="span")
    comp = data_completeness_of_sums(month_sums, meters, len(judged_days(s0, s1, "span")[0]))
    sub = MeteredSubmissions(store, registry, factors)
    ids = ind["institution_id"]
    cur_ok = complete_span(sub.span(s0, s1, sums=month_sums), ids).to_numpy(bool)
    prev_ok = complete_span(sub.span(p0.tz_localize(tz), p1.tz_localize(tz)), ids).to_numpy(bool)
    both = set(ids[cur_ok & prev_ok])
    inst = _add_comparisons(ind, ["institution_id"], prev, ytd, cur_ok, prev_ok)
    c = comp.merge(meters[["meter_id", "institution_id"]], on="meter_id")
    inst["completeness"] = inst["institution_id"].map(c.groupby("institution_id")["completeness"].mean())

    def groups(by: list[str]) -> pd.DataFrame:
        regions = registry if "region" in by else None
        cur = _with_derived(aggregate(ind, by, regions=regions))
        # like for like: the members complete in both months (ratio of their sums)
        lfl = None
        if both:
            a = _with_derived(aggregate(ind[ind["institution_id"].isin(both)], by, regions=regions))
            b = _with_derived(aggregate(prev[prev["institution_id"].isin(both)], by, regions=regions))
            lfl = a[by].assign(**{f"cur_{c}": a[c].to_numpy(float) for c, _ in YOY}).merge(
                b[by].assign(**{f"prev_{c}": b[c].to_numpy(float) for c, _ in YOY}), on=by, how="left")
        g_idx = pd.MultiIndex.from_frame(cur[by]) if len(by) > 1 else pd.Index(cur[by[0]])
        has = lfl.set_index(by).index if lfl is not None else pd.Index([])
        ok = g_idx.isin(has)
        return _add_comparisons(cur, by, _with_derived(aggregate(prev, by, regions=regions)),
                                _with_derived(aggregate(ytd, by, regions=regions)), ok, ok,
                                like_for_like=lfl if lfl is not None else cur[by].iloc[:0])

    about = pd.DataFrame({"key": ["month", "basis", "factor_set", "store", "registry", "institutions",
                                  "with_data", "completeness_target"],
                          "value": [month, BASIS_LABEL[basis], factors.id, getattr(store, "url", ""),
                                    registry.source, len(ind), int(ind["has_data"].sum()),
                                    f"{COMPLETENESS_TARGET:.0%}"]})
    return ReportTables(month=month, basis=basis, factor_set=factors.id,
                        institutions=inst.sort_values("institution_id", kind="stable").reset_index(drop=True),
                        regions=groups(["region"]), categories=groups(["category"]),
                        region_category=groups(["region", "category"]),
                        incomplete=incomplete_institutions(ind, comp, meters), about=about)


def _col(key: str) -> Col:
    label, fmt, width = REPORT_LABELS.get(key, (key, None, 12))
    return Col(key, label, fmt, width)


def write_report(tables: ReportTables, out: str | Path) -> Path:
    """Write the report workbook (.xlsx)."""
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        raise ValueError(f"{out}: the monthly report is an .xlsx workbook")
    notes = [f"{tables.month} 公共机构能源资源消耗统计月报 / Monthly statistical report {tables.month} — "
             f"电力折标口径 basis: {BASIS_LABEL[tables.basis]}; 因子集 factor set: {tables.factor_set}"]
    comparisons = ["prev_tce", "yoy_tce", "prev_electricity_kwh", "yoy_electricity", "prev_water_m3", "yoy_water",
                   "yoy_reason",
                   *[n for _, n in YTD]]
    wb = new_workbook()
    icols = [*IDENT, "has_data", *MONTH_TOTALS, *MONTH_INTENSITIES, *comparisons, "estimated_share", "completeness"]
    write_sheet(wb, "institutions", tables.institutions, [_col(c) for c in icols], freeze_cols=2, notes=notes)
    gcols = ["institutions", "institutions_with_data", "floor_area_m2", "occupants", *MONTH_TOTALS,
             *MONTH_INTENSITIES, *comparisons, "estimated_share"]
    write_sheet(wb, "regions", tables.regions, [_col("region"), *[_col(c) for c in gcols]], freeze_cols=1, notes=notes)
    write_sheet(wb, "categories", tables.categories, [_col("category"), *[_col(c) for c in gcols]], freeze_cols=1,
                notes=notes)
    write_sheet(wb, "region_category", tables.region_category,
                [_col("region"), _col("category"), *[_col(c) for c in gcols]], freeze_cols=2, notes=notes)
    ccols = ["institution_id", "name", "region", "category", "reasons", "meters_without_data",
             "incomplete_meter_days", "worst_meter", "worst_day_completeness", "completeness", "estimated_share",
             "water_estimated_share"]
    write_sheet(wb, "incomplete", tables.incomplete, [_col(c) for c in ccols], freeze_cols=2, notes=notes)
    write_sheet(wb, "about", tables.about, [Col("key", "项目", None, 22), Col("value", "内容", None, 70)],
                freeze_cols=0)
    wb.save(out)
    return out

