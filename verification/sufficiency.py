"""Data-sufficiency rules of a verification (length of baseline, coverage, meter resolution), pure on frames.

Each check returns findings (verification.findings.Finding): `failures` refuse the
verification (the caller raises InsufficientData), `warnings` go into the report.
A failure's `field` is the project-file field it is reported at.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from verification.baseline import HOURS_PER_DAY
from verification.findings import Finding
from verification.frames import Span, describe_dates, usable

MIN_COVERAGE = 0.90  # domain.md section 5: completeness target >= 90 %
MIN_BASELINE_MONTHS = 12  # domain.md section 7: at least 12 months of baseline for monthly data
MIN_BASELINE_DAYS = 90  # daily / hourly: a season at least; a full year is recommended (warning below)
FULL_YEAR_DAYS = 365
RESOLUTION_PROBE_DAYS = 14  # readings looked at to find each meter's sampling interval
PERIOD_UNITS = {"day": "days", "hour": "hours", "month": "months"}
READING_INTERVAL_S = {"hour": 3600, "day": 86400}  # coarsest reading interval each granularity can use

Findings = tuple[list[Finding], list[Finding]]  # (failures, warnings)


def min_fit_points(granularity: str) -> int:
    """Periods a model needs: 12 months (or bills), 90 days, 90 x 24 hours."""
    if granularity in ("month", "bill"):
        return MIN_BASELINE_MONTHS
    return MIN_BASELINE_DAYS * (HOURS_PER_DAY if granularity == "hour" else 1)


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
    failures, warnings = _baseline_length(span, int(have.sum()), granularity, hint) if phase == "baseline" else ([], [])
    if failures:
        return failures, warnings
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


def _baseline_length(span: Span, n_have: int, granularity: str, hint: str) -> Findings:
    """Enough baseline periods for a model; a warning below a full year."""
    need = min_fit_points(granularity)
    values = {"periods_with_data": n_have, "min_periods": need, "baseline_days": len(span.drivers)}
    if n_have < need:
        if granularity == "month":
            message = (f"baseline has {n_have} complete month(s) of data; monthly models need at least "
                       f"{MIN_BASELINE_MONTHS}{hint}")
        else:
            message = (f"baseline has {n_have} {PERIOD_UNITS[granularity]} of measured data; at least {need} are "
                       f"needed{hint}")
        return [Finding("baseline_short", message, values, "baseline.start")], []
    if len(span.drivers) < FULL_YEAR_DAYS:
        return [], [Finding("baseline_under_a_year", f"baseline spans {len(span.drivers)} days, less than a full "
                                                     f"year: the model may not cover every season (IPMVP recommends "
                                                     f"a full cycle of operation)", values)]
    return [], []


def _bill_findings(span: Span, phase: str) -> Findings:
    """Billing data: at least 12 bills of baseline, bills covering >= MIN_COVERAGE of the days."""
    missing = span.missing_days if span.missing_days is not None else pd.DatetimeIndex([])
    total = len(span.drivers) + len(missing)
    coverage = len(span.drivers) / total if total else 0.0
    where = f"{phase}.start"
    values = {"phase": phase, "bills": len(span.periods), "days": total, "days_covered": len(span.drivers),
              "coverage": coverage}
    if phase == "baseline" and len(span.periods) < MIN_BASELINE_MONTHS:
        return [Finding("baseline_short", f"baseline has {len(span.periods)} bill(s) wholly inside it; billing "
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
