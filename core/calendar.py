"""The one calendar of Chinese public holidays (法定节假日) and make-up working days (调休上班).

The dates come from the `chinesecalendar` package (import name `chinese_calendar`),
which transcribes the State Council General Office's yearly notices
(国务院办公厅关于<year>年部分节假日安排的通知); version 1.11 knows 2004-2026. Everything in
CivicWatt that tells a working day from a non-working one asks this module: the
simulator's load model (`device_sim.load`), the holiday base-load alert
(`alerts.meter_rules`) and the day types of savings verification (`verification.frames`).

* A *holiday* is a day off of a public holiday, weekends inside a holiday included.
* A *make-up workday* is a Saturday or Sunday declared a working day.
* A *working day*: Monday-Friday and not a holiday, or a make-up workday.

A year the package does not know raises `UnknownCalendarYear` (a ValueError naming
the year and the known range) unless the caller asks for the weekday-only fallback
(`unknown="weekdays"`: Monday-Friday work, no holidays); `DayTypes.known` then flags
the days that were judged without the holiday table, so a caller can say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

SOURCE = "chinesecalendar (State Council notices 国务院办公厅关于部分节假日安排的通知)"
Unknown = Literal["error", "weekdays"]


class UnknownCalendarYear(ValueError):
    """A date in a year the holiday calendar does not know."""

    def __init__(self, years: Iterable[int], first: int, last: int):
        self.years = sorted(set(int(y) for y in years))
        listed = ", ".join(map(str, self.years[:5])) + (" ..." if len(self.years) > 5 else "")
        super().__init__(f"the holiday calendar knows {first}-{last}, not {listed}: upgrade the chinesecalendar "
                         f"package, or give the working days yourself (a calendar CSV date,working)")


@dataclass(frozen=True)
class DayTypes:
    """Per day (arrays of the same length as the days asked for)."""

    holiday: np.ndarray  # bool: a day off of a public holiday
    makeup_workday: np.ndarray  # bool: a weekend day declared a working day
    working: np.ndarray  # bool: a working day
    known: np.ndarray  # bool: the year is in the holiday table (False: weekday-only fallback)


@lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, np.ndarray, int, int]:
    """(holiday day numbers, make-up workday day numbers, first year, last year);
    day numbers are days since 1970-01-01."""
    import chinese_calendar

    hol = np.sort(np.array(sorted(chinese_calendar.holidays), dtype="datetime64[D]").astype(np.int64))
    work = np.sort(np.array(sorted(chinese_calendar.workdays), dtype="datetime64[D]").astype(np.int64))
    years = [d.year for d in chinese_calendar.holidays]
    return hol, work, min(years), max(years)


def known_years() -> tuple[int, int]:
    """First and last year the holiday table covers (inclusive)."""
    _h, _w, first, last = _table()
    return first, last


def _day_numbers(days) -> np.ndarray:
    if isinstance(days, np.ndarray) and np.issubdtype(days.dtype, np.integer):
        return days.astype(np.int64)
    idx = pd.DatetimeIndex(days)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    return idx.normalize().to_numpy("datetime64[D]").astype(np.int64)


def day_types(days, unknown: Unknown = "error") -> DayTypes:
    """Holiday, make-up workday and working-day flags of `days` (dates, datetimes, a
    DatetimeIndex — tz-aware ones count by their local date — or int day numbers since
    1970-01-01). unknown: 'error' raises UnknownCalendarYear for a year outside the table;
    'weekdays' judges such days Monday-Friday only (and flags them `known` False)."""
    d = _day_numbers(days)
    hol_days, work_days, first, last = _table()
    years = d.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    known = (years >= first) & (years <= last)
    if unknown == "error" and not known.all():
        raise UnknownCalendarYear(np.unique(years[~known]), first, last)
    holiday = np.isin(d, hol_days) & known
    makeup = np.isin(d, work_days) & known
    weekday = (d + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    working = ((weekday < 5) & ~holiday) | makeup
    return DayTypes(holiday=holiday, makeup_workday=makeup, working=working, known=known)


def is_working_day(day: date | str | pd.Timestamp, unknown: Unknown = "error") -> bool:
    """One day: a working day (see `day_types`)."""
    return bool(day_types(pd.DatetimeIndex([pd.Timestamp(day)]), unknown).working[0])


def working_days_frame(start, end, unknown: Unknown = "error") -> pd.DataFrame:
    """date (datetime64[us], midnight), working (0/1) for every day of [start, end]:
    the format of a savings-verification calendar CSV."""
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    t = day_types(days, unknown)
    return pd.DataFrame({"date": days.as_unit("us"), "working": t.working.astype(np.int64)})


__all__ = ["SOURCE", "DayTypes", "UnknownCalendarYear", "day_types", "is_working_day", "known_years",
           "working_days_frame"]
