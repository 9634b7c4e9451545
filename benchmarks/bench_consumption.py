"""InfluxDB at parity: year views on both backends over the same data.

    python benchmarks/bench_consumption.py [--institutions 60] [--year 2025] [--repeat 5]

Builds the sample portfolio (`--institutions` institutions: 60 give the issue's 405
meters), generates one year and a month of hourly history for every meter
(`device_sim.history`, the demo's generator) and writes the very same frame through
`Store.write_samples` into a fresh embedded store and into a fresh database on a real
influxd on loopback (so both hold the same samples and the same materialised
consumption). Then, alternating between the backends, times:

* `store.consumption('day', year)` and `store.consumption('month', year)` for every
  meter (in this process, `--repeat` times);
* `civicwatt ledger --year YEAR` (a fresh process each time, `--repeat` times).

The baseline of each InfluxDB figure is the embedded store doing the same call on the
same data in the same run: the ratio is InfluxDB / embedded (target <= 3). Printed:
median and min-max of the repeats, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from civicwatt.commands.simulate import meters_for_sim
from civicwatt.context import open_registry_store
from civicwatt.sample import write_sample
from core.registry import load_registry
from device_sim.history import generate_history
from tests.servers import Influxd


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.2f} s (min {min(xs):.2f}, max {max(xs):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=60)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = Influxd()
    server.start()
    try:
        with tempfile.TemporaryDirectory(dir=".") as d:
            base = Path(d)
            write_sample(base, n_institutions=args.institutions)
            registry = load_registry(base / "civicwatt.yaml")
            urls = {"embedded": f"embedded:{base / 'data'}", "influxdb": server.url("bench")}
            start = pd.Timestamp(f"{args.year - 1}-12-01", tz=registry.timezone)
            end = pd.Timestamp(f"{args.year + 1}-01-02", tz=registry.timezone)
            t = time.perf_counter()
            history = generate_history(meters_for_sim(registry), start, end, interval_s=3600, seed=1)
            print(f"{len(registry.institutions)} institutions, {len(registry.meters)} meters, "
                  f"{len(history):,} hourly samples ({time.perf_counter() - t:.0f} s to generate)")
            stores = {}
            for name, url in urls.items():
                store = open_registry_store(registry, url)
                t = time.perf_counter()
                store.write_samples(history)
                print(f"{name:<9} loaded with consumption in {time.perf_counter() - t:.1f} s")
                stores[name] = store
            lo, hi = f"{args.year}-01-01", f"{args.year + 1}-01-01"
            timings: dict[tuple[str, str], list[float]] = {}
            rows: dict[tuple[str, str], int] = {}
            for _ in range(args.repeat):
                for name, store in stores.items():
                    for freq in ("day", "month"):
                        t = time.perf_counter()
                        out = store.consumption(freq, lo, hi)
                        timings.setdefault((name, f"consumption('{freq}')"), []).append(time.perf_counter() - t)
                        rows[(name, freq)] = len(out)
                    t = time.perf_counter()
                    proc = subprocess.run(["civicwatt", "ledger", "--year", str(args.year), "--registry",
                                           str(base / "civicwatt.yaml"), "--store", urls[name], "--out",
                                           str(base / f"ledger-{name}.csv")], capture_output=True, text=True)
                    timings.setdefault((name, "civicwatt ledger --year"), []).append(time.perf_counter() - t)
                    if proc.returncode != 0:
                        raise RuntimeError(proc.stderr[-2000:])
            same = (base / "ledger-embedded.csv").read_bytes() == (base / "ledger-influxdb.csv").read_bytes()
            for store in stores.values():
                store.close()
    finally:
        server.cleanup()
    for freq in ("day", "month"):
        assert rows[("embedded", freq)] == rows[("influxdb", freq)], rows
    print(f"rows: day {rows[('embedded', 'day')]:,}, month {rows[('embedded', 'month')]:,}; "
          f"ledger CSVs identical on both backends: {same}")
    for what in ("consumption('day')", "consumption('month')", "civicwatt ledger --year"):
        e, i = timings[("embedded", what)], timings[("influxdb", what)]
        print(f"{what:<24} embedded {spread(e)}  influxdb {spread(i)}  "
              f"ratio {statistics.median(i) / statistics.median(e):.2f} (target <= 3)")


if __name__ == "__main__":
    main()
