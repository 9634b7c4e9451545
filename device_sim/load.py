"""The load model: realistic power and flow of every simulated meter, vectorised.

Power is piecewise constant over 15-minute model steps (`STEP_S`, the national
sub-metering guideline's raw-data interval), so a cumulative index is exactly the
integral of the power served: the history generator and the live simulator compute the
same index for the same instant.

What drives the load, per institution category (government, school, hospital, venue,
other): office hours and weekends, Chinese public holidays and make-up working days
(`core.calendar`; weekdays only in a year it does not know), school vacations, a night base load, an outdoor temperature
series (boiler gas in the region's heating season, default 15 Nov - 15 Mar; summer heat
driving air-conditioning), and deterministic noise (a counter-based hash of seed, meter and
step: the same seed gives the same data on any machine, in any order of computation).

A meter with sub-meters draws the sum of its children plus `UNMETERED_SHARE` (losses,
unmetered loads), so sub-meter balances look like real ones.

Retrofits: a meter dict may carry `retrofit: {start: "YYYY-MM-DD", factor: 0.7}`: from
that local date on, the energy the meter draws is multiplied by `factor` (an
energy-saving measure, e.g. LED lighting on a lighting sub-meter). Its parent meters drop
by the same energy: the unmetered share of a parent is taken on its children's
pre-retrofit load (a lighting retrofit does not change the unmetered loads), so
parent = sum of children (as retrofitted) + `UNMETERED_SHARE` x sum of children (before
any retrofit). A retrofit belongs on a meter without sub-meters (where the changed loads
are metered). The history generator and the live simulator both compute power here, so
both honour it identically.

`daily_temperature(start, end, seed)` gives the daily mean outdoor temperature that drives
the load (one climate for every meter: the model has no per-region weather), and
`normal_temperature(year)` the climate normal without the day-to-day noise; together with
`daily_calendar` (working days) they are the true drivers for savings verification.

Units: electricity kW, water m3/h, gas m3/h, heat GJ/h. Indices are "raw": the primary
quantity divided by the meter's multiplier (CT x PT), as the register holds it.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from core.calendar import day_types
from core.vocab import CATEGORIES, DEFAULT_HEATING_SEASON

STEP_S = 900  # model step: 15 minutes (2008 sub-metering guideline raw-data interval)
TZ_OFFSET_S = 8 * 3600  # Asia/Shanghai, no daylight saving
UNMETERED_SHARE = 0.06  # parent = sum of sub-meters x 1.06 (transformer/cable losses, unmetered loads)
NOISE = 0.08  # relative standard deviation of step-to-step noise
NO_RETROFIT_DAY = np.iinfo(np.int64).max  # "never": no retrofit
MAX_RETROFIT_FACTOR = 10.0  # a factor above 1 adds load (e.g. a new wing); beyond 10x it is a typo

# Rated power / flow by floor area when the registry gives none (design rules of thumb):
# ~60 W/m2 peak electrical demand for offices, 12 L/h of gas per m2 of heated area.
DEFAULT_RATED_KW_PER_M2 = 0.06
DEFAULT_GAS_M3H_PER_M2 = 0.012
DEFAULT_WATER_M3H_PER_M2 = 0.0005

# Climate of the North China plain (Shijiazhuang normals, rounded): annual mean 13.5 °C,
# January mean about -2 °C, July about 27.5 °C; day-night swing about 10 K.
T_ANNUAL_MEAN_C = 13.5
T_SEASONAL_AMPLITUDE_K = 15.0
T_COLDEST_DAY = 20  # day of year of the coldest normal day
T_DIURNAL_AMPLITUDE_K = 5.0
T_DAY_NOISE_K = 3.0


# Calibration of the load shapes so that the sample portfolio lands near typical annual
# intensities of North China public buildings (rules of thumb from energy audits of
# public institutions; check against local statistics): electricity per floor area
# offices ~70, schools ~40, hospitals ~150, venues ~80 kWh/m2; boiler gas ~9 m3/m2 per
# heating season; water ~16-20 m3/person (Hebei 2020: 16.12 m3/person, domain.md 1).
ELECTRICITY_SCALE = {"government": 0.40, "school": 0.25, "hospital": 0.36, "venue": 0.42, "other": 0.40}
GAS_SCALE = 0.5
WATER_SCALE = 0.5
KINDS = ("light", "hvac", "power", "special", "elec_total", "water", "gas_heating", "gas_other", "pv", "fuel")


def _kind_of(meter: dict[str, Any]) -> str:
    energy = meter.get("energy", "electricity")
    if energy == "electricity":
        return {"lighting_socket": "light", "hvac": "hvac", "power": "power", "special": "special"}.get(
            meter.get("subitem") or "total", "elec_total")
    if energy == "water":
        return "water"
    if energy in ("natural_gas", "heat"):
        return "gas_heating" if meter.get("heating") or energy == "heat" else "gas_other"
    if energy == "pv":
        return "pv"
    return "fuel"


def _season_of(meter: dict[str, Any]) -> tuple[int, int]:
    """The meter's heating season as (MMDD, MMDD), from {"start": "11-15", "end": "03-15"}."""
    season = meter.get("heating_season") or DEFAULT_HEATING_SEASON
    return (int(str(season["start"]).replace("-", "")), int(str(season["end"]).replace("-", "")))


def _retrofit_of(meter: dict[str, Any]) -> tuple[int, float]:
    """(first local day as days since 1970-01-01, factor) of a meter's retrofit; a day
    after any simulated one and factor 1 without one. ValueError names meter and field."""
    spec = meter.get("retrofit")
    if not spec:
        return NO_RETROFIT_DAY, 1.0
    mid = meter.get("id")
    if not isinstance(spec, dict) or "start" not in spec or "factor" not in spec:
        raise ValueError(f"meter {mid}: retrofit must be {{start: YYYY-MM-DD, factor: number}}, got {spec!r}")
    try:
        day = int(np.datetime64(str(spec["start"]), "D").astype(np.int64))
    except ValueError as exc:
        raise ValueError(f"meter {mid}: retrofit.start {spec['start']!r} is not a date (YYYY-MM-DD)") from exc
    factor = spec["factor"]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0.0 <= float(factor) <= MAX_RETROFIT_FACTOR:
        raise ValueError(f"meter {mid}: retrofit.factor must be a number in [0, {MAX_RETROFIT_FACTOR:g}], got {factor!r}")
    return day, float(factor)


def default_rated(meter: dict[str, Any]) -> float:
    """Rated power (kW) or flow (unit/h) of a meter without one in the registry."""
    area = float(meter.get("floor_area_m2") or 5000.0)
    energy = meter.get("energy", "electricity")
    if energy in ("natural_gas", "heat"):
        return area * DEFAULT_GAS_M3H_PER_M2 + 5.0
    if energy == "water":
        return area * DEFAULT_WATER_M3H_PER_M2 + 2.0
    return area * DEFAULT_RATED_KW_PER_M2


def holidays_and_workdays(day_numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays: is each day (days since 1970-01-01) a public holiday, a make-up
    workday (`core.calendar`, the product's one holiday calendar). A year the calendar
    does not know is simulated with weekdays only (no holidays)."""
    t = day_types(np.asarray(day_numbers, dtype=np.int64), unknown="weekdays")
    return t.holiday, t.makeup_workday


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers, a pure function of (seed, key, counter); broadcasts."""
    k = np.asarray(keys, dtype=np.uint64)
    c = np.asarray(counters, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = _mix64(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + k) ^ (c * np.uint64(0xD1B54A32D192ED03))
    return (_mix64(x) >> np.uint64(11)).astype(np.float64) / float(2**53)


def meter_key(meter_id: str) -> int:
    return zlib.crc32(meter_id.encode("utf-8"))


class Calendar:
    """Per-step calendar and weather features for absolute step numbers (epoch // STEP_S)."""

    def __init__(self, steps: np.ndarray, seed: int, tz_offset_s: int = TZ_OFFSET_S):
        t = steps.astype(np.int64) * STEP_S + STEP_S // 2  # mid-step
        local = t + tz_offset_s
        self.day = local // 86400
        self.hour = (local % 86400) / 3600.0
        self.weekday = (self.day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        uday, inv = np.unique(self.day, return_inverse=True)
        hol, work = holidays_and_workdays(uday)
        self.holiday = hol[inv]
        self.workday = ((self.weekday < 5) & ~self.holiday) | work[inv]
        dt = uday.astype("datetime64[D]")
        month = (dt.astype("datetime64[M]").astype(np.int64) % 12) + 1
        dom = (dt - dt.astype("datetime64[M]")).astype(np.int64) + 1
        mmdd = (month * 100 + dom)[inv]
        self.mmdd = mmdd
        doy = (dt - dt.astype("datetime64[Y]")).astype(np.int64)[inv]
        self.heating_season = self.in_season(_season_of({}))
        day_noise = hash_uniform(seed, np.uint64(0xC11A7E), uday)[inv] * 2 - 1
        self.temp_c = (T_ANNUAL_MEAN_C
                       - T_SEASONAL_AMPLITUDE_K * np.cos(2 * np.pi * (doy - T_COLDEST_DAY) / 365.25)
                       + T_DIURNAL_AMPLITUDE_K * np.cos(2 * np.pi * (self.hour - 15.0) / 24.0)
                       + T_DAY_NOISE_K * day_noise)
        self.doy = doy

    def in_season(self, season: tuple[int, int]) -> np.ndarray:
        """Steps inside a season given as (MMDD start, MMDD end), both inclusive."""
        start, end = season
        if start <= end:
            return (self.mmdd >= start) & (self.mmdd <= end)
        return (self.mmdd >= start) | (self.mmdd <= end)  # across the new year

    def occupancy(self, category: str) -> np.ndarray:
        """Share of the building in use, 0..1, per step."""
        h, work = self.hour, self.workday
        office = np.clip(np.minimum(h - 7.5, 18.5 - h), 0, 1)  # 8:30-17:30 full, ramps of 1 h
        if category == "school":
            day = np.clip(np.minimum(h - 6.5, 21.5 - h), 0, 1) * np.where((h > 18) & (h < 21.5), 0.5, 1.0)
            vacation = ((self.mmdd >= 710) & (self.mmdd <= 831)) | ((self.mmdd >= 115) & (self.mmdd <= 225))
            occ = np.where(work, day, 0.08) * np.where(vacation, 0.15, 1.0)
        elif category == "hospital":
            daytime = np.clip(np.minimum(h - 7.0, 19.0 - h), 0, 1)
            occ = 0.55 + 0.45 * daytime * np.where(work, 1.0, 0.75)
        elif category == "venue":
            open_h = np.clip(np.minimum(h - 8.5, 21.0 - h), 0, 1)
            closed = (self.weekday == 0) & ~self.holiday  # closed on Mondays, open on holidays
            occ = np.where(closed, 0.05, open_h * np.where(self.holiday | (self.weekday >= 5), 1.0, 0.7))
        else:  # government, other: office hours on working days
            occ = np.where(work, office, 0.04)
        return np.maximum(occ, 0.02)

    def shapes(self, category: str, season: tuple[int, int] = (1115, 315)) -> dict[str, np.ndarray]:
        """Load shape (share of rated power/flow) per kind of meter, for a heating season."""
        occ = self.occupancy(category)
        heating = self.in_season(season)
        cool = np.clip((self.temp_c - 24.0) / 10.0, 0, 1)
        heat_pump = np.clip((8.0 - self.temp_c) / 20.0, 0, 1)
        occ_h = 0.2 + 0.8 * occ
        out = {
            "light": 0.06 + 0.55 * occ,
            "hvac": 0.05 + occ_h * (1.0 * cool + 0.35 * heat_pump),
            "power": 0.12 + 0.35 * occ,
            "special": 0.45 + 0.12 * occ,
            "water": 0.03 + 0.45 * occ,
            "gas_heating": (heating * (0.15 + 0.65 * np.clip((16.0 - self.temp_c) / 22.0, 0, 1))
                            * (0.7 + 0.3 * occ) + 0.03 * occ),
            "gas_other": 0.05 + 0.4 * occ,
            "pv": np.maximum(0.0, np.sin(np.pi * (self.hour - 6.0) / 12.0))
                  * (0.75 + 0.25 * np.sin(2 * np.pi * (self.doy - 80) / 365.25)),
            "fuel": 0.3 * occ,
        }
        out["elec_total"] = (0.35 * out["light"] + 0.35 * out["hvac"] + 0.18 * out["power"]
                             + 0.12 * out["special"]) * 1.4
        scale = ELECTRICITY_SCALE.get(category, 0.4)
        for kind in ("light", "hvac", "power", "special", "elec_total"):
            out[kind] = out[kind] * scale
        for kind in ("gas_heating", "gas_other"):
            out[kind] = out[kind] * GAS_SCALE
        out["water"] = out["water"] * WATER_SCALE
        return out


class MeterModel:
    """Vectorised power of a set of meters (dicts, see `device_sim.history`)."""

    def __init__(self, meters: list[dict[str, Any]], seed: int = 1, tz_offset_s: int = TZ_OFFSET_S):
        self.meters = meters
        self.seed = seed
        self.tz_offset_s = tz_offset_s
        self.ids = [str(m["id"]) for m in meters]
        pos = {mid: i for i, mid in enumerate(self.ids)}
        n = len(meters)
        self.keys = np.array([meter_key(mid) for mid in self.ids], dtype=np.uint64)
        self.rated = np.array([float(m.get("rated") or default_rated(m)) for m in meters])
        self.multiplier = np.array([float(m.get("multiplier") or 1.0) for m in meters])
        self.kind = np.array([KINDS.index(_kind_of(m)) for m in meters], dtype=np.int64)
        cats = [m.get("category") if m.get("category") in CATEGORIES else "other" for m in meters]
        seasons = [_season_of(m) for m in meters]
        self.groups = sorted(set(zip(cats, seasons, strict=True)))  # (category, heating season) pairs
        self.group = np.array([self.groups.index(g) for g in zip(cats, seasons, strict=True)], dtype=np.int64)
        parent = np.array([pos.get(m.get("parent") or "", -1) for m in meters], dtype=np.int64)
        self.parent = parent
        self.has_children = np.zeros(n, bool)
        self.has_children[parent[parent >= 0]] = True
        # depth of each meter in its sub-meter tree (children are summed bottom-up)
        depth = np.zeros(n, np.int64)
        cur = parent.copy()
        for _ in range(8):
            alive = cur >= 0
            if not alive.any():
                break
            depth[alive] += 1
            cur = np.where(alive, parent[np.maximum(cur, 0)], -1)
        self.depth = depth
        retrofits = [_retrofit_of(m) for m in meters]
        self.retrofit_day = np.array([r[0] for r in retrofits], dtype=np.int64)
        self.retrofit_factor = np.array([r[1] for r in retrofits])
        self.has_retrofit = self.retrofit_day != NO_RETROFIT_DAY
        bad = np.flatnonzero(self.has_retrofit & self.has_children)
        if len(bad):
            raise ValueError(f"meter {self.ids[bad[0]]}: a retrofit belongs on the sub-meters whose loads change, "
                             "not on a meter with sub-meters")
        u = hash_uniform(seed, self.keys, np.full(n, 7))
        self.initial_index = np.round((1000.0 + 9000.0 * u) / self.multiplier, 2)
        self.size_factor = 0.85 + 0.3 * hash_uniform(seed, self.keys, np.full(n, 11))

    def power(self, steps: np.ndarray) -> np.ndarray:
        """Power or flow (primary units per hour) of every meter, shape (n_meters, len(steps))."""
        steps = np.asarray(steps, dtype=np.int64)
        cal = Calendar(steps, self.seed, self.tz_offset_s)
        n, k = len(self.ids), len(steps)
        shape = np.empty((n, k))
        for gi, (cat, season) in enumerate(self.groups):  # a few (category, season) groups, not rows
            rows = np.flatnonzero(self.group == gi)
            shapes = cal.shapes(cat, season)
            table = np.stack([shapes[kind] for kind in KINDS])  # (kinds, k)
            shape[rows] = table[self.kind[rows]]
        u1 = hash_uniform(self.seed, self.keys[:, None], steps[None, :])
        u2 = hash_uniform(self.seed + 1, self.keys[:, None], steps[None, :])
        noise = 1.0 + NOISE * np.sqrt(3.0) * (u1 + u2 - 1.0)  # triangular, sd ~= NOISE
        p0 = np.maximum(self.rated[:, None] * self.size_factor[:, None] * shape * noise, 0.0)  # before retrofits
        p = p0
        if self.has_retrofit.any():
            after = cal.day[None, :] >= self.retrofit_day[:, None]
            p = p0 * np.where(after, self.retrofit_factor[:, None], 1.0)
        if self.has_children.any():
            for d in range(int(self.depth.max()), 0, -1):
                child = np.flatnonzero(self.depth == d)
                parents = self.parent[child]
                upd = np.unique(parents)
                sums = np.zeros((n, k))
                np.add.at(sums, parents, p[child])
                if p is p0:  # no retrofit: parent = children x (1 + unmetered share)
                    p[upd] = sums[upd] * (1.0 + UNMETERED_SHARE)
                    continue
                sums0 = np.zeros((n, k))
                np.add.at(sums0, parents, p0[child])
                p0[upd] = sums0[upd] * (1.0 + UNMETERED_SHARE)
                p[upd] = sums[upd] + sums0[upd] * UNMETERED_SHARE  # unmetered loads as before the retrofit
        return p

    def raw_energy(self, steps: np.ndarray) -> np.ndarray:
        """Raw index increase (primary / multiplier) over each full step."""
        return self.power(steps) * (STEP_S / 3600.0) / self.multiplier[:, None]

    def integrate(self, t_from: np.ndarray, t_to: float) -> np.ndarray:
        """Raw index increase of each meter from its own `t_from` (epoch s) to `t_to`
        (negative when t_from > t_to)."""
        t_from = np.asarray(t_from, dtype=np.float64)
        lo = int(min(t_from.min(), t_to) // STEP_S)
        hi = int(max(t_from.max(), t_to) // STEP_S) + 1
        steps = np.arange(lo, hi + 1)
        p = self.power(steps) / self.multiplier[:, None] / 3600.0  # raw per second
        cum = np.concatenate([np.zeros((len(self.ids), 1)), np.cumsum(p * STEP_S, axis=1)], axis=1)
        rows = np.arange(len(self.ids))

        def at(t: np.ndarray) -> np.ndarray:
            j = (t // STEP_S).astype(np.int64) - lo
            return cum[rows, j] + p[rows, j] * (t - (lo + j) * STEP_S)

        return at(np.full(len(self.ids), float(t_to))) - at(t_from)


STEPS_PER_DAY = 86400 // STEP_S


def _day_number(value: Any) -> int:
    """Days since 1970-01-01 of a date, 'YYYY-MM-DD' or timestamp (its local date if tz-aware)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None) + pd.Timedelta(seconds=TZ_OFFSET_S)
    return int(np.datetime64(stamp.date(), "D").astype(np.int64))


def daily_temperature(start: Any, end: Any, seed: int = 1, tz_offset_s: int = TZ_OFFSET_S) -> pd.DataFrame:
    """date (datetime64, local midnight), temp_c: the daily mean outdoor air temperature
    (°C) the load model uses for every local day of [start, end] (inclusive): the mean of
    its 96 fifteen-minute values, for the same `seed` as the meters'. The model has one
    climate (North China plain) for every region, so this is every region's driver."""
    lo, hi = _day_number(start), _day_number(end)
    if hi < lo:
        raise ValueError(f"daily_temperature: end {end} before start {start}")
    days = np.arange(lo, hi + 1, dtype=np.int64)
    first = (lo * 86400 - tz_offset_s) // STEP_S  # the step starting at local midnight of `start`
    steps = np.arange(first, first + len(days) * STEPS_PER_DAY, dtype=np.int64)
    temp = Calendar(steps, seed, tz_offset_s).temp_c.reshape(len(days), STEPS_PER_DAY).mean(axis=1)
    return pd.DataFrame({"date": days.astype("datetime64[D]").astype("datetime64[us]"), "temp_c": temp})


def normal_temperature(year: int) -> pd.DataFrame:
    """date, temp_c: the model's climate normal for each day of `year` (the seasonal curve
    of `T_ANNUAL_MEAN_C` and `T_SEASONAL_AMPLITUDE_K` without day-to-day noise; the
    diurnal swing averages out over a day): a normal year for normalized savings."""
    dates = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    doy = np.arange(len(dates))
    temp = T_ANNUAL_MEAN_C - T_SEASONAL_AMPLITUDE_K * np.cos(2 * np.pi * (doy - T_COLDEST_DAY) / 365.25)
    return pd.DataFrame({"date": dates.as_unit("us"), "temp_c": temp})


def daily_calendar(start: Any, end: Any) -> pd.DataFrame:
    """date, working (0/1): the working days of the load model (Monday-Friday except
    public holidays, plus make-up working days, from `core.calendar`) for [start, end]."""
    days = np.arange(_day_number(start), _day_number(end) + 1, dtype=np.int64)
    hol, work = holidays_and_workdays(days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    working = ((weekday < 5) & ~hol) | work
    return pd.DataFrame({"date": days.astype("datetime64[D]").astype("datetime64[us]"),
                         "working": working.astype(np.int64)})


def local_date(epoch_s: float, tz_offset_s: int = TZ_OFFSET_S) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int((epoch_s + tz_offset_s) // 86400))
