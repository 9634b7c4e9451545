"""Monthly submissions as the assessment sees them: per institution and month, how much of what was due came in.

The assessment asks one question of the monthly reporting (统计填报): for each
institution and month, how many of the units due were complete (`Submissions.months`).
The submission workflow (issue 13) does not exist yet, so `MeteredSubmissions` answers
from the data itself, with the one completeness rule (`models.completeness`): the units
are the institution's main meters (a meter-day is complete at >= 90 % of its expected
samples) and the energies it is billed for without a meter (a day is complete when a bill
covers it). When the workflow lands, a class with the same `months` (one unit per
institution and month, complete when it was submitted by the deadline) replaces it
without touching the scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from core.vocab import GREEN_POWER
from models.completeness import (
    MONTH_COLUMNS,
    completeness_sums,
    institution_month_completeness_of_sums,
    live_meters,
)
from models.energy import combine_use, empty_use, split_bills
from models.factors import FactorSet, load_factors

BILLED_LOOKBACK_YEARS = 1  # an energy billed in the year before is expected every day of the year


class Submissions(Protocol):
    """Where the assessment learns how complete each month's submission was."""

    def months(self, year: int) -> pd.DataFrame:
        """One row per institution and month of `year`: institution_id, month (first
        day, naive local), days, expected (units due), complete (units complete),
        completeness (complete / expected). An institution absent had nothing due."""
        ...


@dataclass
class MeteredSubmissions:
    """`Submissions` from the store: the metering completeness of each month (module docstring)."""

    store: object
    registry: object
    factors: FactorSet | None = None
    _intervals: pd.Series | None = field(default=None, init=False, repr=False)  # `main_intervals`, once

    def billed(self, bills: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """(institution_id, energy) of the energies billed in [start - 1 year, end) without a
        main meter (meters win over bills, `models.energy.combine_use`)."""
        since = (start - pd.DateOffset(years=BILLED_LOOKBACK_YEARS)).date()
        if bills.empty:
            return empty_use()[["institution_id", "energy"]]
        bills = bills[bills["energy"] != GREEN_POWER]  # a purchase of green power is not a unit of use
        b = bills[(pd.to_datetime(bills["period_end"]).dt.date >= since)
                  & (pd.to_datetime(bills["period_start"]).dt.date < end.date())
                  & bills["institution_id"].isin(self.registry.institution_by_id)]
        pairs = b[["institution_id", "energy"]].astype(str).drop_duplicates()
        return combine_use(empty_use(), pairs, self.registry.meters_frame())[["institution_id", "energy"]]

    def months(self, year: int) -> pd.DataFrame:
        tz = self.registry.timezone
        return self.span(pd.Timestamp(year=year, month=1, day=1, tz=tz), pd.Timestamp(year=year + 1, month=1, day=1,
                                                                                     tz=tz))

    def main_intervals(self) -> pd.Series:
        """meter_id -> poll interval (s) of the live main meters: the meters whose
        completeness the months judge (with `models.completeness.COMPLETENESS_TARGET`),
        found once."""
        if self._intervals is None:
            meters = self.registry.meters_frame()
            live = live_meters(meters[meters["parent"].isna()])
            self._intervals = live.set_index("meter_id")["interval_s"].astype(float)
        return self._intervals

    def span(self, start: pd.Timestamp, end: pd.Timestamp, sums: pd.DataFrame | None = None) -> pd.DataFrame:
        """`months` of the local days in [start, end) (tz-aware local midnights): a year,
        a month, or the compared part of a running year (its last month partial).
        `sums`: the completeness sums of these days per meter and month already read
        (`models.completeness.completeness_sums`, e.g. of every meter for one month; main
        meters are taken from them), else the store sums the main meters'."""
        tz = self.registry.timezone
        start, end = pd.Timestamp(start).tz_convert(tz), pd.Timestamp(end).tz_convert(tz)
        meters = self.registry.meters_frame()
        main = meters[meters["parent"].isna()][["meter_id", "institution_id"]]
        interval = self.main_intervals()
        bills = self.store.read_bills()
        billed = self.billed(bills, start, end)
        due = bills.merge(billed, on=["institution_id", "energy"]) if len(bills) else bills
        bill_days = (split_bills(due, "day", tz, start, end, self.factors or load_factors()) if len(due)
                     else empty_use())
        if sums is None:  # summed by the store from the materialised day counts: no meter-day in memory
            sums = completeness_sums(self.store, interval, start, end, main["meter_id"].tolist(), by="month",
                                     full=False)  # complete days per month are all the months need
        if not len(main) and billed.empty:
            return pd.DataFrame({c: [] for c in MONTH_COLUMNS})
        return institution_month_completeness_of_sums(sums, main, billed, bill_days, start, end)
