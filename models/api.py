"""The one Python API for energy, carbon and intensity numbers.

The dashboard, the reports, the ledger and the alerts call these functions, so every
number is computed in one place. Store-facing functions (`energy_use`,
`submeter_balance`, `year_indicators`) read through `storage.Store`; everything else is
pure arithmetic on DataFrames and works without a store (`indicators_from_frames`).
Quotas and dual-control targets are in `quotas` (`quotas.config.load_quotas`,
`quotas.evaluate.quota_levels`, `quotas.evaluate.evaluate_targets`).

Frames (every column listed; units in the names):

use frame (`energy_use`)
    institution_id, meter_id (None for bills), energy (electricity | water |
    natural_gas | heat | gasoline | diesel | lpg | coal | pv), subitem, heating (bool),
    is_main (bool; sub-meters False, never in totals), period_start (local tz-aware),
    quantity (canonical unit: kWh, m3, GJ, kg for fuels), unit, estimated_share
    (0..1), source ('meter' | 'bill').

indicator frame (`indicators`, one row per institution; with by_period also per
period_start)
    institution_id, name, region, category, floor_area_m2, heated_area_m2, occupants,
    has_data, electricity_kwh, water_m3, gas_m3, heat_gj, gasoline_kg, diesel_kg,
    lpg_kg, coal_kg, pv_kwh, kgce, tce, heating_kgce, nonheating_kgce, vehicle_kgce,
    estimated_kgce, estimated_water_m3, kgco2_scope1, kgco2_scope2, t_co2_scope1,
    t_co2_scope2, t_co2, kgce_per_m2, kgce_per_person, water_m3_per_person,
    kgco2_per_m2, heating_kgce_per_m2 (per heated area, heating season only),
    nonheating_kgce_per_m2, estimated_share (of kgce), water_estimated_share, basis
    ('equivalent' 当量值 | 'equal_value' 等价值), basis_label, factor_set, provisional.

aggregate frame (`aggregate`): the group columns, institutions,
    institutions_with_data, the areas and occupants of institutions with data, the
    extensive columns and the ratios above recomputed as ratios of sums.

ranking frame (`rank`): institution_id, name, region, category, peer_region,
    indicator, value, previous_value, yoy_change, ranked, rank, peer_size, percentile,
    peer_median, leader, laggard, estimated_share.

sub-meter balance (`submeter_balance`): parent_meter_id, institution_id, energy,
    children, parent_quantity, children_quantity, unaccounted, unaccounted_share,
    over_parent.

consumption by group (`consumption_by`): the group columns, energy, period_start,
    quantity, unit, estimated_share, institutions.

cost frame (`energy_cost`, models.cost): institution_id, energy, period_start,
    quantity, unit, cost_cny (bills' cost where a bill covers the day, else use x the
    region's tariff), cost_source ('bill' | 'tariff' | 'none').
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.registry import RegionTree
from core.vocab import CANONICAL_UNIT
from models.compare import yoy_change
from models.cost import bill_costs, cost_by_period, energy_cost, tariff_frame
from models.energy import (
    energy_use,
    green_power_kwh,
    split_bills,
    submeter_balance,
    submeter_balance_from_frames,
    to_canonical,
)
from models.factors import BASIS_LABEL, FactorSet, load_factors
from models.indicators import (
    INDICATOR_COLUMNS,
    INTENSITIES,
    QTY_COL,
    aggregate,
    energy_ledger,
    energy_sums,
    heating_fraction,
    in_every_ancestor,
    indicators_from_frames,
    indicators_from_sums,
    institution_context,
    market_scope2_t,
    priced_sums,
    with_institution_id,
)
from models.ranking import rank
from storage.rollup import estimated_share


def indicators(use: pd.DataFrame, registry, factors: FactorSet | None = None, basis: str = "equivalent",
               freq: str | None = None, by_period: str | None = None) -> pd.DataFrame:
    """The indicator frame: one row per institution of the registry (module docstring).

    by_period: None (the whole of `use`), or 'month' | 'year' | 'day' | 'native' for one
    row per institution and period. freq: the use frame's own period length, the `freq`
    it was read with by `energy_use` (hour | day | month | year; None: inferred from the
    spacing of its periods)."""
    factors = factors or load_factors()
    inst = institution_context(registry, factors)
    return indicators_from_frames(use, inst, factors, basis, freq=freq, by_period=by_period, tz=registry.timezone)


def year_indicators(store, registry, year: int, factors: FactorSet | None = None, basis: str = "equivalent",
                    by_period: str | None = None) -> pd.DataFrame:
    """`indicators` of the calendar `year` read from the store at daily resolution (so
    heating seasons split exactly)."""
    factors = factors or load_factors()
    use = energy_use(store, registry, f"{year}-01-01", f"{year + 1}-01-01", "day", factors)
    return indicators(use, registry, factors, basis, freq="day", by_period=by_period)


def period_sums(store, registry, start: str | pd.Timestamp, end: str | pd.Timestamp,
                factors: FactorSet | None = None, boundary: str = "net") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(use, institutions, sums) of the local period [start, end) inside one calendar
    year: the use frame read for a yearly sum (`energy_use(..., "day", sums="year")`:
    heating meters and bills daily, so heating seasons split exactly, the other meters
    as the store's sums of the period), `institution_context` and `energy_sums` with one
    row per institution and energy. The annual ledger and the statistics tables both
    start from it, so their indicators (`indicators_from_sums`) are the same figures.
    `boundary`: net (default), gross or excluded (`models.energy.energy_use`)."""
    factors = factors or load_factors()
    use = energy_use(store, registry, start, end, "day", factors, boundary=boundary, sums="year")
    inst = institution_context(registry, factors)
    return use, inst, energy_sums(use, inst, period="year", freq="day", tz=registry.timezone)


def consumption_by(use: pd.DataFrame, institutions: pd.DataFrame, by: Sequence[str] = ("institution_id",),
                   regions: RegionTree = None) -> pd.DataFrame:
    """Consumption per group (any of institution_id, region, category, and meter_id),
    energy and period_start: quantity (canonical unit), unit, estimated_share (0..1),
    institutions (count). Sub-meter rows are excluded unless 'meter_id' is in `by`.
    With `regions` (Registry, frame id/parent or dict) and 'region' in `by`, regions
    include their subtrees."""
    by = list(by)
    institutions = with_institution_id(institutions)
    u = use if "meter_id" in by or "is_main" not in use else use[use["is_main"].to_numpy(bool)]
    cols = [c for c in ("region", "category") if c in by]
    if cols:
        u = u.merge(institutions[["institution_id", *cols]], on="institution_id", how="left")
    if regions is not None and "region" in by:
        u = in_every_ancestor(u, regions)
    est = u["quantity"] * u.get("estimated_share", 0.0)
    w = u.assign(est=est)
    g = w.groupby([*by, "energy", "period_start"], sort=True, observed=True).agg(
        quantity=("quantity", "sum"), est=("est", "sum"), institutions=("institution_id", "nunique")).reset_index()
    g["estimated_share"] = estimated_share(g["est"], g["quantity"])
    g["unit"] = g["energy"].map(CANONICAL_UNIT)
    return g[[*by, "energy", "period_start", "quantity", "unit", "estimated_share", "institutions"]]


__all__ = [
    "BASIS_LABEL", "CANONICAL_UNIT", "INDICATOR_COLUMNS", "INTENSITIES", "QTY_COL", "FactorSet", "aggregate",
    "bill_costs", "consumption_by", "cost_by_period", "energy_cost", "energy_ledger", "energy_sums", "energy_use",
    "green_power_kwh", "heating_fraction", "indicators", "indicators_from_frames", "indicators_from_sums",
    "institution_context", "load_factors", "market_scope2_t", "period_sums", "priced_sums", "rank", "split_bills",
    "submeter_balance", "submeter_balance_from_frames", "tariff_frame", "to_canonical", "year_indicators", "yoy_change",
]
