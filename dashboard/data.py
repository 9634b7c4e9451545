"""What the dashboard shows, read from the store through `models.api` and `quotas`.

Every number comes from the one API the reports, the ledger and the alerts use
(`models.api.energy_use` / `indicators`, `quotas.evaluate.quota_levels` /
`evaluate_targets` / `project_scope_totals`, `models.completeness.daily_completeness` /
`offline_meters`), on the quota file's electricity basis (当量值 by default), so the
dashboard never disagrees with a report or an alert. The year tables (indicators and
the ranking table with year-on-year columns and quota levels) are
`quotas.tables.YearTables`, shared with the HTTP API; this module adds what only the
dashboard needs: monthly tables, target status, and the per-meter data-quality table.

The dashboard never decides *who* may see a row here; `DataService` returns frames
for all institutions and the callers (the page and download modules) filter them with
the user's scope (`core.access`) before anything leaves the server. Year tables
(indicators, ranking) are cached (`cachetools.TTLCache`) for `cache_ttl_s` seconds
because a province has tens of thousands of institutions;
institution pages read the store directly.

A running year counts up to now in the overview (year to date) and complete days (to
yesterday) in the ranking, compared with the same dates of the year before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alerts.meter_rules import (
    COMPLETENESS_LOOKBACK_DAYS,
    MeterRuleSettings,
    daily_completeness,
    live_meters,
    offline_meters,
)
from core.registry import Meter, Registry
from models import api as models_api
from quotas.evaluate import evaluate_targets, project_scope_totals
from quotas.tables import (  # noqa: F401  (the table constants, re-exported for the pages)
    INDICATOR_COLUMNS,
    INDICATORS,
    QUOTA_INDICATORS,
    TOTALS,
    YearTables,
    add_yoy,
    blank_without_data,
    safe_div,
)

KG_PER_T = 1000.0  # kg per tonne (tce, tCO2)
# A year of daily use is kept in memory for a portfolio up to DAY_ROWS_KEPT rows (about
# 1,800 institutions: four main meters a day each): a few tens of MB.
DAYS_KEPT_PER_INSTITUTION = 4 * 366
DAY_ROWS_KEPT = 2_600_000


def energy_table(consumption: pd.DataFrame, meters: pd.DataFrame) -> pd.DataFrame:
    """Consumption rows (quantity after the multiplier) joined with their meter:
    adds institution_id, energy, subitem."""
    m = meters.set_index("meter_id")
    out = consumption.copy()
    out["institution_id"] = out["meter_id"].map(m["institution_id"])
    out["energy"] = out["meter_id"].map(m["energy"])
    out["subitem"] = out["meter_id"].map(m["subitem"])
    return out


def institution_meters(registry: Registry, institution_id: str) -> list[Meter]:
    """The meters of one institution, in registry order."""
    return [m for m in registry.meters if m.institution == institution_id]


@dataclass
class DataService(YearTables):
    """Reads the store for the dashboard: the year tables (`quotas.tables.YearTables`,
    cached for `cache_ttl_s`) and what only the dashboard shows.

    `meter_rules`: the meter alert settings (offline after `offline_polls` polls), so a
    meter shown offline is one the alerts call offline."""

    meter_rules: MeterRuleSettings = field(default_factory=MeterRuleSettings)  # the alerts' offline rule

    def _derive(self) -> None:
        super()._derive()
        self.meters = self.registry.meters_frame()
        self.institutions = self.registry.institutions_frame()
        self.inst_context = models_api.institution_context(self.registry, self.factors)
        self.tariffs = models_api.tariff_frame(self.registry)

    # -- what one read of the store gives -----------------------------------------------
    def _load(self, start: pd.Timestamp, end: pd.Timestamp, institution_ids: Iterable[str] | None = None,
              sums: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One daily read of [start, end): the use frame (`models.api.energy_use`, freq
        day; `sums`: only to be reduced to such periods, the store sums what it can) and
        the bills' costs per day (`models.api.bill_costs`)."""
        ids = None if institution_ids is None else sorted(institution_ids)
        stop = end if end > start else start + pd.Timedelta(seconds=1)
        use = models_api.energy_use(self.store, self.registry, start, stop, "day", self.factors, institution_ids=ids,
                                    sums=sums)
        billed = models_api.bill_costs(self.store.read_bills(ids), "day", self.tz, start, end)
        return use, billed

    def _reduce(self, use: pd.DataFrame, billed: pd.DataFrame, period: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The energy sums (`models.api.energy_sums` per institution, energy and
        `period`, the heating split done per day) and the costs (`models.api.energy_cost`
        per day, summed per `period`) of a daily use frame."""
        sums = models_api.energy_sums(use, self.inst_context, period=period, freq="day", tz=self.tz)
        costs = models_api.energy_cost(use, billed, self.tariffs)
        return sums, models_api.cost_by_period(costs, period, self.tz, by=("institution_id", "energy"))

    def keeps_days(self) -> bool:
        """Is the portfolio small enough to keep each year's daily use in memory (the
        demo, a city)? Then every date range is a slice of it; a province's ranges are
        read from the store when asked for."""
        return len(self.registry.institutions) * DAYS_KEPT_PER_INSTITUTION <= DAY_ROWS_KEPT

    def year_use(self, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The daily use frame and bill costs of `year` up to now, kept for `cache_ttl_s`
        (only when `keeps_days`)."""
        return self.cached(("year_use", year),  # type: ignore[return-value]
                            lambda: self._load(*self.year_bounds(year)))

    def year_sums(self, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Monthly energy sums and costs of every institution for `year` up to now (one
        daily read of the store per year, reused by every year table)."""
        def compute() -> tuple[pd.DataFrame, pd.DataFrame]:
            if self.keeps_days():
                return self._reduce(*self.year_use(year), "month")
            return self._reduce(*self._load(*self.year_bounds(year), sums="month"), "month")
        return self.cached(("year_sums", year), compute)  # type: ignore[return-value]

    def range_sums(self, start: pd.Timestamp, end: pd.Timestamp,
                   institution_ids: Iterable[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Daily energy sums and costs of [start, end) (local midnights; a running day
        stops now), of these institutions (None: all): a slice of the years' daily use
        when it is kept (`keeps_days`), else a read of the store."""
        end = min(end, self.now().tz_convert(self.tz))
        ids = None if institution_ids is None else frozenset(institution_ids)

        def compute() -> tuple[pd.DataFrame, pd.DataFrame]:
            if not self.keeps_days():
                return self._reduce(*self._load(start, max(start, end), ids), "day")
            years = range(start.year, max(start, end - pd.Timedelta(seconds=1)).year + 1)
            parts = [self.year_use(y) for y in years]
            use = pd.concat([p[0] for p in parts], ignore_index=True)
            billed = pd.concat([p[1] for p in parts], ignore_index=True)
            use = use[_within(use, start, end, ids)]
            billed = billed[_within(billed, start, end, ids)] if len(billed) else billed
            return self._reduce(use, billed, "day")
        return self.cached(("range_sums", start, end, ids), compute)  # type: ignore[return-value]

    def indicators_of(self, sums: pd.DataFrame, by_period: bool = False) -> pd.DataFrame:
        """The indicator frame (`models.api.indicators_from_sums`) of energy sums, on
        the quota file's basis: one row per institution (and period)."""
        return blank_without_data(models_api.indicators_from_sums(sums, self.inst_context, self.factors, self.basis,
                                                                  by_period=by_period))

    def _compute_indicators(self, year: int, until: pd.Timestamp | None = None) -> pd.DataFrame:
        """The year tables' indicators from the year's monthly sums (`year_sums`: one
        daily read per year shared by every page), or, for part of a year (the ranking's
        running year), from that range's daily sums."""
        start, end = self.year_bounds(year)
        if until is None or until >= end:
            sums = self.year_sums(year)[0]
        else:
            sums = self.range_sums(start, max(start, until))[0]
        return self.indicators_of(sums).assign(year=year)


    def priced(self, sums: pd.DataFrame) -> pd.DataFrame:
        """Energy sums with factors applied (`models.api.priced_sums`): institution_id,
        energy, period_start, quantity (canonical unit), kgce, kgco2, t_co2."""
        cols = ["institution_id", "energy", "period_start", "quantity", "kgce", "kgco2", "t_co2"]
        if sums.empty:
            return pd.DataFrame(columns=cols)
        return models_api.priced_sums(sums, self.inst_context, self.factors, self.basis)[cols]

    def monthly_energy(self, year: int) -> pd.DataFrame:
        """Main-meter use of `year` (to now) by institution, energy and month, priced:
        institution_id, energy, period_start, quantity (canonical unit), kgce, kgco2, t_co2."""
        return self.cached(("monthly", year),  # type: ignore[return-value]
                            lambda: self.priced(self.year_sums(year)[0]))

    def monthly_indicators(self, year: int) -> pd.DataFrame:
        """Monthly indicator frame of every institution for `year` - 1 and `year` up to
        now (`models.api.indicators(..., freq='day', by_period='month')`, as the alerts
        compute it): the input of the target evaluation and of the year-end projection."""
        def compute() -> pd.DataFrame:
            sums = pd.concat([self.year_sums(y)[0] for y in (year - 1, year)], ignore_index=True)
            return models_api.indicators_from_sums(sums, self.inst_context, self.factors, self.basis,
                                                   by_period=True)
        return self.cached(("monthly_indicators", year), compute)  # type: ignore[return-value]

    def projection_as_of(self, year: int) -> pd.Timestamp:
        """The moment (naive local) the data of `year` run to: now, or its year end."""
        return self.year_bounds(year)[1].tz_localize(None)

    def target_status(self, year: int) -> pd.DataFrame:
        """quotas.evaluate.evaluate_targets for `year` as of now (empty without quotas):
        one row per target and indicator with actual, limit, projected, status. The
        elapsed share runs to now, as the year-to-date data do."""
        cfg = self.quotas()
        if cfg is None:
            return pd.DataFrame(columns=["scope", "region", "category", "institution_id", "indicator", "limit",
                                         "actual", "projected", "status", "unit"])

        def compute() -> pd.DataFrame:
            return evaluate_targets(cfg, self.monthly_indicators(year), self.projection_as_of(year),
                                    regions=self.registry, year=year)
        return self.cached(("targets", year), compute)  # type: ignore[return-value]

    def year_end_projection(self, institution_ids: Iterable[str], year: int) -> pd.DataFrame:
        """quotas.evaluate.project_scope_totals of these institutions for `year` as of now,
        with the quota file's projection method (the seasonal 'last_year' without one):
        the projection `target_status` gives a target of the same scope. One row per
        total: indicator (energy_tce, water_m3, co2_t), unit, actual, elapsed_share,
        projected, method, institutions."""
        cfg = self.quotas()
        method = cfg.projection if cfg is not None else "last_year"
        return project_scope_totals(self.monthly_indicators(year), self.projection_as_of(year), year, method,
                                    institution_ids=sorted(institution_ids))

    # -- one institution ---------------------------------------------------------------
    def consumption(self, freq: str, start: pd.Timestamp, end: pd.Timestamp, meter_ids: list[str]) -> pd.DataFrame:
        if not meter_ids or end <= start:
            return energy_table(_empty_consumption(), self.meters)
        c = self.store.consumption(freq, start, end, meter_ids)
        return energy_table(c if len(c) else _empty_consumption(), self.meters)

    def data_quality(self, institution_id: str, days: int = 7) -> pd.DataFrame:
        """Per meter of the institution: completeness over the last `days` full days
        (mean of the day shares the `data_completeness` alert and the monthly report
        judge, `models.completeness.daily_completeness`: samples / expected from the
        polling interval, or, for a day whose samples are all backfilled or imported, from
        the resolution that day carries), estimated share of that
        period's consumption, last sample time and whether it is offline (the
        `meter_offline` alert's rule, `alerts.meter_rules.offline_meters`: a live meter
        silent for `meter_rules.offline_polls` polls; meters fed by imports are never
        offline)."""
        meters = institution_meters(self.registry, institution_id)
        if not meters:
            return pd.DataFrame(columns=["meter_id", "completeness", "estimated_share", "last_seen", "offline"])
        end = self.today()
        start = end - pd.Timedelta(days=days)
        ids = [m.id for m in meters]
        idx = pd.Index(ids, name="meter_id")
        frame = self.registry.meters_frame()
        live = live_meters(frame[frame["institution_id"].to_numpy(object) == institution_id])
        samples = self.store.read_samples(start - pd.Timedelta(days=COMPLETENESS_LOOKBACK_DAYS), end, ids)
        daily = daily_completeness(samples, live.set_index("meter_id")["interval_s"].astype(float), start, end)
        # a meter absent from a day (no sample, no known interval) had none of its samples
        share = daily.groupby("meter_id")["share"].sum().reindex(idx).fillna(0.0) / max(days, 1)
        now = self.now()
        last = self.store.last_samples_before(now + pd.Timedelta(seconds=1), ids)
        last_t = last.set_index("meter_id")["time"] if len(last) else pd.Series(dtype="datetime64[s, UTC]")
        offline = (offline_meters(last, live, now, self.meter_rules.offline_polls_by_meter(meters)) if len(live)
                   else pd.DataFrame({"meter_id": pd.Series(dtype=object)}))
        cons = self.store.consumption("day", start, end, ids)
        if len(cons):
            est = (cons["quantity"] * cons["estimated_share"]).groupby(cons["meter_id"]).sum()
            tot = cons.groupby("meter_id")["quantity"].sum()
            est_share = pd.Series(safe_div(est.to_numpy(float), tot.reindex(est.index).to_numpy(float)),
                                  index=est.index)
        else:
            est_share = pd.Series(dtype=float)
        return pd.DataFrame({
            "meter_id": ids,
            "completeness": share.to_numpy(float),
            "estimated_share": est_share.reindex(idx).to_numpy(float),
            "last_seen": last_t.reindex(idx).to_numpy(),
            "offline": idx.isin(offline["meter_id"]),
        })


def _within(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, ids: frozenset[str] | None) -> np.ndarray:
    """Rows of a daily frame (period_start, institution_id) in [start, end) and `ids`."""
    if not len(frame):  # an empty frame's period_start may carry no time zone
        return np.zeros(0, dtype=bool)
    t = pd.DatetimeIndex(frame["period_start"])
    keep = np.asarray((t >= start) & (t < end))
    if ids is not None:
        keep &= frame["institution_id"].isin(ids).to_numpy()
    return keep


def _empty_consumption() -> pd.DataFrame:
    return pd.DataFrame({"meter_id": pd.Series(dtype=object),
                         "period_start": pd.Series(dtype="datetime64[s, UTC]"),
                         "quantity": pd.Series(dtype=float), "estimated_share": pd.Series(dtype=float)})

