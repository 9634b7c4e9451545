"""Data-sufficiency rules of a verification (length of baseline, coverage, meter resolution), pure on frames.

Each check returns findings (verification.findings.Finding): `failures` refuse the
verification (the caller raises InsufficientData), `warnings` go into the report.
A failure's `field` is the project-file field it is reported at.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from verification.findings import Finding
from verification.frames import Span, describe_dates, usable

MIN_COVERAGE = 0.90  # domain.md section 5; CalTRACK 2.0 2.2.1.2: at most 10 % of the baseline days missing
MIN_BASELINE_MONTHS = 12  # domain.md section 7: at least 12 months of baseline for monthly data (and bills)
# Daily (and hourly) baselines span at least 365 days (CalTRACK 2.0 2.2.1.1 and 3.1.3; domain.md
# section 8), of which MIN_COVERAGE must have measured data: every season is in the model.
MIN_BASELINE_DAYS = 365
RESOLUTION_PROBE_DAYS = 14  # readings looked at to find each meter's sampling interval
PERIOD_UNITS = {"day": "days", "hour": "hours", "month": "months"}
READING_INTERVAL_S = {"hour": 3600, "day": 86400}  # coarsest reading interval each granularity can use

Findings = tuple[list[Finding], list[Finding]]  # (failures, warnings)


def phase_findings(span: Span, phase: str, granularity: str, last_data: pd.Timestamp | None) -> Findings:
    """Whether a phase's data allow a verification.

    Coverage counts complete periods; for a daily or hourly baseline only measured
    periods count (interpolated ones are left out of the fit). `last_data`: the last
    period with data in the store (None: none at all), named in the messages."""
    if granularity == "bill":
        return _bill_findings(span, phase)
    fit_only = phase == "baseline" and granularity != "month"
    have = usable(span, granularity) if fit_only else span.periods["complete"].to_numpy(bool)
    missing = span.periods["date"][~have]
    hint = _last_data_hint(missing, last_data, granularity)
    short = _length_failure(span, int(have.sum()), granularity, phase, hint) if phase == "baseline" else None
    if short is not None:
        return [short], []
    failures: list[Finding] = []
    warnings: list[Finding] = []
    n_total, n_have = len(have), int(have.sum())
    coverage = n_have / n_total if n_total else 0.0
    unit = PERIOD_UNITS[granularity]
    kind = "measured data" if fit_only else "data"
    values = {"phase": phase, "periods": n_total, "periods_with_data": n_have, "coverage": coverage}
    if coverage < MIN_COVERAGE:
        days_missing = pd.DatetimeIndex(missing.dt.normalize().unique())
        failures.append(Finding("coverage", f"{kind} cover {coverage:.0%} of the {phase} {unit} (at least "
                                            f"{MIN_COVERAGE:.0%} needed); missing: {describe_dates(days_missing)}{hint}",
                                {**values, "min_coverage": MIN_COVERAGE}, f"{phase}.start"))
    elif coverage < 1.0:
        warnings.append(Finding("gaps", f"{phase}: {n_total - n_have} of {n_total} {unit} have no {kind} and are "
                                        f"left out", values))
    return failures, warnings


def _last_data_hint(missing: pd.Series, last_data: pd.Timestamp | None, granularity: str) -> str:
    """'; the last day with data is ...' when the missing periods run past the data."""
    if last_data is None:
        return "; the store has no data for these meters"
    if len(missing) and missing.iloc[-1] > last_data:
        last = f"{last_data:%Y-%m-%d %H:00}" if granularity == "hour" else f"{last_data:%Y-%m-%d}"
        return f"; the last {PERIOD_UNITS[granularity][:-1]} with data is {last}"
    return ""


def _length_failure(span: Span, n_have: int, granularity: str, phase: str, hint: str = "") -> Finding | None:
    """A model needs 12 complete months (monthly data) or a span of 365 days (daily and
    hourly data; their coverage is checked apart); None when the phase has that."""
    days = len(span.drivers)
    if granularity == "month":
        if n_have >= MIN_BASELINE_MONTHS:
            return None
        return Finding("baseline_short", f"{phase} has {n_have} complete month(s) of data; monthly models need at "
                                         f"least {MIN_BASELINE_MONTHS}{hint}",
                       {"periods_with_data": n_have, "min_periods": MIN_BASELINE_MONTHS, "days": days},
                       f"{phase}.start")
    if days >= MIN_BASELINE_DAYS:
        return None
    kind = {"hour": "hourly", "day": "daily"}[granularity]
    return Finding("baseline_short", f"{phase} spans {days} days; {kind} models need at least {MIN_BASELINE_DAYS} "
                                     f"days (CalTRACK 2.0: a full year, so that every season is in the model), "
                                     f"{MIN_COVERAGE:.0%} of them with measured data",
                   {"days": days, "min_days": MIN_BASELINE_DAYS, "periods_with_data": n_have}, f"{phase}.start")


def model_data_failures(span: Span, granularity: str, phase: str) -> list[Finding]:
    """The data-sufficiency failures of a phase a model is fitted on (the baseline, or
    the reporting period for normalized savings): its length and the coverage of its
    usable periods (verification.frames.usable)."""
    if granularity == "bill":
        return _bill_findings(span, phase, need_bills=True)[0]
    have = usable(span, granularity)
    short = _length_failure(span, int(have.sum()), granularity, phase)
    if short is not None:
        return [short]
    coverage = float(have.mean()) if len(have) else 0.0
    if coverage < MIN_COVERAGE:
        return [Finding("coverage", f"measured data cover {coverage:.0%} of the {phase} {PERIOD_UNITS[granularity]} "
                                    f"(at least {MIN_COVERAGE:.0%} needed)",
                        {"phase": phase, "coverage": coverage, "min_coverage": MIN_COVERAGE}, f"{phase}.start")]
    return []


def _bill_findings(span: Span, phase: str, need_bills: bool = False) -> Findings:
    """Billing data: at least 12 bills of baseline (of any phase a model is fitted on:
    `need_bills`), bills covering >= MIN_COVERAGE of the days."""
    missing = span.missing_days if span.missing_days is not None else pd.DatetimeIndex([])
    total = len(span.drivers) + len(missing)
    coverage = len(span.drivers) / total if total else 0.0
    where = f"{phase}.start"
    values = {"phase": phase, "bills": len(span.periods), "days": total, "days_covered": len(span.drivers),
              "coverage": coverage}
    if (phase == "baseline" or need_bills) and len(span.periods) < MIN_BASELINE_MONTHS:
        return [Finding("baseline_short", f"{phase} has {len(span.periods)} bill(s) wholly inside it; billing "
                                          f"models need at least {MIN_BASELINE_MONTHS}",
                        {**values, "min_periods": MIN_BASELINE_MONTHS}, where)], []
    if coverage < MIN_COVERAGE:
        return [Finding("coverage", f"bills cover {coverage:.0%} of the {phase} days (at least {MIN_COVERAGE:.0%} "
                                    f"needed); not covered: {describe_dates(missing)}",
                        {**values, "min_coverage": MIN_COVERAGE}, where)], []
    if len(missing):
        return [], [Finding("gaps", f"{phase}: {len(missing)} days are not covered by a bill wholly inside the "
                                    f"period", values)]
    return [], []


def resolution_findings(samples: pd.DataFrame, granularity: str) -> list[Finding]:
    """Hourly models need readings at least hourly, daily models at least daily: a
    coarser meter would give interpolated, not measured, periods. `samples`: readings
    (meter_id, time) of the first RESOLUTION_PROBE_DAYS of the baseline."""
    need_s = READING_INTERVAL_S.get(granularity)
    if need_s is None or samples.empty:
        return []
    t = pd.DatetimeIndex(samples["time"]).as_unit("s").asi8
    step = pd.DataFrame({"meter_id": samples["meter_id"].to_numpy(), "dt": np.diff(t, prepend=t[0])})
    step = step[step["meter_id"].eq(step["meter_id"].shift())]
    median = step.groupby("meter_id")["dt"].median()
    coarse = median[median > need_s]
    kind = {"hour": "hourly", "day": "daily"}[granularity]
    return [Finding("meter_too_coarse", f"meter {mid} reads every {dt_s / 3600:g} h; {kind} models need a reading "
                                        f"at least every {need_s // 3600} h (use a coarser granularity)",
                    {"meter_id": mid, "reading_interval_s": float(dt_s), "max_interval_s": need_s}, "granularity")
            for mid, dt_s in coarse.items()]


def silent_meters(meter_ids: list[str], seen: set[str], start: dt.date, end: dt.date, field: str) -> list[Finding]:
    """Meters in scope without any data while others have some: the root cause of every
    gap that follows, so the only failure reported."""
    silent = [m for m in meter_ids if m not in seen]
    if not silent or len(silent) == len(meter_ids):
        return []
    return [Finding("meter_without_data", f"meter(s) in scope without any data from {start} to {end}: "
                                          f"{', '.join(silent)}", {"meter_ids": silent}, field)]
