"""Cross-check of CivicWatt's daily savings verification against eemeter 4 (OpenEEmeter, CalTRACK).

    python benchmarks/bench_mv_eemeter.py [--venv .venv-eemeter] [--out DIR] [--seed 14]

One synthetic daily project (tests/test_mv_synthetic.py: weather-driven use with AR(1)
daily residuals, rho 0.5, a true 15 % saving from 1 January 2026; baseline 2025, 365
days, the longest eemeter's daily baseline accepts; reporting 2026) is written to
DIR/daily.csv (date, temp_c, use_kwh, phase). CivicWatt verifies it through its real
path (samples into an embedded store, a project file, `verify`); eemeter's daily model
(`DailyModel`, CalTRACK 2.1 settings) fits the same CSV in its own virtual environment,
in a subprocess, and the two tools' avoided energy and 90 % intervals are printed side
by side with the simulation's true saving.

eemeter 4's daily model gives no interval on a sum of days (its `metered_savings`
returns no error bands for it), so its 90 % interval here is CalTRACK 2.0 section
4.3.2.4's fractional savings uncertainty, computed by eemeter's own functions
(`ModelMetrics` for n, n', t, RMSE; `_compute_fsu_error` for the band) on the
residuals of eemeter's fit. A third row applies the same CalTRACK formula to
CivicWatt's fit, so the difference between the fits and between the interval methods
can be told apart.

eemeter 4.1 installs only with pandas < 3 and pytz (docs/toolchain), so it lives in
its own venv, git-ignored: the script creates it when missing with
    python -m venv .venv-eemeter && .venv-eemeter/bin/pip install eemeter 'pandas<3' pytz
and falls back to OpenDSM (`opendsm`, eemeter's successor) if that install fails.
The first eemeter run compiles its numba code (about half a minute of CPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mv import caltrack_half  # noqa: E402
from storage import open_store  # noqa: E402
from tests.test_mv_synthetic import make_case, samples_for, write_temps  # noqa: E402
from verification import load_project, verify  # noqa: E402

BASE = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))
REP = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
EFFECT = 0.15
TZ = "Asia/Shanghai"
PACKAGES = (["eemeter", "pandas<3", "pytz"], ["opendsm", "pandas<3", "pytz"])  # eemeter, else its successor

# Runs in the eemeter venv: argv[1] = daily.csv, argv[2] = first reporting day. Prints one JSON object.
EEMETER_SCRIPT = r"""
import json, sys, warnings, logging
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)
try:
    from eemeter.eemeter import DailyBaselineData, DailyModel, DailyReportingData
    from eemeter.eemeter.models.hourly_caltrack.derivatives import _compute_fsu_error
    from eemeter.eemeter.models.hourly_caltrack.metrics import ModelMetrics
    import eemeter as pkg
except ImportError:
    from opendsm.eemeter import DailyBaselineData, DailyModel, DailyReportingData
    from opendsm.eemeter.models.hourly_caltrack.derivatives import _compute_fsu_error
    from opendsm.eemeter.models.hourly_caltrack.metrics import ModelMetrics
    import opendsm as pkg
d = pd.read_csv(sys.argv[1], parse_dates=["date"])
frame = pd.DataFrame({"observed": d["use_kwh"].to_numpy(), "temperature": d["temp_c"].to_numpy() * 1.8 + 32},
                     index=pd.DatetimeIndex(d["date"]).tz_localize("TZ"))
start = pd.Timestamp(sys.argv[2], tz="TZ")
base = DailyBaselineData(frame[frame.index < start], is_electricity_data=True)
model = DailyModel().fit(base)
fit = model.predict(base)
pred = model.predict(DailyReportingData(frame[frame.index >= start], is_electricity_data=True))
n_coef = sum(len(m.coefficients.to_np_array()) for m in model.params.submodels.values())
metrics = ModelMetrics(fit["observed"], fit["predicted"], num_parameters=n_coef - 1, confidence_level=0.90)
m = int(pred["observed"].notna().sum())
half = _compute_fsu_error(metrics.t_stat, "daily", m, metrics.observed_mean * metrics.observed_length,
                          metrics.rmse_adj, metrics.observed_mean, metrics.observed_length, metrics.n_prime)
print(json.dumps({
    "version": pkg.__version__, "avoided": float((pred["predicted"] - pred["observed"]).sum()), "half90": float(half),
    "n": int(metrics.observed_length), "p": n_coef, "m": m, "cvrmse": float(metrics.cvrmse_adj),
    "rho": float(metrics.autocorr_resid), "n_prime": float(metrics.n_prime),
    "model": ", ".join(f"{k}: {v.coefficients.model_key}" for k, v in model.params.submodels.items()),
    "daily_unc90_independent_days": float(np.sqrt((pred["predicted_unc"] ** 2).sum())),
}))
""".replace('"TZ"', repr(TZ))


def ensure_venv(venv: Path) -> tuple[Path | None, str]:
    """The venv's python, creating the venv with eemeter (else OpenDSM) when missing;
    (None, what failed) when neither installs."""
    python = venv / "bin" / "python"
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('eemeter') or u.find_spec('opendsm') else 1)"
    if python.exists() and subprocess.run([python, "-c", probe]).returncode == 0:
        return python, ""
    if not python.exists():
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    failures = []
    for packages in PACKAGES:
        print(f"installing {' '.join(packages)} into {venv} ...", flush=True)
        run = subprocess.run([venv / "bin" / "pip", "install", "-q", *packages], capture_output=True, text=True)
        if run.returncode == 0:
            return python, ""
        failures.append(f"pip install {' '.join(packages)}: exit {run.returncode}: {run.stderr.strip()[-400:]}")
    return None, "\n".join(failures)


def write_case(out: Path, seed: int):
    """The synthetic project's daily data as out/daily.csv and out/temps.csv; the case."""
    case = make_case(BASE, REP, EFFECT, seed=seed)
    daily = pd.DataFrame({"date": case.daily["date"].dt.strftime("%Y-%m-%d"), "temp_c": case.temps["temp_c"],
                          "use_kwh": case.daily["use_kwh"].round(3),
                          "phase": (case.daily["date"] >= pd.Timestamp(REP[0])).map({True: "reporting",
                                                                                      False: "baseline"})})
    daily.to_csv(out / "daily.csv", index=False)
    write_temps(out / "temps.csv", case.temps)
    return case, daily


def civicwatt(out: Path, daily: pd.DataFrame) -> dict:
    """CivicWatt's verification of the CSV's data: samples into an embedded store, `verify`."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"embedded:{Path(tmp) / 'store'}")
        try:
            frame = pd.DataFrame({"date": pd.to_datetime(daily["date"]), "use_kwh": daily["use_kwh"]})
            store.write_samples(samples_for("M", frame, tz=TZ))
            project = out / "project.yaml"
            project.write_text(f"id: crosscheck\nmeters: [M]\ngranularity: day\n"
                               f"baseline: {{start: {BASE[0]}, end: {BASE[1]}}}\n"
                               f"reporting: {{start: {REP[0]}, end: {REP[1]}}}\ntemperature: temps.csv\n",
                               encoding="utf-8")
            return verify(load_project(project), store).summary
        finally:
            store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv-eemeter")
    ap.add_argument("--out", type=Path, help="directory for daily.csv (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        case, daily = write_case(out, args.seed)
        s = civicwatt(out, daily)
        python, failed = ensure_venv(args.venv)
        ee = None
        if python is not None:
            run = subprocess.run([python, "-c", EEMETER_SCRIPT, str(out / "daily.csv"), str(REP[0])],
                                 capture_output=True, text=True)
            if run.returncode == 0:
                ee = json.loads(run.stdout.strip().splitlines()[-1])
            else:
                failed = f"eemeter run failed (exit {run.returncode}): {run.stderr.strip()[-800:]}"
        rows = [("CivicWatt (AR(1) errors)", s["avoided"], s["avoided_high90"] - s["avoided"],
                 f"{s['model']}; n={s['n']}, p={s['p']}, CV(RMSE) {s['cvrmse']:.1%}, rho {s['rho']:.3f} "
                 f"(bias-corrected {s['rho_ar1']:.3f}), n'={s['n_effective']:.0f}"),
                ("CivicWatt fit, CalTRACK FSU", s["avoided"], caltrack_half(s, 0.90), "CalTRACK 2.0 4.3.2.4 on the same fit")]
        if ee is not None:
            rows.append((f"eemeter {ee['version']} (CalTRACK FSU)", ee["avoided"], ee["half90"],
                         f"{ee['model']}; n={ee['n']}, p={ee['p']}, CV(RMSE) {ee['cvrmse']:.1%}, rho {ee['rho']:.3f}, "
                         f"n'={ee['n_prime']:.0f}"))
        print(f"synthetic daily project (seed {args.seed}): baseline {BASE[0]}..{BASE[1]}, reporting {REP[0]}..{REP[1]}, "
              f"true saving {case.true_savings_kwh:,.0f} kWh ({EFFECT:.0%}); data: {out / 'daily.csv'}")
        print(f"{'tool':32s} {'avoided kWh':>12s} {'90 % interval kWh':>23s} {'half-width':>11s}  truth inside")
        for name, avoided, half, note in rows:
            inside = "yes" if abs(avoided - case.true_savings_kwh) <= half else "no"
            print(f"{name:32s} {avoided:12,.0f} {avoided - half:11,.0f}..{avoided + half:<11,.0f} {half:11,.0f}  "
                  f"{inside:4s} {note}")
        if ee is not None:
            print(f"ratios: eemeter / CivicWatt avoided {ee['avoided'] / s['avoided']:.4f}, 90 % half-width "
                  f"{ee['half90'] / (s['avoided_high90'] - s['avoided']):.3f}; eemeter's per-day 90 % prediction "
                  f"interval added over independent days would be +-{ee['daily_unc90_independent_days']:,.0f} kWh")
            return 0
        print(f"eemeter / OpenDSM not available: {failed}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
