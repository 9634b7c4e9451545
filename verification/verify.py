"""`verify(project, store)`: reads the store into phase frames, then runs the pure model layer on them.

Steps (IPMVP, ASHRAE Guideline 14; domain.md section 7), each in its own module:

1. consumption of the meters in scope per period (daily or hourly from the store;
   monthly = sums of days), summed over meters; a period counts only when every meter
   has data for it; or, for `granularity: bill`, the institution's stored bills
   (this module reads the store; verification.frames builds the phase frames);
2. data sufficiency (verification.sufficiency): enough baseline periods and coverage
   of both periods; failures raise `InsufficientData`;
3. the baseline model (verification.model, verification.baseline) fitted on baseline
   periods with measured data (daily and hourly periods holding interpolated data are
   left out of the fit; months keep them since their totals are exact);
4. adjusted baseline = the model on reporting-period conditions + non-routine
   adjustments; avoided energy = adjusted baseline - actual, per period and in total,
   over the reporting periods with data (verification.savings);
5. uncertainty of the savings at 68 % and 90 % (G14 Annex B, lag-1 autocorrelation);
6. normalized savings: the baseline model and a model fitted the same way on the
   reporting period (actual minus non-routine adjustments), both on the normal year;
7. the payment due under the contract (verification.contract);
8. the result's tables, summary and inputs (verification.result).
"""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

import pandas as pd

from core import localtime
from core.vocab import INDEX_UNIT
from core.yamlfile import ConfigError
from storage import Store
from verification import model as bm
from verification.baseline import BaselineModel
from verification.contract import TRUSTEESHIP_YEARS, annual_use, history_years, uses_history
from verification.findings import Finding, InsufficientData
from verification.frames import Span, bill_span, bills_frame, daily_drivers, meter_span, sum_meters
from verification.project import MVProject, load_project, resolve_meters
from verification.result import MVResult, Sources, evaluate
from verification.sufficiency import (
    READING_INTERVAL_S,
    RESOLUTION_PROBE_DAYS,
    phase_findings,
    resolution_findings,
    silent_meters,
)

__all__ = ["MVResult", "verify", "verify_file"]


def verify(project: MVProject, store: Store, registry=None) -> MVResult:
    """Verify the savings of `project` from the data in `store`.

    Meters: `project.meter_ids` if resolved (load_project with a registry), else
    resolved with `registry`, else the listed meters (option B). Raises
    `InsufficientData` (a core.yamlfile.ConfigError: every problem, located in the
    project file) when the data do not allow a verification, ConfigError when the
    project cannot be resolved.
    """
    meter_ids = _meters_in_scope(project, registry)
    unit = project.unit or INDEX_UNIT.get(project.energy, "")
    baseline, reporting, last_data = _phases(project, store, meter_ids, unit)
    warnings = _sufficiency(project, store, meter_ids, baseline, reporting, last_data)
    model = _fit(project, baseline)
    history = _history(project, store, meter_ids)
    sources = Sources(unit, meter_ids, getattr(store, "url", ""), store.tz, history)
    return evaluate(project, baseline, reporting, model, warnings, sources)


def verify_file(path, registry, store: Store) -> tuple[MVResult | None, list[str]]:
    """Load and verify a project file in one call, for pages that list projects:
    (result, []) or (None, every problem as 'file:line: field: message')."""
    try:
        return verify(load_project(path, registry), store), []
    except ConfigError as exc:  # InsufficientData included
        return None, [str(p) for p in exc.problems]


def _refuse(project: MVProject, failures: list[Finding]) -> NoReturn:
    """Raise InsufficientData with the failures located in the project file."""
    raise InsufficientData([project.problem(f.field, f.message) for f in failures], failures)


def _meters_in_scope(project: MVProject, registry) -> list[str]:
    """The meters whose consumption is verified (none for billing data)."""
    if project.granularity == "bill":
        return []
    if project.meter_ids is not None:
        return project.meter_ids
    if registry is not None:
        return resolve_meters(project, registry)
    if project.meters:
        return list(project.meters)
    raise ConfigError([project.problem("institution", "option C needs the registry to find the main meters")])


def _consumption(store: Store, meter_ids: list[str], start: dt.date, end: dt.date,
                 freq: str) -> tuple[pd.DataFrame, set[str]]:
    """Consumption summed over the meters per local period of [start, end] (frames.sum_meters)
    and the meters with any data."""
    raw = store.consumption(freq, pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1), meter_ids)
    return sum_meters(raw), set(raw["meter_id"]) if len(raw) else set()


def _phases(project: MVProject, store: Store, meter_ids: list[str],
            unit: str) -> tuple[Span, Span, pd.Timestamp | None]:
    """Baseline and reporting spans from the store, and the last period with data."""
    days = [daily_drivers(project.temperature, project.calendar, start, end) for start, end in
            ((project.baseline_start, project.baseline_end), (project.reporting_start, project.reporting_end))]
    if project.granularity == "bill":
        bills, failures = bills_frame(store.read_bills([project.institution]), project.energy, unit,
                                      str(project.institution))
        if failures:
            _refuse(project, failures)
        last_data = bills["period_end"].max() if len(bills) else None
        return bill_span(bills, days[0]), bill_span(bills, days[1]), last_data
    freq = "hour" if project.granularity == "hour" else "day"
    cons, seen = _consumption(store, meter_ids, project.baseline_start, project.reporting_end, freq)
    failures = silent_meters(meter_ids, seen, project.baseline_start, project.reporting_end,
                             "meters" if project.meters else "institution")
    if failures:
        _refuse(project, failures)
    last_data = cons["period"].max() if len(cons) else None
    baseline, reporting = (meter_span(cons, d, len(meter_ids), project.granularity) for d in days)
    return baseline, reporting, last_data


def _sufficiency(project: MVProject, store: Store, meter_ids: list[str], baseline: Span, reporting: Span,
                 last_data: pd.Timestamp | None) -> list[Finding]:
    """Refuse when the data do not allow a verification; else the warnings about them."""
    failures, warnings = _resolution(project, store, meter_ids), []
    for phase, span in (("baseline", baseline), ("reporting", reporting)):
        fail, warn = phase_findings(span, phase, project.granularity, last_data)
        failures += fail
        warnings += warn
    if failures:
        _refuse(project, failures)
    return warnings


def _resolution(project: MVProject, store: Store, meter_ids: list[str]) -> list[Finding]:
    """Meters reading too coarsely for the granularity (from the first days of readings)."""
    if project.granularity not in READING_INTERVAL_S or not meter_ids:
        return []
    start = localtime.first_instant_of(project.baseline_start, store.tz)
    samples = store.read_samples(start, start + pd.Timedelta(days=RESOLUTION_PROBE_DAYS), meter_ids)
    return resolution_findings(samples, project.granularity)


def _fit(project: MVProject, baseline: Span) -> BaselineModel:
    """The baseline model, or InsufficientData when no form can be fitted."""
    try:
        return bm.fit(baseline, project.granularity, project.criterion)
    except ValueError as exc:
        _refuse(project, [Finding("no_baseline_model", str(exc), {}, "baseline")])


def _history(project: MVProject, store: Store, meter_ids: list[str]) -> dict[int, float] | None:
    """Annual use of the years before the reporting period, when the contract needs it:
    the contract's `annual_history`, else the store's complete years."""
    if not uses_history(project.contract):
        return None
    history = project.contract.annual_history
    if not history:
        first, last = history_years(project.reporting_start)
        daily, _ = _consumption(store, meter_ids, first, last, "day")
        history = annual_use(daily, first.year, last.year, len(meter_ids))
    if not history:
        _refuse(project, [Finding("no_history", f"energy-cost trusteeship needs the use of the {TRUSTEESHIP_YEARS} "
                                                f"years before the reporting period: none is complete in the store; "
                                                f"give annual_history or baseline_quantity",
                                  {"years": TRUSTEESHIP_YEARS}, "contract")])
    return history
