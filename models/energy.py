"""Consumption by institution: meters' rollups and bills, in canonical units.

The *use frame* is what every indicator is computed from. Columns:

* institution_id (str), meter_id (str, None for a bill), energy (interfaces.md energy
  code), subitem, heating (bool: heating-season energy of this row counts as heating
  energy: purchased heat, or a meter marked ``heating: true``), is_main (bool: a top
  meter, counted in totals; sub-meters are False and never added to totals),
  period_start (tz-aware, local), quantity (canonical unit: `core.vocab.CANONICAL_UNIT`,
  i.e. kWh, m3, GJ, or kg for liquid fuels), unit, estimated_share (0..1, the share of
  `quantity` interpolated over gaps), source ("meter", "bill", or "excluded": the
  deduction of a sub-meter outside the accounting boundary, see `energy_use`).

Choices (documented in docs/models.md):

* Meters win over bills: a bill is used only for an (institution, energy) with no main
  meter of that energy in the registry, so a metered energy is never counted twice.
* A bill covering several days (dates inclusive) is spread evenly over its days and the
  days are re-bucketed into the requested periods (hours: 1/24 of the day each).
* Litres of gasoline and diesel become kg with the factor set's densities; t becomes
  kg, MWh and 万kWh become kWh, MJ becomes GJ, 万m3 becomes m3; water in t equals m3.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from core import localtime
from core.frames import positions_in
from core.vocab import CANONICAL_UNIT, GREEN_POWER, UNIT_SCALE
from models.factors import FactorSet
from models.indicators import DEFAULT_SEASON, heating_seasons, season_mask
from storage.rollup import FREQS

USE_COLUMNS = ["institution_id", "meter_id", "energy", "subitem", "heating", "is_main", "period_start",
               "quantity", "unit", "estimated_share", "source"]


def empty_use() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in USE_COLUMNS})


def to_canonical(quantity: np.ndarray | pd.Series, energy: np.ndarray | pd.Series, unit: np.ndarray | pd.Series,
                 factors: FactorSet) -> np.ndarray:
    """`quantity` (in `unit`) expressed in the canonical unit of `energy`.

    Raises ValueError naming every unsupported (energy, unit) pair.
    """
    frame = pd.DataFrame({"energy": np.asarray(energy, dtype=object), "unit": np.asarray(unit, dtype=object)})
    pairs = frame.drop_duplicates()
    scale: dict[tuple[str, str], float] = {}
    bad = []
    for energy_, unit_ in pairs.itertuples(index=False):  # one per unique pair (few)
        canon = CANONICAL_UNIT.get(energy_)
        if canon is None:
            bad.append(f"unknown energy {energy_!r}")
        elif unit_ == "L" and canon == "kg":
            scale[(energy_, unit_)] = factors.density_kg_per_l(energy_)
        elif (unit_, canon) in UNIT_SCALE:
            scale[(energy_, unit_)] = UNIT_SCALE[(unit_, canon)]
        else:
            bad.append(f"{energy_} in {unit_!r} (expected {canon})")
    if bad:
        raise ValueError("cannot convert: " + "; ".join(bad))
    keys = pd.MultiIndex.from_frame(frame)
    s = pd.Series(scale)
    s.index = pd.MultiIndex.from_tuples(s.index, names=["energy", "unit"])
    return np.asarray(quantity, dtype=float) * s.reindex(keys).to_numpy(float)


def split_bills(bills: pd.DataFrame, freq: str, tz: str, start: pd.Timestamp | None = None,
                end: pd.Timestamp | None = None, factors: FactorSet | None = None,
                seasons: pd.DataFrame | None = None) -> pd.DataFrame:
    """Bills (institution_id, energy, period_start, period_end inclusive dates, quantity,
    unit) as a use frame: each bill's quantity spread evenly over its days, converted to
    the canonical unit and re-bucketed into `freq` periods; only periods starting in
    [start, end) (local) are kept. Purchased heat is heating energy (`heating` True).

    `seasons` (institution_id, heating_start, heating_end: `models.indicators.heating_seasons`)
    honours a bill's `heating_quantity` (the part of its quantity that is heating-season use
    of heating equipment, e.g. a heating gas meter's, reported from below): that part is a
    heating row spread over the bill's days inside the institution's heating season (all
    its days when none is), the rest a non-heating row over all its days, so the heating
    split of the bill is exact at daily resolution. Without `seasons`, or where
    `heating_quantity` is NaN, the rule for bills holds. A bill's `estimated_quantity`
    (the part estimated over meter gaps below) gives its rows their `estimated_share`
    (`estimated_share_of`; 0 without)."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS}, not {freq!r}")
    if bills.empty:
        return empty_use()
    if factors is None:
        from models.factors import load_factors
        factors = load_factors()
    b = bills.reset_index(drop=True)
    d0 = pd.to_datetime(b["period_start"]).dt.normalize().to_numpy("datetime64[D]")
    d1 = pd.to_datetime(b["period_end"]).dt.normalize().to_numpy("datetime64[D]")
    ndays = (d1 - d0).astype(np.int64) + 1
    if (ndays < 1).any():
        bad = b[ndays < 1].iloc[0]
        raise ValueError(f"bill of {bad['institution_id']} {bad['energy']}: period_end before period_start")
    qty = to_canonical(b["quantity"], b["energy"], b["unit"], factors)
    rows = np.repeat(np.arange(len(b)), ndays)
    offs = np.arange(ndays.sum()) - np.repeat(np.cumsum(ndays) - ndays, ndays)
    day = d0[rows] + offs.astype("timedelta64[D]")
    per_day = (qty / ndays)[rows]
    heating = (b["energy"] == "heat").to_numpy(bool)[rows]
    given = (pd.to_numeric(b["heating_quantity"], errors="coerce").to_numpy(float)
             if seasons is not None and "heating_quantity" in b else np.full(len(b), np.nan))
    split = ~np.isnan(given)
    if split.any():
        hq = np.where(split, to_canonical(np.nan_to_num(given), b["energy"], b["unit"], factors), 0.0)
        rows, day, per_day, heating = _heating_parts(b, rows, day, per_day, heating, qty, hq, ndays, split, seasons)
    if freq == "hour":
        rows, heating = np.repeat(rows, 24), np.repeat(heating, 24)
        per_day = np.repeat(per_day / 24.0, 24)
        local = pd.DatetimeIndex(np.repeat(day, 24).astype("datetime64[s]")
                                 + np.tile(np.arange(24) * 3600, len(day)).astype("timedelta64[s]"))
    else:
        local = localtime.wall_floor(pd.DatetimeIndex(day.astype("datetime64[s]")), freq)
    energy = b["energy"].to_numpy(object)[rows]
    df = pd.DataFrame({
        "institution_id": b["institution_id"].astype(str).to_numpy(object)[rows],
        "energy": energy,
        "heating": heating,
        "period_start": localtime.first_instant(local, tz),  # a skipped hour's share joins the next
        "quantity": per_day,
        "estimated": per_day * estimated_share_of(b)[rows],
    })
    if start is not None:
        df = df[df["period_start"] >= localtime.local_floor_one(start, freq, tz)]
    if end is not None:
        df = df[df["period_start"] < localtime.first_instant_of(end, tz)]
    g = df.groupby(["institution_id", "energy", "period_start", "heating"], as_index=False, sort=True)[
        ["quantity", "estimated"]].sum()
    q = g["quantity"].to_numpy(float)
    return pd.DataFrame({
        "institution_id": g["institution_id"], "meter_id": None, "energy": g["energy"], "subitem": "total",
        "heating": g["heating"].to_numpy(bool), "is_main": True, "period_start": g["period_start"],
        "quantity": q, "unit": g["energy"].map(CANONICAL_UNIT),
        "estimated_share": np.divide(g["estimated"].to_numpy(float), q, out=np.zeros(len(q)), where=q > 0),
        "source": "bill",
    })[USE_COLUMNS]


def _heating_parts(b: pd.DataFrame, rows: np.ndarray, day: np.ndarray, per_day: np.ndarray, heating: np.ndarray,
                   qty: np.ndarray, hq: np.ndarray, ndays: np.ndarray, split: np.ndarray,
                   seasons: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The day rows of `split_bills` (bill index `rows`, `day`, `per_day`, `heating`) with
    each bill of `split` (heating part `hq`, canonical) as a non-heating rest over all its
    days plus heating rows over its days in the institution's season (all its days when
    none is)."""
    s = seasons.set_index("institution_id").reindex(b["institution_id"].astype(str).to_numpy(object))
    pair = (s["heating_start"].fillna(DEFAULT_SEASON[0]) + "|" + s["heating_end"].fillna(DEFAULT_SEASON[1])
            ).to_numpy(object)[rows]
    part = split[rows]
    inside = np.zeros(len(rows))
    days = pd.DatetimeIndex(day.astype("datetime64[s]"))
    for p in np.unique(pair[part]):  # one per distinct season (few)
        hit = part & (pair == p)
        inside[hit] = season_mask(days[hit], *p.split("|"))
    n_in = np.bincount(rows, weights=inside, minlength=len(b))[rows]
    share = np.where(n_in > 0, inside / np.maximum(n_in, 1), 1.0 / ndays[rows])
    rest = np.where(part, (qty - hq)[rows] / ndays[rows], per_day)
    add = part & (share > 0) & (hq[rows] > 0)
    return (np.concatenate([rows, rows[add]]), np.concatenate([day, day[add]]),
            np.concatenate([rest, (hq[rows] * share)[add]]),
            np.concatenate([heating & ~part, np.ones(int(add.sum()), bool)]))


def estimated_share_of(bills: pd.DataFrame) -> np.ndarray:
    """Per bill, the share of its quantity estimated (`estimated_quantity` / `quantity`,
    0..1; 0 where not given)."""
    if "estimated_quantity" not in bills:
        return np.zeros(len(bills))
    est = pd.to_numeric(bills["estimated_quantity"], errors="coerce").to_numpy(float)
    qty = pd.to_numeric(bills["quantity"], errors="coerce").to_numpy(float)
    share = np.divide(est, qty, out=np.zeros(len(bills)), where=(qty > 0) & ~np.isnan(est))
    return np.clip(share, 0.0, 1.0)


def meter_use(consumption: pd.DataFrame, meters: pd.DataFrame, factors: FactorSet) -> pd.DataFrame:
    """The store's consumption (meter_id, period_start, quantity x multiplier,
    estimated_share) joined with the registry's meters frame, as a use frame.

    Meters not in `meters` are dropped (they are not in the registry). Everything of a
    meter (unit scale, heating, main) is worked out once per meter and taken by position
    into the rows: no per-row lookup by name, no string boxed per row."""
    if consumption.empty:
        return empty_use()
    m = meters.reset_index(drop=True)
    pos = positions_in(consumption["meter_id"], pd.Index(m["meter_id"]))
    keep = pos >= 0
    c = consumption[keep] if not keep.all() else consumption
    pos = pos[keep]
    seen = pd.unique(pos)  # the meters with rows, in the order of their first row
    energy = m["energy"].to_numpy(object)
    scale = np.zeros(len(m))
    scale[seen] = to_canonical(np.ones(len(seen)), energy[seen], m["unit"].to_numpy(object)[seen], factors)
    heating = m["heating"].fillna(False).to_numpy(bool) | (energy == "heat")
    main = m["parent"].isna().to_numpy(bool)
    canonical = m["energy"].map(CANONICAL_UNIT)

    def take(col: pd.Series):  # no rows: object columns, as inferred from no values
        return col.array.take(pos) if len(pos) else np.asarray([], dtype=object)

    return pd.DataFrame({
        "institution_id": take(m["institution_id"]),
        "meter_id": take(m["meter_id"]),
        "energy": take(m["energy"]),
        "subitem": take(m["subitem"]),
        "heating": heating[pos],
        "is_main": main[pos],
        "period_start": c["period_start"].array,  # .array keeps the tz (to_numpy() would box every value)
        "quantity": c["quantity"].to_numpy(float) * scale[pos],
        "unit": take(canonical),
        "estimated_share": c["estimated_share"].to_numpy(float),
        "source": "meter",
    })[USE_COLUMNS].reset_index(drop=True)


def combine_use(meter_rows: pd.DataFrame, bill_rows: pd.DataFrame, meters: pd.DataFrame) -> pd.DataFrame:
    """Meter rows plus the bill rows of (institution, energy) pairs that have no main
    meter in the registry (meters win: an energy is never counted twice)."""
    if bill_rows.empty:
        return meter_rows
    main = meters[meters["parent"].isna()]
    metered = pd.MultiIndex.from_frame(main[["institution_id", "energy"]].astype(str))
    keep = ~pd.MultiIndex.from_frame(bill_rows[["institution_id", "energy"]].astype(str)).isin(metered)
    parts = [p for p in (meter_rows, bill_rows[keep]) if len(p)]
    if not parts:
        return empty_use()
    return pd.concat(parts, ignore_index=True)


BOUNDARIES = ("net", "gross", "excluded")


def energy_use(store, registry, start: str | pd.Timestamp, end: str | pd.Timestamp, freq: str = "month",
               factors: FactorSet | None = None, include_submeters: bool = False,
               institution_ids: Iterable[str] | None = None, boundary: str = "net",
               sums: str | None = None, cuts: Iterable[pd.Timestamp] = ()) -> pd.DataFrame:
    """The use frame (module docstring) for periods starting in [start, end) local time.

    freq: hour | day | month | year, the length of the frame's periods (hand the same
    `freq` to `models.api.indicators`). Main meters and bills; bills only for an
    (institution, energy) with no main meter, split over their days. Sub-meters only
    with `include_submeters` (then their rows come with is_main False; indicators
    ignore them).

    boundary (the accounting boundary, registry `boundary: excluded`): 'net' (default,
    what totals, intensities, targets and the ledger count): an excluded main meter and
    excluded bill days are left out, an excluded sub-meter's use is deducted from its
    institution (a row with the negated quantity, source 'excluded', unless its parent
    is excluded itself); 'gross': everything, as if nothing were excluded; 'excluded':
    only what 'net' leaves out or deducts, with positive quantities (source 'excluded'),
    so gross = net + excluded for every institution, energy and period. A bill
    exclusion's dates are judged on each row's period start: exact at daily (or hourly)
    resolution, which the ledger, reports and dashboard use.

    Bills of kind `green_power` (purchases, not use) never enter the frame
    (`green_power_kwh`).

    sums ('month' | 'year'): the frame is only to be summed into such periods
    (`models.indicators.energy_sums(period=sums, freq=freq)`, `models.cost.energy_cost`
    then `cost_by_period(period=sums)`), so the meters whose rows need no split inside a
    period come as the store's sums of those periods (server-side: a province year is
    ~200,000 rows, not ~70 million); heating meters as sums of spans cut also where a
    heating season starts or ends (`_season_spans`: the heating split stays exact);
    bills and the meters of an (institution, energy) that has bills (a bill's cost
    replaces the tariff on its days) keep `freq` rows. The sums are the same; the rows
    are not periods of `freq`.

    cuts (with `sums`): local midnights inside [start, end) where the store's sums are
    also cut, so the rows of a sub-range starting there (e.g. a rolling year inside two
    calendar years) are the same read: rows with period_start >= a cut sum to [cut, end)."""
    from models.factors import load_factors

    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, not {boundary!r}")
    factors = factors or load_factors()
    meters = registry.meters_frame()
    if institution_ids is not None:
        meters = meters[meters["institution_id"].isin(list(institution_ids))]
    excluded = (meters["boundary"] == "excluded").to_numpy(bool)
    parent_excluded = meters["parent"].isin(meters.loc[excluded, "meter_id"]).to_numpy(bool)
    deduct = excluded & meters["parent"].notna().to_numpy(bool) & ~parent_excluded  # excluded sub-meters
    main = meters["parent"].isna().to_numpy(bool)
    pick = (np.ones(len(meters), bool) if include_submeters else main) | deduct
    if boundary == "excluded":  # only excluded meters and deducted sub-meters can be in it: read no other
        pick &= excluded | deduct
    chosen = meters[pick]
    all_bills = _bills(store, registry, institution_ids)
    cons = _consumption(store, registry, chosen, freq, start, end, sums, all_bills, cuts) if len(chosen) else None
    rows = meter_use(cons, chosen, factors) if cons is not None else empty_use()
    bills = all_bills[all_bills["energy"] != GREEN_POWER] if len(all_bills) else all_bills  # a purchase, not use
    bill_rows = (split_bills(bills, freq, registry.timezone, start, end, factors, seasons=heating_seasons(registry))
                 if len(bills) else empty_use())
    out = combine_use(rows, bill_rows, meters)
    ex_ids = set(meters.loc[excluded, "meter_id"])
    sub_ids = set(meters.loc[deduct, "meter_id"])
    is_sub = out["meter_id"].isin(sub_ids).to_numpy(bool)
    if boundary != "gross":
        main_out = out["meter_id"].isin(ex_ids).to_numpy(bool) & ~is_sub
        bill_out = _excluded_bill_rows(out, registry.excluded_bills_frame(), registry.timezone)
        gone = main_out | bill_out
        if boundary == "net":
            minus = out[is_sub].assign(quantity=-out.loc[is_sub, "quantity"].to_numpy(float), is_main=True, subitem="total",
                                       source="excluded")
            keep = out[~gone & (~is_sub | (include_submeters & ~out["is_main"].to_numpy(bool)))]
            out = pd.concat([p for p in (keep, minus) if len(p)], ignore_index=True) if len(keep) or len(minus) \
                else empty_use()
        else:
            out = out[gone | is_sub].assign(is_main=True, source="excluded")
    elif not include_submeters:
        out = out[~is_sub]
    if out.empty:
        return empty_use()
    # sorted by institution, energy, period: a stable sort of the sorted codes (the same
    # order as sorting the strings, without comparing ~10 million of them)
    codes = [pd.factorize(out[c], sort=True)[0] for c in ("period_start", "energy", "institution_id")]
    return out.take(np.lexsort(codes)).reset_index(drop=True)


def _consumption(store, registry, meters: pd.DataFrame, freq: str, start, end, sums: str | None,
                 bills: pd.DataFrame, cuts: Iterable[pd.Timestamp] = ()) -> pd.DataFrame:
    """The store's consumption of `meters` at `freq`, or (`sums`): the meters of an
    (institution, energy) with bills at `freq`, the others as sums of `sums` periods,
    heating meters' sums cut also where a heating season starts or ends, all also at
    `cuts` (`energy_use`)."""
    ids = meters["meter_id"]
    if sums is None or sums == freq:
        return store.consumption(freq, start, end, meter_ids=ids.tolist())
    daily = np.zeros(len(meters), bool)
    if len(bills):
        pairs = pd.MultiIndex.from_frame(bills[["institution_id", "energy"]].astype(str))
        daily = pd.MultiIndex.from_frame(meters[["institution_id", "energy"]].astype(str)).isin(pairs)
    heating = ~daily & (meters["heating"].fillna(False).to_numpy(bool) | (meters["energy"] == "heat").to_numpy(bool))
    cuts = pd.DatetimeIndex(list(cuts))
    plain = ids[~daily & ~heating].tolist()
    parts = [store.consumption(freq, start, end, meter_ids=ids[daily].tolist()) if daily.any() else None,
             (store.consumption(sums, start, end, meter_ids=plain) if not len(cuts) else
              store.consumption_between(_cut_spans(_period_starts(registry, start, end, sums), cuts), end, plain))
             if (~daily & ~heating).any() else None,
             store.consumption_between(_cut_spans(_season_spans(registry, start, end, sums), cuts), end,
                                       ids[heating].tolist())
             if heating.any() else None]
    parts = [p for p in parts if p is not None]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _period_starts(registry, start, end, sums: str) -> pd.DatetimeIndex:
    """Local midnights that cut [start's day, end) into the `sums` periods (the first:
    start's day)."""
    tz = registry.timezone
    first = localtime.first_instant_of(pd.Timestamp(start), tz)
    first = localtime.local_floor_one(first, "day", tz)
    edges = localtime.local_edges(first, localtime.first_instant_of(pd.Timestamp(end), tz), sums, tz)[:-1]
    return pd.DatetimeIndex([first]).append(edges[edges > first])


def _cut_spans(starts: pd.DatetimeIndex, cuts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Span starts `starts` also cut at `cuts` (local midnights) after the first."""
    if not len(cuts) or not len(starts):
        return starts
    cuts = cuts.tz_convert(starts.tz)
    return starts.append(cuts[cuts > starts[0]]).unique().sort_values()


def _season_spans(registry, start, end, sums: str) -> pd.DatetimeIndex:
    """Local midnights that cut [start's day, end) into spans each inside one `sums`
    period and wholly inside or outside every heating season of the registry: a span's
    heating share is its first day's (`heating_fraction` at day resolution)."""
    tz = registry.timezone
    days = localtime.local_edges(localtime.first_instant_of(pd.Timestamp(start), tz),
                                 localtime.first_instant_of(pd.Timestamp(end), tz), "day", tz)[:-1]
    if len(days) == 0:
        return days
    wall = days.tz_localize(None)
    period = (wall.year * 100 + (wall.month if sums == "month" else 0)).to_numpy()
    cut = np.r_[True, period[1:] != period[:-1]]
    seasons = heating_seasons(registry)[["heating_start", "heating_end"]].drop_duplicates()
    for s, e in seasons.itertuples(index=False):  # one per distinct season (few)
        inside = season_mask(wall, s, e)
        cut[1:] |= inside[1:] != inside[:-1]
    return days[cut]


def _bills(store, registry, institution_ids: Iterable[str] | None) -> pd.DataFrame:
    bills = store.read_bills(None if institution_ids is None else list(institution_ids))
    return bills[bills["institution_id"].isin(registry.institution_by_id)] if len(bills) else bills


def green_power_kwh(store, registry, start: str | pd.Timestamp, end: str | pd.Timestamp,
                    factors: FactorSet | None = None) -> pd.Series:
    """institution_id -> kWh of green power bought (bills of kind `green_power`, spread
    over their days) in the local days of [start, end): the part of the electricity that
    market-based Scope 2 counts at zero."""
    from models.factors import load_factors

    bills = _bills(store, registry, None)
    bills = bills[bills["energy"] == GREEN_POWER] if len(bills) else bills
    if bills.empty:
        return pd.Series(dtype=float, name="green_power_kwh")
    rows = split_bills(bills, "day", registry.timezone, start, end, factors or load_factors())
    return rows.groupby("institution_id")["quantity"].sum().rename("green_power_kwh")


def _excluded_bill_rows(use: pd.DataFrame, exclusions: pd.DataFrame, tz: str) -> np.ndarray:
    """Bill rows of `use` inside an exclusion (institution_id, energy, start, end
    local dates inclusive, NaT: open) of the registry."""
    bill = (use["source"] == "bill").to_numpy(bool)
    if exclusions.empty or not bill.any():
        return np.zeros(len(use), bool)
    day = pd.DatetimeIndex(use["period_start"]).tz_convert(tz).tz_localize(None).normalize()
    m = pd.DataFrame({"row": np.arange(len(use))[bill], "institution_id": use["institution_id"].to_numpy(object)[bill],
                      "energy": use["energy"].to_numpy(object)[bill], "day": day[bill]})
    m = m.merge(exclusions, on=["institution_id", "energy"])
    inside = (m["start"].isna() | (m["day"] >= m["start"])) & (m["end"].isna() | (m["day"] <= m["end"]))
    out = np.zeros(len(use), bool)
    out[m.loc[inside.to_numpy(bool), "row"].to_numpy(np.int64)] = True
    return out


def submeter_balance_from_frames(consumption: pd.DataFrame, meters: pd.DataFrame,
                                 tolerance: float = 0.02) -> pd.DataFrame:
    """Sub-meter balance per parent meter over the whole of `consumption`
    (meter_id, quantity; any periods).

    Returns parent_meter_id, institution_id, energy, children (count),
    parent_quantity, children_quantity (sum of the direct sub-meters, same unit as
    the parent), unaccounted (parent - children), unaccounted_share (unaccounted /
    parent; NaN when the parent used nothing), over_parent (children exceed the
    parent by more than `tolerance`, 2 % by default: a wiring or multiplier error)."""
    totals = consumption.groupby("meter_id", sort=False)["quantity"].sum()
    kids = meters[meters["parent"].notna()]
    parents = meters[meters["meter_id"].isin(kids["parent"])].set_index("meter_id")
    child_sum = kids.assign(q=kids["meter_id"].map(totals).fillna(0.0)).groupby("parent")["q"].agg(["sum", "size"])
    parent_q = parents.index.to_series().map(totals).fillna(0.0).to_numpy(float)
    children_q = child_sum["sum"].reindex(parents.index).fillna(0.0).to_numpy(float)
    unacc = parent_q - children_q
    share = np.divide(unacc, parent_q, out=np.full_like(unacc, np.nan), where=np.abs(parent_q) > 1e-12)
    return pd.DataFrame({
        "parent_meter_id": parents.index.to_numpy(object),
        "institution_id": parents["institution_id"].to_numpy(object),
        "energy": parents["energy"].to_numpy(object),
        "children": child_sum["size"].reindex(parents.index).fillna(0).astype(int).to_numpy(),
        "parent_quantity": parent_q,
        "children_quantity": children_q,
        "unaccounted": unacc,
        "unaccounted_share": share,
        "over_parent": children_q > parent_q * (1 + tolerance) + 1e-9,
    })


def submeter_balance(store, registry, start: str | pd.Timestamp, end: str | pd.Timestamp,
                     tolerance: float = 0.02) -> pd.DataFrame:
    """`submeter_balance_from_frames` on the store's daily consumption in [start, end)."""
    meters = registry.meters_frame()
    involved = meters[meters["parent"].notna() | meters["meter_id"].isin(meters["parent"])]
    cons = store.consumption("day", start, end, meter_ids=involved["meter_id"].tolist()) if len(involved) else None
    if cons is None or cons.empty:
        cons = pd.DataFrame({"meter_id": pd.Series(dtype=object), "quantity": pd.Series(dtype=float)})
    return submeter_balance_from_frames(cons, meters, tolerance)
