"""The year tables (indicators, rankings) shared by the dashboard and the API.

The year tables everything that ranks or lists institutions reads: indicators of a year
(to now in a running year) and the ranking table (indicators with year-on-year changes
and quota levels), computed through `models.api` and `quotas.evaluate` and cached.

`YearTables` is shared by the dashboard (`dashboard.data.DataService` extends it) and the
HTTP API, so a ranking or an indicator row is the same number on a page, in a download
and in an API answer. Year tables are cached (`cachetools.TTLCache`) for `cache_ttl_s`
seconds because a province has tens of thousands of institutions.

A running year counts up to now, or complete days (to yesterday) in the ranking table,
compared with the same dates of the year before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from cachetools import TTLCache

from core import localtime
from core.registry import Registry
from models import api as models_api
from models.compare import comparable_change
from models.completeness import COMPLETENESS_TARGET, complete_span
from quotas.evaluate import quota_levels, quota_levels_wide
from quotas.submissions import MeteredSubmissions

YEAR_TABLES_KEPT = 256  # cached year tables at most (about 6 per year and basis are in use)
_MISSING = object()

INDICATORS: tuple[str, ...] = (
    "kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2",
    "heating_kgce_per_m2", "nonheating_kgce_per_m2",
)
TOTALS: tuple[str, ...] = ("kgce", "water_m3", "t_co2")
INDICATOR_COLUMNS = ["institution_id", "name", "region", "category", "year", "floor_area_m2", "heated_area_m2",
                     "occupants", *TOTALS, *INDICATORS, "estimated_share"]
# The indicators quota standards cover (domain.md s.1; quotas.config.STANDARD_INDICATORS).
QUOTA_INDICATORS: tuple[str, ...] = ("heating_kgce_per_m2", "nonheating_kgce_per_m2", "kgce_per_person",
                                     "water_m3_per_person", "kgce_per_m2", "kgco2_per_m2")


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def add_yoy(current: pd.DataFrame, previous: pd.DataFrame, current_complete: pd.Series,
            previous_complete: pd.Series) -> pd.DataFrame:
    """Add `yoy_<indicator>` (percent change against the previous year) columns, shown
    only where both periods are complete (`models.compare.comparable_change`;
    `*_complete`: institution_id -> bool, `models.completeness.complete_span`), and
    `yoy_reason` ('' or one of `models.compare.YOY_REASONS`, of `yoy_kgce`)."""
    prev = previous.set_index("institution_id")
    out = current.copy()
    ids = out["institution_id"]
    cur_ok = ids.map(current_complete).fillna(False).to_numpy(bool)
    prev_ok = ids.map(previous_complete).fillna(False).to_numpy(bool)
    for ind in (*INDICATORS, *TOTALS):
        before = ids.map(prev[ind]).to_numpy(float) if len(prev) else np.full(len(out), np.nan)
        change, reason = comparable_change(out[ind].to_numpy(float), before, cur_ok, prev_ok)
        out[f"yoy_{ind}"] = change * 100.0
        if ind == "kgce":
            out["yoy_reason"] = reason
    return out


def blank_without_data(ind: pd.DataFrame) -> pd.DataFrame:
    """An indicator frame with totals, intensities and estimated share NaN for the
    institutions without data (`has_data` False): no figure rather than a zero."""
    if "has_data" in ind:
        nodata = ~ind["has_data"].to_numpy(bool)
        for col in (*TOTALS, *INDICATORS, "estimated_share"):
            ind.loc[nodata, col] = np.nan
    return ind


@dataclass
class YearTables:
    """The year tables of a registry over a store, each kept for `cache_ttl_s`.

    `quotas`: returns the loaded `quotas.config.QuotaConfig` (or None without a quota
    file); its basis is the basis of every figure. `now`: the clock (tests)."""

    registry: Registry
    store: Any
    quotas: Callable[[], Any] = lambda: None
    cache_ttl_s: float = 300.0
    now: Callable[[], pd.Timestamp] = field(default=lambda: pd.Timestamp.now(tz="UTC"))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _swap_lock: threading.Lock = field(default_factory=threading.Lock)  # `update_registry`, one at a time

    def __post_init__(self) -> None:
        # year tables of the last few years and both bases, each for cache_ttl_s
        self._cache: TTLCache = TTLCache(maxsize=YEAR_TABLES_KEPT, ttl=self.cache_ttl_s, timer=time.monotonic)
        self._generation = 0  # bumped by `invalidate`: tables computed before are never served again
        self.factors = models_api.load_factors()
        self._computing: dict[tuple, threading.Lock] = {}  # keys being computed (single flight)
        self._derive()

    def _derive(self) -> None:
        """What is kept from the registry (subclasses add theirs); called again by `use_registry`."""
        self.tz = self.registry.timezone
        self.submissions = MeteredSubmissions(self.store, self.registry, self.factors)  # the months' completeness

    def use_registry(self, registry: Registry) -> None:
        """Serve `registry` from now on (the running server's one registry): what is derived
        from it is derived again and every cached table dropped."""
        with self._lock:
            self.registry = registry
            self._derive()
        self.invalidate()

    def update_registry(self, change: Callable[[Registry], Registry]) -> None:
        """The store's figures changed, and maybe the registry: `change(registry)` (e.g.
        with the institutions a lower level has just reported), applied one caller at a
        time so two concurrent changes both hold; a new registry is used
        (`use_registry`), else the cached tables are dropped (`invalidate`)."""
        with self._swap_lock:
            registry = change(self.registry)
            if registry is not self.registry:
                self.use_registry(registry)
            else:
                self.invalidate()

    @property
    def generation(self) -> int:
        """Bumped by `invalidate`: a cache built on these tables elsewhere keys on it."""
        return self._generation

    def invalidate(self) -> None:
        """Drop every cached table (the store's figures changed, e.g. a month reported from
        below): the next request computes afresh; one being computed now is not kept."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    @property
    def basis(self) -> str:
        cfg = self.quotas()
        return cfg.basis if cfg is not None else "equivalent"

    # -- caching -------------------------------------------------------------------
    def cached(self, key: tuple, compute: Callable[[], object]) -> object:
        """The cached value of `key` (on the current basis), computed once: a caller that
        asks while another computes the same key waits for it instead of repeating the
        work (a page's callbacks and a second user arrive together)."""
        key = (*key, self.basis)
        with self._lock:
            hit = self._cache.get(key, _MISSING)
            if hit is not _MISSING:
                return hit
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = self._cache.get(key, _MISSING)
                generation = self._generation
            if hit is not _MISSING:
                return hit
            value = compute()
            with self._lock:
                if generation == self._generation:  # not invalidated meanwhile
                    self._cache[key] = value
                self._computing.pop(key, None)
            return value

    # -- periods -------------------------------------------------------------------
    def today(self) -> pd.Timestamp:
        """Local midnight of today."""
        return localtime.local_floor_one(self.now(), "day", self.tz)

    def current_year(self) -> int:
        return int(self.today().year)

    def year_bounds(self, year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """[1 Jan, min(1 Jan next year, now)) local: a running year stops now."""
        start = localtime.first_instant_of(f"{year}-01-01", self.tz)
        end = min(localtime.first_instant_of(f"{year + 1}-01-01", self.tz), self.now().tz_convert(self.tz))
        return start, max(end, start)

    def is_running(self, year: int) -> bool:
        return self.year_bounds(year)[1] < pd.Timestamp(year=year + 1, month=1, day=1, tz=self.tz)

    # -- year tables -----------------------------------------------------------------
    def indicators(self, year: int, until: pd.Timestamp | None = None) -> pd.DataFrame:
        """The models indicator frame (one row per institution) of `year` up to now,
        or up to `until`, plus `year`; totals and intensities are NaN without data."""
        return self.cached(("indicators", year, until),  # type: ignore[return-value]
                            lambda: self._compute_indicators(year, until))

    def _compute_indicators(self, year: int, until: pd.Timestamp | None = None) -> pd.DataFrame:
        start, end = self.year_bounds(year)
        if until is not None:
            end = max(start, min(end, until))
        if end <= start:
            end = start + pd.Timedelta(seconds=1)  # an empty period: every institution, no data
        use = models_api.energy_use(self.store, self.registry, start, end, "day", self.factors)
        ind = models_api.indicators(use, self.registry, self.factors, self.basis, freq="day")
        return blank_without_data(ind.assign(year=year))

    def complete(self, year: int, until: pd.Timestamp | None = None) -> pd.Series:
        """institution_id -> bool: `year` (up to `until`) meets the completeness rule
        (`models.completeness.complete_span` of `quotas.submissions.MeteredSubmissions`:
        every month at >= 90 % of its main-meter and billed unit-days complete)."""
        def compute() -> pd.Series:
            start, end = self.year_bounds(year)
            if until is not None:
                end = max(start, min(end, until))
            end = end.normalize() if end > start.normalize() else start + pd.Timedelta(days=1)
            months = self.submissions.span(start, end)
            return complete_span(months, [i.id for i in self.registry.institutions])
        return self.cached(("complete", year, until), compute)  # type: ignore[return-value]

    def group_yoy(self, insts: Iterable[str], year: int) -> tuple[float, str]:
        """Year-on-year change (fraction) of the total energy (kgce) of `insts`, like for
        like: the ratio of sums over the members complete in both periods (a running year
        to yesterday against the same dates of the year before, as the ranking); NaN and
        the reason (`models.compare.YOY_REASONS`) when no member is complete in both."""
        running = self.is_running(year)
        until = self.today() if running else None
        prev_until = self.today() - pd.DateOffset(years=1) if running else None
        ids = pd.Index(sorted(set(insts)))
        cur_ok = self.complete(year, until).reindex(ids).fillna(False).to_numpy(bool)
        prev_ok = self.complete(year - 1, prev_until).reindex(ids).fillna(False).to_numpy(bool)
        both = set(ids[cur_ok & prev_ok])
        cur = self.indicators(year, until)
        prev = self.indicators(year - 1, prev_until)
        c = cur.loc[cur["institution_id"].isin(both), "kgce"].sum()
        p = prev.loc[prev["institution_id"].isin(both), "kgce"].sum()
        change, reason = comparable_change([c], [p], [cur_ok.any()], [bool(both)])
        return float(change[0]), str(reason[0])

    def ranking_table(self, year: int) -> pd.DataFrame:
        """Indicators of `year` with year-on-year changes (`yoy_<col>`, %) and quota
        levels (`level_<indicator>`: guide | baseline | constraint | advanced | general
        | exceeds | no_data | none; 'partial' for every institution in a running year,
        as the standards are annual). A running year counts complete days (to
        yesterday) and is compared with the same dates of the year before."""
        def compute() -> pd.DataFrame:
            running = self.is_running(year)
            until = self.today() if running else None
            prev_until = self.today() - pd.DateOffset(years=1) if running else None
            # each year's days read once for both its sums and its completeness
            with self.store.judging_completeness(self.submissions.main_intervals(), COMPLETENESS_TARGET):
                cur = self.indicators(year, until)
                prev = self.indicators(year - 1, prev_until)
                table = add_yoy(cur, prev, self.complete(year, until), self.complete(year - 1, prev_until))
            if running:
                # quota standards are annual: a part of the year is not compared with them
                for ind in QUOTA_INDICATORS:
                    table[f"level_{ind}"] = "partial"
                return table
            levels = self.levels_of(cur)
            if len(levels):
                table = table.merge(quota_levels_wide(levels), on="institution_id", how="left")
            for ind in QUOTA_INDICATORS:
                col = f"level_{ind}"
                table[col] = table[col].fillna("none") if col in table else "none"
            return table
        return self.cached(("ranking", year), compute)  # type: ignore[return-value]

    def levels_of(self, indicators: pd.DataFrame) -> pd.DataFrame:
        """quotas.evaluate.quota_levels of an indicator frame (empty without quotas)."""
        cfg = self.quotas()
        if cfg is None:
            return pd.DataFrame(columns=["institution_id", "indicator", "level"])
        return quota_levels(indicators, cfg, regions=self.registry)

    def set_ranking_table(self, year: int, table: pd.DataFrame) -> None:
        """Use a precomputed ranking table for `year` (columns of `ranking_table`), e.g.
        from a nightly batch; it is kept for `cache_ttl_s` like a computed one."""
        with self._lock:
            self._cache[("ranking", year, self.basis)] = table

