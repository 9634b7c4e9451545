"""Phase frames of a verification (periods with consumption, daily drivers, day-to-period layout), pure.

Built from frames only (the store's consumption rows, bills, the driver CSVs' frames):
reading the store is `verification.verify`'s job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.calendar import day_types
from core.vocab import unit_scale
from verification.baseline import Layout
from verification.findings import Finding


@dataclass
class Span:
    """Periods of one phase (baseline, reporting or a normal year) with their drivers.

    periods: one row per period: date, actual (energy units; NaN where missing),
      estimated_share (0..1), complete (bool), [days, period_end];
    drivers: one row per day: date, temp_c (°C), working (0/1), [occupancy (persons)];
    layout: which period each day (or hour) belongs to;
    missing_days: billing only, days of the phase no bill covers.
    """

    periods: pd.DataFrame
    drivers: pd.DataFrame
    layout: Layout
    missing_days: pd.DatetimeIndex | None = None

    def period_mean(self, daily: np.ndarray) -> np.ndarray:
        """Per period: the mean of a daily quantity over the period's days."""
        return self.layout.aggregate(daily)[:, 0] / self.layout.aggregate(np.ones(len(daily)))[:, 0]

    def period_working(self) -> np.ndarray:
        """Per period: working days (month: a count; day, hour: 0/1 of its day)."""
        return self.layout.period_working(self.drivers["working"].to_numpy(float))

    def positions(self) -> np.ndarray:
        """Integer time position of each period, so that two periods are adjacent exactly
        when their positions differ by 1: the row number for days, hours and months
        (every period of the phase has a row, with or without data); for bills, a gap
        of uncovered days between two bills counts as one missing period."""
        if "period_end" not in self.periods:
            return np.arange(len(self.periods), dtype=np.int64)
        start = self.periods["date"].to_numpy("datetime64[D]")
        end = self.periods["period_end"].to_numpy("datetime64[D]")
        step = np.ones(len(start), np.int64)
        step[1:] += start[1:] - end[:-1] > np.timedelta64(1, "D")
        return np.cumsum(step) - 1


def empty_consumption() -> pd.DataFrame:
    """A consumption frame without rows (period, quantity, estimated_share, n_meters)."""
    return pd.DataFrame({"period": pd.Series(dtype="datetime64[us]"), "quantity": pd.Series(dtype=float),
                         "estimated_share": pd.Series(dtype=float), "n_meters": pd.Series(dtype=int)})


def sum_meters(raw: pd.DataFrame) -> pd.DataFrame:
    """Consumption rows of several meters (period_start, quantity, estimated_share) summed
    per naive local period: period, quantity, estimated_share, n_meters (meters with data)."""
    if raw.empty:
        return empty_consumption()
    period = pd.DatetimeIndex(raw["period_start"]).tz_localize(None).as_unit("us")
    q = raw["quantity"].to_numpy(float)
    df = pd.DataFrame({"period": period, "quantity": q, "est": q * raw["estimated_share"].to_numpy(float), "n_meters": 1})
    g = df.groupby("period", as_index=False, sort=True).sum()
    share = np.divide(g["est"].to_numpy(float), g["quantity"].to_numpy(float),
                      out=np.zeros(len(g)), where=np.abs(g["quantity"].to_numpy(float)) > 1e-12)
    return pd.DataFrame({"period": g["period"], "quantity": g["quantity"].to_numpy(float),
                         "estimated_share": np.clip(share, 0, 1), "n_meters": g["n_meters"].to_numpy(int)})


def daily_drivers(temperature: pd.DataFrame, calendar: pd.DataFrame | None, start: dt.date,
                  end: dt.date) -> pd.DataFrame:
    """Every day of [start, end]: date, temp_c (°C), working (the calendar CSV's, else
    the product's holiday calendar `core.calendar`: weekdays, public holidays off,
    make-up workdays on), occupancy (persons, when the calendar has it)."""
    days = pd.DataFrame({"date": pd.date_range(start, end, freq="D").as_unit("us")})
    temps = temperature.assign(date=temperature["date"].astype("datetime64[us]"))
    out = days.merge(temps, on="date", how="left")
    out["working"] = _working(out["date"])
    if calendar is not None:
        cal = calendar.assign(date=calendar["date"].astype("datetime64[us]"))
        merged = out[["date"]].merge(cal, on="date", how="left")
        out["working"] = merged["working"].fillna(out["working"]).to_numpy(float)
        if "occupancy" in cal:
            out["occupancy"] = merged["occupancy"].to_numpy(float)
    return out


def _working(dates: pd.Series) -> np.ndarray:
    """1.0 on the working days of `dates` (`core.calendar`; a year it does not know:
    Monday-Friday), else 0.0."""
    return day_types(pd.DatetimeIndex(dates), unknown="weekdays").working.astype(float)


def normal_drivers(normal_year: pd.DataFrame, reporting_drivers: pd.DataFrame) -> pd.DataFrame:
    """The normal year's days: date, temp_c (°C), working (`core.calendar`) and, when the
    reporting period has it, occupancy (the reporting period's mean per day type)."""
    nd = pd.DataFrame({"date": normal_year["date"].astype("datetime64[us]"),
                       "temp_c": normal_year["temp_c"].to_numpy(float)})
    nd["working"] = _working(nd["date"])
    if "occupancy" in reporting_drivers:
        means = reporting_drivers.groupby("working")["occupancy"].mean()
        nd["occupancy"] = nd["working"].map(means).fillna(reporting_drivers["occupancy"].mean()).to_numpy(float)
    return nd


def meter_span(cons: pd.DataFrame, drivers: pd.DataFrame, n_meters: int, granularity: str) -> Span:
    """Periods of the drivers' days at `granularity` (hour, day or month) with actual
    consumption: a period is complete when all `n_meters` meters have data for it
    (a month when all its days are complete); `actual` is NaN where it is not."""
    days = drivers["date"]
    if granularity == "hour":
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
    if granularity == "month":
        return _month_span(drivers, actual, est, complete)
    periods = pd.DataFrame({"date": per["date"], "actual": actual, "estimated_share": est, "complete": complete})
    return Span(periods.reset_index(drop=True), drivers, layout)


def _month_span(drivers: pd.DataFrame, actual: np.ndarray, est: np.ndarray, complete: np.ndarray) -> Span:
    """Calendar months of daily values: sums, complete when every day is."""
    days = drivers["date"]
    codes, uniques = pd.factorize(days.dt.to_period("M"), sort=True)
    g = pd.DataFrame({"code": codes, "actual": actual, "est_q": actual * est, "complete": complete,
                      "date": days}).groupby("code", sort=True)
    tot = g["actual"].sum(min_count=1).to_numpy(float)
    all_complete = g["complete"].all().to_numpy(bool)
    est_share = np.divide(g["est_q"].sum().to_numpy(float), tot, out=np.zeros(len(tot)),
                          where=np.abs(np.nan_to_num(tot)) > 1e-12)
    periods = pd.DataFrame({"date": g["date"].min().to_numpy(), "actual": np.where(all_complete, tot, np.nan),
                            "estimated_share": np.where(all_complete, est_share, np.nan),
                            "complete": all_complete, "days": g["date"].count().to_numpy(int)})
    return Span(periods.reset_index(drop=True), drivers, Layout("month", codes.astype(np.int64), len(uniques)))


def bills_frame(bills: pd.DataFrame, energy: str, unit: str, owner: str) -> tuple[pd.DataFrame, list[Finding]]:
    """The bills of `energy` (store rows of institution `owner`: energy, unit,
    period_start, period_end, quantity) as period_start, period_end (datetime64, inclusive), quantity (in
    `unit`), sorted; findings (field `granularity`) for units that cannot be converted
    or overlapping periods, in which case the frame must not be used."""
    b = bills[bills["energy"] == energy]
    units = b["unit"].astype(str).to_numpy()
    scale = {u: unit_scale(u, unit) or (1.0 if u == unit else np.nan) for u in pd.unique(units)}  # few units
    factor = pd.Series(units).map(scale).to_numpy(float)
    if np.isnan(factor).any():
        bad = sorted(set(units[np.isnan(factor)]))
        return b, [Finding("bill_unit", f"bills of {energy} in unit(s) {', '.join(bad)} cannot be converted to {unit}",
                           {"units": bad, "unit": unit}, "granularity")]
    out = pd.DataFrame({"period_start": pd.to_datetime(b["period_start"]).astype("datetime64[us]").to_numpy(),
                        "period_end": pd.to_datetime(b["period_end"]).astype("datetime64[us]").to_numpy(),
                        "quantity": b["quantity"].to_numpy(float) * factor}).sort_values("period_start", ignore_index=True)
    overlap = out["period_start"].to_numpy()[1:] <= out["period_end"].to_numpy()[:-1]
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        spans = [f"{out['period_start'][k]:%Y-%m-%d}..{out['period_end'][k]:%Y-%m-%d}" for k in (i, i + 1)]
        return out, [Finding("bill_overlap", f"bills overlap: {spans[0]} and {spans[1]} ({owner}, {energy})",
                             {"first": spans[0], "second": spans[1]}, "granularity")]
    return out, []


def bill_span(bills: pd.DataFrame, drivers: pd.DataFrame) -> Span:
    """Billing periods lying wholly inside the drivers' days (one period per bill) and
    the days they cover; `missing_days`: the days no such bill covers."""
    dates = drivers["date"].to_numpy()
    inside = bills[(bills["period_start"] >= dates[0]) & (bills["period_end"] <= dates[-1])].reset_index(drop=True)
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


def usable(span: Span, granularity: str) -> np.ndarray:
    """Periods a model may be fitted on: complete and, for days and hours, measured
    (an interpolated day's value is a guess; a month's total stays exact)."""
    ok = span.periods["complete"].to_numpy(bool).copy()
    if granularity not in ("month", "bill"):
        ok &= span.periods["estimated_share"].fillna(1).to_numpy(float) <= 0.0
    return ok


def missing_dates(have: pd.Series, start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """Days of [start, end] absent from `have`."""
    need = pd.date_range(start, end, freq="D")
    return need[~need.isin(pd.DatetimeIndex(have))]


def describe_dates(days: pd.DatetimeIndex, limit: int = 6) -> str:
    """'2024-03-05..2024-03-09, 2024-04-01 (6 days)': runs of consecutive days."""
    if len(days) == 0:
        return ""
    d = pd.DatetimeIndex(days).sort_values()
    breaks = np.flatnonzero(np.diff(d.as_unit("s").asi8) != 86400) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(d) - 1]])
    runs = [d[s].strftime("%Y-%m-%d") if s == e else f"{d[s]:%Y-%m-%d}..{d[e]:%Y-%m-%d}"
            for s, e in zip(starts[:limit], ends[:limit], strict=True)]
    more = f", ... ({len(starts) - limit} more runs)" if len(starts) > limit else ""
    return f"{', '.join(runs)}{more} ({len(d)} day{'s' if len(d) != 1 else ''})"
