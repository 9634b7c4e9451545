"""Savings verification: speed of the baseline search and of a whole run, and how
often the reported 90 % interval holds the true savings.

    python benchmarks/bench_mv.py [--seeds 100]

* fit: `fit_baseline` (every form, balance points by a vectorised grid search after
  projecting out the fixed columns) vs a plain search that solves one least-squares
  problem per balance point (pair), in the same process on the same data. Daily data
  (366 points, all forms) and hourly data (8,784 points, the HDD form only: the plain
  search over HDD+CDD pairs would take minutes).
* run: `verify` + `write_report` of a daily and an hourly project on an embedded store,
  and how `verify` splits between its two layers: reading the store into phase frames
  (verification.verify) and the pure model layer on those frames (fit + evaluate), each
  timed alone in the same process on the same data as the whole `verify` they add up to.
* calibration: share of synthetic projects (known 15 % savings, 5 % daily noise) whose
  90 % and 68 % intervals hold the truth, and share of no-savings projects reported
  as saving (should be about 5 %: a one-sided 90 % interval).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import open_store
from tests.test_mv_synthetic import make_case, samples_for, write_temps
from verification import load_project, verify, write_report
from verification import model as mvmodel
from verification import stats as mvstats
from verification.baseline import (
    COOLING_GRID_C,
    HEATING_GRID_C,
    KINDS,
    Layout,
    ModelSpec,
    design,
    fit_baseline,
)
from verification.result import Sources, evaluate
from verification.verify import _phases as read_phases  # the thin layer's store reads

BASE = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
REP = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def plain_search(y: np.ndarray, drivers: pd.DataFrame, layout: Layout, kinds=KINDS, day_types=(False, True)) -> float:
    """One lstsq per balance point (pair) and form; returns the best adjusted R²."""
    best = -np.inf
    for kind in kinds:
        for dtype in day_types:
            hs = HEATING_GRID_C if kind in ("hdd", "hdd_cdd") else [None]
            cs = COOLING_GRID_C if kind in ("cdd", "hdd_cdd") else [None]
            for tb in hs:
                for tc in cs:
                    if tb is not None and tc is not None and tb > tc:
                        continue
                    X, _ = design(ModelSpec(kind, dtype, False, tb, tc), drivers, layout)
                    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
                    if kind != "mean" and (coef[-1] <= 0 or (kind == "hdd_cdd" and coef[-2] <= 0)):
                        continue
                    p = X.shape[1] + (kind != "mean") + (kind == "hdd_cdd")
                    best = max(best, mvstats.fit_stats(y, X @ coef, p).adj_r2)
    return best


def _timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_fit() -> None:
    case = make_case(BASE, REP, 0.15, seed=1)
    d = case.daily[case.daily["date"] <= pd.Timestamp(BASE[1])]
    drivers = pd.DataFrame({"date": d["date"], "temp_c": case.temps["temp_c"][: len(d)].to_numpy(),
                            "working": (d["date"].dt.day_of_week < 5).astype(float).to_numpy()})
    y = d["use_kwh"].to_numpy()
    layout = Layout("day", np.arange(len(d)), len(d))
    fast = _timed(lambda: fit_baseline(y, drivers, layout))
    plain = _timed(lambda: plain_search(y, drivers, layout), repeat=1)
    print(f"fit daily (366 points, 8 forms): fit_baseline {fast * 1000:.1f} ms, plain search {plain * 1000:.0f} ms, "
          f"ratio {plain / fast:.0f}x")

    hours = np.tile(np.arange(24), len(d))
    hl = Layout("hour", np.repeat(np.arange(len(d)), 24), 24 * len(d), hour=hours)
    yh = np.repeat(y / 24, 24)
    fast_h = _timed(lambda: fit_baseline(yh, drivers, hl), repeat=2)
    t0 = time.perf_counter()
    plain_search(yh, drivers, hl, kinds=("hdd",), day_types=(True,))
    plain_h = time.perf_counter() - t0
    print(f"fit hourly (8,784 points): fit_baseline all 8 forms {fast_h:.2f} s; plain search of ONE form "
          f"(HDD + day type, 41 balance points) {plain_h:.2f} s; ratio (one plain form / all fast forms) "
          f"{plain_h / fast_h:.1f}x")


def _project(d: Path, gran: str, meter: str) -> Path:
    p = d / f"{meter}.yaml"
    p.write_text(f"id: {meter}\nmeters: [{meter}]\ngranularity: {gran}\n"
                 "baseline: {start: 2024-01-01, end: 2024-12-31}\nreporting: {start: 2025-01-01, end: 2025-12-31}\n"
                 "temperature: t.csv\ncontract: {type: shared_savings, tariff_cny_per_unit: 0.75, contractor_share: 0.7}\n",
                 encoding="utf-8")
    return p


def _spread(fn, repeat: int = 5) -> tuple[float, float]:
    """Fastest and slowest of `repeat` runs (s)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), max(times)


def _layers(project, store, meter: str) -> None:
    """Print verify's time beside its store reads into phase frames and its model layer on them."""
    whole = _spread(lambda: verify(project, store))
    read = _spread(lambda: read_phases(project, store, [meter], "kWh"))
    base, rep, _ = read_phases(project, store, [meter], "kWh")
    sources = Sources("kWh", [meter], "", store.tz)
    model = _spread(lambda: evaluate(project, base, rep, mvmodel.fit(base, project.granularity, project.criterion),
                                     [], sources))
    ms = "{0[0]:.0f} ms ({0[1]:.0f})".format
    print(f"    layers (fastest of 5, slowest in brackets): verify {ms([t * 1000 for t in whole])}, store reads "
          f"into frames {ms([t * 1000 for t in read])}, model layer on frames {ms([t * 1000 for t in model])}; "
          f"reads + model = {(read[0] + model[0]) / whole[0]:.0%} of verify (the rest: sufficiency checks and "
          f"the resolution probe)")


def bench_run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        store = open_store(f"embedded:{d / 'store'}")
        case = make_case(BASE, REP, 0.15, seed=2)
        write_temps(d / "t.csv", case.temps)
        for gran, per_day in (("day", 1), ("hour", 24)):
            meter = f"M-{gran}"
            store.write_samples(samples_for(meter, case.daily, per_day=per_day))
            project = load_project(_project(d, gran, meter))
            verify(project, store)  # warm the rollup cache
            t_verify = _timed(lambda project=project: verify(project, store), repeat=2)
            result = verify(project, store)
            t_report = _timed(lambda result=result: write_report(result, d / "r.xlsx"), repeat=1)
            print(f"run {gran}: verify {t_verify:.2f} s, write_report {t_report:.2f} s "
                  f"({len(result.periods)} reporting periods)")
            _layers(project, store, meter)
        store.close()


def bench_calibration(seeds: int) -> None:
    hit90 = hit68 = false_pos = 0
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        store = open_store(f"embedded:{d / 'store'}")
        t0 = time.perf_counter()
        for seed in range(seeds):
            for effect in (0.15, 0.0):
                case = make_case(BASE, REP, effect, seed=1000 + seed)
                meter = f"S{seed}-{int(effect * 100)}"
                store.write_samples(samples_for(meter, case.daily))
                write_temps(d / "t.csv", case.temps)
                s = verify(load_project(_project(d, "day", meter)), store).summary
                if effect:
                    hit90 += s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
                    hit68 += s["avoided_low68"] <= case.true_savings_kwh <= s["avoided_high68"]
                else:
                    false_pos += s["savings_significant"]
        store.close()
    print(f"calibration over {seeds} synthetic daily projects ({time.perf_counter() - t0:.0f} s): "
          f"truth inside the 90 % interval {hit90 / seeds:.0%}, inside the 68 % interval {hit68 / seeds:.0%}; "
          f"no-savings projects reported as saving {false_pos / seeds:.0%} (nominal 5 %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    args = ap.parse_args()
    bench_fit()
    bench_run()
    bench_calibration(args.seeds)


if __name__ == "__main__":
    main()
