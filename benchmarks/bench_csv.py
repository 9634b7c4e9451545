"""Benchmark: readings CSV parsing against a bare pandas parse.

Readings CSV parsing: `core.csvio.parse_readings` against a bare pandas parse of the
same file in the same process.

    python benchmarks/bench_csv.py [--rows 1000000] [--repeat 5]

The baseline reads the same file with `pd.read_csv(dtype=str)` and converts the two
columns every parser must convert (`pd.to_datetime(format="ISO8601", utc=True)` and
`pd.to_numeric`): the work no validation can skip. It is fair because both read the
same bytes into the same frame types; what the ratio shows is the cost of the checks
(UTF-8 decoding, physical lines, meters, offsets, ranges, rollovers, duplicates to the
second). Median and spread of `--repeat` alternating runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from civicwatt.sample import write_sample
from core.csvio import parse_readings
from core.registry import load_registry


def make_file(d: Path, rows: int) -> tuple[Path, object]:
    write_sample(d, n_institutions=30)
    registry = load_registry(d / "civicwatt.yaml")
    ids = [m.id for m in registry.meters][:100]
    per = rows // len(ids)
    stamps = pd.date_range("2024-01-01", periods=per, freq="15min", tz="Asia/Shanghai").strftime(
        "%Y-%m-%dT%H:%M:%S+08:00")
    df = pd.DataFrame({"meter_id": np.repeat(ids, per), "time": np.tile(stamps, len(ids)),
                       "value": np.tile(np.round(np.cumsum(np.full(per, 0.75)), 2), len(ids))})
    path = d / "readings.csv"
    df.to_csv(path, index=False)
    return path, registry


def bare(path: Path) -> int:
    df = pd.read_csv(path, dtype=str)
    t = pd.to_datetime(df["time"], format="ISO8601", utc=True)
    v = pd.to_numeric(df["value"])
    return len(t) + len(v)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path, registry = make_file(Path(d), args.rows)
        ours, base = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            n = len(parse_readings(path, registry))
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare(path)
            base.append(time.perf_counter() - t)
    print(f"{n:,} rows")
    print(f"parse_readings  median {statistics.median(ours):.2f} s  (min {min(ours):.2f}, max {max(ours):.2f})")
    print(f"bare pandas     median {statistics.median(base):.2f} s  (min {min(base):.2f}, max {max(base):.2f})")
    print(f"ratio bare/ours {statistics.median(base) / statistics.median(ours):.2f}")


if __name__ == "__main__":
    main()
