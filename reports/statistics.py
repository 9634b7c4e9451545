"""The statistics-system tables (`civicwatt report statistics --period YYYY-MM|YYYYQn|YYYY`).

The tables of the public-institution energy and resource consumption statistics system
(公共机构能源资源消费统计调查制度, 国家机关事务管理局, revised 2025-11-10): the unit-level
(基层) tables — basic information, energy and resource consumption, data-centre rooms,
heating — one row per institution, and the roll-up (综合) tables by supervising
department (主管部门), by region and by category. Which published form each sheet
follows, and what was assumed where the form was not at hand, is in the README
("The statistics tables").

Every figure comes from the models API by the ledger's own path
(`models.api.period_sums` -> `indicators_from_sums`; roll-ups `aggregate`: ratios of
sums), so the per-area and per-person indicators of a year equal the ledger's. Regions
and categories are written by name; every table ends with a 合计 row whose extensive
columns (quantities, tce, areas, people, counts) are the sums of the rows above and
whose intensities are ratios of those sums over the institutions with data.

The change against the same period last year (同比) is shown only where both periods
are complete (`models.completeness.complete_months` over the monthly completeness of
`quotas.submissions.Submissions`: every month at >= 90 %): per institution, and for a
group as the ratio of sums over its members complete in both periods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from core.vocab import CATEGORY_ZH
from models.api import aggregate, energy_use, indicators_from_sums, period_sums, yoy_change
from models.completeness import COMPLETENESS_TARGET, complete_months
from models.factors import BASIS_LABEL, FactorSet, load_factors, normalize_basis
from quotas.submissions import MeteredSubmissions, Submissions
from reports.ledger import LABELS
from reports.xlsx import INT, PCT, QTY, QTY3, Col, new_workbook, write_sheet

TOTAL = "合计"
NO_DEPARTMENT = "（未填报主管部门）"
OWN_SOURCE = "本级"  # an institution of this instance's own registry; else the lower-level instance reporting it
#: The statistics system's issuing authority (制表机关) and approving authority.
AUTHORITY = "国家机关事务管理局"
APPROVED_BY = "国家统计局"
#: sheet key -> (sheet name, form title, table number). The table numbers are ours
#: (the published numbering was not at hand; README "The statistics tables").
FORMS: dict[str, tuple[str, str, str]] = {
    "basic": ("基本信息", "公共机构基本信息", "公机基1表"),
    "consumption": ("能源资源消费", "公共机构能源资源消费状况", "公机基2表"),
    "data_centre": ("数据中心机房", "公共机构数据中心机房能源消费状况", "公机基3表"),
    "heating": ("采暖", "公共机构采暖能源资源消费状况", "公机基4表"),
    "by_department": ("部门汇总", "公共机构能源资源消费统计部门汇总情况", "公机综1表"),
    "by_region": ("地区汇总", "公共机构能源资源消费统计行政区域汇总情况", "公机综2表"),
    "by_category": ("分类汇总", "公共机构能源资源消费统计分类汇总情况", "公机综3表"),
}
ENERGY_COLS = ["electricity_kwh", "water_m3", "gas_m3", "heat_gj", "gasoline_kg", "diesel_kg", "lpg_kg", "coal_kg",
               "pv_kwh"]
AREA_COLS = ["floor_area_m2", "heated_area_m2", "occupants"]
INTENSITY_COLS = ["kgce_per_m2", "kgce_per_person", "water_m3_per_person"]
#: Indicators compared with the same period of last year: column -> yoy column.
YOY_COLS = {"tce": "yoy_tce", "water_m3": "yoy_water_m3", "kgce_per_m2": "yoy_kgce_per_m2",
            "kgce_per_person": "yoy_kgce_per_person", "water_m3_per_person": "yoy_water_m3_per_person"}
#: Why an institution's 同比 is blank.
YOY_NOTES = {"current_incomplete": "本期数据不完整", "previous_incomplete": "上年同期数据不完整",
             "no_previous": "上年同期无数据"}
#: Energies whose heating-season use on heating meters goes in the heating table.
HEATING_ENERGIES = {"heat": "heating_heat_gj", "natural_gas": "heating_gas_m3", "electricity": "heating_electricity_kwh",
                    "coal": "heating_coal_kg"}
#: Columns a unit-level table's 合计 row sums.
SUMMED = (*ENERGY_COLS, *AREA_COLS, "tce", "kgce", "prev_tce", "heating_kgce", "heating_tce", "dc_area_m2",
          "dc_electricity_kwh", "dc_it_kwh", *HEATING_ENERGIES.values())
PERIOD_RE = re.compile(r"^(\d{4})(?:-(\d{2})|Q([1-4]))?$")
YEARS = (1990, 2100)

STAT_LABELS = {
    **LABELS,
    "region_name": ("地区", None, 12), "parent_region_name": ("上级地区", None, 12),
    "category_name": ("单位类别", None, 11), "department": ("主管部门", None, 16),
    "has_data_centre": ("有数据中心机房", None, 9), "source_instance": ("数据来源", None, 14),
    "tce": ("综合能耗 (tce)", QTY3, 12),
    "complete": ("本期数据完整", None, 8), "prev_complete": ("上年同期数据完整", None, 8),
    "prev_tce": ("上年同期综合能耗 (tce)", QTY3, 12),
    "yoy_tce": ("综合能耗同比", PCT, 9), "yoy_water_m3": ("用水量同比", PCT, 9),
    "yoy_kgce_per_m2": ("单位建筑面积能耗同比", PCT, 10), "yoy_kgce_per_person": ("人均综合能耗同比", PCT, 10),
    "yoy_water_m3_per_person": ("人均用水量同比", PCT, 10), "yoy_note": ("同比空白原因", None, 16),
    "comparable": ("可比单位数", INT, 8),
    "dc_area_m2": ("机房面积 (m2)", INT, 11), "dc_electricity_kwh": ("机房用电量 (kWh)", QTY, 14),
    "dc_it_kwh": ("IT设备用电量 (kWh)", QTY, 14), "dc_pue": ("电能利用效率 PUE", "0.00", 10),
    "dc_share": ("机房用电占本单位用电比例", PCT, 10),
    "heating_heat_gj": ("热力消费量 (按热量收费, GJ)", QTY, 14), "heating_gas_m3": ("采暖用天然气 (m3)", QTY, 13),
    "heating_electricity_kwh": ("采暖用电 (kWh)", QTY, 13), "heating_coal_kg": ("采暖用煤 (kg)", QTY, 12),
    "heating_tce": ("采暖能耗 (tce)", QTY3, 12),
}


@dataclass(frozen=True)
class Period:
    """A statistics period: a month ('2025-03'), a quarter ('2025Q1') or a year ('2025');
    start and end (exclusive) are naive local first days."""

    label: str
    kind: str  # month | quarter | year
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def months(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, self.end, freq="MS", inclusive="left")

    @property
    def title(self) -> str:
        y = self.start.year
        if self.kind == "year":
            return f"{y}年"
        if self.kind == "quarter":
            return f"{y}年第{(self.start.month - 1) // 3 + 1}季度"
        return f"{y}年{self.start.month}月"

    def previous(self) -> Period:
        """The same period of last year."""
        y = self.start.year - 1
        label = str(y) + self.label[4:]
        return Period(label, self.kind, self.start - pd.DateOffset(years=1), self.end - pd.DateOffset(years=1))


def parse_period(text: str) -> Period:
    """'YYYY-MM', 'YYYYQn' or 'YYYY' -> Period; ValueError with a clear message otherwise."""
    m = PERIOD_RE.match(str(text).strip())
    expected = "YYYY-MM (a month), YYYYQn (a quarter, n = 1..4) or YYYY (a year)"
    if m is None:
        raise ValueError(f"period must be {expected}, not {str(text)[:40]!r}")
    year = int(m.group(1))
    if not YEARS[0] <= year <= YEARS[1]:
        raise ValueError(f"period {text!r}: year must be in {YEARS[0]}..{YEARS[1]}")
    if m.group(2) is not None:
        month = int(m.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"period {text!r}: month must be 01..12")
        start = pd.Timestamp(year=year, month=month, day=1)
        return Period(text, "month", start, start + pd.offsets.MonthBegin(1))
    if m.group(3) is not None:
        start = pd.Timestamp(year=year, month=3 * int(m.group(3)) - 2, day=1)
        return Period(text, "quarter", start, start + pd.DateOffset(months=3))
    return Period(text, "year", pd.Timestamp(year=year, month=1, day=1), pd.Timestamp(year=year + 1, month=1, day=1))


@dataclass
class FormHeader:
    """The form header block: who files and signs the tables (表号 and 制表机关 are per form)."""

    filer: str = ""  # 填报单位
    head: str = ""  # 单位负责人
    preparer: str = ""  # 填表人
    report_date: str = ""  # 报出日期, YYYY-MM-DD


@dataclass
class StatisticsTables:
    period: Period
    basis: str
    factor_set: str
    basic: pd.DataFrame
    consumption: pd.DataFrame
    data_centre: pd.DataFrame
    heating: pd.DataFrame
    by_department: pd.DataFrame
    by_region: pd.DataFrame
    by_category: pd.DataFrame


# -- the arithmetic ----------------------------------------------------------------------
def _names(ind: pd.DataFrame, registry) -> pd.DataFrame:
    regions = registry.region_by_id
    inst = registry.institution_by_id
    out = ind.copy()
    out["region_name"] = out["region"].map(lambda r: regions[r].name if r in regions else r)
    out["category_name"] = out["category"].map(CATEGORY_ZH).fillna(out["category"])
    out["department"] = out["institution_id"].map(lambda i: inst[i].department if i in inst else None)
    out["department"] = out["department"].fillna(NO_DEPARTMENT)
    out["source_instance"] = out["institution_id"].map(registry.source_by_id).fillna(OWN_SOURCE)
    return out


def comparable_institutions(months: pd.DataFrame, ids: pd.Series, period: Period) -> tuple[np.ndarray, np.ndarray]:
    """(complete now, complete in the same period last year) per institution of `ids`
    (`months`: `Submissions.months` rows of both years)."""
    return (complete_months(months, ids, period.months, COMPLETENESS_TARGET),
            complete_months(months, ids, period.previous().months, COMPLETENESS_TARGET))


def _institution_yoy(ind: pd.DataFrame, prev: pd.DataFrame, cur_ok: np.ndarray, prev_ok: np.ndarray) -> pd.DataFrame:
    out = ind.copy()
    p = prev.set_index("institution_id")
    ids = out["institution_id"]
    out["complete"] = cur_ok
    out["prev_complete"] = prev_ok
    out["prev_tce"] = ids.map(p["tce"]).to_numpy(float)
    both = cur_ok & prev_ok
    has_prev = ids.map(p["has_data"]).fillna(False).to_numpy(bool)
    note = np.select([~cur_ok, ~prev_ok, ~has_prev], [YOY_NOTES["current_incomplete"],
                     YOY_NOTES["previous_incomplete"], YOY_NOTES["no_previous"]], "")
    for col, name in YOY_COLS.items():
        out[name] = np.where(both, yoy_change(out[col], ids.map(p[col]).to_numpy(float)), np.nan)
    out["yoy_note"] = note
    return out


def _group_rows(ind: pd.DataFrame, prev: pd.DataFrame, both: np.ndarray, key: str) -> pd.DataFrame:
    """One row per value of `key` and a 合计 row: aggregate's sums and ratios (areas and
    people of the members with data, the denominators of the row's intensities) and the
    同比 of the ratio of sums over the members complete in both periods."""
    def one(frame: pd.DataFrame, p: pd.DataFrame, ok: np.ndarray) -> pd.DataFrame:
        g = aggregate(frame, [key]).set_index(key)
        ids = set(frame["institution_id"][ok])
        cur_c = frame[frame["institution_id"].isin(ids)]
        prev_c = p[p["institution_id"].isin(ids)]
        g["comparable"] = cur_c.groupby(key).size().reindex(g.index).fillna(0).astype(int)
        if len(cur_c):
            c = aggregate(cur_c, [key]).set_index(key).reindex(g.index)
            q = aggregate(prev_c, [key]).set_index(key).reindex(g.index)
            for col, name in YOY_COLS.items():
                g[name] = yoy_change(c[col], q[col])
        else:
            for name in YOY_COLS.values():
                g[name] = np.nan
        return g.reset_index()

    rows = one(ind, prev, both).sort_values(key, kind="stable")
    total = one(ind.assign(**{key: TOTAL}), prev.assign(**{key: TOTAL}), both)
    return pd.concat([rows, total], ignore_index=True)


def _ratio(num, den) -> np.ndarray:
    n, d = np.asarray(num, float), np.asarray(den, float)
    return np.divide(n, d, out=np.full(n.shape, np.nan), where=np.nan_to_num(d) > 0)


def _total_row(table: pd.DataFrame, ind: pd.DataFrame, label_col: str = "name") -> pd.DataFrame:
    """`table` with a 合计 row: sums of its extensive columns, intensities as ratios of
    sums over the institutions with data (aggregate)."""
    agg = aggregate(ind.assign(_all=TOTAL), ["_all"]).iloc[0]
    row = {c: table[c].sum(min_count=1) for c in table.columns if c in SUMMED}
    for c in (*INTENSITY_COLS, "heating_kgce_per_m2", "estimated_share"):
        if c in table:
            row[c] = agg[c]
    row[label_col] = TOTAL
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def statistics_from_frames(registry, period: Period, cur: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
                           prev: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], months: pd.DataFrame,
                           factors: FactorSet, basis: str = "equivalent",
                           data_centre_use: pd.DataFrame | None = None) -> StatisticsTables:
    """The tables (pure): `cur` and `prev` are `models.api.period_sums` of the period
    and of the same period last year; `months` the monthly completeness of both years
    (`Submissions.months`); `data_centre_use` a use frame with the sub-meters of the
    data-centre institutions (meter_id, quantity) over the period."""
    basis = normalize_basis(basis)
    _use, inst, sums = cur
    ind = _names(indicators_from_sums(sums, inst, factors, basis), registry)
    pind = _names(indicators_from_sums(prev[2], prev[1], factors, basis), registry)
    cur_ok, prev_ok = comparable_institutions(months, ind["institution_id"], period)
    ind = _institution_yoy(ind, pind, cur_ok, prev_ok)
    both = cur_ok & prev_ok
    ident = ["institution_id", "name", "region_name", "category_name", "department"]

    dc = {i.id: i.data_centre for i in registry.institutions if i.data_centre is not None}
    basic = ind[[*ident, *AREA_COLS, "source_instance"]].copy()
    basic["has_data_centre"] = np.where(basic["institution_id"].isin(dc), "有", "无")
    basic = _total_row(basic, ind)

    consumption = _total_row(ind[ident + AREA_COLS + ENERGY_COLS + ["tce", *INTENSITY_COLS, "estimated_share",
                                                                    "complete", "prev_complete", "prev_tce",
                                                                    *YOY_COLS.values(), "yoy_note"]].copy(), ind)

    dcu = data_centre_use if data_centre_use is not None else pd.DataFrame(columns=["meter_id", "quantity"])
    per_meter = dcu.groupby("meter_id")["quantity"].sum() if len(dcu) else pd.Series(dtype=float)
    rows = []
    elec = ind.set_index("institution_id")["electricity_kwh"]
    for iid, room in dc.items():  # one per marked institution (few)
        total = float(per_meter.reindex(list(room.meters)).fillna(0).sum())
        it = float(per_meter.reindex(list(room.it_meters)).fillna(0).sum()) if room.it_meters else np.nan
        rows.append({"institution_id": iid, "dc_area_m2": room.area_m2, "dc_electricity_kwh": total, "dc_it_kwh": it})
    dct = pd.DataFrame(rows, columns=["institution_id", "dc_area_m2", "dc_electricity_kwh", "dc_it_kwh"])
    dct = ind[ident].merge(dct, on="institution_id")
    dct["dc_pue"] = _ratio(dct["dc_electricity_kwh"], dct["dc_it_kwh"])  # whole / IT (NaN without IT meters)
    dct["dc_share"] = _ratio(dct["dc_electricity_kwh"], dct["institution_id"].map(elec))
    data_centre = _total_row(dct, ind[ind["institution_id"].isin(dc)]) if len(dct) else dct

    hq = sums[sums["energy"].isin(list(HEATING_ENERGIES))]
    hq = (hq.assign(energy=hq["energy"].astype(str), institution_id=hq["institution_id"].astype(str))
          .pivot_table(index="institution_id", columns="energy", values="heating_quantity", aggfunc="sum"))
    heat = ind[[*ident, "heated_area_m2", "heating_kgce", "heating_kgce_per_m2"]].copy()
    for energy, col in HEATING_ENERGIES.items():
        heat[col] = heat["institution_id"].map(hq[energy]).fillna(0.0).to_numpy(float) if energy in hq else 0.0
    heat["heating_tce"] = heat["heating_kgce"] / 1000.0
    heated = (heat["heated_area_m2"] > 0) | (heat["heating_kgce"] > 0)
    heating = _total_row(heat[heated.to_numpy()].reset_index(drop=True), ind[heated.to_numpy()])

    by_region = _group_rows(ind.assign(region_key=ind["region"]), pind.assign(region_key=pind["region"]), both,
                            "region_key")
    regions = registry.region_by_id
    by_region["region_name"] = by_region["region_key"].map(lambda r: regions[r].name if r in regions else r)
    by_region["parent_region_name"] = by_region["region_key"].map(
        lambda r: regions[regions[r].parent].name if r in regions and regions[r].parent in regions else "")
    by_category = _group_rows(ind, pind, both, "category")
    by_category["category_name"] = by_category["category"].map(CATEGORY_ZH).fillna(by_category["category"])
    by_department = _group_rows(ind, pind, both, "department")
    by_department = pd.concat([by_department.iloc[:-1].sort_values("department", key=lambda s: s == NO_DEPARTMENT,
                                                                   kind="stable"), by_department.iloc[-1:]])
    return StatisticsTables(period=period, basis=basis, factor_set=factors.id, basic=basic,
                            consumption=consumption, data_centre=data_centre, heating=heating,
                            by_department=by_department.reset_index(drop=True), by_region=by_region,
                            by_category=by_category)


def build_statistics(store, registry, period: Period | str, factors: FactorSet | None = None,
                     basis: str = "equivalent", submissions: Submissions | None = None) -> StatisticsTables:
    """The tables of `period` from the store (`submissions`: where the monthly
    completeness comes from; default `MeteredSubmissions` of the store)."""
    period = parse_period(period) if isinstance(period, str) else period
    factors = factors or load_factors()
    prev = period.previous()
    cur = period_sums(store, registry, period.start, period.end, factors)
    before = period_sums(store, registry, prev.start, prev.end, factors)
    submissions = submissions or MeteredSubmissions(store, registry, factors)
    months = pd.concat([submissions.months(y) for y in sorted({period.start.year, prev.start.year})],
                       ignore_index=True)
    dc_ids = [i.id for i in registry.institutions if i.data_centre is not None]
    dc_use = (energy_use(store, registry, period.start, period.end, "month", factors, include_submeters=True,
                         institution_ids=dc_ids) if dc_ids else None)
    return statistics_from_frames(registry, period, cur, before, months, factors, basis, dc_use)


# -- the workbook ----------------------------------------------------------------------------
def _col(key: str) -> Col:
    label, fmt, width = STAT_LABELS.get(key, (key, None, 12))
    return Col(key, label, fmt, width)


def form_header(form: str, tables: StatisticsTables, header: FormHeader) -> list[tuple[str, ...] | str]:
    """The header block of one form: title, then (label, value) rows."""
    _sheet, title, number = FORMS[form]
    p = tables.period
    last = (p.end - pd.Timedelta(days=1)).date()
    return [f"{title}（{p.title}）",
            ("表号", number), ("制表机关", AUTHORITY), ("批准机关", APPROVED_BY),
            ("填报单位", header.filer), ("单位负责人", header.head), ("填表人", header.preparer),
            ("报出日期", header.report_date or date.today().isoformat()),
            ("统计期", f"{p.label}（{p.start.date()} 至 {last}）"),
            ("口径", f"电力折标 {BASIS_LABEL[tables.basis]}；因子集 {tables.factor_set}；同比仅在本期与上年同期数据均完整时计算")]


BASIC = ["institution_id", "name", "region_name", "category_name", "department", *AREA_COLS, "has_data_centre",
         "source_instance"]
CONSUMPTION = ["institution_id", "name", "region_name", "category_name", "department", "floor_area_m2", "occupants",
               *ENERGY_COLS, "tce", *INTENSITY_COLS, "estimated_share", "complete", "prev_complete", "prev_tce",
               *YOY_COLS.values(), "yoy_note"]
DATA_CENTRE = ["institution_id", "name", "region_name", "category_name", "dc_area_m2", "dc_electricity_kwh",
               "dc_it_kwh", "dc_pue", "dc_share"]
HEATING = ["institution_id", "name", "region_name", "category_name", "heated_area_m2", *HEATING_ENERGIES.values(),
           "heating_tce", "heating_kgce_per_m2"]
#: Roll-ups: the areas and people are those of the members with data (the row's denominators).
GROUP_AREA_LABELS = {"floor_area_m2": "建筑面积 (有数据单位, m2)", "heated_area_m2": "采暖面积 (有数据单位, m2)",
                     "occupants": "用能人数 (有数据单位)"}
GROUP = ["institutions", "institutions_with_data", *AREA_COLS, *ENERGY_COLS, "tce", *INTENSITY_COLS, "comparable",
         *YOY_COLS.values()]


def write_statistics(tables: StatisticsTables, out: str | Path, header: FormHeader | None = None) -> Path:
    """Write the workbook (.xlsx): one sheet per form, Chinese sheet names (FORMS)."""
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        raise ValueError(f"{out}: the statistics tables are an .xlsx workbook")
    header = header or FormHeader()
    wb = new_workbook()
    bool_zh = {True: "是", False: "否"}
    consumption = tables.consumption.assign(
        complete=tables.consumption["complete"].map(bool_zh), prev_complete=tables.consumption["prev_complete"].map(bool_zh))
    sheets = [("basic", tables.basic, BASIC, 2), ("consumption", consumption, CONSUMPTION, 2),
              ("data_centre", tables.data_centre, DATA_CENTRE, 2), ("heating", tables.heating, HEATING, 2),
              ("by_department", tables.by_department, ["department", *GROUP], 1),
              ("by_region", tables.by_region, ["region_name", "parent_region_name", *GROUP], 1),
              ("by_category", tables.by_category, ["category_name", *GROUP], 1)]
    for form, frame, cols, freeze in sheets:
        group_key = cols[0] if form.startswith("by_") else None
        cols_ = [Col(c, STAT_LABELS[c][0], None, 18) if c == group_key else
                 Col(c, GROUP_AREA_LABELS[c], INT, 13) if group_key and c in GROUP_AREA_LABELS else _col(c)
                 for c in cols]
        write_sheet(wb, FORMS[form][0], frame, cols_, freeze_cols=freeze, notes=form_header(form, tables, header))
    wb.save(out)
    return out
