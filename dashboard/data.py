"""What the dashboard shows, computed from the store: pure, vectorised frames.

The dashboard never decides *who* may see a row here; `DataService` returns frames
for all institutions and the callers (`dashboard.app`) filter them with the user's
scope before anything leaves the server. Year tables (indicators, ranking) are cached
for `cache_ttl_s` seconds because a province has tens of thousands of institutions;
institution pages read the store directly.

Indicators (domain.md section 4), per institution and calendar year (local time):

* kgce: comprehensive energy = sum of main-meter consumption x GB/T 2589-2020
  coefficient, water and PV excluded;
* kgce_per_m2, kgce_per_person, water_m3_per_person, kgco2_per_m2;
* heating_kgce_per_m2: heating meters' energy inside the region's heating season per
  heated area; nonheating_kgce_per_m2: (total - heating - vehicle fuel) per floor area.

When the models package provides `models.api.indicators`, that is used instead of the
fallback arithmetic here, so the dashboard shows the same numbers as the reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from civicwatt.registry import Registry
from storage import Store

# kgce per unit of the meter's index (GB/T 2589-2020, calorific equivalent; domain.md s.2).
KGCE_PER_UNIT: dict[str, float] = {
    "electricity": 0.1229,  # kgce/kWh, equivalent value (当量值)
    "heat": 34.12,  # kgce/GJ
    "natural_gas": 1.2143,  # kgce/m3
    "coal": 0.7143,  # kgce/kg raw coal
    "gasoline": 1.4714 * 0.73,  # kgce/kg x 0.73 kg/L (domain.md: check density per region)
    "diesel": 1.4571 * 0.84,  # kgce/kg x 0.84 kg/L
    "lpg": 1.7143,  # kgce/kg
    "water": 0.0,  # water is not converted to coal
    "pv": 0.0,  # self-consumed PV is not purchased energy; reported separately
}
# kg CO2 per unit of the meter's index (domain.md s.3).
KGCO2_PER_UNIT: dict[str, float] = {
    "electricity": 0.7252,  # Hebei provincial grid 2022, tCO2/MWh = kg/kWh (MEE)
    "heat": 110.0,  # 0.11 tCO2/GJ purchased heat
    "natural_gas": 2.162,  # kgCO2/m3
    "coal": 1.9,  # ~1.9 tCO2/t raw coal (check: better from measured heating value)
    "gasoline": 2.925 * 0.73,  # 2.925 tCO2/t x 0.73 kg/L
    "diesel": 3.096 * 0.84,  # 3.096 tCO2/t x 0.84 kg/L
    "lpg": 3.101,  # 3.101 tCO2/t
    "water": 0.0,
    "pv": 0.0,
}
VEHICLE_FUELS = ("gasoline", "diesel")
KG_PER_T = 1000.0  # kg per tonne (tce, tCO2)
EXPECTED_COMPLETENESS = 0.9  # domain.md s.5: >= 90 % of expected samples per day
OFFLINE_INTERVALS = 3  # a meter silent for 3 polling intervals is shown offline
DEFAULT_INTERVAL_S = 900  # 15-minute raw data (2008 sub-metering guideline)

INDICATORS: tuple[str, ...] = (
    "kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2",
    "heating_kgce_per_m2", "nonheating_kgce_per_m2",
)
TOTALS: tuple[str, ...] = ("kgce", "water_m3", "t_co2")
INDICATOR_COLUMNS = ["institution_id", "name", "region", "category", "year", "floor_area_m2", "heated_area_m2",
                     "occupants", *TOTALS, *INDICATORS, "estimated_share"]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def in_heating_season(local_days: pd.DatetimeIndex, start_mmdd: np.ndarray, end_mmdd: np.ndarray) -> np.ndarray:
    """True where the day (local) lies in its season [start, end] (month-day, inclusive,
    wrapping over the new year when start > end). Vectorised over rows."""
    md = local_days.month * 100 + local_days.day
    start = np.asarray(start_mmdd, dtype=int)
    end = np.asarray(end_mmdd, dtype=int)
    wrap = start > end
    return np.where(wrap, (md >= start) | (md <= end), (md >= start) & (md <= end))


def energy_table(consumption: pd.DataFrame, meters: pd.DataFrame) -> pd.DataFrame:
    """Consumption rows joined with their meter: adds institution_id, energy, heating,
    kgce and kg_co2 (quantity already includes the multiplier)."""
    m = meters.set_index("meter_id")
    out = consumption.copy()
    out["institution_id"] = out["meter_id"].map(m["institution_id"])
    out["energy"] = out["meter_id"].map(m["energy"])
    out["heating"] = out["meter_id"].map(m["heating"]).fillna(False).astype(bool)
    q = out["quantity"].to_numpy(float)
    out["kgce"] = q * out["energy"].map(KGCE_PER_UNIT).fillna(0.0).to_numpy(float)
    out["kg_co2"] = q * out["energy"].map(KGCO2_PER_UNIT).fillna(0.0).to_numpy(float)
    return out


def indicators_from_energy(yearly: pd.DataFrame, heating_kgce: pd.Series, institutions: pd.DataFrame,
                           year: int) -> pd.DataFrame:
    """Per-institution totals and intensities from one year's `energy_table` rows
    (main meters) and each institution's heating-season heating energy (kgce)."""
    e = yearly
    is_water = (e["energy"] == "water").to_numpy()
    is_vehicle = e["energy"].isin(VEHICLE_FUELS).to_numpy()
    q = e["quantity"].to_numpy(float)
    frame = pd.DataFrame({
        "institution_id": e["institution_id"].to_numpy(),
        "kgce": e["kgce"].to_numpy(float),
        "water_m3": np.where(is_water, q, 0.0),
        "kg_co2": e["kg_co2"].to_numpy(float),
        "vehicle_kgce": np.where(is_vehicle, e["kgce"].to_numpy(float), 0.0),
        "est_kgce": e["kgce"].to_numpy(float) * e["estimated_share"].to_numpy(float),
    })
    g = frame.groupby("institution_id").sum()
    inst = institutions.set_index("id")
    g = g.reindex(inst.index).fillna(0.0)
    heat = heating_kgce.reindex(inst.index).fillna(0.0).to_numpy(float)
    floor = inst["floor_area_m2"].to_numpy(float)
    heated = inst["heated_area_m2"].to_numpy(float)
    occ = inst["occupants"].to_numpy(float)
    kgce = g["kgce"].to_numpy(float)
    has_data = inst.index.isin(frame["institution_id"].unique())
    out = pd.DataFrame({
        "institution_id": inst.index.to_numpy(),
        "name": inst["name"].to_numpy(),
        "region": inst["region"].to_numpy(),
        "category": inst["category"].to_numpy(),
        "year": year,
        "floor_area_m2": floor,
        "heated_area_m2": heated,
        "occupants": occ,
        "kgce": kgce,
        "water_m3": g["water_m3"].to_numpy(float),
        "t_co2": g["kg_co2"].to_numpy(float) / KG_PER_T,
        "kgce_per_m2": _safe_div(kgce, floor),
        "kgce_per_person": _safe_div(kgce, occ),
        "water_m3_per_person": _safe_div(g["water_m3"].to_numpy(float), occ),
        "kgco2_per_m2": _safe_div(g["kg_co2"].to_numpy(float), floor),
        "heating_kgce_per_m2": _safe_div(heat, heated),
        "nonheating_kgce_per_m2": _safe_div(kgce - heat - g["vehicle_kgce"].to_numpy(float), floor),
        "estimated_share": _safe_div(g["est_kgce"].to_numpy(float), kgce),
    })
    # an institution without any data has no indicators, not zeros
    for col in (*TOTALS, *INDICATORS, "estimated_share"):
        out.loc[~has_data, col] = np.nan
    return out[INDICATOR_COLUMNS]


def quota_level(values: np.ndarray, constraint: np.ndarray, baseline: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The best quota level each value meets: 'guide' (<= guide value), 'baseline',
    'constraint', 'over_constraint' (above the constraint), 'none' (no quota or no value)."""
    v = np.asarray(values, dtype=float)
    c, b, g = (np.asarray(x, dtype=float) for x in (constraint, baseline, guide))
    out = np.full(v.shape, "none", dtype=object)
    known = ~np.isnan(v) & ~np.isnan(c)
    out[known] = "over_constraint"
    for limit, name in ((c, "constraint"), (b, "baseline"), (g, "guide")):
        out[known & ~np.isnan(limit) & (v <= limit)] = name
    return out


# The indicators quota standards cover (domain.md s.1) -> indicator column.
QUOTA_INDICATORS: tuple[str, ...] = ("heating_kgce_per_m2", "nonheating_kgce_per_m2", "kgce_per_person",
                                     "water_m3_per_person")


def add_levels(table: pd.DataFrame, standards: pd.DataFrame | None) -> pd.DataFrame:
    """Add `level_<indicator>` columns from quota standards (rows: category, indicator,
    constraint, baseline, guide); 'none' where no standard applies."""
    out = table.copy()
    for ind in QUOTA_INDICATORS:
        if standards is None or standards.empty:
            out[f"level_{ind}"] = "none"
            continue
        s = standards[standards["indicator"] == ind].drop_duplicates("category").set_index("category")
        cat = out["category"]
        out[f"level_{ind}"] = quota_level(
            out[ind].to_numpy(float),
            cat.map(s["constraint"]).to_numpy(float) if len(s) else np.full(len(out), np.nan),
            cat.map(s["baseline"]).to_numpy(float) if len(s) else np.full(len(out), np.nan),
            cat.map(s["guide"]).to_numpy(float) if len(s) else np.full(len(out), np.nan),
        )
    return out


def add_yoy(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Add `yoy_<indicator>` (percent change against the previous year) columns."""
    prev = previous.set_index("institution_id")
    out = current.copy()
    for ind in (*INDICATORS, *TOTALS):
        before = out["institution_id"].map(prev[ind]).to_numpy(float) if len(prev) else np.full(len(out), np.nan)
        out[f"yoy_{ind}"] = _safe_div(out[ind].to_numpy(float) - before, before) * 100.0
    return out


@dataclass
class _Cached:
    value: object
    at: float


@dataclass
class DataService:
    """Reads the store for the dashboard; caches year tables for `cache_ttl_s`."""

    registry: Registry
    store: Store
    quota_standards: Callable[[], pd.DataFrame | None] = lambda: None
    cache_ttl_s: float = 300.0
    now: Callable[[], pd.Timestamp] = field(default=lambda: pd.Timestamp.now(tz="UTC"))
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.meters = self.registry.meters_frame()
        self.institutions = self.registry.institutions_frame()
        self.tz = self.registry.timezone

    # -- caching -------------------------------------------------------------------
    def _cached(self, key: tuple, compute: Callable[[], object]) -> object:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit.at < self.cache_ttl_s:
                return hit.value
        value = compute()
        with self._lock:
            self._cache[key] = _Cached(value, time.monotonic())
        return value

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- periods -------------------------------------------------------------------
    def today(self) -> pd.Timestamp:
        """Local midnight of today."""
        return self.now().tz_convert(self.tz).normalize()

    def current_year(self) -> int:
        return int(self.today().year)

    def year_bounds(self, year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """[1 Jan, min(1 Jan next year, tomorrow)) local: a running year stops today."""
        start = pd.Timestamp(year=year, month=1, day=1, tz=self.tz)
        end = min(pd.Timestamp(year=year + 1, month=1, day=1, tz=self.tz), self.today() + pd.Timedelta(days=1))
        return start, max(end, start)

    def main_meter_ids(self, institution_ids: Iterable[str] | None = None) -> list[str]:
        m = self.meters[self.meters["parent"].isna()]
        if institution_ids is not None:
            m = m[m["institution_id"].isin(list(institution_ids))]
        return m["meter_id"].tolist()

    # -- year tables -----------------------------------------------------------------
    def indicators(self, year: int) -> pd.DataFrame:
        """INDICATOR_COLUMNS for every institution of the registry in `year`."""
        return self._cached(("indicators", year), lambda: self._compute_indicators(year))  # type: ignore[return-value]

    def _compute_indicators(self, year: int) -> pd.DataFrame:
        start, end = self.year_bounds(year)
        ids = self.main_meter_ids()
        if end <= start or not ids:
            return indicators_from_energy(energy_table(_empty_consumption(), self.meters), pd.Series(dtype=float),
                                          self.institutions, year)
        daily = self.store.consumption("day", start, end, ids)
        daily = energy_table(daily, self.meters) if len(daily) else energy_table(_empty_consumption(), self.meters)
        heating = self._heating_kgce(daily)
        return indicators_from_energy(daily, heating, self.institutions, year)

    def _heating_kgce(self, daily: pd.DataFrame) -> pd.Series:
        """kgce of heating meters on heating-season days, per institution."""
        h = daily[daily["heating"]]
        if h.empty:
            return pd.Series(dtype=float)
        inst = self.institutions.set_index("id")
        regions = inst["region"]
        seasons = {r.id: self.registry.heating_season_of(r.id) for r in self.registry.regions}
        start_md = regions.map({k: int(s.start.replace("-", "")) for k, s in seasons.items()})
        end_md = regions.map({k: int(s.end.replace("-", "")) for k, s in seasons.items()})
        local = pd.DatetimeIndex(h["period_start"]).tz_convert(self.tz)
        mask = in_heating_season(local, h["institution_id"].map(start_md).to_numpy(),
                                 h["institution_id"].map(end_md).to_numpy())
        return h.loc[mask].groupby("institution_id")["kgce"].sum()

    def ranking_table(self, year: int) -> pd.DataFrame:
        """Indicators of `year` with year-on-year changes and quota levels."""
        def compute() -> pd.DataFrame:
            cur = self.indicators(year)
            prev = self.indicators(year - 1)
            return add_levels(add_yoy(cur, prev), self.quota_standards())
        return self._cached(("ranking", year), compute)  # type: ignore[return-value]

    def monthly_energy(self, year: int) -> pd.DataFrame:
        """Main-meter consumption of `year` by month: energy_table rows (period_start = month)."""
        def compute() -> pd.DataFrame:
            start, end = self.year_bounds(year)
            ids = self.main_meter_ids()
            if end <= start or not ids:
                return energy_table(_empty_consumption(), self.meters)
            c = self.store.consumption("month", start, end, ids)
            return energy_table(c if len(c) else _empty_consumption(), self.meters)
        return self._cached(("monthly", year), compute)  # type: ignore[return-value]

    # -- one institution ---------------------------------------------------------------
    def consumption(self, freq: str, start: pd.Timestamp, end: pd.Timestamp, meter_ids: list[str]) -> pd.DataFrame:
        if not meter_ids or end <= start:
            return energy_table(_empty_consumption(), self.meters)
        c = self.store.consumption(freq, start, end, meter_ids)
        return energy_table(c if len(c) else _empty_consumption(), self.meters)

    def data_quality(self, institution_id: str, days: int = 7) -> pd.DataFrame:
        """Per meter of the institution: completeness over the last `days` full days
        (samples / expected from its polling interval), estimated share of that
        period's consumption, last sample time and whether it is offline."""
        from dashboard.access import institution_meters  # local: avoids a cycle at import

        meters = institution_meters(self.registry, institution_id)
        if not meters:
            return pd.DataFrame(columns=["meter_id", "completeness", "estimated_share", "last_seen", "offline"])
        end = self.today()
        start = end - pd.Timedelta(days=days)
        ids = [m.id for m in meters]
        samples = self.store.read_samples(start, end, ids)
        counts = samples.groupby("meter_id").size() if len(samples) else pd.Series(dtype=int)
        interval = pd.Series({m.id: (m.modbus.interval_s if m.modbus else DEFAULT_INTERVAL_S) for m in meters})
        expected = days * 86400 / interval
        last = self.store.last_samples_before(self.now() + pd.Timedelta(seconds=1), ids)
        last_t = last.set_index("meter_id")["time"] if len(last) else pd.Series(dtype="datetime64[s, UTC]")
        cons = self.store.consumption("day", start, end, ids)
        if len(cons):
            est = (cons["quantity"] * cons["estimated_share"]).groupby(cons["meter_id"]).sum()
            tot = cons.groupby("meter_id")["quantity"].sum()
            share = pd.Series(_safe_div(est.to_numpy(float), tot.reindex(est.index).to_numpy(float)), index=est.index)
        else:
            share = pd.Series(dtype=float)
        idx = pd.Index(ids, name="meter_id")
        last_seen = last_t.reindex(idx)
        age_s = (self.now() - last_seen).dt.total_seconds()
        return pd.DataFrame({
            "meter_id": ids,
            "completeness": np.clip(counts.reindex(idx).fillna(0).to_numpy(float) / expected.reindex(idx).to_numpy(float),
                                    0, 1),
            "estimated_share": share.reindex(idx).to_numpy(float),
            "last_seen": last_seen.to_numpy(),
            "offline": (age_s.isna() | (age_s > OFFLINE_INTERVALS * interval.reindex(idx))).to_numpy(bool),
        })


def _empty_consumption() -> pd.DataFrame:
    return pd.DataFrame({"meter_id": pd.Series(dtype=object),
                         "period_start": pd.Series(dtype="datetime64[s, UTC]"),
                         "quantity": pd.Series(dtype=float), "estimated_share": pd.Series(dtype=float)})


def project_year_end(ytd: float, elapsed_fraction: float, prev_same_period: float | None = None,
                     prev_full_year: float | None = None) -> float | None:
    """Year-end forecast of a running total.

    Seasonal when last year is known (this year to date x last year's full total /
    last year's total over the same dates), else linear in time (ytd / elapsed
    fraction of the year). None before any time has elapsed."""
    if prev_same_period and prev_full_year and prev_same_period > 0:
        return float(ytd) * float(prev_full_year) / float(prev_same_period)
    if elapsed_fraction <= 0:
        return None
    return float(ytd) / min(1.0, float(elapsed_fraction))
