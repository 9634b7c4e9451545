"""Alert rules on targets and quota standards, and the one entry point for every rule.

`evaluate_alerts(store, registry, quotas_cfg, at)` returns every alert that holds on
date `at`; `alerts.outbox.Outbox.submit` turns successive evaluations into open /
reminder / resolved notifications.

Evaluation date: `at` is a local date; the quota rules use the data *before* it (the
complete days up to `at - 1`, as `quotas.evaluate.evaluate_targets` does), the meter
rules look at the last complete day and, for `at` = today, at the live state now.

Quota rules (from `quotas.yaml`, on its electricity basis):

* ``dual_control_exceeded`` (critical): a target's year-to-date value already exceeds
  the annual limit (totals: tce, m3, tCO2; intensities: year-to-date per m2 or person).
* ``projected_breach`` (warning): the year-end projection (seasonal shape of last
  year, else days elapsed) exceeds the limit.
* ``projected_near_limit`` (info): the projection reaches `warning_ratio` (95 %) of it.
  The three share a key group (scope/indicator/year): when the condition worsens the
  milder alert is resolved as "superseded" and the graver one opens.
* ``quota_constraint_exceeded`` (warning): an institution's intensity over the last
  12 months (365 days before `at`) is above the constraint (约束值) or the general
  (通用值) value of the quota standard that applies to it. A rolling year compares an
  annual standard with a year of use at any date, and clears when use comes back down.

Meter-data rules: see `alerts.meter_rules` (meter_offline, data_completeness,
abnormal_night_load, abnormal_holiday_load, step_change, submeter_imbalance).
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from alerts.meter_rules import MeterRuleSettings, meter_alerts
from alerts.record import Alert
from core import localtime
from core.vocab import CATEGORY_ZH
from quotas.config import STANDARD_INDICATORS, TARGET_INDICATORS, QuotaConfig

__all__ = ["ALL_RULES", "METER_RULES", "QUOTA_RULES", "Alert", "MeterRuleSettings", "evaluate_alerts",
           "quota_alerts", "target_alerts"]

QUOTA_RULES = ("dual_control_exceeded", "projected_breach", "projected_near_limit", "quota_constraint_exceeded")
METER_RULES = ("meter_offline", "data_completeness", "abnormal_night_load", "abnormal_holiday_load", "step_change",
               "submeter_imbalance")
ALL_RULES = QUOTA_RULES + METER_RULES
ROLLING_DAYS = 365  # the rolling year of the quota-standard rule

STATUS_RULE = {"breach": ("dual_control_exceeded", "critical"),
               "projected_breach": ("projected_breach", "warning"),
               "warning": ("projected_near_limit", "info")}

INDICATOR_ZH = {
    "energy_tce": "能源消费总量", "water_m3": "用水总量", "co2_t": "二氧化碳排放总量",
    "kgce_per_m2": "单位建筑面积能耗", "kgce_per_person": "人均综合能耗", "water_m3_per_person": "人均用水量",
    "kgco2_per_m2": "单位建筑面积碳排放", "heating_kgce_per_m2": "单位采暖面积采暖能耗",
    "nonheating_kgce_per_m2": "单位建筑面积非采暖能耗",
}
INDICATOR_EN = {
    "energy_tce": "total energy", "water_m3": "total water", "co2_t": "total CO2",
    "kgce_per_m2": "energy per floor area", "kgce_per_person": "energy per person",
    "water_m3_per_person": "water per person", "kgco2_per_m2": "CO2 per floor area",
    "heating_kgce_per_m2": "heating energy per heated area", "nonheating_kgce_per_m2": "non-heating energy per floor area",
}


def _num(x: float) -> str:
    return f"{x:,.2f}" if abs(x) < 1000 else f"{x:,.0f}"


def scope_names(registry, scope: str) -> tuple[str, str]:
    """(Chinese, English) display names of a target scope."""
    parts = dict(p.split(":", 1) for p in scope.split("/"))
    if "institution" in parts:
        inst = registry.institution_by_id.get(parts["institution"])
        name = inst.name if inst else parts["institution"]
        return f"{name}（{parts['institution']}）", f"{parts['institution']} ({name})"
    region = registry.region_by_id.get(parts.get("region", ""))
    rname = region.name if region else parts.get("region", "")
    if "category" in parts:
        cat = parts["category"]
        return f"{rname}{CATEGORY_ZH.get(cat, cat)}", f"{parts.get('region')} {cat}"
    return rname, str(parts.get("region"))


def target_alerts(evaluated: pd.DataFrame, registry, stamp: str) -> list[Alert]:
    """Alerts from `quotas.evaluate.evaluate_targets` rows whose status is breach,
    projected_breach or warning."""
    out: list[Alert] = []
    rows = evaluated[evaluated["status"].isin(list(STATUS_RULE))]
    for r in rows.itertuples(index=False):  # one per alerting target indicator (few)
        rule, severity = STATUS_RULE[r.status]
        zh_scope, en_scope = scope_names(registry, r.scope)
        unit = TARGET_INDICATORS.get(r.indicator, r.unit)
        zh_ind, en_ind = INDICATOR_ZH.get(r.indicator, r.indicator), INDICATOR_EN.get(r.indicator, r.indicator)
        act, lim, proj = float(r.actual), float(r.limit), float(r.projected)
        if rule == "dual_control_exceeded":
            zh = f"{zh_scope} {r.year} 年{zh_ind}截至 {r.as_of} 已达 {_num(act)} {unit}，超过双控目标 {_num(lim)} {unit}"
            en = (f"{en_scope}: {r.year} {en_ind} reached {_num(act)} {unit} by {r.as_of}, above the "
                  f"dual-control target of {_num(lim)} {unit}")
        elif rule == "projected_breach":
            zh = (f"{zh_scope} {r.year} 年{zh_ind}预计全年 {_num(proj)} {unit}，将超过双控目标 {_num(lim)} {unit}"
                  f"（截至 {r.as_of} 已用 {_num(act)} {unit}）")
            en = (f"{en_scope}: {r.year} {en_ind} is projected at {_num(proj)} {unit}, above the target of "
                  f"{_num(lim)} {unit} ({_num(act)} {unit} used by {r.as_of})")
        else:
            zh = (f"{zh_scope} {r.year} 年{zh_ind}预计全年 {_num(proj)} {unit}，已达双控目标 {_num(lim)} {unit} 的 "
                  f"{proj / lim:.0%}")
            en = (f"{en_scope}: {r.year} {en_ind} is projected at {_num(proj)} {unit}, {proj / lim:.0%} of the "
                  f"target of {_num(lim)} {unit}")
        inst = r.institution_id if isinstance(r.institution_id, str) else None
        out.append(Alert.new(rule, severity, r.scope, r.indicator, str(r.year), institution_id=inst,
                             actual=act, limit=lim, projected=proj, unit=unit, first_seen=stamp,
                             message_zh=zh, message_en=en,
                             extra={"target_id": r.target_id, "as_of": r.as_of, "basis": r.basis,
                                    "elapsed_share": round(float(r.elapsed_share), 4), "method": r.method,
                                    "factor_set": r.factor_set}))
    return out


def quota_alerts(levels: pd.DataFrame, window: tuple[str, str], stamp: str) -> list[Alert]:
    """Alerts for `quotas.evaluate.quota_levels` rows at level 'exceeds'."""
    out: list[Alert] = []
    rows = levels[levels["level"] == "exceeds"]
    start, end = window
    for r in rows.itertuples(index=False):  # one per exceeding institution indicator
        three = not np.isnan(r.constraint)
        limit = float(r.constraint if three else r.general)
        unit = STANDARD_INDICATORS.get(r.indicator, r.unit)
        zh_ind, en_ind = INDICATOR_ZH.get(r.indicator, r.indicator), INDICATOR_EN.get(r.indicator, r.indicator)
        lvl_zh, lvl_en = ("约束值", "constraint value") if three else ("通用值", "general value")
        out.append(Alert.new(
            "quota_constraint_exceeded", "warning", f"institution:{r.institution_id}", r.indicator,
            f"{start}~{end}", key_period="rolling-12m", institution_id=r.institution_id, actual=float(r.value),
            limit=limit, unit=unit, first_seen=stamp, extra={"standard_id": r.standard_id},
            message_zh=f"{r.name}（{r.institution_id}）近 12 个月{zh_ind} {_num(r.value)} {unit}，"
                       f"超过能耗定额{lvl_zh} {_num(limit)} {unit}（{r.standard_id}）",
            message_en=f"{r.institution_id} ({r.name}): {en_ind} over the last 12 months is {_num(r.value)} {unit}, "
                       f"above the quota {lvl_en} of {_num(limit)} {unit} ({r.standard_id})"))
    return out


def _as_date(at: date | datetime | str | pd.Timestamp) -> date:
    return pd.Timestamp(at).date()


def _target_use(store, registry, year: int, end: pd.Timestamp, factors, cuts: list[pd.Timestamp]) -> pd.DataFrame:
    """The use frame the targets need, as the store's sums: last year's months (its
    seasonal shape, `quotas.evaluate.project_year_end`) and this year to `end` as one
    span (only its sum to date counts: `evaluate_targets`), cut also at `cuts`."""
    from models.api import energy_use

    jan1 = pd.Timestamp(f"{year}-01-01")  # naive local, as `end`
    this_year = localtime.first_instant_of(jan1, registry.timezone)
    parts = [energy_use(store, registry, pd.Timestamp(f"{year - 1}-01-01"), jan1, "day", factors, sums="month",
                        cuts=[c for c in cuts if c < this_year])]
    if pd.Timestamp(end) > jan1:
        parts.append(energy_use(store, registry, jan1, end, "day", factors, sums="year",
                                cuts=[c for c in cuts if c >= this_year]))
    full = [p for p in parts if len(p)] or parts[:1]
    return pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]


def evaluate_alerts(store, registry, quotas_cfg: QuotaConfig | None, at: date | str | None = None,
                    factors=None, meter_settings: MeterRuleSettings | None = None,
                    now: datetime | None = None, rules: tuple[str, ...] = ALL_RULES,
                    details: dict | None = None) -> list[Alert]:
    """Every alert that holds on local date `at` (default: today in the registry's zone).

    `now` (tz-aware) is the live moment for the offline rule when `at` is today; for a
    past `at` the meter rules are evaluated at `at`'s local midnight. `rules` limits
    the rules evaluated (pass the same tuple to `Outbox.submit(rules=...)`). A `details`
    dict receives the intermediate frames: 'targets' (evaluate_targets) and 'levels'
    (quota_levels of the rolling year)."""
    from models.api import energy_use, indicators, load_factors
    from quotas.evaluate import evaluate_targets, quota_levels

    tz = registry.timezone
    now_ts = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz=tz)
    now_ts = localtime.first_instant_of(now_ts, tz)
    at_d = _as_date(at) if at is not None else now_ts.date()
    midnight = localtime.first_instant_of(at_d, tz)
    moment = now_ts if now_ts.date() == at_d else midnight
    stamp = moment.isoformat()
    alerts: list[Alert] = []
    wanted = set(rules)

    if quotas_cfg is not None and wanted & set(QUOTA_RULES) and registry.institutions:
        factors = factors or load_factors()
        year = at_d.year
        roll_start = pd.Timestamp(at_d) - pd.Timedelta(days=ROLLING_DAYS)
        end = pd.Timestamp(at_d)
        # only sums are needed (months of last year and this one; the rolling year), so
        # the store sums all but heating meters (`energy_use(..., sums=...)`)
        targets = bool(wanted & {"dual_control_exceeded", "projected_breach", "projected_near_limit"}
                       and quotas_cfg.targets)
        standards = "quota_constraint_exceeded" in wanted and bool(quotas_cfg.standards)
        use = None
        if targets:  # one read for both: last year's months also cut where the rolling year starts
            use = _target_use(store, registry, year, end, factors,
                              [localtime.first_instant_of(roll_start, tz)] if standards else [])
            monthly = indicators(use, registry, factors, quotas_cfg.basis, freq="day", by_period="month")
            evaluated = evaluate_targets(quotas_cfg, monthly, as_of=end, regions=registry, year=year)
            if details is not None:
                details["targets"] = evaluated
            alerts += [a for a in target_alerts(evaluated, registry, stamp) if a.rule in wanted]
        if standards:
            if use is not None and pd.Timestamp(f"{year - 1}-01-01") <= roll_start:
                window = use[np.asarray(pd.DatetimeIndex(use["period_start"])
                                        >= localtime.first_instant_of(roll_start, tz))] if len(use) else use
            else:
                window = energy_use(store, registry, roll_start, end, "day", factors, sums="year")
            ind = indicators(window, registry, factors, quotas_cfg.basis, freq="day")
            levels = quota_levels(ind, quotas_cfg, regions=registry)
            if details is not None:
                details["levels"] = levels
            last_day = (end - pd.Timedelta(days=1)).date().isoformat()
            alerts += quota_alerts(levels, (roll_start.date().isoformat(), last_day), stamp)

    if wanted & set(METER_RULES):
        alerts += [a for a in meter_alerts(store, registry, moment, meter_settings) if a.rule in wanted]
    return sorted(alerts, key=lambda a: a.key)
