"""Indicators per institution and their aggregates: pure, vectorised arithmetic.

Two steps, so the heavy part runs once over the big frame:

1. `energy_sums(use, institutions, ...)` reduces a use frame (models.energy; only
   institution_id, energy, period_start and quantity are required, estimated_share,
   heating and is_main are optional) to one row per institution, energy and period
   (year by default) with the quantity, its estimated part and its heating-season
   heating part. It works on integer codes and `np.bincount`; categorical columns
   (institution_id, energy, period_start) are used as they are, without hashing.
2. `indicators_from_sums(sums, institutions, factors, basis)` applies the factor set
   (per energy, the institution's factor region and the activity year) and computes
   the indicators (`INDICATOR_COLUMNS`).

Definitions (domain.md §2-4):

* kgce = Σ quantity x standard-coal coefficient (water and PV generation excluded),
  on the electricity basis asked for (当量值 'equivalent' by default, or 等价值
  'equal_value'); tce = kgce / 1000.
* t_co2_scope1 = Σ fuels x factor; t_co2_scope2 = electricity x grid factor (the
  institution's province, else its grid region, else national; activity year, else
  latest published and provisional) + purchased heat x factor. PV self-consumption
  is not purchased and carries no emissions; `pv_kwh` reports generation.
* heating_kgce: the heating-season part (the region's season, e.g. 11-15 to 03-15
  inclusive; a monthly or yearly period counts the fraction of its days in the season)
  of rows flagged `heating` (purchased heat, heating meters). heating_kgce_per_m2 is
  per heated area; nonheating_kgce = kgce - heating_kgce - vehicle fuel kgce, per
  floor area.
* Intensities are per the period the use frame covers (a full year gives ·a
  figures). Institutions without any data get zero totals, has_data False and NaN
  intensities (they are not the best performers, they are missing).
* Aggregates are ratios of sums (never means of ratios); areas and people of
  institutions without data are left out of the denominators.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core import localtime
from core.registry import DEFAULT_HEATING_SEASON, RegionTree, region_ancestors_frame
from core.vocab import CANONICAL_UNIT, ENERGIES, VEHICLE_FUELS
from models.factors import BASIS_LABEL, COAL_ENERGIES, SCOPE, FactorSet, normalize_basis
from storage.rollup import estimated_share

#: Column of each energy's total in the indicator frame (canonical unit in the name).
QTY_COL: dict[str, str] = {
    "electricity": "electricity_kwh", "water": "water_m3", "natural_gas": "gas_m3", "heat": "heat_gj",
    "gasoline": "gasoline_kg", "diesel": "diesel_kg", "lpg": "lpg_kg", "coal": "coal_kg", "pv": "pv_kwh",
}
INSTITUTION_COLUMNS = ["institution_id", "name", "region", "category", "floor_area_m2", "heated_area_m2",
                       "occupants"]
#: Extensive columns: additive over institutions and periods.
EXTENSIVE = [*QTY_COL.values(), "kgce", "heating_kgce", "vehicle_kgce", "estimated_kgce",
             "estimated_water_m3", "kgco2_scope1", "kgco2_scope2"]
INDICATOR_COLUMNS = [
    *INSTITUTION_COLUMNS, "has_data", *QTY_COL.values(),
    "kgce", "tce", "heating_kgce", "nonheating_kgce", "vehicle_kgce", "estimated_kgce", "estimated_water_m3",
    "kgco2_scope1", "kgco2_scope2", "t_co2_scope1", "t_co2_scope2", "t_co2",
    "kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2",
    "heating_kgce_per_m2", "nonheating_kgce_per_m2", "estimated_share", "water_estimated_share",
    "basis", "basis_label", "factor_set", "provisional",
]
#: Intensity indicators: name -> (numerator, denominator, unit).
INTENSITIES: dict[str, tuple[str, str, str]] = {
    "kgce_per_m2": ("kgce", "floor_area_m2", "kgce/m2"),
    "kgce_per_person": ("kgce", "occupants", "kgce/person"),
    "water_m3_per_person": ("water_m3", "occupants", "m3/person"),
    "kgco2_per_m2": ("kgco2", "floor_area_m2", "kgCO2/m2"),
    "heating_kgce_per_m2": ("heating_kgce", "heated_area_m2", "kgce/m2"),
    "nonheating_kgce_per_m2": ("nonheating_kgce", "floor_area_m2", "kgce/m2"),
}
#: (start, end) of the heating season of a frame without one: the registry's default.
DEFAULT_SEASON = (DEFAULT_HEATING_SEASON["start"], DEFAULT_HEATING_SEASON["end"])
KG_PER_T = 1000.0
_MAX_DENSE_BINS = 40_000_000  # above this many (institution, energy, period) bins, hash the keys instead


# -- institutions ----------------------------------------------------------------------
def with_institution_id(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `id` column named `institution_id` (as `registry.institutions_frame()`
    names it `id`); a frame that has `institution_id` already is returned as it is."""
    if "institution_id" not in frame and "id" in frame:
        return frame.rename(columns={"id": "institution_id"})
    return frame


def heating_seasons(registry) -> pd.DataFrame:
    """institution_id, heating_start, heating_end ('MM-DD'): the heating season of each
    institution's region (`Registry.heating_season_of`)."""
    inst = with_institution_id(registry.institutions_frame())
    seasons = {rid: registry.heating_season_of(rid) for rid in inst["region"].unique()}  # one per region (few)
    return pd.DataFrame({"institution_id": inst["institution_id"].to_numpy(object),
                         "heating_start": inst["region"].map({r: x.start for r, x in seasons.items()}).to_numpy(object),
                         "heating_end": inst["region"].map({r: x.end for r, x in seasons.items()}).to_numpy(object)})


def institution_context(registry, factors: FactorSet) -> pd.DataFrame:
    """The registry's institutions with what the arithmetic needs: INSTITUTION_COLUMNS
    plus factor_region (province or grid region the factor set knows, or '' for
    national), heating_start and heating_end ('MM-DD', the region's season: `heating_seasons`)."""
    inst = with_institution_id(registry.institutions_frame())
    freg = {}
    for rid in inst["region"].unique():  # one per region (few)
        chain = registry.region_ancestors(rid)
        names = [x for r in chain for x in (r, registry.region_by_id[r].name if r in registry.region_by_id else r)]
        freg[rid] = factors.match_region(names) or ""
    seasons = heating_seasons(registry)
    return inst.assign(factor_region=inst["region"].map(freg), heating_start=seasons["heating_start"].to_numpy(object),
                       heating_end=seasons["heating_end"].to_numpy(object))


def _complete_institutions(inst: pd.DataFrame, factors: FactorSet) -> pd.DataFrame:
    out = with_institution_id(inst.reset_index(drop=True).copy())
    missing = [c for c in ("institution_id", "floor_area_m2", "occupants") if c not in out]
    if missing:
        raise ValueError(f"institutions frame lacks column(s) {missing}")
    for col, default in (("name", ""), ("region", ""), ("category", "other"), ("heated_area_m2", 0.0)):
        if col not in out:
            out[col] = default
    if "factor_region" not in out:
        regs = pd.Series(out["region"].astype(str).unique())
        out["factor_region"] = out["region"].astype(str).map(
            dict(zip(regs, [factors.match_region([r]) or "" for r in regs], strict=True)))
    if "heating_start" not in out:
        out["heating_start"] = DEFAULT_SEASON[0]
    if "heating_end" not in out:
        out["heating_end"] = DEFAULT_SEASON[1]
    if out["institution_id"].duplicated().any():
        dup = out.loc[out["institution_id"].duplicated(), "institution_id"].iloc[0]
        raise ValueError(f"institution {dup!r} appears twice in the institutions frame")
    return out


# -- codes -------------------------------------------------------------------------------
def _code_lut(col: pd.Series, universe: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(codes, lut): per row a code and a table mapping codes to positions in
    `universe` (-1 when absent; the last entry serves code -1, a missing value), so
    that `lut[codes]` is each row's position. Categorical columns are not hashed."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, cats = col.cat.codes.to_numpy(), pd.Index(col.cat.categories)
    else:
        codes, cats = pd.factorize(col)  # hash once, then look the few distinct values up
        cats = pd.Index(cats)
    lut = np.append(universe.get_indexer(cats), -1).astype(np.int64)
    return codes, lut


def _codes(col: pd.Series, universe: pd.Index) -> np.ndarray:
    """Position of each value of `col` in `universe` (-1 when absent)."""
    codes, lut = _code_lut(col, universe)
    return lut.astype(np.int32)[codes]


def _period_codes(col: pd.Series, tz: str | None) -> tuple[np.ndarray, pd.DatetimeIndex]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, uniq = col.cat.codes.to_numpy(), pd.DatetimeIndex(col.cat.categories)
        if codes.min(initial=0) < 0:
            raise ValueError("use frame has rows without a period_start")
    else:
        codes, uniq = pd.factorize(col, sort=False)
        uniq = pd.DatetimeIndex(uniq)
    if uniq.tz is None:
        uniq = uniq.tz_localize(tz or "Asia/Shanghai")
    elif tz is not None:
        uniq = uniq.tz_convert(tz)
    return np.asarray(codes), uniq


def infer_freq(periods: pd.DatetimeIndex) -> str:
    """'hour', 'day', 'month' or 'year' from the spacing of the distinct period starts
    (a single period: from its alignment). Pass `freq` explicitly where known."""
    p = periods.sort_values().unique()
    if len(p) > 1:
        step = pd.Series(p).diff().dropna().min()
        if step <= pd.Timedelta(hours=1):
            return "hour"
        if step <= pd.Timedelta(days=1):
            return "day"
        if step <= pd.Timedelta(days=31):
            return "month"
        return "year"
    t = p[0]
    if (t.hour, t.minute) != (0, 0):
        return "hour"
    if (t.month, t.day) == (1, 1):
        return "year"
    return "month" if t.day == 1 else "day"


def _md(days: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    d = pd.DatetimeIndex(days)
    return d.month.to_numpy() * 100 + d.day.to_numpy()


def season_mask(days: pd.DatetimeIndex, start: str, end: str) -> np.ndarray:
    """True for days inside the season [start, end] ('MM-DD', inclusive, may wrap the
    new year as 11-15 .. 03-15)."""
    md = _md(days)
    s = int(start[:2]) * 100 + int(start[3:])
    e = int(end[:2]) * 100 + int(end[3:])
    return ((md >= s) & (md <= e)) if s <= e else ((md >= s) | (md <= e))


def heating_fraction(periods: pd.DatetimeIndex, freq: str, seasons: Sequence[tuple[str, str]]) -> np.ndarray:
    """Share of each period's days inside each season: array [season, period].
    An hour or a day is in or out; a month or year counts its days."""
    local = periods.tz_localize(None) if periods.tz is not None else periods
    local = local.normalize()
    out = np.zeros((len(seasons), len(periods)))
    if freq in ("hour", "day"):
        for k, (s, e) in enumerate(seasons):  # one per distinct season (few)
            out[k] = season_mask(local, s, e)
        return out
    ends = local + (pd.offsets.MonthBegin(1) if freq == "month" else pd.offsets.YearBegin(1))
    ndays = ((ends - local) / pd.Timedelta(days=1)).to_numpy().astype(np.int64)
    rows = np.repeat(np.arange(len(local)), ndays)
    offs = np.arange(ndays.sum()) - np.repeat(np.cumsum(ndays) - ndays, ndays)
    days = pd.DatetimeIndex(local.to_numpy()[rows] + offs.astype("timedelta64[D]"))
    for k, (s, e) in enumerate(seasons):
        inside = np.bincount(rows, weights=season_mask(days, s, e), minlength=len(local))
        out[k] = inside / ndays
    return out


def _period_key(uniq: pd.DatetimeIndex, period: str) -> pd.DatetimeIndex:
    """Start of the output period (local tz-aware: its first instant) for each native period start."""
    if period == "native":
        return uniq
    if period not in ("day", "month", "year"):
        raise ValueError(f"period must be native, day, month or year, not {period!r}")
    return localtime.local_floor(uniq, period, str(uniq.tz))


# -- step 1: sums ----------------------------------------------------------------------------
def energy_sums(use: pd.DataFrame, institutions: pd.DataFrame, period: str = "year", freq: str | None = None,
                tz: str | None = None) -> pd.DataFrame:
    """Reduce a use frame to one row per institution, energy and period.

    period: 'year' (default), 'month', 'day' or 'native' (the use frame's own periods).
    freq: the use frame's own period length (hour|day|month|year), inferred if None;
    it decides how heating seasons split a period.

    Returns institution_id, energy (both categorical: integer codes, compare with
    strings as usual), period_start (local, tz-aware), year (int), quantity (canonical
    unit), estimated_quantity, heating_quantity (the heating-season part of heating
    rows), rows (count of use rows).
    Sub-meter rows (is_main False) are ignored. Raises ValueError for rows of
    institutions or energies not known.
    """
    inst = with_institution_id(institutions.reset_index(drop=True))
    if "heating_start" not in inst:
        inst = inst.assign(heating_start=DEFAULT_SEASON[0], heating_end=DEFAULT_SEASON[1])
    universe = pd.Index(inst["institution_id"].astype(str))
    if use.empty:
        return pd.DataFrame({
            "institution_id": pd.Categorical([], categories=universe), "energy": pd.Categorical([], categories=ENERGIES),
            "period_start": pd.DatetimeIndex([], tz=tz or "Asia/Shanghai"), "year": np.array([], int),
            **{c: np.array([], float) for c in ("quantity", "estimated_quantity", "heating_quantity")},
            "rows": np.array([], int)})
    mask = use["is_main"].to_numpy(bool) if "is_main" in use else None
    ci, lut_i = _code_lut(use["institution_id"], universe)
    ce, lut_e = _code_lut(use["energy"], pd.Index(ENERGIES))
    for name, codes, lut, known in (("institution", ci, lut_i, universe), ("energy", ce, lut_e, ENERGIES)):
        if (lut < 0).any():  # only then look at the rows
            bad = lut[codes] < 0
            if mask is not None:
                bad &= mask
            if bad.any():
                col = "institution_id" if name == "institution" else "energy"
                vals = pd.unique(use[col].to_numpy()[bad])[:5]
                raise ValueError(f"use frame has rows of unknown {name}(s) {list(vals)} "
                                 f"(known: {len(known)}); add them to the registry or drop the rows")
    cp, puniq = _period_codes(use["period_start"], tz)
    freq = freq or infer_freq(puniq)
    key_starts = _period_key(puniq, period)
    kcodes, kuniq = pd.factorize(key_starts, sort=True)
    kuniq = pd.DatetimeIndex(kuniq)
    n_e, n_k = len(ENERGIES), len(kuniq)
    nbins = len(universe) * n_e * n_k
    kt = np.int32 if nbins + 1 < 2**31 else np.int64
    # bin = institution x energy x output period, from three lookups in premultiplied
    # tables; rows left out (sub-meters) go to the extra bin `nbins`.
    key = np.maximum(lut_i, 0).astype(kt)[ci]
    key *= kt(n_e * n_k)
    key += (np.maximum(lut_e, 0) * n_k).astype(kt)[ce]
    key += kcodes.astype(kt)[cp]
    if mask is not None:
        np.copyto(key, kt(nbins), where=~mask)
    dense = nbins + 1 <= _MAX_DENSE_BINS
    if dense:
        bins, nb = key, nbins + 1
    else:
        bins, ukeys = pd.factorize(key)
        nb = len(ukeys)
    q = use["quantity"].to_numpy(np.float64)
    cnt = np.bincount(bins, minlength=nb)
    qs = np.bincount(bins, weights=q, minlength=nb)
    if "estimated_share" in use:
        est = use["estimated_share"].to_numpy()
        es = np.bincount(bins, weights=np.multiply(q, est, dtype=np.float64), minlength=nb)
    else:
        es = np.zeros(nb)

    # Heating-season part of heating rows: quantity x the share of the row's period in
    # its institution's season (a small table of seasons x native periods).
    heating = use["heating"].to_numpy(bool) if "heating" in use else (lut_e[ce] == ENERGIES.index("heat"))
    h = np.flatnonzero(heating if mask is None else heating & mask)
    seasons = inst["heating_start"].astype(str) + "|" + inst["heating_end"].astype(str)
    scodes, suniq = pd.factorize(seasons)
    frac = heating_fraction(puniq, freq, [tuple(x.split("|")) for x in suniq])
    # one season for all (the usual case): index by period only
    w = frac[0][cp[h]] if len(suniq) == 1 else frac[scodes[lut_i[ci[h]]], cp[h]]
    w *= q[h]
    hs = np.bincount(bins[h], weights=w, minlength=nb)
    del w, h, key, bins
    if dense:
        cnt[nbins] = 0  # the sub-meter bin
    else:
        cnt[ukeys == nbins] = 0
    present = np.flatnonzero(cnt)
    full = present if dense else ukeys[present].astype(np.int64)
    k = full % n_k
    e = (full // n_k) % n_e
    i = full // (n_k * n_e)
    starts = kuniq[k]
    return pd.DataFrame({
        "institution_id": pd.Categorical.from_codes(i.astype(np.int32), categories=universe, validate=False),
        "energy": pd.Categorical.from_codes(e.astype(np.int8), categories=list(ENERGIES), validate=False),
        "period_start": starts,
        "year": starts.year.to_numpy(),
        "quantity": qs[present],
        "estimated_quantity": es[present],
        "heating_quantity": hs[present],
        "rows": cnt[present],
    })


# -- step 2: factors and indicators ------------------------------------------------------------
_FACTOR_COLS = ("kgce_per_unit", "kgco2_per_unit", "scope", "provisional", "coal_source", "emission_source",
                "emission_unit")


def _factor_lookup(sums: pd.DataFrame, inst: pd.DataFrame, factors: FactorSet, basis: str,
                   columns: Sequence[str] = _FACTOR_COLS) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(institution positions in `inst`, energy codes, {factor column: array per row of
    sums}); factors are looked up once per distinct (energy, factor region, year)."""
    ic = _codes(sums["institution_id"], pd.Index(inst["institution_id"].astype(str)))
    if (ic < 0).any():
        unknown = pd.unique(sums["institution_id"].to_numpy()[ic < 0])[:5]
        raise ValueError(f"sums have rows of unknown institution(s) {list(unknown)}")
    ec = _codes(sums["energy"], pd.Index(ENERGIES))
    rcodes, runiq = pd.factorize(inst["factor_region"].fillna("").astype(str))
    ycodes, yuniq = pd.factorize(sums["year"].to_numpy(np.int64))
    n_r, n_y = max(len(runiq), 1), max(len(yuniq), 1)
    combo = (ec.astype(np.int64) * n_r + rcodes[ic]) * n_y + ycodes
    ucombo, inv = np.unique(combo, return_inverse=True)
    keys = pd.DataFrame({"energy": np.asarray(ENERGIES, dtype=object)[ucombo // (n_r * n_y)],
                         "factor_region": np.asarray(runiq, dtype=object)[(ucombo // n_y) % n_r],
                         "year": np.asarray(yuniq)[ucombo % n_y].astype(float)})
    ff = factors.factor_frame(keys, basis)
    return ic, ec, {c: ff[c].to_numpy()[inv] for c in columns}


def priced_sums(sums: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet,
                basis: str = "equivalent") -> pd.DataFrame:
    """`sums` with the factors applied, one row per institution, energy and period:
    the sums' columns plus unit, kgce_per_unit, kgce, estimated_kgce, heating_kgce,
    scope (1, 2, or 0 for water/PV), kgco2_per_unit (grid factor for electricity),
    emission_unit, kgco2, t_co2, coal_source, emission_source, provisional, factor_region.
    The carbon ledger is this frame grouped by institution and energy."""
    basis = normalize_basis(basis)
    inst = _complete_institutions(institutions, factors)
    ic, _ec, f = _factor_lookup(sums, inst, factors, basis)
    s = sums.copy()
    for col in ("institution_id", "energy"):  # plain strings in this (small) frame
        if isinstance(s[col].dtype, pd.CategoricalDtype):
            s[col] = s[col].astype(object)
    s["factor_region"] = inst["factor_region"].fillna("").to_numpy(object)[ic]
    for col in _FACTOR_COLS:
        s[col] = f[col]
    s["unit"] = s["energy"].astype(object).map(CANONICAL_UNIT)
    s["kgce"] = s["quantity"] * s["kgce_per_unit"]
    s["estimated_kgce"] = s["estimated_quantity"] * s["kgce_per_unit"]
    s["heating_kgce"] = s["heating_quantity"] * s["kgce_per_unit"]
    s["kgco2"] = s["quantity"] * s["kgco2_per_unit"]
    s["t_co2"] = s["kgco2"] / KG_PER_T
    s["basis"] = basis
    s["factor_set"] = factors.id
    return s


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, float)
    den = np.asarray(den, float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Derived totals and intensities from the extensive columns (in place, returned):
    tce, t_co2*, nonheating_kgce, the intensities of `INTENSITIES`, estimated shares.
    Denominators are the frame's floor_area_m2, heated_area_m2, occupants; rows with
    has_data False get NaN intensities."""
    df["tce"] = df["kgce"] / KG_PER_T
    df["t_co2_scope1"] = df["kgco2_scope1"] / KG_PER_T
    df["t_co2_scope2"] = df["kgco2_scope2"] / KG_PER_T
    df["t_co2"] = df["t_co2_scope1"] + df["t_co2_scope2"]
    df["nonheating_kgce"] = df["kgce"] - df["heating_kgce"] - df["vehicle_kgce"]
    has = df["has_data"].to_numpy(bool)
    kgco2 = (df["kgco2_scope1"] + df["kgco2_scope2"]).to_numpy(float)
    for name, (num, den, _unit) in INTENSITIES.items():
        n = kgco2 if num == "kgco2" else df[num].to_numpy(float)
        df[name] = np.where(has, _safe_div(n, df[den].to_numpy(float)), np.nan)
    df["estimated_share"] = estimated_share(df["estimated_kgce"], df["kgce"])
    df["water_estimated_share"] = estimated_share(df["estimated_water_m3"], df["water_m3"])
    return df


_COAL_MASK = np.isin(np.asarray(ENERGIES), COAL_ENERGIES)
_VEHICLE_MASK = np.isin(np.asarray(ENERGIES), VEHICLE_FUELS)
_WATER = ENERGIES.index("water")
_EXT_COLS = ["kgce", "heating_kgce", "vehicle_kgce", "estimated_kgce", "estimated_water_m3", "kgco2_scope1",
             "kgco2_scope2"]


def _extensive(sums: pd.DataFrame, inst: pd.DataFrame, factors: FactorSet, basis: str,
               group: np.ndarray | None, n_groups: int) -> dict[str, np.ndarray]:
    """Extensive columns per group (bincount over integer group codes of the sums rows;
    group None: per institution of `inst`)."""
    ic, ec, f = _factor_lookup(sums, inst, factors, basis, ("kgce_per_unit", "kgco2_per_unit", "scope",
                                                           "provisional"))
    g = ic if group is None else group
    q = sums["quantity"].to_numpy(float)
    kpu = f["kgce_per_unit"].astype(float) * _COAL_MASK[ec]
    kco2 = q * f["kgco2_per_unit"].astype(float)
    scope = f["scope"].astype(int)
    kgce = q * kpu
    w = {
        "kgce": kgce,
        "heating_kgce": sums["heating_quantity"].to_numpy(float) * kpu,
        "vehicle_kgce": kgce * _VEHICLE_MASK[ec],
        "estimated_kgce": sums["estimated_quantity"].to_numpy(float) * kpu,
        "estimated_water_m3": sums["estimated_quantity"].to_numpy(float) * (ec == _WATER),
        "kgco2_scope1": kco2 * (scope == 1),
        "kgco2_scope2": kco2 * (scope == 2),
    }
    out = {k: np.bincount(g, weights=v, minlength=n_groups) for k, v in w.items()}
    qty = np.bincount(g.astype(np.int64) * len(ENERGIES) + ec, weights=q,
                      minlength=n_groups * len(ENERGIES)).reshape(n_groups, len(ENERGIES))
    for j, e in enumerate(ENERGIES):
        out[QTY_COL[e]] = qty[:, j]
    prov = f["provisional"].astype(bool) & (_COAL_MASK[ec] | (scope > 0))
    out["provisional"] = np.bincount(g, weights=prov, minlength=n_groups) > 0
    out["has_data"] = np.bincount(g, minlength=n_groups) > 0
    return out


def indicators_from_sums(sums: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet,
                         basis: str = "equivalent", by_period: bool = False) -> pd.DataFrame:
    """Indicators (INDICATOR_COLUMNS) per institution, or per institution and period
    (then with a period_start column) from `energy_sums`.

    Every institution of `institutions` gets a row (per period when by_period: only
    the periods present in `sums`), in the order of `institutions`; those without data
    have has_data False.
    """
    basis = normalize_basis(basis)
    inst = _complete_institutions(institutions, factors)
    n_i = len(inst)
    if by_period:
        pc, periods = pd.factorize(sums["period_start"], sort=True)
        periods = pd.DatetimeIndex(periods)
        n_per = len(periods)
        ic = _codes(sums["institution_id"], pd.Index(inst["institution_id"].astype(str)))
        group = ic.astype(np.int64) * n_per + pc
        n_groups = n_i * n_per
        rows = np.repeat(np.arange(n_i), n_per)
    else:
        group, n_groups, rows = None, n_i, np.arange(n_i)
    if len(sums):
        ext = _extensive(sums, inst, factors, basis, group, n_groups)
    else:
        ext = {**{c: np.zeros(n_groups) for c in [*QTY_COL.values(), *_EXT_COLS]},
               "provisional": np.zeros(n_groups, bool), "has_data": np.zeros(n_groups, bool)}
    out = inst[INSTITUTION_COLUMNS].iloc[rows].reset_index(drop=True)
    if by_period:
        out.insert(1, "period_start", periods[np.tile(np.arange(n_per), n_i)])
    out = out.assign(**ext)
    add_ratios(out)
    out["basis"] = basis
    out["basis_label"] = BASIS_LABEL[basis]
    out["factor_set"] = factors.id
    order = [*INDICATOR_COLUMNS[:1], *(["period_start"] if by_period else []), *INDICATOR_COLUMNS[1:]]
    return out[order]


def indicators_from_frames(use: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet,
                           basis: str = "equivalent", freq: str | None = None,
                           by_period: str | None = None, tz: str | None = None) -> pd.DataFrame:
    """Indicators straight from a use frame (see `energy_sums`, `indicators_from_sums`).

    by_period None: one row per institution over the whole frame; 'month', 'year',
    'day' or 'native': one row per institution and such period."""
    sums = energy_sums(use, _complete_institutions(institutions, factors), period=by_period or "year",
                       freq=freq, tz=tz)
    return indicators_from_sums(sums, institutions, factors, basis, by_period=by_period is not None)


# -- aggregates -----------------------------------------------------------------------------------
def in_every_ancestor(frame: pd.DataFrame, regions: RegionTree) -> pd.DataFrame:
    """`frame` with each row repeated for its region and every ancestor of it, `region`
    set to that region: grouped by region, a region's sums then cover its subtree."""
    anc = region_ancestors_frame(frame["region"].dropna().unique(), regions)
    return frame.merge(anc.drop(columns="depth"), on="region").drop(columns="region").rename(
        columns={"ancestor": "region"})


def aggregate(ind: pd.DataFrame, by: Sequence[str] = ("region",), regions: RegionTree = None) -> pd.DataFrame:
    """Indicators of groups of institutions: sums of the extensive columns and
    intensities as ratios of sums (never means of ratios).

    by: columns of `ind` (e.g. ['region'], ['category'], ['region', 'category'], and
    'period_start' for per-period frames). When `regions` (a Registry, a frame of
    id/parent or a dict id -> parent) is given and 'region' is in `by`, each region's
    row covers its whole subtree (an institution counts in its region and every
    ancestor). Denominators count only institutions with data. Returns the `by`
    columns, institutions, institutions_with_data, floor_area_m2, heated_area_m2,
    occupants, the extensive columns, ratios, basis, factor_set, provisional.
    """
    by = list(by)
    df = ind
    if regions is not None and "region" in by:
        df = in_every_ancestor(df, regions)
    has = df["has_data"].to_numpy(bool)
    work = df[by].copy()
    work["institutions"] = 1
    work["institutions_with_data"] = has.astype(int)
    for c in ("floor_area_m2", "heated_area_m2", "occupants"):
        work[c] = np.where(has, df[c].to_numpy(float), 0.0)
    for c in EXTENSIVE:
        work[c] = df[c].to_numpy(float)
    work["provisional"] = df["provisional"].to_numpy(bool)
    g = work.groupby(by, sort=True, dropna=False).agg(
        {c: "sum" for c in work.columns if c not in by and c != "provisional"} | {"provisional": "any"})
    g = g.reset_index()
    g["has_data"] = g["institutions_with_data"] > 0
    add_ratios(g)
    for col in ("basis", "basis_label", "factor_set"):
        vals = ind[col].unique() if col in ind else []
        g[col] = vals[0] if len(vals) == 1 else "/".join(map(str, vals))
    return g


def market_scope2_t(scope2_t, electricity_t, electricity_kwh, green_kwh, market_kg_per_kwh: float) -> np.ndarray:
    """Market-based Scope 2 (tCO2) beside the location-based `scope2_t`: the
    location-based electricity emissions (`electricity_t`) replaced by the electricity
    not covered by green-power purchases (`electricity_kwh - green_kwh`, at least 0) at
    the national factor for consumers of market-traded green power (kgCO2/kWh,
    `FactorSet.market_grid_factor`); purchased heat stays as it is."""
    residual = np.maximum(np.asarray(electricity_kwh, float) - np.nan_to_num(np.asarray(green_kwh, float)), 0.0)
    return np.asarray(scope2_t, float) - np.asarray(electricity_t, float) + residual * market_kg_per_kwh / KG_PER_T


def scale_quantities(use: pd.DataFrame, factor: float) -> pd.DataFrame:
    """A copy of a use frame with every quantity multiplied by `factor`."""
    return use.assign(quantity=use["quantity"] * factor)


def energy_ledger(sums: pd.DataFrame, institutions: pd.DataFrame, factors: FactorSet,
                  basis: str = "equivalent") -> pd.DataFrame:
    """One row per institution, year and energy (the carbon ledger of interfaces.md):
    institution_id, name, region, category, year, energy, quantity, unit, kgce,
    kgce_per_unit, coal_source, scope (1, 2; 0 for water and PV), emission_factor
    (kgCO2 per unit; for electricity the grid factor in kgCO2/kWh = tCO2/MWh),
    factor_unit, factor_source, t_co2, provisional, basis, factor_set."""
    priced = priced_sums(sums, institutions, factors, basis)
    g = priced.groupby(["institution_id", "year", "energy"], sort=True, as_index=False, observed=True).agg(
        quantity=("quantity", "sum"), unit=("unit", "first"), kgce=("kgce", "sum"),
        kgce_per_unit=("kgce_per_unit", "first"), coal_source=("coal_source", "first"), scope=("scope", "first"),
        emission_factor=("kgco2_per_unit", "first"), factor_unit=("emission_unit", "first"),
        factor_source=("emission_source", "first"), t_co2=("t_co2", "sum"), provisional=("provisional", "any"))
    inst = _complete_institutions(institutions, factors)[["institution_id", "name", "region", "category"]]
    g = g.merge(inst, on="institution_id", how="left")
    g["basis"] = normalize_basis(basis)
    g["factor_set"] = factors.id
    return g[["institution_id", "name", "region", "category", "year", "energy", "quantity", "unit", "kgce",
              "kgce_per_unit", "coal_source", "scope", "emission_factor", "factor_unit", "factor_source", "t_co2",
              "provisional", "basis", "factor_set"]]


__all__ = ["ENERGIES", "INDICATOR_COLUMNS", "INTENSITIES", "QTY_COL", "SCOPE", "add_ratios", "aggregate",
           "energy_ledger", "energy_sums", "heating_fraction", "in_every_ancestor", "indicators_from_frames",
           "indicators_from_sums", "infer_freq", "institution_context", "market_scope2_t", "priced_sums",
           "scale_quantities",
           "season_mask", "with_institution_id"]
