"""Synthetic savings-verification cases with known true savings (shared by the
test_mv*.py files and benchmarks/bench_mv*.py), and tests of the generator itself.

A building's true daily use is weather-driven (a 5-parameter change-point model):
    f(T, working) = base + heat_slope * max(tb_heat - T, 0) + cool_slope * max(T - tb_cool, 0)
                    + work_extra * working
times (1 + e), where e, the day-to-day variation of operations, is an AR(1) series with
standard deviation `noise_sd` and lag-1 autocorrelation `rho` (real daily residuals are
autocorrelated: a cold spell, a busy week, a fault that lasts a few days; rho = 0.3-0.7
is what daily whole-building baselines show). The temperatures are autocorrelated too
(AR(1) weather around a North-China seasonal curve). A retrofit cuts a fraction of the
use from the reporting start: actual = (1 - effect) * f * (1 + e) (+ any non-routine
load). The true avoided energy of the reporting period is what the building would have
used without the retrofit minus what it used, excluding the non-routine load:
effect * sum(f * (1 + e)).

`Building` holds the parameters (defaults: an office of ~3,400 kWh a day);
`random_building(rng)` draws a varied one (balance points off the search grid) for the
calibration benchmark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from core.calendar import day_types
from storage import quality

BASE_KWH = 2000.0
HEAT_SLOPE_KWH_PER_K = 110.0
COOL_SLOPE_KWH_PER_K = 160.0
TB_HEAT_C = 15.0
TB_COOL_C = 22.0
WORK_EXTRA_KWH = 900.0
NOISE_SD = 0.05
NOISE_RHO = 0.5  # lag-1 autocorrelation of the daily variation
TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Building:
    """Parameters of the true daily use (kWh, kWh/K, °C)."""

    base_kwh: float = BASE_KWH
    heat_slope: float = HEAT_SLOPE_KWH_PER_K
    cool_slope: float = COOL_SLOPE_KWH_PER_K
    tb_heat_c: float = TB_HEAT_C
    tb_cool_c: float = TB_COOL_C
    work_extra_kwh: float = WORK_EXTRA_KWH


def random_building(rng: np.random.Generator) -> Building:
    """A building drawn around the default one: balance points anywhere in 12-18 and
    20-25 °C (not on the 0.5 K search grid), slopes and loads within +-40 %."""
    scale = rng.uniform(0.6, 1.4, 4)
    return Building(BASE_KWH * scale[0], HEAT_SLOPE_KWH_PER_K * scale[1], COOL_SLOPE_KWH_PER_K * scale[2],
                    float(rng.uniform(12.0, 18.0)), float(rng.uniform(20.0, 25.0)), WORK_EXTRA_KWH * scale[3])


def ar1_noise(n: int, sd: float, rho: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) series: e[i] = rho * e[i-1] + w[i], standard deviation `sd`."""
    w = rng.normal(0.0, sd * np.sqrt(1.0 - rho**2), n)
    w[0] = rng.normal(0.0, sd)
    return lfilter([1.0], [1.0, -rho], w)


def temperatures(start: dt.date, end: dt.date, seed: int) -> pd.DataFrame:
    """Daily mean temperatures of a North-China-like climate: about -3 °C in January,
    28 °C in July, with autocorrelated weather noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end, freq="D")
    doy = dates.day_of_year.to_numpy(float)
    seasonal = 12.5 - 15.5 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    shocks = rng.normal(0, 2.0, len(dates))
    weather = np.zeros(len(dates))
    for i in range(1, len(dates)):  # AR(1) weather noise, a generator, not product code
        weather[i] = 0.6 * weather[i - 1] + shocks[i]
    return pd.DataFrame({"date": dates, "temp_c": np.round(seasonal + weather, 2)})


def true_use(temp_c: np.ndarray, working: np.ndarray, building: Building = Building()) -> np.ndarray:
    """Expected daily use (kWh) without the retrofit."""
    b = building
    return (b.base_kwh + b.heat_slope * np.maximum(b.tb_heat_c - temp_c, 0)
            + b.cool_slope * np.maximum(temp_c - b.tb_cool_c, 0) + b.work_extra_kwh * working)


@dataclass
class Case:
    temps: pd.DataFrame
    daily: pd.DataFrame  # date, use_kwh (actual), counterfactual_kwh, nonroutine_kwh
    true_savings_kwh: float


def make_case(baseline: tuple[dt.date, dt.date], reporting: tuple[dt.date, dt.date], effect: float,
              seed: int, nonroutine: tuple[dt.date, float] | None = None, noise_sd: float = NOISE_SD,
              rho: float = NOISE_RHO, building: Building = Building()) -> Case:
    """Daily use from the baseline start to the reporting end; `nonroutine` = (from date,
    kWh per day) of a load added during the reporting period (e.g. a new wing)."""
    temps = temperatures(baseline[0], reporting[1], seed)
    rng = np.random.default_rng(seed + 1000)
    dates = temps["date"]
    working = day_types(pd.DatetimeIndex(dates)).working.astype(float)  # Chinese holidays, make-up days
    noise = ar1_noise(len(dates), noise_sd, rho, rng)
    counterfactual = true_use(temps["temp_c"].to_numpy(float), working, building) * (1 + noise)
    in_rep = (dates >= pd.Timestamp(reporting[0])).to_numpy()
    use = np.where(in_rep, (1 - effect) * counterfactual, counterfactual)
    extra = np.zeros(len(dates))
    if nonroutine is not None:
        extra = np.where((dates >= pd.Timestamp(nonroutine[0])).to_numpy(), nonroutine[1], 0.0)
    use = use + extra
    rep = in_rep & (dates <= pd.Timestamp(reporting[1])).to_numpy()
    truth = float(effect * counterfactual[rep].sum())
    daily = pd.DataFrame({"date": dates, "use_kwh": use, "counterfactual_kwh": counterfactual,
                          "nonroutine_kwh": extra})
    return Case(temps, daily, truth)


def samples_for(meter_id: str, daily: pd.DataFrame, column: str = "use_kwh", start_index: float = 10_000.0,
                per_day: int = 1, tz: str = TZ) -> pd.DataFrame:
    """Cumulative-index samples whose daily increases are `daily[column]`: one sample
    at each local midnight (and per_day - 1 more evenly inside each day, linearly)."""
    q = daily[column].to_numpy(float)
    index = start_index + np.concatenate([[0.0], np.cumsum(q)])
    edges = pd.DatetimeIndex([*daily["date"], daily["date"].iloc[-1] + pd.Timedelta(days=1)]).tz_localize(tz).as_unit("ns")
    if per_day == 1:
        times, values = edges, index
    else:
        frac = np.arange(per_day) / per_day
        times = (edges[:-1].asi8[:, None] + (frac * 86400e9).astype(np.int64)[None, :]).ravel()
        times = pd.DatetimeIndex(np.append(times, edges.asi8[-1:])).tz_localize("UTC")
        values = np.append((index[:-1, None] + q[:, None] * frac[None, :]).ravel(), index[-1])
    return pd.DataFrame({"meter_id": meter_id, "time": pd.DatetimeIndex(times).tz_convert("UTC"),
                         "value": values, "quality": quality.GOOD})


def write_temps(path: Path, temps: pd.DataFrame) -> Path:
    temps.assign(date=temps["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


REGISTRY_YAML = """\
timezone: Asia/Shanghai
regions:
  - {id: hebei, name: 河北省}
institutions:
  - {id: HB-0001, name: 省直某厅, region: hebei, category: government, floor_area_m2: 12000, heated_area_m2: 11000, occupants: 450}
meters:
  - {id: HB-0001-E0, institution: HB-0001, energy: electricity, subitem: total}
  - {id: HB-0001-E1, institution: HB-0001, energy: electricity, subitem: hvac, parent: HB-0001-E0}
  - {id: HB-0001-W0, institution: HB-0001, energy: water}
"""


def test_generator_truth_is_the_effect_of_the_counterfactual():
    base, rep = (dt.date(2024, 1, 1), dt.date(2024, 12, 31)), (dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    case = make_case(base, rep, 0.15, seed=3)
    d = case.daily
    in_rep = d["date"] >= pd.Timestamp(rep[0])
    assert np.isclose(case.true_savings_kwh, (d["counterfactual_kwh"] - d["use_kwh"])[in_rep].sum())
    assert np.isclose(case.true_savings_kwh / d["counterfactual_kwh"][in_rep].sum(), 0.15)
    assert case.temps["temp_c"].min() < 0 < 25 < case.temps["temp_c"].max()


def test_samples_reproduce_daily_use(embedded_store):
    base, rep = (dt.date(2024, 1, 1), dt.date(2024, 3, 31)), (dt.date(2024, 4, 1), dt.date(2024, 4, 30))
    case = make_case(base, rep, 0.1, seed=1)
    embedded_store.write_samples(samples_for("M", case.daily, per_day=4))
    cons = embedded_store.consumption("day", "2024-01-01", "2024-05-01", ["M"])
    assert len(cons) == len(case.daily)
    assert np.allclose(cons["quantity"].to_numpy(), case.daily["use_kwh"].to_numpy())
