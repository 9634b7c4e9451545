"""A verification's result (`MVResult`) from phase frames and a fitted baseline, pure.

`evaluate` computes savings, interval, normalized savings and payment, and the
result's tables, summary and inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from verification import model as bm
from verification import savings, stats
from verification.baseline import COOLING_GRID_C, HEATING_GRID_C, BaselineModel
from verification.contract import settle_contract
from verification.findings import Finding
from verification.frames import Span, normal_drivers, usable
from verification.project import MVProject


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
    findings: what a reader should know (code, message, values); `warnings` their messages.
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
    findings: list[Finding] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """The findings' messages, in order."""
        return [f.message for f in self.findings]


@dataclass(frozen=True)
class Sources:
    """Where the data came from, for the report's inputs sheet."""

    unit: str
    meter_ids: list[str]
    store_url: str
    timezone: str
    history: dict[int, float] | None = None  # annual use by year (energy-cost trusteeship)


def evaluate(project: MVProject, baseline: Span, reporting: Span, model: BaselineModel, findings: list[Finding],
             sources: Sources) -> MVResult:
    """The verification of `project` from its phase frames and the baseline model fitted
    on `baseline`; `findings`: those of the data so far (sufficiency warnings)."""
    findings = [*findings, *savings.extrapolation(baseline, reporting)]
    nra = savings.non_routine(project.adjustments, reporting)
    prediction = bm.predict(model, reporting)
    avoided = savings.avoided_energy(prediction, reporting.periods["actual"].to_numpy(float), nra)
    totals = savings.savings_totals(avoided)
    interval = savings.savings_interval(model, reporting, avoided)
    meets, ashrae_findings = savings.ashrae14(model.stats, project.cvrmse_max, project.nmbe_max, project.granularity)
    verdict = savings.verdict(totals, interval, ashrae_findings, sources.unit)
    findings += verdict.findings
    normalized = None
    if project.normal_year is not None:
        normalized, found = savings.normalized_savings(model, reporting, nra,
                                                       normal_drivers(project.normal_year, reporting.drivers),
                                                       project.granularity, project.criterion)
        findings += found
    contract_items: dict[str, Any] = {}
    payment: np.ndarray | float = np.nan
    if project.contract is not None:
        contract_items, payment, found = settle_contract(
            project.contract, avoided["avoided"].to_numpy(float), interval.low(0.90), totals.actual,
            len(reporting.drivers), totals.non_routine, sources.history, verdict.unpayable_because)
        findings += found
    periods = avoided.assign(payment_cny=payment, **prediction[["temp_c", "hdd", "cdd", "working"]],
                             estimated_share=reporting.periods["estimated_share"])
    summary = {**summary_items(project, sources.unit, model, totals, interval, meets, verdict, normalized),
               "baseline_coverage": float(usable(baseline, project.granularity).mean()),
               "reporting_coverage": float(reporting.periods["complete"].mean()), **contract_items}
    summary.setdefault("payment_cny", None)
    summary["warnings"] = "; ".join(f.message for f in findings)
    return MVResult(project, summary, periods, baseline_frame(model, baseline, project.granularity),
                    daily_frame(model, baseline, reporting), model.candidates,
                    normalized.table if normalized is not None else None,
                    input_items(project, model, sources), model, findings)


def baseline_frame(model: BaselineModel, baseline: Span, granularity: str) -> pd.DataFrame:
    """Per baseline period: date, actual, fitted, residual, used (in the fit), temp_c,
    hdd, cdd, working, estimated_share."""
    fit = bm.predict(model, baseline)
    y = baseline.periods["actual"].to_numpy(float)
    fitted = fit["predicted"].to_numpy(float)
    return pd.DataFrame({"date": baseline.periods["date"], "actual": y, "fitted": fitted, "residual": y - fitted,
                         "used": usable(baseline, granularity), **fit[["temp_c", "hdd", "cdd", "working"]],
                         "estimated_share": baseline.periods["estimated_share"]})


def daily_frame(model: BaselineModel, baseline: Span, reporting: Span) -> pd.DataFrame:
    """Every day of both phases: the drivers, phase, hdd and cdd at the model's balance points."""
    days = pd.concat([baseline.drivers.assign(phase="baseline"), reporting.drivers.assign(phase="reporting")],
                     ignore_index=True)
    return bm.daily_degree_days(model, days)


def interval_items(prefix: str, interval: savings.Interval | None) -> dict[str, float | None]:
    """`prefix`_low68, _high68, _low90, _high90, _uncertainty68/90 (half-widths) and _fsu68/90."""
    keys = [f"{prefix}_{k}{int(c * 100)}" for k in ("low", "high", "uncertainty", "fsu") for c in savings.CONFIDENCES]
    if interval is None:
        return dict.fromkeys(keys)
    values = [f(c) for f in (interval.low, interval.high, interval.half.get, interval.fsu.get)
              for c in savings.CONFIDENCES]
    return dict(zip(keys, values, strict=True))


def summary_items(project: MVProject, unit: str, model: BaselineModel, totals: savings.Savings,
                  interval: savings.Interval, meets: bool, verdict: savings.Verdict,
                  normalized: savings.Normalized | None) -> dict[str, Any]:
    """The summary sheet's model, savings and interval keys (plain JSON values)."""
    fs = model.stats
    return {
        "project": project.id, "name": project.name or "", "option": project.option,
        "energy": project.energy, "unit": unit, "granularity": project.granularity,
        "baseline_period": f"{project.baseline_start}..{project.baseline_end}",
        "reporting_period": f"{project.reporting_start}..{project.reporting_end}",
        "model": model.spec.name, "criterion": project.criterion,
        "heating_balance_point_c": model.spec.heating_base_c, "cooling_balance_point_c": model.spec.cooling_base_c,
        "n": fs.n, "p": model.p, "r2": fs.r2, "adj_r2": fs.adj_r2, "cvrmse": fs.cvrmse, "nmbe": fs.nmbe,
        "cvrmse_max": project.cvrmse_max, "nmbe_max": project.nmbe_max, "meets_ashrae14": meets,
        "rho": fs.rho, "rho_ar1": model.rho_ar1, "n_effective": model.n_effective, "m": totals.m,
        "baseline_prediction": totals.baseline, "non_routine_adjustments": totals.non_routine,
        "adjusted_baseline": totals.adjusted_baseline, "reporting_actual": totals.actual,
        "avoided": totals.avoided, "avoided_fraction": totals.fraction,
        "uncertainty68": interval.half[0.68], "uncertainty90": interval.half[0.90],
        "avoided_low68": interval.low(0.68), "avoided_high68": interval.high(0.68),
        "avoided_low90": interval.low(0.90), "avoided_high90": interval.high(0.90),
        "fsu68": interval.fsu[0.68], "fsu90": interval.fsu[0.90], "fsu68_below_50pct": interval.fsu68_below_limit,
        "dof": interval.dof, "t68": stats.t_value(0.68, interval.dof), "t90": stats.t_value(0.90, interval.dof),
        "savings_significant": interval.significant, "savings_verified": verdict.verified,
        "not_verified_because": "; ".join(f.message for f in verdict.findings), "verdict": verdict.text,
        "normalized_savings": normalized.savings if normalized is not None else None,
        **interval_items("normalized", normalized.interval if normalized is not None else None),
        "normalized_model": normalized.reporting_model.spec.name if normalized is not None else None,
    }


def _grid(grid: np.ndarray) -> str:
    return f"{grid[0]:g}..{grid[-1]:g} °C"


def input_items(project: MVProject, model: BaselineModel, sources: Sources) -> dict[str, Any]:
    """The inputs sheet: every input, file hashes, adjustments, contract terms, annual use, coefficients."""
    unit = sources.unit
    inputs: dict[str, Any] = {
        "project_file": project.source, "project_id": project.id, "option": project.option,
        "institution": project.institution or "",
        "meters": ", ".join(sources.meter_ids) if sources.meter_ids else "(bills of the institution)",
        "energy": project.energy, "unit": unit, "granularity": project.granularity,
        "store": sources.store_url, "timezone": sources.timezone,
        "baseline_start": str(project.baseline_start), "baseline_end": str(project.baseline_end),
        "reporting_start": str(project.reporting_start), "reporting_end": str(project.reporting_end),
        "temperature_file": project.temperature_file, "normal_year_file": project.normal_year_file or "",
        "calendar_file": project.calendar_file or "(none: Monday-Friday are working days)",
        "criterion": project.criterion, "cvrmse_max": project.cvrmse_max, "nmbe_max": project.nmbe_max,
        "balance_point_grid": f"heating {_grid(HEATING_GRID_C)}, cooling {_grid(COOLING_GRID_C)}, "
                              f"step {HEATING_GRID_C[1] - HEATING_GRID_C[0]:g} °C",
        "uncertainty_formula": savings.UNCERTAINTY_FORMULA,
    }
    inputs.update({f"sha256 {path}": digest for path, digest in project.file_hashes.items()})
    inputs.update({f"adjustment[{i}]": f"{a.start}..{a.end}: {a.quantity_per_day:g} {unit}/day ({a.reason})"
                   for i, a in enumerate(project.adjustments)})
    if project.contract is not None:
        inputs.update({f"contract.{k}": v if not isinstance(v, dict) else str(v)
                       for k, v in vars(project.contract).items() if v is not None})
    inputs.update({f"annual_use {year}": q for year, q in sorted((sources.history or {}).items())})
    inputs.update({f"coefficient {name}": c for name, c in model.coefficients().items()})
    return inputs
