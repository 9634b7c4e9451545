"""The year-end assessment (节能考核) and the notice (通报): read from the store, written as xlsx and printable HTML.

`build_assessment(store, registry, quotas, year, quality_alerts)` reads the year, the
year before and the plan's base year through the models API (on the quota file's
electricity basis), evaluates the targets and quota levels (`quotas.evaluate`), the
monthly submissions (`quotas.submissions`: metering completeness until the submission
workflow exists) and scores them (`quotas.assessment.assess`). The open data-quality
alerts come from the caller (`alerts.quality.open_quality_alerts`), since reports do
not read alerts.

Green-power purchases: bills of energy `GREEN_POWER_ENERGY` in kWh or MWh (their
quantity is part of the electricity already metered or billed, so they are not added to
use). The bill importer does not accept that energy yet (issue 14 adds green-power
bills): until then the renewable share counts on-site PV generation only.

Workbooks (Chinese sheet names; docs/models.md gives the English):

* assessment: 考核结果 (institutions: score, grade, breakdown), 地区考核 (regions),
  重点用能单位 (key energy users and their rules), 规划指标 (plan indicators),
  报送情况 (review periods), 评分办法 (the scheme);
* notice: 通报 (one row per institution, reason and indicator, by region, with the
  figures and last year's), 地区汇总 (entries per region and reason), 说明 (about).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from core.schemas.quotas import CRITERIA
from core.vocab import CATEGORY_ZH
from models.api import energy_use, indicators
from models.completeness import MONTH_COLUMNS
from models.energy import split_bills
from models.factors import BASIS_LABEL, FactorSet, load_factors, normalize_basis
from quotas.assessment import (
    BASIS_OF,
    NOTICE_REASONS,
    YOY_REASONS,
    Assessment,
    AssessmentInputs,
    assess,
    no_alerts,
)
from quotas.config import QuotaConfig
from quotas.evaluate import LEVEL_ZH, evaluate_targets, quota_levels
from quotas.submissions import MeteredSubmissions, Submissions
from reports.ledger import LABELS
from reports.xlsx import PCT, QTY, QTY3, Col, new_workbook, write_sheet

#: The bill energy of green-power purchases read for the renewable share (module docstring).
GREEN_POWER_ENERGY = "green_power"
CRITERIA_ZH = {"targets": "双控目标", "quota": "定额水平", "submissions": "按时报送", "data_quality": "数据质量",
               "yoy": "同比变化"}
INDICATOR_ZH = {"energy_tce": "能源消费总量", "tce": "综合能耗", "water_m3": "用水总量", "co2_t": "二氧化碳排放总量",
                "kgce_per_m2": "单位建筑面积能耗", "kgce_per_person": "人均综合能耗",
                "water_m3_per_person": "人均用水量", "kgco2_per_m2": "单位建筑面积碳排放",
                "heating_kgce_per_m2": "单位采暖面积采暖能耗", "nonheating_kgce_per_m2": "单位面积非采暖能耗",
                "late_periods": "未按时报送期数", "estimated_share": "估算数据占比",
                "open_quality_alerts": "未处理数据质量告警", "renewable_share": "可再生能源电力占比",
                "baseline_share": "达到基准值的单位占比"}
PLAN_REASONS = {"not_after_base_year": "不晚于基期年", "no_data": "无数据", "no_base_value": "无基期值"}

ALABELS = {
    **LABELS,
    "rank": ("排名", "0", 6), "region_name": ("地区", None, 10), "key_user": ("重点用能单位", None, 8),
    "score": ("得分", "0.0", 7), "grade": ("等级", None, 7), "veto": ("否决项", None, 14),
    "max_points": ("适用满分", "0.0", 8), "review": ("报送审核周期", None, 9),
    "metering_completeness": ("完整率要求", PCT, 9), "max_estimated_share": ("估算占比上限", PCT, 9),
    "max_open_quality_alerts": ("告警数上限", "0", 8),
    "targets_met": ("完成目标数", "0", 8), "targets_n": ("目标数", "0", 7),
    "quota_levels": ("定额水平", None, 36), "quota_indicators": ("定额指标数", "0", 8),
    "periods_on_time": ("按时期数", "0", 7), "periods": ("期数", "0", 6), "late_detail": ("未按时期间 (完整率)", None, 36),
    "estimated_share": ("估算占比", PCT, 9), "open_quality_alerts": ("未处理数据质量告警", "0", 9),
    "yoy_indicator": ("同比指标", None, 14), "yoy_current": ("本年值", QTY, 10), "yoy_previous": ("上年值", QTY, 10),
    "yoy_change": ("同比", PCT, 8), "yoy_reason": ("同比空白原因", None, 14), "yoy_institutions": ("可比单位数", "0", 8),
    "institutions": ("单位数", "0", 7), "key_users": ("重点用能单位数", "0", 8), "parent": ("上级地区", None, 10),
    "institutions_constraint_exceeded": ("超约束值单位数", "0", 9),
    "period": ("期间", None, 10), "expected": ("应报单元日", "0", 9), "complete": ("完整单元日", "0", 9),
    "completeness": ("计量完整率", PCT, 9), "on_time": ("按时", None, 6),
    "scope": ("范围", None, 10), "scope_name": ("范围名称", None, 12), "indicator": ("指标", None, 16),
    "indicator_zh": ("指标名称", None, 18), "unit": ("单位", None, 10), "value": ("本年值", QTY3, 11),
    "base_year": ("基期年", "0", 7), "base_value": ("基期值", QTY3, 11), "base_source": ("基期值来源", None, 9),
    "change": ("较基期变化", PCT, 9), "target": ("规划目标", QTY3, 9), "due": ("按进度应达", PCT, 9),
    "progress": ("目标完成进度", PCT, 9), "on_track": ("进度达标", None, 8), "reason": ("说明", None, 14),
    "reason_zh": ("通报事由", None, 14), "actual": ("实际值", QTY3, 12), "limit": ("目标/限值", QTY3, 12),
    "excess": ("超出比例", PCT, 9), "previous": ("上年值", QTY3, 12), "detail": ("依据/明细", None, 36),
    "entries": ("通报条数", "0", 8), "category_zh": ("类别名称", None, 10),
    **{f"pts_{c}": (f"{CRITERIA_ZH[c]}得分", "0.0", 8) for c in CRITERIA},
    **{f"n_{r}": (NOTICE_REASONS[r], "0", 10) for r in NOTICE_REASONS},
}


@dataclass(frozen=True)
class AssessmentReport:
    """An assessment with what its workbooks state: basis, factor set, scheme."""

    assessment: Assessment
    config: QuotaConfig
    basis: str
    factor_set: str
    region_names: dict[str, str]
    inputs: AssessmentInputs  # what it was computed from (plan indicators of other scopes)


def green_power_kwh(bills: pd.DataFrame, year: int, tz: str, factors: FactorSet) -> pd.Series:
    """Green-power purchases of `year` per institution (kWh): the bills of
    GREEN_POWER_ENERGY spread over their days like any bill (`models.energy.split_bills`)."""
    gp = bills[bills["energy"] == GREEN_POWER_ENERGY] if len(bills) else bills
    if gp.empty:
        return pd.Series(dtype=float)
    rows = split_bills(gp.assign(energy="electricity"), "year", tz, f"{year}-01-01", f"{year + 1}-01-01", factors)
    return rows.groupby("institution_id")["quantity"].sum()


def _year_rows(use: pd.DataFrame, year: int, tz: str) -> pd.DataFrame:
    start = pd.Timestamp(f"{year}-01-01", tz=tz)
    t = pd.DatetimeIndex(use["period_start"]) if len(use) else pd.DatetimeIndex([], tz=tz)
    return use[(t >= start) & (t < start + pd.DateOffset(years=1))] if len(use) else use


def build_assessment(store, registry, quotas: QuotaConfig | None, year: int, quality_alerts: pd.DataFrame | None = None,
                     submissions: Submissions | None = None, factors: FactorSet | None = None) -> AssessmentReport:
    """The assessment of calendar `year` from the store (module docstring)."""
    config = quotas or QuotaConfig()
    factors = factors or load_factors()
    basis = normalize_basis(config.basis)
    tz = registry.timezone
    submissions = submissions or MeteredSubmissions(store, registry, factors)
    use = energy_use(store, registry, f"{year - 1}-01-01", f"{year + 1}-01-01", "day", factors)
    cur_use = _year_rows(use, year, tz)
    current = indicators(cur_use, registry, factors, basis, freq="day")
    previous = indicators(_year_rows(use, year - 1, tz), registry, factors, basis, freq="day")
    monthly = indicators(cur_use, registry, factors, basis, freq="day", by_period="month")
    targets = evaluate_targets(config, monthly, f"{year + 1}-01-01", regions=registry, year=year)
    levels = quota_levels(current, config, regions=registry)
    months = pd.concat([submissions.months(year - 1), submissions.months(year)], ignore_index=True)
    if config.plan.base_year == year - 1:
        base, base_months = previous, months
    else:
        base, base_months = _plan_base(store, registry, config, year, factors, submissions)
    names = {r.id: r.name for r in registry.regions}
    inputs = AssessmentInputs(
        year=year, current=current, previous=previous, targets=targets, levels=levels, months=months,
        quality_alerts=quality_alerts if quality_alerts is not None else no_alerts(),
        green_kwh=green_power_kwh(store.read_bills(), year, tz, factors), base=base, base_months=base_months,
        regions=registry, region_names=names)
    return AssessmentReport(assess(inputs, config), config, basis, factors.id, names, inputs)


def _plan_base(store, registry, config: QuotaConfig, year: int, factors: FactorSet,
               submissions: Submissions) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The plan's base year: its indicators and monthly completeness, or (None, None) when it
    is not before `year` or the store has nothing of it."""
    base_year = config.plan.base_year
    if base_year >= year:
        return None, None
    use = energy_use(store, registry, f"{base_year}-01-01", f"{base_year + 1}-01-01", "day", factors)
    if use.empty:
        return None, None
    return (indicators(use, registry, factors, normalize_basis(config.basis), freq="day"),
            submissions.months(base_year))


def plan_inputs(store, registry, quotas: QuotaConfig | None, year: int, submissions: Submissions | None = None,
                factors: FactorSet | None = None, current: pd.DataFrame | None = None) -> AssessmentInputs:
    """Only what the plan's indicators of `year` need: `quotas.assessment.plan_for` on them
    gives the rows `build_assessment` gives. The year's indicators (`current` when the
    caller has them: `models.api.indicators` of the calendar year on the quota file's
    basis) and quota levels, green power and, only when the store has the plan's base
    year, its indicators and both years' completeness (no targets, no year before, no
    completeness otherwise): the overview's plan panel uses it."""
    config = quotas or QuotaConfig()
    factors = factors or load_factors()
    submissions = submissions or MeteredSubmissions(store, registry, factors)
    if current is None:
        use = energy_use(store, registry, f"{year}-01-01", f"{year + 1}-01-01", "day", factors)
        current = indicators(use, registry, factors, normalize_basis(config.basis), freq="day")
    base, base_months = _plan_base(store, registry, config, year, factors, submissions)
    months = submissions.months(year) if base is not None else pd.DataFrame(columns=MONTH_COLUMNS)
    return AssessmentInputs(
        year=year, current=current, previous=current.iloc[:0], targets=pd.DataFrame(),
        levels=quota_levels(current, config, regions=registry), months=months,
        green_kwh=green_power_kwh(store.read_bills(), year, registry.timezone, factors), base=base,
        base_months=base_months, regions=registry, region_names={r.id: r.name for r in registry.regions})


def scoped(report: AssessmentReport, institution_ids: set[str] | None, region_ids: set[str] | None,
           plan_scopes: set[str] | None) -> AssessmentReport:
    """The report cut down to these institutions, assessed regions and plan scopes (each
    None: all), ranks kept (as computed among all): what a user with that scope may see.
    Its `inputs` stay whole (for plan rows of other scopes): never show them as they are."""
    a = report.assessment

    def keep(frame: pd.DataFrame, col: str, ids: set[str] | None) -> pd.DataFrame:
        return frame if ids is None else frame[frame[col].isin(ids)].reset_index(drop=True)

    cut = replace(a, institutions=keep(a.institutions, "institution_id", institution_ids),
                  regions=keep(a.regions, "region", region_ids),
                  periods=keep(a.periods, "institution_id", institution_ids),
                  notice=keep(a.notice, "institution_id", institution_ids),
                  plan=keep(a.plan, "scope", plan_scopes),
                  key_users=keep(a.key_users, "institution_id", institution_ids))
    return replace(report, assessment=cut)


# -- writers ---------------------------------------------------------------------------------------
def _col(key: str) -> Col:
    label, fmt, width = ALABELS.get(key, (key, None, 12))
    return Col(key, label, fmt, width)


def _notes(report: AssessmentReport, title: str) -> list[str]:
    return [f"{report.assessment.year} 年度{title} — 电力折标口径 basis: {BASIS_LABEL[report.basis]}; "
            f"因子集 factor set: {report.factor_set}; 定额文件 quota file: {report.config.source}"]


def _readable(frame: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    out = frame.copy()
    if "region" in out and "region_name" not in out:
        out["region_name"] = out["region"].map(names).fillna(out["region"])
    if "yoy_reason" in out:
        out["yoy_reason"] = out["yoy_reason"].map(YOY_REASONS).fillna("")
    for col in ("key_user", "on_time", "on_track"):
        if col in out:
            known = out[col].notna()
            out[col] = np.where(known, np.where(out[col].where(known, False).astype(bool), "是", "否"), "")
    return out


def scheme_rows(config: QuotaConfig) -> pd.DataFrame:
    """The scoring scheme as key / value rows (the 评分办法 sheet)."""
    s, k, p = config.assessment, config.key_users, config.plan
    rows = [*[(f"weights.{c}", f"{getattr(s.weights, c):g}  {CRITERIA_ZH[c]}") for c in CRITERIA],
            *[(f"quota_points.{lv}", f"{v:g}  {LEVEL_ZH.get(lv, lv)}") for lv, v in s.quota_points.model_dump().items()],
            ("yoy", f"{s.yoy.indicator}: 满分 ≤ {s.yoy.full_at:+.1%}, 零分 ≥ {s.yoy.zero_at:+.1%}"),
            *[(f"rules.{n}", str(v)) for n, v in s.rules.model_dump().items()],
            ("grades", "; ".join(f"{g.name} ≥ {g.min_score:g}" for g in s.grades)),
            ("veto", ", ".join(s.veto) or "-"),
            ("key_users.threshold_tce", f"{k.threshold_tce:g}"),
            *[(f"key_users.rules.{n}", str(v)) for n, v in k.rules.model_dump().items()],
            ("plan", f"{p.name}: {p.base_year} -> {p.target_year}"),
            *[(f"plan.targets.{n}", "" if v is None else f"{v:g}") for n, v in p.targets.model_dump().items()]]
    return pd.DataFrame(rows, columns=["key", "value"])


INSTITUTION_COLUMNS = ["rank", "institution_id", "name", "region_name", "category", "key_user", "score", "grade",
                       "veto", *[f"pts_{c}" for c in CRITERIA], "max_points", "tce", "targets_met", "targets_n",
                       "quota_levels", "periods_on_time", "periods", "review", "late_detail", "estimated_share",
                       "open_quality_alerts", "yoy_indicator", "yoy_current", "yoy_previous", "yoy_change",
                       "yoy_reason", "metering_completeness", "max_estimated_share", "max_open_quality_alerts"]
REGION_COLUMNS = ["region", "region_name", "parent", "rank", "score", "grade", "veto", *[f"pts_{c}" for c in CRITERIA],
                  "max_points", "institutions", "key_users", "targets_met", "targets_n", "periods_on_time",
                  "periods", "institutions_constraint_exceeded", "yoy_indicator", "yoy_current", "yoy_previous",
                  "yoy_change", "yoy_reason", "yoy_institutions"]
KEY_USER_COLUMNS = ["institution_id", "name", "region_name", "category", "tce", "review", "metering_completeness",
                    "max_estimated_share", "max_open_quality_alerts", "score", "grade", "rank"]
PLAN_SHEET_COLUMNS = ["scope", "scope_name", "indicator", "indicator_zh", "unit", "year", "value", "institutions",
                      "base_year", "base_value", "base_source", "change", "target", "due", "progress",
                      "on_track", "reason"]
NOTICE_SHEET_COLUMNS = ["region", "region_name", "institution_id", "name", "category", "category_zh", "key_user",
                        "reason_zh",
                        "indicator", "indicator_zh", "unit", "actual", "limit", "excess", "previous", "change",
                        "detail"]


def plan_sheet(report: AssessmentReport) -> pd.DataFrame:
    p = report.assessment.plan.copy()
    p["scope_name"] = p["scope"].map({"all": "全部", **report.region_names}).fillna(p["scope"])
    p["indicator_zh"] = p["indicator"].map(INDICATOR_ZH)
    p["base_source"] = p["base_source"].map(BASIS_OF).fillna("")
    p["reason"] = p["reason"].map(PLAN_REASONS).fillna("")
    return _readable(p, report.region_names)


def write_assessment(report: AssessmentReport, out: str | Path) -> Path:
    """The assessment workbook (module docstring)."""
    out = Path(out)
    a, names = report.assessment, report.region_names
    notes = _notes(report, "公共机构节能考核 / Year-end assessment")
    wb = new_workbook()
    write_sheet(wb, "考核结果", _readable(a.institutions, names), [_col(c) for c in INSTITUTION_COLUMNS],
                freeze_cols=3, notes=notes)
    regions = a.regions.rename(columns={"name": "region_name"})
    write_sheet(wb, "地区考核", _readable(regions, names), [_col(c) for c in REGION_COLUMNS], freeze_cols=2,
                notes=notes)
    write_sheet(wb, "重点用能单位", _readable(a.key_users, names), [_col(c) for c in KEY_USER_COLUMNS], freeze_cols=2,
                notes=[*notes, f"重点用能单位：年综合能耗 ≥ {report.config.key_users.threshold_tce:g} tce"])
    write_sheet(wb, "规划指标", plan_sheet(report), [_col(c) for c in PLAN_SHEET_COLUMNS], freeze_cols=3,
                notes=notes)
    write_sheet(wb, "报送情况", _readable(a.periods, names),
                [_col(c) for c in ("institution_id", "period", "expected", "complete", "completeness", "on_time")],
                freeze_cols=2, notes=notes)
    write_sheet(wb, "评分办法", scheme_rows(report.config), [Col("key", "项目", None, 30), Col("value", "内容", None, 70)],
                freeze_cols=0)
    wb.save(out)
    return out


def notice_sheet(report: AssessmentReport) -> pd.DataFrame:
    n = report.assessment.notice.copy()
    n["indicator_zh"] = n["indicator"].map(INDICATOR_ZH)
    n["category_zh"] = n["category"].map(CATEGORY_ZH)
    return _readable(n, report.region_names)


def notice_summary(report: AssessmentReport) -> pd.DataFrame:
    """Per region: the number of entries and of institutions named, per reason."""
    n = report.assessment.notice
    counts = pd.crosstab(n["region"], n["reason"]).reindex(columns=list(NOTICE_REASONS), fill_value=0) if len(n) \
        else pd.DataFrame(columns=list(NOTICE_REASONS), index=pd.Index([], name="region"))
    out = counts.add_prefix("n_").reset_index()
    out["entries"] = counts.sum(axis=1).to_numpy(int) if len(counts) else []
    out["institutions"] = n.groupby("region")["institution_id"].nunique().reindex(out["region"]).to_numpy() \
        if len(n) else []
    return _readable(out, report.region_names)


def write_notice(report: AssessmentReport, out: str | Path) -> Path:
    """The notice workbook (module docstring)."""
    out = Path(out)
    notes = _notes(report, "公共机构节能考核通报 / Assessment notice")
    wb = new_workbook()
    write_sheet(wb, "通报", notice_sheet(report), [_col(c) for c in NOTICE_SHEET_COLUMNS], freeze_cols=4, notes=notes)
    write_sheet(wb, "地区汇总", notice_summary(report),
                [_col(c) for c in ("region", "region_name", "entries", "institutions",
                                   *[f"n_{r}" for r in NOTICE_REASONS])], freeze_cols=2, notes=notes)
    about = pd.DataFrame({"key": ["year", "basis", "factor_set", "quota_file", *[f"reason.{r}" for r in NOTICE_REASONS]],
                          "value": [report.assessment.year, BASIS_LABEL[report.basis], report.factor_set,
                                    report.config.source, *NOTICE_REASONS.values()]})
    write_sheet(wb, "说明", about, [Col("key", "项目", None, 24), Col("value", "内容", None, 60)], freeze_cols=0)
    wb.save(out)
    return out


# -- the printable notice ------------------------------------------------------------------------
PRINT_CSS = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 2em;
       color: #212529; }
h1 { font-size: 1.5em; text-align: center; margin-bottom: 0.2em; }
.sub { text-align: center; color: #495057; margin-bottom: 1.5em; }
h2 { font-size: 1.15em; border-bottom: 2px solid #1c7ed6; padding-bottom: 0.2em; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 0.85em; }
th, td { border: 1px solid #adb5bd; padding: 0.3em 0.5em; vertical-align: top; }
th { background: #e7f5ff; }
td.num { text-align: right; white-space: nowrap; }
.none { color: #2b8a3e; }
.actions { margin-bottom: 1em; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; }
  .actions { display: none; }
  section.region { page-break-inside: avoid; }
  section.region + section.region { page-break-before: always; }
  th { background: #e7f5ff !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _num(v: float, unit: str) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    if unit == "share":
        return f"{v:.1%}"
    if unit in ("periods", "alerts"):
        return f"{v:.0f}"
    return f"{v:,.2f}"


def notice_html(report: AssessmentReport) -> str:
    """The notice as one printable HTML page (print CSS: A4 landscape, one region per page)."""
    a = report.assessment
    n = notice_sheet(report)
    head = ["单位名称", "编码", "类别", "重点用能单位", "通报事由", "指标", "实际值", "目标/限值", "超出", "上年值",
            "同比", "依据/明细"]
    sections = []
    for region, rows in n.groupby("region", sort=True):  # one section per region (few)
        body = "".join(
            "<tr>" + "".join([
                f"<td>{escape(str(r.name))}</td>", f"<td>{escape(str(r.institution_id))}</td>",
                f"<td>{escape(str(r.category_zh))}</td>", f"<td>{escape(str(r.key_user))}</td>",
                f"<td>{escape(str(r.reason_zh))}</td>",
                f"<td>{escape(str(r.indicator_zh or r.indicator))} ({escape(str(r.unit or ''))})</td>",
                f'<td class="num">{_num(r.actual, r.unit)}</td>', f'<td class="num">{_num(r.limit, r.unit)}</td>',
                f'<td class="num">{_num(r.excess, "share")}</td>', f'<td class="num">{_num(r.previous, r.unit)}</td>',
                f'<td class="num">{_num(r.change, "share")}</td>', f"<td>{escape(str(r.detail or ''))}</td>"])
            + "</tr>" for r in rows.itertuples(index=False))
        name = report.region_names.get(region, region)
        sections.append(f'<section class="region"><h2>{escape(name)} ({escape(str(region))}) — '
                        f'{rows["institution_id"].nunique()} 家单位，{len(rows)} 项</h2><table><thead><tr>'
                        + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table>"
                        "</section>")
    if not sections:
        sections.append('<p class="none">本年度无通报事项。 No entries this year.</p>')
    title = f"{a.year} 年度公共机构节能考核通报"
    return (f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{PRINT_CSS}</style></head><body>"
            '<div class="actions"><button onclick="window.print()">打印 Print</button></div>'
            f'<h1 id="notice-title">{title}</h1><div class="sub">Assessment notice {a.year} · 电力折标口径 '
            f"{escape(BASIS_LABEL[report.basis])} · 因子集 {escape(report.factor_set)} · "
            f"{len(n)} 项 entries</div>" + "".join(sections) + "</body></html>")
