"""InfluxDB at parity: every month/year verb on both backends over the same data.

    python benchmarks/bench_consumption.py [--institutions 60] [--year 2025] [--repeat 3]

Builds the sample portfolio (`--institutions` institutions: 60 give the issue's 405
meters), generates a year and a month of hourly history for every meter
(`device_sim.history`, the demo's generator; from 1 January of the year before for the
M&V institutions, whose baseline is that year) and writes the very same frame through
`Store.write_samples` into a fresh embedded store and into a fresh database on a real
influxd on loopback (so both hold the same samples and the same materialised
consumption). Then, alternating between the backends, `--repeat` times:

* in this process: `store.consumption('day'|'month', year)` for every meter;
* each in a fresh process (cold: interpreter, imports, registry, store open; the child's
  own clock, CPU time and peak RSS, `bench_province.VERB_SNIPPET`):
  `civicwatt ledger --year`, `report monthly --month YEAR-06`, `quotas check --date
  YEAR-12-31`, `export consumption --freq day` and `--freq month` over the year, the
  dashboard's year views (`DataService`: year sums, monthly indicators, target status and
  the ranking table of the year) and `civicwatt mv` on the demo's daily-granularity
  project (`civicwatt.sample.write_sample_mv_project`).

The baseline of each InfluxDB figure is the embedded store doing the same verb on the
same data in the same run: the ratio is InfluxDB / embedded (target <= 3). Printed per
verb and backend: median time with min-max of the repeats, median CPU, peak RSS, and the
ratio of the medians with the min-max of the per-repeat ratios. The CSV outputs must be
byte-identical on both backends (checked).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_province import PEAK, VERB_SNIPPET, child  # the cold-process runner of every verb

from civicwatt.commands.simulate import meters_for_sim
from civicwatt.context import open_registry_store
from civicwatt.sample import CWS_INSTITUTION, MV_INSTITUTION, MV_PROJECT_ID, write_sample, write_sample_mv_project
from core.registry import load_registry
from device_sim.history import generate_history
from tests.servers import Influxd

DASH_SNIPPET = PEAK + """
import json, resource, sys, time
t = time.perf_counter()
import pandas as pd
from civicwatt.context import open_registry_store
from core.registry import load_registry
from dashboard.data import DataService
reg_path, url, year = sys.argv[1], sys.argv[2], int(sys.argv[3])
registry = load_registry(reg_path)
store = open_registry_store(registry, url, create=False)
svc = DataService(registry, store, now=lambda: pd.Timestamp(f"{year + 1}-01-01 12:00", tz=registry.timezone))
svc.year_sums(year)
svc.monthly_indicators(year)
svc.target_status(year)
svc.ranking_table(year)
store.close()
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak_mb(), "cpu": u.ru_utime + u.ru_stime}))
"""


def spread(xs: list[float], unit: str = "s") -> str:
    return f"{statistics.median(xs):6.2f}{unit} ({min(xs):.2f}-{max(xs):.2f})"


def history_for(registry, year: int) -> pd.DataFrame:
    """Hourly history: December before `year` to 2 January after it; from 1 January of
    the year before for the M&V institutions' meters (their baseline year)."""
    tz = registry.timezone
    meters = meters_for_sim(registry)
    mv = [m for m in meters if m["institution"] in (MV_INSTITUTION, CWS_INSTITUTION)]
    rest = [m for m in meters if m["institution"] not in (MV_INSTITUTION, CWS_INSTITUTION)]
    end = pd.Timestamp(f"{year + 1}-01-02", tz=tz)
    return pd.concat([generate_history(rest, pd.Timestamp(f"{year - 1}-12-01", tz=tz), end, interval_s=3600, seed=1),
                      generate_history(mv, pd.Timestamp(f"{year - 1}-01-01", tz=tz), end, interval_s=3600, seed=1)],
                     ignore_index=True)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=60)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    year = args.year
    server = Influxd()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            base = Path(d)
            write_sample(base, n_institutions=args.institutions)
            registry = load_registry(base / "civicwatt.yaml")
            write_sample_mv_project(base, registry, pd.Timestamp(f"{year + 1}-01-01 12:00", tz=registry.timezone))
            urls = {"embedded": f"embedded:{base / 'data'}", "influxdb": server.url("bench")}
            t = time.perf_counter()
            history = history_for(registry, year)
            print(f"{len(registry.institutions)} institutions, {len(registry.meters)} meters, "
                  f"{len(history):,} hourly samples ({time.perf_counter() - t:.0f} s to generate)")
            stores = {}
            for name, url in urls.items():
                store = open_registry_store(registry, url)
                t = time.perf_counter()
                store.write_samples(history)
                print(f"{name:<9} loaded with consumption in {time.perf_counter() - t:.1f} s")
                stores[name] = store
            del history
            reg, lo, hi = str(base / "civicwatt.yaml"), f"{year}-01-01", f"{year + 1}-01-01"

            def verbs(name: str) -> dict[str, list[str]]:
                common = ["--registry", reg, "--store", urls[name]]
                quotas = ["--quotas", str(base / "quotas.yaml")]
                return {
                    "ledger --year": ["ledger", "--year", str(year), "--out", str(base / f"ledger-{name}.csv"),
                                      *common, *quotas],
                    "report monthly": ["report", "monthly", "--month", f"{year}-06", "--out",
                                       str(base / f"report-{name}.xlsx"), *common, *quotas],
                    "quotas check": ["quotas", "check", "--date", f"{year}-12-31", "--outbox",
                                     str(base / f"outbox-{name}"), *common, *quotas],
                    "export --freq day": ["export", "consumption", "--freq", "day", "--start", lo, "--end", hi,
                                          "--out", str(base / f"day-{name}.csv"), *common],
                    "export --freq month": ["export", "consumption", "--freq", "month", "--start", lo, "--end", hi,
                                            "--out", str(base / f"month-{name}.csv"), *common],
                    "mv (daily project)": ["mv", "--project", str(base / "mv" / f"{MV_PROJECT_ID}.yaml"), "--out",
                                           str(base / f"mv-{name}.xlsx"), *common],
                }

            runs: dict[tuple[str, str], list[dict]] = {}
            for _ in range(args.repeat):
                for name, store in stores.items():
                    for freq in ("day", "month"):
                        t = time.perf_counter()
                        store.consumption(freq, lo, hi)
                        runs.setdefault((name, f"consumption('{freq}')"), []).append(
                            {"seconds": time.perf_counter() - t, "cpu": float("nan"), "rss_mb": float("nan")})
                    for verb, argv in verbs(name).items():
                        got = child(VERB_SNIPPET, *argv)
                        if got["rc"] not in (0, None):
                            raise RuntimeError(f"{verb} on {name} exited {got['rc']}")
                        runs.setdefault((name, verb), []).append(got)
                    runs.setdefault((name, "dashboard year views"), []).append(
                        child(DASH_SNIPPET, reg, urls[name], str(year)))
            for store in stores.values():
                store.close()
            same = {f: (base / f"{f}-embedded.csv").read_bytes() == (base / f"{f}-influxdb.csv").read_bytes()
                    for f in ("ledger", "day", "month")}
    finally:
        server.cleanup()
    print(f"CSV outputs byte-identical on both backends: {same}")
    print(f"{'verb (median, min-max of ' + str(args.repeat) + ')':<26}{'embedded':>22}{'cpu':>7}{'RSS':>8}"
          f"{'influxdb':>22}{'cpu':>7}{'RSS':>8}  ratio (per-run min-max)")
    for what in dict.fromkeys(v for _, v in runs):
        e, i = runs[("embedded", what)], runs[("influxdb", what)]
        es, is_ = [r["seconds"] for r in e], [r["seconds"] for r in i]
        ratios = [b / a for a, b in zip(es, is_, strict=True)]
        print(f"{what:<26}{spread(es):>22}{statistics.median(r['cpu'] for r in e):6.1f}s"
              f"{max(r['rss_mb'] for r in e):6.0f}MB{spread(is_):>22}{statistics.median(r['cpu'] for r in i):6.1f}s"
              f"{max(r['rss_mb'] for r in i):6.0f}MB  {statistics.median(is_) / statistics.median(es):5.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) target <= 3")


if __name__ == "__main__":
    main()
