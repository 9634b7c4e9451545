"""Energy cost in CNY (元): what the bills say was paid, else metered use at the tariff.

The cost of an institution's energy on a day is

* the bills' `cost_cny` for that day when a bill with a cost covers it (a bill's cost
  is spread evenly over its days, exactly as its quantity is: `split_bills`), whether
  or not the energy is also metered: a bill is what was paid;
* otherwise its main-meter use that day times the tariff of its region
  (`core.registry.Region.tariffs`, CNY per canonical unit: kWh, m3, GJ, kg; a region
  without a price of an energy takes its parent's);
* otherwise unknown (NaN, `cost_source` "none"): no bill and no tariff.

Work at daily resolution (a use frame read with freq "day") so that a bill covering
part of a month prices only its own days; `cost_by_period` then sums to months or years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.frames import labels, mapped
from core.vocab import CANONICAL_UNIT
from models.energy import split_bills

COST_COLUMNS = ["institution_id", "energy", "period_start", "quantity", "unit", "cost_cny", "cost_source"]


def tariff_frame(registry) -> pd.DataFrame:
    """institution_id, energy, cny_per_unit: the tariffs in force at each institution
    (`Registry.tariffs_of` its region)."""
    cols = ["institution_id", "energy", "cny_per_unit"]
    by_region = pd.DataFrame([(r.id, e, p) for r in registry.regions for e, p in registry.tariffs_of(r.id).items()],
                             columns=["region", "energy", "cny_per_unit"])
    insts = registry.institutions_frame()[["id", "region"]].rename(columns={"id": "institution_id"})
    # one merge, not a row per institution and energy built in Python (a province: 31,600)
    return insts.merge(by_region, on="region", how="inner")[cols]


def bill_costs(bills: pd.DataFrame, freq: str, tz: str, start: pd.Timestamp | None = None,
               end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Bills with a cost (bills frame: institution_id, energy, period_start, period_end,
    quantity, unit, cost_cny) as institution_id, energy, period_start, cost_cny: each
    bill's cost spread over its days like its quantity and bucketed into `freq`
    periods starting in [start, end)."""
    cols = ["institution_id", "energy", "period_start", "cost_cny"]
    priced = bills[pd.to_numeric(bills.get("cost_cny"), errors="coerce").notna()] if len(bills) else bills
    if priced.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "cost_cny" else object) for c in cols})
    # the cost rides on the quantity column, in the energy's canonical unit (scale 1)
    as_qty = priced.assign(quantity=priced["cost_cny"].astype(float), unit=priced["energy"].map(CANONICAL_UNIT))
    spread = split_bills(as_qty, freq, tz, start, end)
    return spread.rename(columns={"quantity": "cost_cny"})[cols]


def energy_cost(use: pd.DataFrame, bills: pd.DataFrame, tariffs: pd.DataFrame) -> pd.DataFrame:
    """Cost of each institution, energy and period of `use` (a use frame; sub-meter rows
    are ignored) and of `bills` (`bill_costs` at the same freq) by the rule of the module
    docstring. Returns institution_id, energy, period_start, quantity (canonical unit),
    unit, cost_cny (NaN: no bill, no tariff), cost_source ('bill' | 'tariff' | 'none')."""
    main = use[use["is_main"].to_numpy(bool)] if "is_main" in use and len(use) else use
    keys = ["institution_id", "energy", "period_start"]
    qty = (main.groupby(keys, as_index=False, sort=False)["quantity"].sum() if len(main)
           else pd.DataFrame({k: pd.Series(dtype=object) for k in keys}).assign(quantity=pd.Series(dtype=float)))
    billed = bills.groupby(keys, as_index=False, sort=False)["cost_cny"].sum() if len(bills) else None
    df = qty if billed is None else qty.merge(billed, on=keys, how="outer")
    if "cost_cny" not in df:
        df["cost_cny"] = np.nan
    df = df.merge(tariffs, on=["institution_id", "energy"], how="left")
    q = df["quantity"].to_numpy(float)
    bill = df["cost_cny"].to_numpy(float)
    at_tariff = q * df["cny_per_unit"].to_numpy(float)
    has_bill = ~np.isnan(bill)
    has_tariff = ~np.isnan(at_tariff)
    df["cost_cny"] = np.where(has_bill, bill, at_tariff)
    df["cost_source"] = labels(["none", "tariff", "bill"], np.where(has_bill, 2, np.where(has_tariff, 1, 0)))
    df["quantity"] = np.nan_to_num(q)
    df["unit"] = mapped(df["energy"], CANONICAL_UNIT)
    return df[COST_COLUMNS].sort_values(keys, kind="stable").reset_index(drop=True)


def cost_by_period(costs: pd.DataFrame, period: str, tz: str, by: tuple[str, ...] = ("energy",)) -> pd.DataFrame:
    """`energy_cost` rows summed per `by` columns and local period ('day' | 'month' |
    'year' | 'all'): the `by` columns, period_start (absent for 'all'), cost_cny (NaN
    only when no row of the group has a price), priced_share (share of the group's rows
    that have a price: below 1 a total misses what has no bill and no tariff)."""
    df = costs.copy()
    by = list(by)
    if period != "all":
        local = pd.DatetimeIndex(pd.to_datetime(df["period_start"], utc=True)).tz_convert(tz).tz_localize(None)
        start = {"day": local.normalize(), "month": local.to_period("M").to_timestamp(),
                 "year": local.to_period("Y").to_timestamp()}[period]
        df["period_start"] = start.tz_localize(tz)
        by = [*by, "period_start"]
    df["priced"] = df["cost_cny"].notna()
    if not by:
        df["_all"] = 0
        by = ["_all"]
    g = df.groupby(by, sort=True)
    out = pd.DataFrame({"cost_cny": g["cost_cny"].sum(min_count=1), "priced_share": g["priced"].mean()})
    return out.reset_index().drop(columns=["_all"], errors="ignore")
