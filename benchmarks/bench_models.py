"""Province-scale benchmark of the models: indicators, quota evaluation and rankings.

A synthetic Hebei-sized portfolio is built in memory (not through a store): 31,600
institutions in 11 cities, about 160,000 meters (electricity main and sub-meters,
water, heating gas, some purchased heat), daily consumption for a year: about 58
million rows with categorical ids (integer codes). Then, timed:

* baseline: a bare pandas group-by sum of quantity by institution and energy over the
  same frame (the cheapest possible pass over the data in the same engine);
* pipeline: monthly energy sums (sub-meters excluded, heating season split), full-year
  indicators of every institution, monthly indicators, aggregates per region (through
  the region tree) and category, quota levels for four standards, evaluation of 1,100
  dual-control targets with a seasonal projection, and rankings in peer groups with
  year-on-year change.

Prints wall time and peak memory (resident set high-water mark, reset per phase) of
each phase, and the ratio pipeline / baseline (target <= 2).

    python benchmarks/bench_models.py [--institutions 31600] [--days 365]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.vocab import CATEGORIES, ENERGIES
from models.api import aggregate, energy_sums, indicators_from_sums, load_factors, rank
from quotas.config import QuotaConfig, Standard, Target
from quotas.evaluate import evaluate_targets, quota_levels

TZ = "Asia/Shanghai"
CITIES = ["sjz", "ts", "qhd", "hd", "xt", "bd", "zjk", "chd", "cz", "lf", "hs"]  # Hebei's 11 cities


def _rss_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)


def build(n_inst: int, n_days: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The institutions frame and the daily use frame (categorical ids)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"HE-{i:05d}" for i in range(n_inst)], dtype=object)
    area = np.round(rng.lognormal(8.6, 0.7, n_inst), -1) + 200
    inst = pd.DataFrame({
        "institution_id": ids, "name": ids,
        "region": rng.choice(CITIES, n_inst), "category": rng.choice(CATEGORIES, n_inst, p=[.35, .35, .1, .1, .1]),
        "floor_area_m2": area, "heated_area_m2": area * 0.9,
        "occupants": np.maximum(1, (area / 1000 * rng.uniform(10, 60, n_inst)).astype(np.int64)),
        "factor_region": "hebei", "heating_start": "11-15", "heating_end": "03-15",
    })
    # Meters: slot 0 electricity main, 1 water, 2 heating gas, 3.. electricity sub-meters,
    # institutions with 7 meters also buy heat (slot 6).
    per = rng.choice([4, 5, 6, 7], n_inst, p=[0.3, 0.35, 0.25, 0.1])
    m_inst = np.repeat(np.arange(n_inst, dtype=np.int32), per)
    slot = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    e_idx = {e: ENERGIES.index(e) for e in ENERGIES}
    energy = np.select([slot == 0, slot == 1, slot == 2, slot == 6],
                       [e_idx["electricity"], e_idx["water"], e_idx["natural_gas"], e_idx["heat"]],
                       e_idx["electricity"]).astype(np.int8)
    is_main = (slot <= 2) | (slot == 6)
    heating = (slot == 2) | (slot == 6)
    daily = np.select([slot == 0, slot == 1, slot == 2, slot == 6],
                      [area[m_inst] * 0.12, area[m_inst] * 0.004, area[m_inst] * 0.02, area[m_inst] * 0.0008],
                      area[m_inst] * 0.03)
    n_m = len(m_inst)
    days = pd.date_range("2025-01-01", periods=n_days, freq="D", tz=TZ)
    doy = np.arange(n_days)
    winter = (np.cos(2 * np.pi * doy / 365) + 1) / 2  # 1 in January, 0 in July
    shape = {"electricity": 0.8 + 0.4 * winter, "water": np.ones(n_days), "natural_gas": 0.2 + 1.8 * winter,
             "heat": 2 * winter}
    shape_table = np.ones((len(ENERGIES), n_days), dtype=np.float32)
    for e, s in shape.items():
        shape_table[e_idx[e]] = s
    meter_of_row = np.repeat(np.arange(n_m, dtype=np.int32), n_days)
    day_of_row = np.tile(doy.astype(np.int16), n_m)
    qty = daily[meter_of_row] * shape_table[energy[meter_of_row], day_of_row]
    qty *= rng.uniform(0.8, 1.2, len(qty)).astype(np.float32)
    est = np.where(rng.random(len(qty), dtype=np.float32) < 0.01, np.float32(1.0), np.float32(0.0))
    energy_cat = pd.Categorical.from_codes(energy[meter_of_row], categories=list(ENERGIES), validate=False)
    use = pd.DataFrame({
        "institution_id": pd.Categorical.from_codes(m_inst[meter_of_row], categories=pd.Index(ids), validate=False),
        "meter_id": pd.Categorical.from_codes(meter_of_row, categories=pd.Index(np.arange(n_m).astype(str)),
                                              validate=False),
        "energy": energy_cat,
        "heating": heating[meter_of_row],
        "is_main": is_main[meter_of_row],
        "period_start": pd.Categorical.from_codes(day_of_row, categories=days, validate=False),
        "quantity": qty,
        "estimated_share": est,
    }, copy=False)
    return inst, use


def quota_config(inst: pd.DataFrame, year: int) -> QuotaConfig:
    targets = [Target(id="hebei", year=year, region="hebei",
                      limits={"energy_tce": 3_570_000, "water_m3": 225_000_000, "co2_t": 13_940_000,
                              "kgce_per_m2": 18.0, "kgce_per_person": 300.0, "water_m3_per_person": 19.0})]
    for c in CITIES:
        targets.append(Target(id=f"{c}", year=year, region=c, limits={"energy_tce": 330_000, "kgce_per_m2": 18.0}))
        for cat in CATEGORIES:
            targets.append(Target(id=f"{c}-{cat}", year=year, region=c, category=cat,
                                  limits={"energy_tce": 70_000, "kgce_per_m2": 18.0}))
    for i in inst["institution_id"].iloc[:1000]:
        targets.append(Target(id=f"t-{i}", year=year, institution=i, limits={"energy_tce": 120.0, "water_m3": 4000}))
    levels = {"heating_kgce_per_m2": {"guide": 6.0, "baseline": 8.0, "constraint": 10.0},
              "nonheating_kgce_per_m2": {"guide": 8.0, "baseline": 11.0, "constraint": 14.0},
              "kgce_per_person": {"guide": 200.0, "baseline": 300.0, "constraint": 400.0},
              "water_m3_per_person": {"advanced": 15.0, "general": 25.0}}
    standards = [Standard(id=f"hebei-{cat}", category=cat, region="hebei", levels=levels) for cat in CATEGORIES]
    return QuotaConfig(targets=tuple(targets), standards=tuple(standards))


def pipeline(use: pd.DataFrame, inst: pd.DataFrame, factors, tree: dict) -> tuple[dict[str, float], dict]:
    """The models' full-year work over the use frame; returns phase times and results."""
    phases: dict[str, float] = {}
    t = time.perf_counter()
    sums = energy_sums(use, inst, period="month", freq="day", tz=TZ)
    phases["monthly energy sums (the big pass)"] = time.perf_counter() - t
    t = time.perf_counter()
    ind = indicators_from_sums(sums, inst, factors)
    phases["full-year indicators"] = time.perf_counter() - t
    t = time.perf_counter()
    monthly = indicators_from_sums(sums, inst, factors, by_period=True)
    phases["monthly indicators"] = time.perf_counter() - t
    t = time.perf_counter()
    agg_r = aggregate(ind, ["region"], regions=tree)
    agg_c = aggregate(ind, ["region", "category"], regions=tree)
    phases["aggregates (region tree, category)"] = time.perf_counter() - t
    t = time.perf_counter()
    cfg = quota_config(inst, 2025)
    levels = quota_levels(ind, cfg, regions=tree)
    # last year's monthly indicators for the seasonal shape (a synthetic 3 % higher year)
    months = pd.DatetimeIndex(monthly["period_start"].unique())
    last_year = dict(zip(months, months.tz_localize(None).map(lambda d: d.replace(year=d.year - 1))
                         .tz_localize(TZ), strict=True))
    prev_m = monthly.assign(period_start=monthly["period_start"].map(last_year),
                            kgce=monthly["kgce"] * 1.03, water_m3=monthly["water_m3"] * 1.03,
                            t_co2=monthly["t_co2"] * 1.03)
    as_of = "2025-10-16"
    m_now = monthly[monthly["period_start"] < pd.Timestamp(as_of, tz=TZ)]
    ev = evaluate_targets(cfg, pd.concat([prev_m, m_now], ignore_index=True), as_of, regions=tree)
    phases[f"quota levels + {len(cfg.targets):,} targets"] = time.perf_counter() - t
    t = time.perf_counter()
    prev_ind = ind.assign(kgce_per_m2=ind["kgce_per_m2"] * 1.03)
    ranks = rank(ind, "kgce_per_m2", previous=prev_ind)
    ranks_p = rank(ind, "kgce_per_m2", regions=tree, region_level=0)
    phases["rankings (city and province peers)"] = time.perf_counter() - t
    return phases, {"ind": ind, "agg_r": agg_r, "agg_c": agg_c, "levels": levels, "ev": ev, "ranks": ranks,
                    "ranks_p": ranks_p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--institutions", type=int, default=31_600)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=2, help="runs of baseline and pipeline (best is compared)")
    args = ap.parse_args()
    t_all = time.perf_counter()
    tree = {"hebei": None, **{c: "hebei" for c in CITIES}}

    t = time.perf_counter()
    inst, use = build(args.institutions, args.days)
    gc.collect()
    n_meters = use["meter_id"].cat.categories.size
    print(f"data: {len(inst):,} institutions, {n_meters:,} meters, {len(use):,} daily rows, "
          f"frame {use.memory_usage(deep=False).sum() / 2**20:,.0f} MiB, built in {time.perf_counter() - t:.1f} s")
    factors = load_factors()

    base_times, pipe_runs, peaks = [], [], []
    for _ in range(args.repeat):
        # Baseline: a bare group-by over the same data in the same engine.
        _reset_peak()
        rss0 = _rss_now_mb()
        t = time.perf_counter()
        bare = use.groupby(["institution_id", "energy"], observed=True, sort=False)["quantity"].sum()
        base_times.append(time.perf_counter() - t)
        base_peak = _rss_peak_mb() - rss0
        n_groups = len(bare)
        del bare
        gc.collect()
        _reset_peak()
        rss0 = _rss_now_mb()
        t = time.perf_counter()
        phases, res = pipeline(use, inst, factors, tree)
        pipe_runs.append((time.perf_counter() - t, phases))
        peaks.append(_rss_peak_mb() - rss0)
        gc.collect()
    print("baseline group-by (institution, energy) sum: " + ", ".join(f"{x:.2f} s" for x in base_times)
          + f" ({n_groups:,} groups, peak +{base_peak:,.0f} MiB)")
    t_pipe, phases = min(pipe_runs, key=lambda r: r[0])
    print("pipeline runs: " + ", ".join(f"{r[0]:.2f} s" for r in pipe_runs) + "; best run by phase:")
    for name, secs in phases.items():
        print(f"  {name:<40s} {secs:6.2f} s")
    ind, ev, ranks, levels = res["ind"], res["ev"], res["ranks"], res["levels"]
    hebei = res["agg_r"].set_index("region").loc["hebei"]
    print(f"pipeline peak memory: +{max(peaks):,.0f} MiB over the data "
          f"({len(ind):,} institutions, {len(res['agg_c']):,} region x category groups, {len(levels):,} quota levels, "
          f"{len(ev):,} target rows, {int(ranks['leader'].sum()):,} leaders, {int(ranks['laggard'].sum()):,} "
          f"laggards)")
    print(f"province: {hebei['tce']:,.0f} tce, {hebei['kgce_per_m2']:.2f} kgce/m2, "
          f"{hebei['kgce_per_person']:.2f} kgce/person, {hebei['water_m3_per_person']:.2f} m3/person; "
          f"target status {ev['status'].value_counts().to_dict()}")
    best_base = min(base_times)
    print(f"ratio pipeline / bare group-by: {t_pipe / best_base:.2f}x against the best baseline run, "
          f"{t_pipe / base_times[0]:.2f}x against the first (target <= 2x)")
    print(f"whole run: {time.perf_counter() - t_all:.1f} s, process peak RSS {_rss_peak_mb():,.0f} MiB "
          f"(since last reset), now {_rss_now_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
