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
    safe_div,
)

KG_PER_T = 1000.0  # kg per tonne (tce, tCO2)


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

    def __post_init__(self) -> None:
        super().__post_init__()
        self.meters = self.registry.meters_frame()
        self.institutions = self.registry.institutions_frame()

    def monthly_energy(self, year: int) -> pd.DataFrame:
        """Main-meter use of `year` (to now) by institution, energy and month, priced:
        institution_id, energy, period_start, quantity (canonical unit), kgce, kgco2."""
        def compute() -> pd.DataFrame:
            start, end = self.year_bounds(year)
            cols = ["institution_id", "energy", "period_start", "quantity", "kgce", "kgco2"]
            if end <= start:
                return pd.DataFrame(columns=cols)
            use = models_api.energy_use(self.store, self.registry, start, end, "month", self.factors)
            if use.empty:
                return pd.DataFrame(columns=cols)
            inst = models_api.institution_context(self.registry, self.factors)
            sums = models_api.energy_sums(use, inst, period="month", freq="month", tz=self.tz)
            return models_api.priced_sums(sums, inst, self.factors, self.basis)[cols]
        return self._cached(("monthly", year), compute)  # type: ignore[return-value]

    def monthly_indicators(self, year: int) -> pd.DataFrame:
        """Monthly indicator frame (`models.api.indicators(..., by_period='month')`) of
        every institution for `year` - 1 and `year` up to now: the input of the target
        evaluation and of the year-end projection."""
        def compute() -> pd.DataFrame:
            frames = []
            for y in (year - 1, year):
                start, end = self.year_bounds(y)
                if end <= start:
                    continue
                use = models_api.energy_use(self.store, self.registry, start, end, "month", self.factors)
                frames.append(models_api.indicators(use, self.registry, self.factors, self.basis, freq="month",
                                                    by_period="month"))
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self._cached(("monthly_indicators", year), compute)  # type: ignore[return-value]

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
                                         "actual", "projected", "status"])

        def compute() -> pd.DataFrame:
            return evaluate_targets(cfg, self.monthly_indicators(year), self.projection_as_of(year),
                                    regions=self.registry, year=year)
        return self._cached(("targets", year), compute)  # type: ignore[return-value]

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
        live = live_meters(meters)
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


def _empty_consumption() -> pd.DataFrame:
    return pd.DataFrame({"meter_id": pd.Series(dtype=object),
                         "period_start": pd.Series(dtype="datetime64[s, UTC]"),
                         "quantity": pd.Series(dtype=float), "estimated_share": pd.Series(dtype=float)})

