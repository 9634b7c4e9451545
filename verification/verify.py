"""Savings verification of a project against the store: `verify(project, store)`.

Steps (IPMVP, ASHRAE Guideline 14; domain.md section 7):

1. consumption of the meters in scope per period (daily or hourly from the store;
   monthly = sums of days), summed over meters; a period counts only when every meter
   has data for it; or, for `granularity: bill`, the institution's stored bills;
2. data sufficiency: at least 12 complete months of baseline for monthly data, 90 days
   for daily and hourly data, and at least `MIN_COVERAGE` of the baseline and reporting
   periods with data (domain.md section 5's completeness target);
3. the baseline model (verification.baseline) fitted on baseline periods with measured
   data (daily and hourly periods holding interpolated data are left out of the fit;
   months keep them since their totals are exact);
4. adjusted baseline = the model on reporting-period conditions + non-routine
   adjustments; avoided energy = adjusted baseline - actual, per period and in total,
   over the reporting periods with data;
5. uncertainty of the savings at 68 % and 90 % (G14 Annex B, lag-1 autocorrelation);
6. normalized savings: the baseline model and a model fitted the same way on the
   reporting period (actual minus non-routine adjustments), both on the normal year;
7. the payment due under the contract (verification.contract).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.vocab import INDEX_UNIT, unit_scale
from storage import Store
from verification import stats
from verification.baseline import BaselineModel, Layout, fit_baseline
from verification.contract import TRUSTEESHIP_YEARS, settle, trusteeship_baseline
from verification.project import MVProject, describe_dates, resolve_meters

MIN_COVERAGE = 0.90  # domain.md section 5: completeness target >= 90 %
MIN_BASELINE_MONTHS = 12  # domain.md section 7: at least 12 months of baseline for monthly data
MIN_BASELINE_DAYS = 90  # daily / hourly: a season at least; a full year is recommended (warning below)
FULL_YEAR_DAYS = 365
RESOLUTION_PROBE_DAYS = 14  # readings looked at to find each meter's sampling interval
CONFIDENCES = (0.68, 0.90)
SIGNIFICANCE_CONFIDENCE = 0.90
MAX_FSU_68 = 0.50  # G14: savings uncertainty below 50 % of the savings at 68 % confidence
# Bill units other than the meter index unit, with their factor to it.


@dataclass
class Span:
    """Periods of one phase (baseline or reporting) with their drivers."""

    periods: pd.DataFrame  # date, actual, estimated_share, complete (bool), [days, period_end]
    drivers: pd.DataFrame  # one row per day: date, temp_c, working, [occupancy]
    layout: Layout
    missing_days: pd.DatetimeIndex | None = None  # billing: days of the phase no bill covers


@dataclass
class MVResult:
    """Everything a report or a dashboard page shows.

    summary: key -> value (interfaces.md keys and more).
    periods: one row per reporting period: date, actual, baseline (the model on the
      period's conditions), adjusted_baseline (+ non-routine adjustments), non_routine,
      avoided, avoided_cumulative, payment_cny, temp_c, hdd, cdd, working, estimated_share.
    baseline_periods: one row per baseline period: date, actual, fitted, residual,
      used (in the fit), temp_c, hdd, cdd, working, estimated_share.
    drivers: one row per day of both periods: date, phase, temp_c, working, [occupancy], hdd, cdd.
    candidates: every model form tried, with its statistics and whether selected.
    normal: normal-year predictions by month (baseline and reporting models) or None.
    inputs: key -> value of every input, enough for a third party to recompute.
    """

    project: MVProject
    summary: dict[str, Any]
    periods: pd.DataFrame
    baseline_periods: pd.DataFrame
    drivers: pd.DataFrame
    candidates: pd.DataFrame
    normal: pd.DataFrame | None
    inputs: dict[str, Any]
    model: BaselineModel
    warnings: list[str] = field(default_factory=list)


# -- data -------------------------------------------------------------------------
def _consumption(store: Store, meter_ids: list[str], start: dt.date, end: dt.date, hourly: bool) -> pd.DataFrame:
    """Summed consumption per local period (naive local `period`) over [start, end]:
    quantity, estimated_share, n_meters. `attrs["meters_seen"]`: meters with any data."""
    freq = "hour" if hourly else "day"
    raw = store.consumption(freq, pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1), meter_ids)
    seen = set(raw["meter_id"]) if len(raw) else set()
    out = _sum_meters(raw)
    out.attrs["meters_seen"] = seen
    return out


def _sum_meters(raw: pd.DataFrame) -> pd.DataFrame:
    """Consumption rows of several meters summed per period, with the meter count."""
    if raw.empty:
        return pd.DataFrame({"period": pd.Series(dtype="datetime64[us]"), "quantity": pd.Series(dtype=float),
                             "estimated_share": pd.Series(dtype=float), "n_meters": pd.Series(dtype=int)})
    period = pd.DatetimeIndex(raw["period_start"]).tz_localize(None).as_unit("us")
    q = raw["quantity"].to_numpy(float)
    df = pd.DataFrame({"period": period, "quantity": q, "est": q * raw["estimated_share"].to_numpy(float), "n_meters": 1})
    g = df.groupby("period", as_index=False, sort=True).sum()
    share = np.divide(g["est"].to_numpy(float), g["quantity"].to_numpy(float),
                      out=np.zeros(len(g)), where=np.abs(g["quantity"].to_numpy(float)) > 1e-12)
    return pd.DataFrame({"period": g["period"], "quantity": g["quantity"].to_numpy(float),
                         "estimated_share": np.clip(share, 0, 1), "n_meters": g["n_meters"].to_numpy(int)})


def _resolution_problems(project: MVProject, store: Store, meter_ids: list[str]) -> list:
    """Hourly models need readings at least hourly, daily models at least daily: a
    coarser meter would give interpolated, not measured, periods."""
    need_s = {"hour": 3600, "day": 86400}.get(project.granularity)
    if need_s is None or not meter_ids:
        return []
    start = pd.Timestamp(project.baseline_start).tz_localize(store.tz)
    sample = store.read_samples(start, start + pd.Timedelta(days=RESOLUTION_PROBE_DAYS), meter_ids)
    if sample.empty:
        return []
    t = pd.DatetimeIndex(sample["time"]).as_unit("s").asi8
    step = pd.DataFrame({"meter_id": sample["meter_id"].to_numpy(), "dt": np.diff(t, prepend=t[0])})
    step = step[step["meter_id"].eq(step["meter_id"].shift())]
    median = step.groupby("meter_id")["dt"].median()
    coarse = median[median > need_s]
    kind = {"hour": "hourly", "day": "daily"}[project.granularity]
    return [project.problem("granularity", f"meter {mid} reads every {dt_s / 3600:g} h; {kind} models need a "
                                           f"reading at least every {need_s // 3600} h (use a coarser granularity)")
            for mid, dt_s in coarse.items()]


def daily_drivers(project: MVProject, start: dt.date, end: dt.date) -> pd.DataFrame:
    """date, temp_c, working (calendar, else Monday-Friday), occupancy (if the calendar has it)."""
    days = pd.DataFrame({"date": pd.date_range(start, end, freq="D").as_unit("us")})
    temps = project.temperature.assign(date=project.temperature["date"].astype("datetime64[us]"))
    out = days.merge(temps, on="date", how="left")
    out["working"] = (out["date"].dt.day_of_week < 5).astype(float)
    if project.calendar is not None:
        cal = project.calendar.assign(date=project.calendar["date"].astype("datetime64[us]"))
        merged = out[["date"]].merge(cal, on="date", how="left")
        out["working"] = merged["working"].fillna(out["working"]).to_numpy(float)
        if "occupancy" in cal:
            out["occupancy"] = merged["occupancy"].to_numpy(float)
    return out


def _bills(project: MVProject, store: Store, unit: str) -> pd.DataFrame:
    """The institution's bills of the project's energy: period_start, period_end
    (datetime64, inclusive), quantity (index unit); ConfigError on unknown units or
    overlapping periods."""
    from core.yamlfile import ConfigError

    b = store.read_bills([project.institution])
    b = b[b["energy"] == project.energy]
    units = b["unit"].astype(str).to_numpy()
    scale = {u: unit_scale(u, unit) or (1.0 if u == unit else np.nan) for u in pd.unique(units)}  # few units
    factor = pd.Series(units).map(scale).to_numpy(float)
    if np.isnan(factor).any():
        bad = sorted(set(units[np.isnan(factor)]))
        raise ConfigError([project.problem("granularity", f"bills of {project.energy} in unit(s) {', '.join(bad)} "
                                                          f"cannot be converted to {unit}")])
    out = pd.DataFrame({"period_start": pd.to_datetime(b["period_start"]).astype("datetime64[us]").to_numpy(),
                        "period_end": pd.to_datetime(b["period_end"]).astype("datetime64[us]").to_numpy(),
                        "quantity": b["quantity"].to_numpy(float) * factor}).sort_values("period_start", ignore_index=True)
    overlap = out["period_start"].to_numpy()[1:] <= out["period_end"].to_numpy()[:-1]
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        spans = [f"{out['period_start'][k]:%Y-%m-%d}..{out['period_end'][k]:%Y-%m-%d}" for k in (i, i + 1)]
        raise ConfigError([project.problem("granularity", f"bills overlap: {spans[0]} and {spans[1]} "
                                                          f"({project.institution}, {project.energy})")])
    return out


def build_bill_span(project: MVProject, bills: pd.DataFrame, start: dt.date, end: dt.date) -> Span:
    """Billing periods lying wholly inside [start, end]; the days they cover."""
    inside = bills[(bills["period_start"] >= pd.Timestamp(start)) & (bills["period_end"] <= pd.Timestamp(end))]
    inside = inside.reset_index(drop=True)
    drivers = daily_drivers(project, start, end)
    dates = drivers["date"].to_numpy()
    idx = np.searchsorted(inside["period_start"].to_numpy(), dates, side="right") - 1
    covered = idx >= 0
    covered[covered] &= dates[covered] <= inside["period_end"].to_numpy()[idx[covered]]
    periods = pd.DataFrame({"date": inside["period_start"], "actual": inside["quantity"].to_numpy(float),
                            "estimated_share": 0.0, "complete": True,
                            "days": np.bincount(idx[covered], minlength=len(inside)),
                            "period_end": inside["period_end"]})
    layout = Layout("month", idx[covered].astype(np.int64), len(inside))
    return Span(periods, drivers[covered].reset_index(drop=True), layout,
                missing_days=pd.DatetimeIndex(dates[~covered]))


def build_span(project: MVProject, cons: pd.DataFrame, start: dt.date, end: dt.date, n_meters: int,
               drivers: pd.DataFrame | None = None, granularity: str | None = None) -> Span:
    """Periods of [start, end] at the project's granularity (or `granularity`), with
    actual consumption (NaN where missing) and the day-to-period layout."""
    drivers = daily_drivers(project, start, end) if drivers is None else drivers
    days = drivers["date"]
    gran = granularity or project.granularity
    if gran == "hour":
        hours = pd.date_range(days.iloc[0], days.iloc[-1] + pd.Timedelta(days=1), freq="h", inclusive="left").as_unit("us")
        per = pd.DataFrame({"date": hours})
        codes = ((hours - days.iloc[0]) // pd.Timedelta(days=1)).to_numpy(np.int64)
        layout = Layout("hour", codes, len(hours), hour=hours.hour.to_numpy(np.int64))
    else:
        per = pd.DataFrame({"date": days})
        layout = Layout("day", np.arange(len(days)), len(days))
    merged = per.merge(cons.rename(columns={"period": "date"}), on="date", how="left")
    complete = (merged["n_meters"].fillna(0).to_numpy(int) == n_meters)
    actual = np.where(complete, merged["quantity"].to_numpy(float), np.nan)
    est = np.where(complete, merged["estimated_share"].fillna(0).to_numpy(float), np.nan)
    periods = pd.DataFrame({"date": per["date"], "actual": actual, "estimated_share": est, "complete": complete})
    if gran == "month":
        month = days.dt.to_period("M")
        codes, uniques = pd.factorize(month, sort=True)
        g = pd.DataFrame({"code": codes, "actual": actual, "est_q": actual * est, "complete": complete,
                          "date": days}).groupby("code", sort=True)
        tot = g["actual"].sum(min_count=1).to_numpy(float)
        all_complete = g["complete"].all().to_numpy(bool)
        est_share = np.divide(g["est_q"].sum().to_numpy(float), tot, out=np.zeros(len(tot)),
                              where=np.abs(np.nan_to_num(tot)) > 1e-12)
        periods = pd.DataFrame({"date": g["date"].min().to_numpy(), "actual": np.where(all_complete, tot, np.nan),
                                "estimated_share": np.where(all_complete, est_share, np.nan),
                                "complete": all_complete, "days": g["date"].count().to_numpy(int)})
        layout = Layout("month", codes.astype(np.int64), len(uniques))
    return Span(periods.reset_index(drop=True), drivers, layout)


def _usable(span: Span, granularity: str) -> np.ndarray:
    """Periods usable in a fit: complete, and for days and hours, measured (not interpolated)."""
    ok = span.periods["complete"].to_numpy(bool).copy()
    if granularity not in ("month", "bill"):
        ok &= span.periods["estimated_share"].fillna(1).to_numpy(float) <= 0.0
    return ok


def _sufficiency(project: MVProject, span: Span, phase: str, problems: list, warnings: list[str],
                 last_data: pd.Timestamp | None) -> None:
    """Append Problems when the phase's data do not allow a verification.

    Coverage counts complete periods; for a daily or hourly baseline only measured
    periods count (interpolated ones are left out of the fit)."""
    gran = project.granularity
    if gran == "bill":
        _bill_sufficiency(project, span, phase, problems, warnings)
        return
    fit_only = phase == "baseline" and gran != "month"
    have = _usable(span, gran) if fit_only else span.periods["complete"].to_numpy(bool)
    n_total, n_have = len(have), int(have.sum())
    coverage = n_have / n_total if n_total else 0.0
    unit = {"day": "days", "hour": "hours", "month": "months"}[gran]
    kind = "measured data" if fit_only else "data"
    missing = span.periods["date"][~have]
    where = f"{phase}.start"
    hint = ""
    if last_data is None:
        hint = "; the store has no data for these meters"
    elif len(missing) and missing.iloc[-1] > last_data:
        last = f"{last_data:%Y-%m-%d %H:00}" if gran == "hour" else f"{last_data:%Y-%m-%d}"
        hint = f"; the last {unit[:-1]} with data is {last}"
    if phase == "baseline":
        if gran == "month" and n_have < MIN_BASELINE_MONTHS:
            problems.append(project.problem(where, f"baseline has {n_have} complete month(s) of data; "
                                                   f"monthly models need at least {MIN_BASELINE_MONTHS}{hint}"))
            return
        min_points = MIN_BASELINE_DAYS * (24 if gran == "hour" else 1)
        if gran != "month" and n_have < min_points:
            problems.append(project.problem(where, f"baseline has {n_have} {unit} of measured data; at least "
                                                   f"{min_points} are needed{hint}"))
            return
        if len(span.drivers) < FULL_YEAR_DAYS:
            warnings.append(f"baseline spans {len(span.drivers)} days, less than a full year: the model may not "
                            f"cover every season (IPMVP recommends a full cycle of operation)")
    if coverage < MIN_COVERAGE:
        days_missing = pd.DatetimeIndex(missing.dt.normalize().unique())
        problems.append(project.problem(where, f"{kind} cover {coverage:.0%} of the {phase} {unit} (at least "
                                               f"{MIN_COVERAGE:.0%} needed); missing: {describe_dates(days_missing)}"
                                               f"{hint}"))
    elif coverage < 1.0:
        warnings.append(f"{phase}: {n_total - n_have} of {n_total} {unit} have no {kind} and are left out")


def _bill_sufficiency(project: MVProject, span: Span, phase: str, problems: list, warnings: list[str]) -> None:
    """Billing data: at least 12 bills of baseline, bills covering >= MIN_COVERAGE of the days."""
    missing = span.missing_days if span.missing_days is not None else pd.DatetimeIndex([])
    total = len(span.drivers) + len(missing)
    coverage = len(span.drivers) / total if total else 0.0
    where = f"{phase}.start"
    if phase == "baseline" and len(span.periods) < MIN_BASELINE_MONTHS:
        problems.append(project.problem(where, f"baseline has {len(span.periods)} bill(s) wholly inside it; "
                                               f"billing models need at least {MIN_BASELINE_MONTHS}"))
        return
    if coverage < MIN_COVERAGE:
        problems.append(project.problem(where, f"bills cover {coverage:.0%} of the {phase} days (at least "
                                               f"{MIN_COVERAGE:.0%} needed); not covered: {describe_dates(missing)}"))
    elif len(missing):
        warnings.append(f"{phase}: {len(missing)} days are not covered by a bill wholly inside the period")


def _period_nra(project: MVProject, span: Span) -> np.ndarray:
    """Non-routine adjustment per period (energy units)."""
    days = span.drivers["date"]
    per_day = np.zeros(len(days))
    for a in project.adjustments:
        inside = ((days >= pd.Timestamp(a.start)) & (days <= pd.Timestamp(a.end))).to_numpy(bool)
        per_day += np.where(inside, a.quantity_per_day, 0.0)
    return span.layout.aggregate(per_day)[:, 0]


def _degree_columns(model: BaselineModel, span: Span) -> tuple[np.ndarray, np.ndarray]:
    temp = span.drivers["temp_c"].to_numpy(float)
    tb = model.spec.heating_base_c
    tc = model.spec.cooling_base_c
    hdd = span.layout.aggregate(stats.heating_degree_days(temp, tb))[:, 0] if tb is not None else np.zeros(span.layout.n_periods)
    cdd = span.layout.aggregate(stats.cooling_degree_days(temp, tc))[:, 0] if tc is not None else np.zeros(span.layout.n_periods)
    return hdd, cdd


def _annual_history(project: MVProject, store: Store, meter_ids: list[str]) -> dict[int, float]:
    """Use in each of the complete calendar years before the reporting start year."""
    first = project.reporting_start.year - TRUSTEESHIP_YEARS
    cons = _consumption(store, meter_ids, dt.date(first, 1, 1), dt.date(project.reporting_start.year - 1, 12, 31), False)
    out: dict[int, float] = {}
    for year in range(first, project.reporting_start.year):
        sel = cons[cons["period"].dt.year == year]
        days = 366 if pd.Timestamp(year=year, month=12, day=31).day_of_year == 366 else 365
        if len(sel) >= MIN_COVERAGE * days and (sel["n_meters"] == len(meter_ids)).all():
            out[year] = float(sel["quantity"].sum()) * days / len(sel)
    return out


def _normal_drivers(project: MVProject, reporting: Span) -> pd.DataFrame:
    assert project.normal_year is not None
    nd = pd.DataFrame({"date": project.normal_year["date"].astype("datetime64[us]"),
                       "temp_c": project.normal_year["temp_c"].to_numpy(float)})
    nd["working"] = (nd["date"].dt.day_of_week < 5).astype(float)
    if "occupancy" in reporting.drivers:
        # The normal year's occupancy: the reporting period's mean per day type.
        means = reporting.drivers.groupby("working")["occupancy"].mean()
        nd["occupancy"] = nd["working"].map(means).fillna(reporting.drivers["occupancy"].mean()).to_numpy(float)
    return nd


# -- verification -----------------------------------------------------------------
def verify(project: MVProject, store: Store, registry=None) -> MVResult:
    """Verify the savings of `project` from the data in `store`.

    Meters: `project.meter_ids` if resolved (load_project with a registry), else
    resolved with `registry`, else the listed meters (option B). Raises
    core.yamlfile.ConfigError (every problem, located in the project file) when
    the data do not allow a verification.
    """
    from core.yamlfile import ConfigError

    meter_ids = project.meter_ids
    if project.granularity == "bill":
        meter_ids = []
    elif meter_ids is None:
        if registry is not None:
            meter_ids = resolve_meters(project, registry)
        elif project.meters:
            meter_ids = list(project.meters)
        else:
            raise ConfigError([project.problem("institution", "option C needs the registry to find the main meters")])
    unit = project.unit or INDEX_UNIT.get(project.energy, "")
    hourly = project.granularity == "hour"
    warnings: list[str] = []
    problems: list = []

    if project.granularity == "bill":
        bills = _bills(project, store, unit)
        last_data = bills["period_end"].max() if len(bills) else None
        baseline = build_bill_span(project, bills, project.baseline_start, project.baseline_end)
        reporting = build_bill_span(project, bills, project.reporting_start, project.reporting_end)
    else:
        cons = _consumption(store, meter_ids, project.baseline_start, project.reporting_end, hourly)
        last_data = cons["period"].max() if len(cons) else None
        silent = [m for m in meter_ids if m not in cons.attrs["meters_seen"]]
        if silent and len(silent) < len(meter_ids):  # the root cause: say only this
            raise ConfigError([project.problem("meters" if project.meters else "institution",
                                               f"meter(s) in scope without any data from {project.baseline_start} to "
                                               f"{project.reporting_end}: {', '.join(silent)}")])
        baseline = build_span(project, cons, project.baseline_start, project.baseline_end, len(meter_ids))
        reporting = build_span(project, cons, project.reporting_start, project.reporting_end, len(meter_ids))
    problems += _resolution_problems(project, store, meter_ids)
    _sufficiency(project, baseline, "baseline", problems, warnings, last_data)
    _sufficiency(project, reporting, "reporting", problems, warnings, last_data)
    if problems:
        raise ConfigError(problems)

    # -- baseline model
    y_base = baseline.periods["actual"].to_numpy(float)
    used = _usable(baseline, project.granularity)
    try:
        model = fit_baseline(np.where(used, y_base, np.nan), baseline.drivers, baseline.layout, project.criterion)
    except ValueError as exc:
        raise ConfigError([project.problem("baseline", str(exc))]) from exc
    fs = model.stats
    fitted_all = model.predict(baseline.drivers, baseline.layout)
    t_base = baseline.drivers["temp_c"].to_numpy(float)
    t_rep = reporting.drivers["temp_c"].to_numpy(float)
    if t_rep.min() < t_base.min() - 1 or t_rep.max() > t_base.max() + 1:
        warnings.append(f"reporting temperatures ({t_rep.min():.1f}..{t_rep.max():.1f} °C) go beyond the baseline's "
                        f"({t_base.min():.1f}..{t_base.max():.1f} °C): the model extrapolates")

    # -- reporting period
    base_pred = model.predict(reporting.drivers, reporting.layout)
    nra = _period_nra(project, reporting)
    adjusted = base_pred + nra
    actual = reporting.periods["actual"].to_numpy(float)
    has = np.isfinite(actual)
    avoided = np.where(has, adjusted - actual, np.nan)
    m = int(has.sum())
    baseline_total = float(base_pred[has].sum())
    adjusted_total = float(adjusted[has].sum())
    actual_total = float(actual[has].sum())
    avoided_total = float(avoided[has].sum())
    nra_total = float(nra[has].sum())
    fraction = avoided_total / adjusted_total if adjusted_total else float("nan")

    half = {c: stats.savings_uncertainty(fs.cvrmse, fs.n, model.p, m, fs.rho, c, baseline_total) for c in CONFIDENCES}
    fsu = {c: (half[c] / abs(avoided_total) if avoided_total else None) for c in CONFIDENCES}
    low90 = avoided_total - half[0.90]
    significant = avoided_total - half[SIGNIFICANCE_CONFIDENCE] > 0
    meets = bool(fs.cvrmse <= project.cvrmse_max and abs(fs.nmbe) <= project.nmbe_max)

    # -- normalized savings
    normal_table = None
    normalized = None
    reporting_model = None
    if project.normal_year is not None:
        y_rep = np.where(_usable(reporting, project.granularity), actual - nra, np.nan)
        enough = (np.isfinite(y_rep).sum() >= MIN_BASELINE_MONTHS if project.granularity in ("month", "bill")
                  else np.isfinite(y_rep).sum() >= MIN_BASELINE_DAYS * (24 if hourly else 1))
        if not enough:
            warnings.append("normalized savings not computed: too little reporting data to fit a reporting-period "
                            "model (the same minimum as for the baseline)")
        else:
            try:
                reporting_model = fit_baseline(y_rep, reporting.drivers, reporting.layout, project.criterion)
            except ValueError as exc:
                warnings.append(f"normalized savings not computed: {exc}")
        if reporting_model is not None:
            nd = _normal_drivers(project, reporting)
            nspan = build_span(project, pd.DataFrame({"period": pd.Series(dtype="datetime64[us]"),
                                                      "quantity": pd.Series(dtype=float),
                                                      "estimated_share": pd.Series(dtype=float),
                                                      "n_meters": pd.Series(dtype=int)}),
                               nd["date"].iloc[0].date(), nd["date"].iloc[-1].date(), len(meter_ids), drivers=nd,
                               granularity="month" if project.granularity == "bill" else None)
            nb = model.predict(nspan.drivers, nspan.layout)
            nr = reporting_model.predict(nspan.drivers, nspan.layout)
            normalized = float(nb.sum() - nr.sum())
            month = pd.DatetimeIndex(nspan.periods["date"]).to_period("M").to_timestamp()
            normal_table = (pd.DataFrame({"month": month, "baseline_model": nb, "reporting_model": nr})
                            .groupby("month", as_index=False).sum())
            normal_table["normalized_savings"] = normal_table["baseline_model"] - normal_table["reporting_model"]

    # -- contract
    contract_items: dict[str, Any] = {}
    payment = np.zeros(len(actual))
    history: dict[int, float] | None = None
    if project.contract is not None:
        trustee_annual = None
        if project.contract.type == "energy_cost_trusteeship":
            if project.contract.baseline_quantity is not None:
                trustee_annual, rule = project.contract.baseline_quantity, "agreed in the contract (baseline_quantity)"
            else:
                history = project.contract.annual_history or _annual_history(project, store, meter_ids)
                if not history:
                    raise ConfigError([project.problem("contract", f"energy-cost trusteeship needs the use of the "
                                                                   f"{TRUSTEESHIP_YEARS} years before the reporting "
                                                                   f"period: none is complete in the store; give "
                                                                   f"annual_history or baseline_quantity")])
                trustee_annual, rule, applies = trusteeship_baseline(history)
                if not applies:
                    warnings.append(rule)
            contract_items["trusteeship_rule"] = rule
        items, pay = settle(project.contract, avoided[has], low90, actual_total, len(reporting.drivers),
                            nra_total, trustee_annual)
        contract_items.update(items)
        payment[has] = pay

    hdd_r, cdd_r = _degree_columns(model, reporting)
    hdd_b, cdd_b = _degree_columns(model, baseline)
    per = reporting.periods
    periods = pd.DataFrame({
        "date": per["date"], "actual": actual, "baseline": base_pred, "adjusted_baseline": adjusted,
        "non_routine": nra, "avoided": avoided, "avoided_cumulative": np.nancumsum(np.nan_to_num(avoided)),
        "payment_cny": np.where(has, payment, np.nan) if project.contract is not None else np.nan,
        "temp_c": reporting.layout.aggregate(t_rep)[:, 0] / (reporting.layout.aggregate(np.ones(len(t_rep)))[:, 0]),
        "hdd": hdd_r, "cdd": cdd_r,
        "working": reporting.layout.period_working(reporting.drivers["working"].to_numpy(float)),
        "estimated_share": per["estimated_share"],
    })
    bper = baseline.periods
    baseline_periods = pd.DataFrame({
        "date": bper["date"], "actual": y_base, "fitted": fitted_all, "residual": y_base - fitted_all,
        "used": used,
        "temp_c": baseline.layout.aggregate(t_base)[:, 0] / baseline.layout.aggregate(np.ones(len(t_base)))[:, 0],
        "hdd": hdd_b, "cdd": cdd_b,
        "working": baseline.layout.period_working(baseline.drivers["working"].to_numpy(float)),
        "estimated_share": bper["estimated_share"],
    })
    drivers = pd.concat([baseline.drivers.assign(phase="baseline"), reporting.drivers.assign(phase="reporting")],
                        ignore_index=True)
    tb, tc = model.spec.heating_base_c, model.spec.cooling_base_c
    drivers["hdd"] = stats.heating_degree_days(drivers["temp_c"].to_numpy(float), tb) if tb is not None else 0.0
    drivers["cdd"] = stats.cooling_degree_days(drivers["temp_c"].to_numpy(float), tc) if tc is not None else 0.0

    if significant:
        verdict = f"savings verified: {avoided_total:,.0f} {unit} ({fraction:.1%}), 90 % interval above zero"
    elif avoided_total - half[0.90] <= 0 <= avoided_total + half[0.90]:
        verdict = "no significant savings: the 90 % interval includes zero"
    else:
        verdict = "consumption increased: the 90 % interval is below zero"
    if not meets:
        warnings.append(f"the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) {fs.cvrmse:.1%} "
                        f"<= {project.cvrmse_max:.0%}, |NMBE| {abs(fs.nmbe):.2%} <= {project.nmbe_max:.0%})")

    summary: dict[str, Any] = {
        "project": project.id, "name": project.name or "", "option": project.option,
        "energy": project.energy, "unit": unit, "granularity": project.granularity,
        "baseline_period": f"{project.baseline_start}..{project.baseline_end}",
        "reporting_period": f"{project.reporting_start}..{project.reporting_end}",
        "model": model.spec.name, "criterion": project.criterion,
        "heating_balance_point_c": model.spec.heating_base_c, "cooling_balance_point_c": model.spec.cooling_base_c,
        "n": fs.n, "p": model.p, "r2": fs.r2, "adj_r2": fs.adj_r2, "cvrmse": fs.cvrmse, "nmbe": fs.nmbe,
        "cvrmse_max": project.cvrmse_max, "nmbe_max": project.nmbe_max, "meets_ashrae14": meets,
        "rho": fs.rho, "n_effective": stats.effective_n(fs.n, fs.rho), "m": m,
        "baseline_prediction": baseline_total, "non_routine_adjustments": nra_total,
        "adjusted_baseline": adjusted_total, "reporting_actual": actual_total,
        "avoided": avoided_total, "avoided_fraction": fraction,
        "uncertainty68": half[0.68], "uncertainty90": half[0.90],
        "avoided_low68": avoided_total - half[0.68], "avoided_high68": avoided_total + half[0.68],
        "avoided_low90": low90, "avoided_high90": avoided_total + half[0.90],
        "fsu68": fsu[0.68], "fsu90": fsu[0.90], "fsu68_below_50pct": bool(fsu[0.68] is not None and fsu[0.68] <= MAX_FSU_68),
        "t68": stats.t_value(0.68, fs.n - model.p), "t90": stats.t_value(0.90, fs.n - model.p),
        "savings_significant": bool(significant), "verdict": verdict,
        "normalized_savings": normalized,
        "normalized_model": reporting_model.spec.name if reporting_model is not None else None,
        "baseline_coverage": float(used.mean()),
        "reporting_coverage": float(reporting.periods["complete"].mean()),
        **contract_items,
    }
    summary.setdefault("payment_cny", None)
    summary["warnings"] = "; ".join(warnings)

    inputs: dict[str, Any] = {
        "project_file": project.source, "project_id": project.id, "option": project.option,
        "institution": project.institution or "",
        "meters": ", ".join(meter_ids) if meter_ids else "(bills of the institution)",
        "energy": project.energy, "unit": unit, "granularity": project.granularity,
        "store": getattr(store, "url", ""), "timezone": store.tz,
        "baseline_start": str(project.baseline_start), "baseline_end": str(project.baseline_end),
        "reporting_start": str(project.reporting_start), "reporting_end": str(project.reporting_end),
        "temperature_file": project.temperature_file, "normal_year_file": project.normal_year_file or "",
        "calendar_file": project.calendar_file or "(none: Monday-Friday are working days)",
        "criterion": project.criterion, "cvrmse_max": project.cvrmse_max, "nmbe_max": project.nmbe_max,
        "balance_point_grid": "heating 5..25 °C, cooling 10..30 °C, step 0.5 °C",
        "uncertainty_formula": "t(1-a/2, n-p) * 1.26 * CV * sqrt((n/n')(1+2/n)/m) * baseline_prediction; "
                               "n' = n(1-rho)/(1+rho), rho >= 0",
    }
    for path, digest in project.file_hashes.items():
        inputs[f"sha256 {path}"] = digest
    for i, a in enumerate(project.adjustments):
        inputs[f"adjustment[{i}]"] = f"{a.start}..{a.end}: {a.quantity_per_day:g} {unit}/day ({a.reason})"
    if project.contract is not None:
        for k, v in vars(project.contract).items():
            if v is not None:
                inputs[f"contract.{k}"] = v if not isinstance(v, dict) else str(v)
    if history:
        for year, q in sorted(history.items()):
            inputs[f"annual_use {year}"] = q
    for name, c in model.coefficients().items():
        inputs[f"coefficient {name}"] = c
    return MVResult(project, summary, periods, baseline_periods, drivers, model.candidates, normal_table,
                    inputs, model, warnings)



def verify_file(path, registry, store: Store) -> tuple[MVResult | None, list[str]]:
    """Load and verify a project file in one call, for pages that list projects:
    (result, []) or (None, every problem as 'file:line: field: message')."""
    from core.yamlfile import ConfigError
    from verification.project import load_project

    try:
        return verify(load_project(path, registry), store), []
    except ConfigError as exc:
        return None, [str(p) for p in exc.problems]
