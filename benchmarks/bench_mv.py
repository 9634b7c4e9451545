"""Benchmark: savings-verification speed and interval calibration.

Savings verification: speed of the baseline search and of a whole run, and how
often the reported 90 % interval holds the true savings.

    python benchmarks/bench_mv.py [--projects 1000] [--workers 2] [--only fit|run|calibration]

* fit: `fit_baseline` (every form, balance points by a vectorised grid search after
  projecting out the fixed columns) vs a plain search that solves one least-squares
  problem per balance point (pair), in the same process on the same data. Daily data
  (366 points, all forms) and hourly data (8,784 points, the HDD form only: the plain
  search over HDD+CDD pairs would take minutes).
* run: `verify` + `write_report` of a daily and an hourly project on an embedded store,
  and how `verify` splits between its two layers: reading the store into phase frames
  (verification.verify) and the pure model layer on those frames (fit + evaluate), each
  timed alone in the same process on the same data as the whole `verify` they add up to.
* calibration (issue 14: 88-93 % coverage, at most 10 % false positives): share of at
  least 200 synthetic daily projects with a known 15 % saving whose 90 % and 68 %
  intervals hold the truth, and share of as many no-savings projects reported as saving
  (the 90 % interval above zero: nominal 5 %, one-sided) or paid. The generator
  (tests/test_mv_synthetic.py) is weather-driven (5-parameter change-point use on an
  autocorrelated North-China temperature series) with AR(1) daily residuals; here each
  project draws its rho from U(0.3, 0.7), its noise from 3-8 %, its building
  (balance points off the search grid, slopes and loads +-40 %) and a 0-20 day gap in
  each period. Baselines, on the same fits: the G14 Annex B formula as CivicWatt applied
  it before, and CalTRACK 2.0's daily formula (eemeter's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.calendar import day_types
from storage import open_store
from tests.test_mv_synthetic import make_case, random_building, samples_for, write_temps
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
from verification.frames import daily_drivers, meter_span
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
                            "working": day_types(pd.DatetimeIndex(d["date"])).working.astype(float)})
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
          f"(HDD + day type, {len(HEATING_GRID_C)} balance points) {plain_h:.2f} s; ratio (one plain form / all fast forms) "
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


CALIBRATION_SEED = 20_000
_PROJECT = None  # the calibration project, loaded once per worker process


def _calibration_project() -> object:
    """The project file of every calibration project (its temperatures are replaced per project)."""
    global _PROJECT
    if _PROJECT is None:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            write_temps(d / "t.csv", make_case(BASE, REP, 0.0, seed=0).temps)
            (d / "cal.yaml").write_text("id: cal\nmeters: [M]\nbaseline: {start: 2024-01-01, end: 2024-12-31}\n"
                                        "reporting: {start: 2025-01-01, end: 2025-12-31}\ntemperature: t.csv\n"
                                        "contract: {type: shared_savings, tariff_cny_per_unit: 0.75, "
                                        "contractor_share: 0.7}\n", encoding="utf-8")
            _PROJECT = load_project(d / "cal.yaml")
    return _PROJECT


def _calibration_case(i: int, effect: float):
    """Project i: rho ~ U(0.3, 0.7), noise 3-8 %, a random building, and a run of 0-20
    days without data somewhere in each period (the autocorrelation must not bridge it)."""
    rng = np.random.default_rng(CALIBRATION_SEED + i)
    rho, sd = rng.uniform(0.3, 0.7), rng.uniform(0.03, 0.08)
    case = make_case(BASE, REP, effect, seed=CALIBRATION_SEED + i, rho=rho, noise_sd=sd, building=random_building(rng))
    drop = np.zeros(len(case.daily), bool)
    for lo, hi in ((0, 366), (366, 731)):
        start, length = int(rng.integers(lo, hi - 20)), int(rng.integers(0, 21))
        drop[start:start + length] = True
    return case, rho, ~drop


def g14_half(s: dict, confidence: float) -> float:
    """Baseline 1: the ASHRAE G14 Annex B formula as CivicWatt applied it before:
    t(n-p) * 1.26 * CV * sqrt((n/n')(1+2/n)/m) * E_baseline, n' from the raw lag-1 rho."""
    n, m = s["n"], s["m"]
    n_eff = mvstats.effective_n(n, s["rho"])
    return (mvstats.t_value(confidence, n - s["p"]) * 1.26 * s["cvrmse"] * np.sqrt((n / n_eff) * (1 + 2 / n) / m)
            * s["baseline_prediction"])


def caltrack_half(s: dict, confidence: float) -> float:
    """Baseline 2: CalTRACK 2.0 section 4.3.2.4 for daily models (eemeter's `_compute_fsu_error`):
    t(n-p) * (a M^2 + b M + d) * CV * sqrt((n/n')(1+2/n')/m) * E_baseline, M = m/30 months,
    (a, b, d) = (-0.00024, 0.03535, 1.00286) (Sun & Baltazar 2013), n' from the raw lag-1 rho."""
    n, m = s["n"], s["m"]
    n_eff = mvstats.effective_n(n, s["rho"])
    months = m / 30.0
    poly = -0.00024 * months**2 + 0.03535 * months + 1.00286
    return (mvstats.t_value(confidence, n - s["p"]) * poly * s["cvrmse"]
            * np.sqrt((n / n_eff) * (1 + 2 / n_eff) / m) * s["baseline_prediction"])


METHODS = {"CivicWatt (AR(1) errors)": None, "G14 Annex B (before)": g14_half, "CalTRACK 2.0 / eemeter": caltrack_half}


def _calibrate(i: int) -> dict:
    """Project pair i (15 % savings and none) through the pure model layer: the true
    saving, each method's half-widths, and the verdicts."""
    project = _calibration_project()
    out = {}
    for effect in (0.15, 0.0):
        case, rho, keep = _calibration_case(i, effect)
        cons = pd.DataFrame({"period": case.daily["date"][keep].astype("datetime64[us]"),
                             "quantity": case.daily["use_kwh"][keep].to_numpy(float), "estimated_share": 0.0,
                             "n_meters": 1})
        base, rep = (meter_span(cons, daily_drivers(case.temps, None, a, b), 1, "day") for a, b in (BASE, REP))
        model = mvmodel.fit(base, "day", project.criterion)
        s = evaluate(project, base, rep, model, [], Sources("kWh", ["M"], "", "Asia/Shanghai")).summary
        in_rep = (case.daily["date"] >= pd.Timestamp(REP[0])).to_numpy() & keep
        out[effect] = {"truth": float(effect * case.daily["counterfactual_kwh"].to_numpy()[in_rep].sum()),
                       "avoided": s["avoided"], "rho": rho, "rho_raw": s["rho"], "rho_ar1": s["rho_ar1"],
                       "verified": s["savings_verified"], "paid": s["payment_cny"] > 0,
                       "half": {(name, c): (s[f"avoided_high{int(c * 100)}"] - s["avoided"]) if f is None else f(s, c)
                                for name, f in METHODS.items() for c in (0.68, 0.90)}}
    return out


def _wilson(k: int, n: int) -> str:
    """95 % Wilson interval of a proportion, as 'lo-hi %'."""
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{centre - half:.1%}-{centre + half:.1%}"


def bench_calibration(projects: int, workers: int) -> None:
    """Coverage of the true savings by the 68 % and 90 % intervals over `projects` synthetic
    daily projects with 15 % savings, and the share of as many no-savings projects
    reported as saving (the 90 % interval above zero: nominal 5 %) or paid. Each project
    runs the pure model layer that `verify` runs after reading the store (fit + evaluate;
    tests/test_mv_model.py checks they agree): the store reads add nothing to the
    statistics and would triple the time. The G14 and CalTRACK rows are the two
    published formulas on the same fits."""
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        runs = pool.map(_calibrate, range(projects), chunksize=8)
    elapsed = time.perf_counter() - t0
    saving, none = [r[0.15] for r in runs], [r[0.0] for r in runs]
    print(f"calibration over {projects} synthetic daily projects with 15 % savings and {projects} without "
          f"({elapsed:.0f} s, {workers} processes): residuals AR(1) with rho ~ U(0.3, 0.7) (mean "
          f"{np.mean([r['rho'] for r in saving]):.3f}; the fits' raw lag-1 rho {np.mean([r['rho_raw'] for r in saving]):.3f}, "
          f"bias-corrected {np.mean([r['rho_ar1'] for r in saving]):.3f}), noise 3-8 %, random buildings, "
          f"a 0-20 day gap in each period")
    for name in METHODS:
        h90 = sum(abs(r["avoided"] - r["truth"]) <= r["half"][(name, 0.90)] for r in saving)
        h68 = sum(abs(r["avoided"] - r["truth"]) <= r["half"][(name, 0.68)] for r in saving)
        fp = sum(r["avoided"] - r["half"][(name, 0.90)] > 0 for r in none)
        print(f"  {name:26s} truth inside the 90 % interval {h90 / projects:6.1%} (95 % CI {_wilson(h90, projects)}), "
              f"inside the 68 % interval {h68 / projects:6.1%}; no-savings projects with the 90 % interval above "
              f"zero {fp / projects:5.1%} (95 % CI {_wilson(fp, projects)}; nominal 5 %)")
    print(f"  CivicWatt verdicts: 15 % savings verified in {np.mean([r['verified'] for r in saving]):.1%} of the "
          f"projects; no-savings projects verified {np.mean([r['verified'] for r in none]):.1%}, paid "
          f"{np.mean([r['paid'] for r in none]):.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", type=int, default=1000, help="synthetic projects per arm (at least 200)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the calibration")
    ap.add_argument("--only", choices=("fit", "run", "calibration"), help="run one part only")
    args = ap.parse_args()
    if args.only in (None, "fit"):
        bench_fit()
    if args.only in (None, "run"):
        bench_run()
    if args.only in (None, "calibration"):
        bench_calibration(max(args.projects, 200), args.workers)


if __name__ == "__main__":
    main()
