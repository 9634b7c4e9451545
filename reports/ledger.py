"""The annual carbon ledger (interfaces.md, "Annual carbon ledger").

Computed from the models API only (`models.api.period_sums` (`energy_sums`) -> `energy_ledger`,
`indicators_from_sums`, `rank`) and the quota levels of `quotas.evaluate`, so every
figure equals what the dashboard and the reports show.

Sheets:

* ``ledger``: one row per institution and energy: institution_id, name, region,
  category, year, energy, quantity, unit, kgce, scope (1 direct, 2 purchased; empty for
  water and PV generation, which carry no emissions), emission_factor (kgCO2 per unit;
  electricity: the location-based grid factor, kgCO2/kWh = tCO2/MWh), factor_unit,
  factor_source, t_co2, then kgce_per_unit, coal_source, provisional, basis, factor_set,
  and the accounting boundary: quantity, kgce and t_co2 are net (inside the boundary);
  gross_quantity = quantity + excluded_quantity, excluded_kgce, boundary_reasons (家属区,
  出租, 独立法人: the registry's `boundary: excluded` meters and bills).
* ``summary``: one row per institution: totals (net; gross_kgce and excluded_kgce beside;
  location-based t_co2_scope2 and, beside it, market-based t_co2_scope2_market: the
  electricity not covered by green-power purchases at the national factor for consumers
  of market-traded green power, `market_factor`), floor area, occupants, kgce_per_m2,
  kgce_per_person, water_m3_per_person, kgco2_per_m2, heating and non-heating
  intensities, the quota level met for each standard indicator (guide / baseline /
  constraint / exceeds; advanced / general for two-level standards), how many are
  within the constraint, the rank by kgce_per_m2 in its category (1 = most efficient,
  across the registry; institutions without data are not ranked) and the peer count.
* ``totals``: the same totals per region (each region with its subtree) and category.
* ``factors``: the factor set used, every factor with its source, `used` marking the
  ones that appear in this ledger.

The CSV is the ledger sheet: UTF-8 with a byte-order mark (so Excel shows Chinese
names), "\\n" line ends, rows sorted by institution_id then energy (the order of
`core.vocab.ENERGIES`), fixed decimals per column. The same inputs give a
byte-identical file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.access import scoped_registry
from core.vocab import ENERGIES
from models.api import (
    aggregate,
    energy_ledger,
    green_power_kwh,
    indicators_from_sums,
    market_scope2_t,
    period_sums,
    rank,
)
from models.factors import BASIS_LABEL, FactorSet, load_factors, normalize_basis
from quotas.config import STANDARD_INDICATORS, QuotaConfig
from quotas.evaluate import LEVEL_ZH, quota_levels
from reports.xlsx import FACTOR, INT, PCT, QTY, QTY3, Col, new_workbook, write_sheet

LEDGER_COLUMNS = ["institution_id", "name", "region", "category", "year", "energy", "quantity", "unit", "kgce",
                  "scope", "emission_factor", "factor_unit", "factor_source", "t_co2", "kgce_per_unit",
                  "coal_source", "provisional", "basis", "factor_set", "gross_quantity", "excluded_quantity",
                  "excluded_kgce", "boundary_reasons"]
#: Decimal places of each float column in the CSV (quantities to 1/1000 of a unit,
#: tCO2 to the kg, factors as published).
CSV_DECIMALS = {"quantity": 3, "kgce": 3, "emission_factor": 6, "t_co2": 6, "kgce_per_unit": 6, "gross_quantity": 3,
                "excluded_quantity": 3, "excluded_kgce": 3}
SUMMARY_TOTALS = ["electricity_kwh", "water_m3", "gas_m3", "heat_gj", "gasoline_kg", "diesel_kg", "lpg_kg",
                  "coal_kg", "pv_kwh", "kgce", "tce", "heating_kgce", "nonheating_kgce", "vehicle_kgce",
                  "t_co2_scope1", "t_co2_scope2", "t_co2"]
SUMMARY_INTENSITIES = ["kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2",
                       "heating_kgce_per_m2", "nonheating_kgce_per_m2"]
RANK_INDICATOR = "kgce_per_m2"

LABELS = {
    "institution_id": ("单位编码", None, 14), "name": ("单位名称", None, 24), "region": ("地区", None, 10),
    "category": ("类别", None, 11), "year": ("年度", "0", 7), "energy": ("能源品种", None, 12),
    "quantity": ("实物量", QTY, 14), "unit": ("单位", None, 7), "kgce": ("折标煤 (kgce)", QTY, 14),
    "scope": ("范围 (1 直接 / 2 间接)", "0", 9), "emission_factor": ("排放因子", FACTOR, 11),
    "factor_unit": ("因子单位", None, 13), "factor_source": ("因子来源", None, 40),
    "t_co2": ("二氧化碳 (tCO2)", QTY3, 14), "kgce_per_unit": ("折标系数 (kgce/单位)", FACTOR, 12),
    "coal_source": ("折标系数来源", None, 36), "provisional": ("暂定值", None, 8), "basis": ("电力折标口径", None, 12),
    "factor_set": ("因子集", None, 12),
    "floor_area_m2": ("建筑面积 (m2)", INT, 12), "heated_area_m2": ("采暖面积 (m2)", INT, 12),
    "occupants": ("用能人数", INT, 9), "has_data": ("有数据", None, 7),
    "electricity_kwh": ("电 (kWh)", QTY, 14), "water_m3": ("水 (m3)", QTY, 12), "gas_m3": ("天然气 (m3)", QTY, 12),
    "heat_gj": ("热力 (GJ)", QTY, 11), "gasoline_kg": ("汽油 (kg)", QTY, 11), "diesel_kg": ("柴油 (kg)", QTY, 11),
    "lpg_kg": ("液化石油气 (kg)", QTY, 11), "coal_kg": ("煤 (kg)", QTY, 11), "pv_kwh": ("光伏发电 (kWh)", QTY, 12),
    "tce": ("综合能耗 (tce)", QTY3, 12), "heating_kgce": ("采暖能耗 (kgce)", QTY, 13),
    "nonheating_kgce": ("非采暖能耗 (kgce)", QTY, 13), "vehicle_kgce": ("车辆用油 (kgce)", QTY, 12),
    "t_co2_scope1": ("直接排放 (tCO2)", QTY3, 12), "t_co2_scope2": ("间接排放 (tCO2)", QTY3, 12),
    "kgce_per_m2": ("单位建筑面积能耗 (kgce/m2)", QTY, 13), "kgce_per_person": ("人均综合能耗 (kgce/人)", QTY, 13),
    "water_m3_per_person": ("人均用水量 (m3/人)", QTY, 12), "kgco2_per_m2": ("单位面积碳排放 (kgCO2/m2)", QTY, 13),
    "heating_kgce_per_m2": ("单位采暖面积采暖能耗 (kgce/m2)", QTY, 14),
    "nonheating_kgce_per_m2": ("单位面积非采暖能耗 (kgce/m2)", QTY, 14),
    "estimated_share": ("估算占比", PCT, 9), "quota_within_constraint": ("达到约束值的定额指标数", "0", 10),
    "quota_indicators": ("适用定额指标数", "0", 9), "quota_levels_met": ("定额达标情况", None, 40),
    "rank_in_category": ("同类排名 (1=最优)", "0", 10), "category_peers": ("同类参评数", "0", 9),
    "institutions": ("单位数", INT, 8), "institutions_with_data": ("有数据单位数", INT, 9),
    "gross_quantity": ("实物量 总量 (含边界外)", QTY, 14), "excluded_quantity": ("边界外扣除量", QTY, 13),
    "excluded_kgce": ("边界外扣除 (kgce)", QTY, 13), "gross_kgce": ("折标煤 总量 (含边界外, kgce)", QTY, 14),
    "boundary_reasons": ("扣除原因", None, 16),
    "green_power_kwh": ("绿电交易电量 (kWh)", QTY, 13), "t_co2_scope2_market": ("间接排放 市场法 (tCO2)", QTY3, 13),
    "t_co2_market": ("二氧化碳 市场法 (tCO2)", QTY3, 13), "market_factor": ("市场法电力因子", FACTOR, 11),
}


@dataclass
class LedgerTables:
    year: int
    basis: str
    factor_set: str
    ledger: pd.DataFrame
    summary: pd.DataFrame
    totals: pd.DataFrame
    factors: pd.DataFrame


def _col(key: str) -> Col:
    label, fmt, width = LABELS.get(key, (key, None, 12))
    return Col(key, f"{label}" if label else key, fmt, width)


def _with_boundary(led: pd.DataFrame, excl: pd.DataFrame, reasons: pd.DataFrame | None) -> pd.DataFrame:
    """Ledger rows (net) with gross_quantity, excluded_quantity, excluded_kgce and
    boundary_reasons from the excluded use's ledger rows `excl`; an energy used only
    outside the boundary gets a row with a net of zero."""
    key = ["institution_id", "energy"]
    if len(excl):
        only = excl.merge(led[key], on=key, how="left", indicator=True)
        only = only[only["_merge"] == "left_only"].drop(columns="_merge")
        led = pd.concat([led, only.assign(quantity=0.0, kgce=0.0, t_co2=0.0)], ignore_index=True)
        e = excl.set_index(key)
        idx = pd.MultiIndex.from_frame(led[key])
        ex_q = e["quantity"].reindex(idx).fillna(0.0).to_numpy(float)
        ex_k = e["kgce"].reindex(idx).fillna(0.0).to_numpy(float)
    else:
        ex_q = ex_k = np.zeros(len(led))
    led = led.assign(gross_quantity=led["quantity"].to_numpy(float) + ex_q, excluded_quantity=ex_q,
                     excluded_kgce=ex_k)
    text = pd.Series(dtype=object)
    if reasons is not None and len(reasons):
        text = reasons.drop_duplicates().sort_values([*key, "boundary_reason"]).groupby(key)["boundary_reason"].agg(
            "、".join)
    lookup = text.reindex(pd.MultiIndex.from_frame(led[key])).to_numpy(object) if len(text) else np.full(len(led), "")
    led["boundary_reasons"] = np.where(ex_q != 0, pd.Series(lookup).fillna("").to_numpy(object), "")
    return led


def ledger_from_sums(sums: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet, year: int,
                     basis: str = "equivalent", quotas: QuotaConfig | None = None, regions=None,
                     excluded_sums: pd.DataFrame | None = None, reasons: pd.DataFrame | None = None,
                     green_kwh: pd.Series | None = None) -> LedgerTables:
    """The ledger tables from yearly `energy_sums` (pure; no store).

    `sums` is the net use (inside the accounting boundary, `models.energy.energy_use`'s
    default): every total, intensity, quota level and rank is net. `excluded_sums`: the
    yearly sums of the use outside it (`energy_use(..., boundary='excluded')`), shown
    beside the net as gross_quantity, excluded_quantity, excluded_kgce (ledger) and
    gross_kgce, excluded_kgce (summary); `reasons`: institution_id, energy,
    boundary_reason of the registry's exclusions. `green_kwh`: institution_id -> kWh of
    green power bought in the year (bills of kind green_power): the summary shows
    market-based Scope 2 (t_co2_scope2_market, t_co2_market) beside the location-based.
    institutions: `models.indicators.institution_context(registry, factors)` (or any
    frame with INSTITUTION_COLUMNS). regions: Registry or id -> parent mapping, for the
    region totals and regional quota standards."""
    basis = normalize_basis(basis)
    sums = sums[sums["year"] == year] if len(sums) else sums
    excluded_sums = excluded_sums[excluded_sums["year"] == year] if excluded_sums is not None and len(
        excluded_sums) else None
    led = energy_ledger(sums, institutions, factors, basis) if len(sums) else pd.DataFrame(columns=LEDGER_COLUMNS)
    excl = energy_ledger(excluded_sums, institutions, factors, basis) if excluded_sums is not None else led.iloc[:0]
    led = _with_boundary(led, excl, reasons)
    order = {e: n for n, e in enumerate(ENERGIES)}
    led = led.assign(_e=led["energy"].map(order)).sort_values(["institution_id", "_e"], kind="stable")
    led = led.drop(columns="_e").reset_index(drop=True)
    scope = led["scope"].astype(float)
    led["scope"] = scope.where(scope > 0).astype("Int64")
    no_emission = led["scope"].isna().to_numpy()
    led["emission_factor"] = led["emission_factor"].astype(float).where(~no_emission)
    led["factor_unit"] = led["factor_unit"].where(~no_emission, "")
    led["factor_source"] = led["factor_source"].where(~no_emission, "")
    led["year"] = year
    led = led[LEDGER_COLUMNS]

    ind = indicators_from_sums(sums, institutions, factors, basis)
    summary = ind.copy()
    summary.insert(4, "year", year)
    ex_kgce = excl.groupby("institution_id")["kgce"].sum() if len(excl) else pd.Series(dtype=float)
    summary["excluded_kgce"] = summary["institution_id"].map(ex_kgce).fillna(0.0).to_numpy(float)
    summary["gross_kgce"] = summary["kgce"].to_numpy(float) + summary["excluded_kgce"].to_numpy(float)
    elec = led[led["energy"] == "electricity"].set_index("institution_id")
    iid = summary["institution_id"]
    summary["green_power_kwh"] = iid.map(green_kwh).fillna(0.0).to_numpy(float) if green_kwh is not None else 0.0
    try:
        market = factors.market_grid_factor(year)
        m_value, m_source = market.value, market.source
    except KeyError:  # a set without one (cn-2024): no market-based figure
        m_value, m_source = np.nan, ""
    summary["t_co2_scope2_market"] = market_scope2_t(
        summary["t_co2_scope2"], iid.map(elec["t_co2"]).fillna(0.0), summary["electricity_kwh"],
        summary["green_power_kwh"], m_value)
    summary["t_co2_market"] = summary["t_co2_scope1"].to_numpy(float) + summary["t_co2_scope2_market"].to_numpy(float)
    summary["market_factor"] = m_value
    summary["market_factor_source"] = m_source
    if quotas is not None and quotas.standards:
        levels = quota_levels(ind, quotas, regions=regions)
    else:
        levels = pd.DataFrame(columns=["institution_id", "indicator", "level", "meets_constraint"])
    std_inds = [i for i in STANDARD_INDICATORS if i in set(levels["indicator"])]
    if len(levels):
        wide = levels.pivot(index="institution_id", columns="indicator", values="level")
        for i in std_inds:
            summary[f"level_{i}"] = summary["institution_id"].map(wide[i]).to_numpy(object)
        lv = levels.assign(ok=levels["meets_constraint"].astype(bool), text=levels["indicator"] + ": " +
                           levels["level"].astype(str))
        g = lv.groupby("institution_id").agg(n=("ok", "size"), ok=("ok", "sum"), text=("text", "; ".join))
        summary["quota_indicators"] = summary["institution_id"].map(g["n"]).fillna(0).astype(int)
        summary["quota_within_constraint"] = summary["institution_id"].map(g["ok"]).fillna(0).astype(int)
        summary["quota_levels_met"] = summary["institution_id"].map(g["text"]).fillna("")
    else:
        summary["quota_indicators"] = 0
        summary["quota_within_constraint"] = 0
        summary["quota_levels_met"] = ""
    r = rank(ind, RANK_INDICATOR, peers=("category",)).set_index("institution_id")
    summary["rank_in_category"] = summary["institution_id"].map(r["rank"]).astype("Int64")
    summary["category_peers"] = summary["institution_id"].map(r["peer_size"]).fillna(0).astype(int)
    summary = summary.sort_values("institution_id", kind="stable").reset_index(drop=True)

    by_region = aggregate(ind, ["region"], regions=regions).assign(group="region").rename(columns={"region": "key"})
    by_cat = aggregate(ind, ["category"]).assign(group="category").rename(columns={"category": "key"})
    total = aggregate(ind.assign(all="all"), ["all"]).assign(group="all").rename(columns={"all": "key"})
    totals = pd.concat([total, by_region, by_cat], ignore_index=True)

    fac = factors.to_frame()
    used = set(led["factor_source"]) | set(led["coal_source"])
    fac = fac.assign(used=fac["source"].isin(used))
    return LedgerTables(year=year, basis=basis, factor_set=factors.id, ledger=led, summary=summary,
                        totals=totals, factors=fac)


def build_ledger(store, registry, year: int, factors: FactorSet | None = None, quotas: QuotaConfig | None = None,
                 basis: str | None = None, month: int | None = None) -> LedgerTables:
    """The ledger of calendar `year` from the store (daily resolution, so heating
    seasons split exactly). Basis: `basis`, else the quota file's, else 当量值.
    `month` (1-12): the same tables for that month of `year` only, without quota levels
    (the standards are annual)."""
    factors = factors or load_factors()
    basis = normalize_basis(basis or (quotas.basis if quotas is not None else "equivalent"))
    start = pd.Timestamp(year=year, month=month or 1, day=1)
    end = start + (pd.DateOffset(months=1) if month else pd.DateOffset(years=1))
    first, stop = f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"
    _use, inst, sums = period_sums(store, registry, first, stop, factors)
    _excl, _inst, excluded = period_sums(store, registry, first, stop, factors, boundary="excluded")
    tz = registry.timezone
    green = green_power_kwh(store, registry, pd.Timestamp(first, tz=tz), pd.Timestamp(stop, tz=tz), factors)
    return ledger_from_sums(sums, inst, factors, year, basis, None if month else quotas, regions=registry,
                            excluded_sums=excluded, reasons=boundary_reasons(registry), green_kwh=green)


def scoped_ledger(store, registry, year: int, visible: set[str] | frozenset[str] | None,
                  quotas: QuotaConfig | None = None, month: int | None = None) -> LedgerTables:
    """`build_ledger` limited to the `visible` institutions (None: all), for a user who
    sees only some: their rows keep their rank among all peers, and the totals are
    recomputed over the visible institutions only (the dashboard's download and the API)."""
    tables = build_ledger(store, registry, year, quotas=quotas, month=month)
    if visible is None:
        return tables
    own = build_ledger(store, scoped_registry(registry, visible), year, quotas=quotas, month=month)
    return replace(tables, ledger=tables.ledger[tables.ledger["institution_id"].isin(visible)],
                   summary=tables.summary[tables.summary["institution_id"].isin(visible)], totals=own.totals)


def boundary_reasons(registry) -> pd.DataFrame:
    """institution_id, energy, boundary_reason of every meter and bill exclusion of the registry."""
    m = registry.meters_frame()
    m = m[m["boundary"] == "excluded"][["institution_id", "energy", "boundary_reason"]]
    b = registry.excluded_bills_frame()[["institution_id", "energy", "boundary_reason"]]
    return pd.concat([m, b], ignore_index=True)


# -- writers -----------------------------------------------------------------------------

def ledger_csv_bytes(tables: LedgerTables) -> bytes:
    """The ledger sheet as deterministic CSV bytes (module docstring)."""
    df = tables.ledger.copy()
    for col, dec in CSV_DECIMALS.items():
        v = df[col].astype(float)
        df[col] = np.where(v.isna(), "", v.round(dec).map(lambda x, d=dec: f"{x:.{d}f}"))
    df["scope"] = df["scope"].astype("string").fillna("")
    df["provisional"] = np.where(df["provisional"].astype(bool), "true", "false")
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def level_columns(summary: pd.DataFrame) -> list[str]:
    """The summary's quota-level columns (`level_<indicator>`) that hold a level for at
    least one of its institutions, in the order of the standard indicators: a summary
    cut down to some institutions shows only the standards that apply to them."""
    return [c for c in summary.columns if c.startswith("level_") and summary[c].notna().any()]


def write_ledger(tables: LedgerTables, out: str | Path) -> Path:
    """Write `.xlsx` (sheets ledger, summary, totals, factors) or `.csv` (the ledger sheet)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        out.write_bytes(ledger_csv_bytes(tables))
        return out
    if suffix != ".xlsx":
        raise ValueError(f"{out}: the ledger is written as .xlsx or .csv, not {suffix or 'no extension'}")
    notes = [f"{tables.year} 年度公共机构碳排放台账 / Annual carbon ledger {tables.year} — 电力折标口径 basis: "
             f"{BASIS_LABEL[tables.basis]}; 因子集 factor set: {tables.factor_set}"]
    wb = new_workbook()
    write_sheet(wb, "ledger", tables.ledger, [_col(c) for c in LEDGER_COLUMNS], freeze_cols=2, notes=notes)
    level_cols = level_columns(tables.summary)
    scols = ["institution_id", "name", "region", "category", "year", "floor_area_m2", "heated_area_m2", "occupants",
             "has_data", *SUMMARY_TOTALS, "gross_kgce", "excluded_kgce", "green_power_kwh", "t_co2_scope2_market",
             "t_co2_market", "market_factor", *SUMMARY_INTENSITIES, "estimated_share",
             *level_cols,
             "quota_within_constraint", "quota_indicators", "quota_levels_met", "rank_in_category",
             "category_peers", "provisional", "basis", "factor_set"]
    cols = [_col(c) if not c.startswith("level_") else
            Col(c, f"定额水平 {c[6:]}", None, 12) for c in scols]
    summary = tables.summary.copy()
    for c in level_cols:
        summary[c] = summary[c].map(lambda v: None if v is None or v != v else f"{v} {LEVEL_ZH.get(v, '')}")
    write_sheet(wb, "summary", summary, cols, freeze_cols=2, notes=notes)
    tcols = ["group", "key", "institutions", "institutions_with_data", "floor_area_m2", "occupants", *SUMMARY_TOTALS,
             *SUMMARY_INTENSITIES, "estimated_share"]
    write_sheet(wb, "totals", tables.totals, [Col("group", "汇总维度", None, 10), Col("key", "地区/类别", None, 14),
                                              *[_col(c) for c in tcols[2:]]], freeze_cols=2, notes=notes)
    fcols = [Col("kind", "类型", None, 11), Col("energy", "能源品种", None, 12), Col("basis", "口径", None, 11),
             Col("scope", "范围", "0", 6), Col("region", "地区", None, 12), Col("year", "年份", "0", 7),
             Col("value", "数值", FACTOR, 10), Col("unit", "单位", None, 12), Col("source", "来源", None, 60),
             Col("provisional", "暂定/待核", None, 9), Col("used", "本台账使用", None, 9),
             Col("factor_set", "因子集", None, 12)]
    write_sheet(wb, "factors", tables.factors, fcols, freeze_cols=2, notes=notes)
    wb.save(out)
    return out
