"""Raw ingest at scale: 15-minute samples with consumption maintained, against a bare write.

    python benchmarks/bench_ingest.py [--meters 2000] [--days 365] [--batch-days 5] [--repeat 3]
                                      [--influx-meters 200] [--influx-days 60] [--import-rows 4000000]

Measured, each in its own fresh process (so peak RSS is the phase's own):

* embedded `Store.write_samples`: the samples arrive in time-ordered batches of
  `--batch-days` days x all meters (how collectors, a backfill or a replay deliver
  them); each batch is written with its hourly and daily consumption recomputed.
* embedded bare write: the same rows, in the same batches, converted from the same
  frames to Arrow and bulk-inserted by the same engine (ADBC SQLite,
  `storage.embedded.connect`, same pragmas) with the same `INSERT OR REPLACE` into the
  same `sample` table of the same schema, one transaction per batch, without
  consumption upkeep. Same work minus the upkeep, same store kind: the fair baseline.
* InfluxDB `Store.write_samples` vs bare: the same rows posted as pre-built line
  protocol (`storage.influx.sample_body`, the store's own encoder) to `/write` in the
  store's batch size, against a fresh database of a real influxd on loopback.
* `civicwatt import readings` of a generated readings CSV (`--import-rows`) into a
  fresh embedded store, against the bare write of the same rows.

Each pair (ours, then the bare write) runs `--repeat` times (default 3), each into a
fresh store. Printed per run: samples/s, wall and CPU time (user + system, all threads:
on a shared machine wall time is mostly waiting for a core, CPU time is the steadier
figure), peak RSS, and the rate of each tenth of the run (flat = not slowing down as the
history grows); then the median and min-max over the runs of the ratio of rates (wall)
and of CPU times (target >= 0.7) and the largest peak RSS (target <= 2 GB).

Measured 2026-12-02 (2 cores shared, load average 2.1-4.6), `--days 365 --skip
influx,import --repeat 1`: 70.08 M samples, 538,450/s with consumption against 655,773/s
bare, ratio 0.82 wall / 0.67 CPU, peak RSS 453 MB (before the dense hourly table and the
arithmetic fast paths: 0.59 / 0.47, 523 MB). `--days 20 --import-rows 1000000 --repeat
3` (load 1.1-2.2): wall median 0.70 (0.63-0.72), CPU 0.67 (0.59-0.71); the import 4.2-4.8 s
wall. README "Figures" has the breakdown.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = pd.Timestamp("2025-01-01", tz="Asia/Shanghai")
STEP_S = 900


def meter_ids(n: int) -> np.ndarray:
    return np.asarray([f"M{k:05d}" for k in range(n)], dtype=object)


def batches(meters: int, days: int, batch_days: int) -> Iterator[pd.DataFrame]:
    """Normalised samples (meter_id, t, value, quality), `batch_days` x all meters at a
    time: a monotonic index per meter (a daily rhythm on a per-meter rate), 0.01 resolution."""
    ids = meter_ids(meters)
    rate = 0.5 + (np.arange(meters) % 17) / 4.0  # index units per 15 minutes
    per_day = 86_400 // STEP_S
    t0 = int(START.timestamp())
    for d in range(0, days, batch_days):
        steps = np.arange(d * per_day, min(days, d + batch_days) * per_day)
        v = rate[:, None] * (steps + 0.4 * np.sin(steps * 2 * np.pi / per_day))[None, :]
        yield pd.DataFrame({"meter_id": np.repeat(ids, len(steps)), "t": np.tile(t0 + steps * STEP_S, meters),
                            "value": np.round(v, 2).ravel(), "quality": np.zeros(v.size, np.int64)})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU time (user + system) of this process, all its threads, so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(frames: Iterator[pd.DataFrame], write) -> dict:
    """Write every frame with `write`, timing only the writes (wall and CPU time); the
    rate of each tenth."""
    marks, n, spent, cpu = [], 0, 0.0, 0.0
    for frame in frames:
        t, c = time.perf_counter(), cpu_s()
        write(frame)
        spent += time.perf_counter() - t
        cpu += cpu_s() - c
        n += len(frame)
        marks.append((n, spent))
    tenths, parts = [], min(10, len(marks))  # tenths of the run, or each write when fewer
    for k in range(1, parts + 1):
        i = min(len(marks) - 1, max(0, round(k * len(marks) / parts) - 1))
        j = min(len(marks) - 1, max(0, round((k - 1) * len(marks) / parts) - 1))
        dn, ds = (marks[i][0] - marks[j][0], marks[i][1] - marks[j][1]) if k > 1 else marks[i]
        tenths.append(dn / ds if ds > 0 else float("nan"))
    return {"samples": n, "seconds": spent, "cpu_s": cpu, "tenths": tenths, "peak_rss_mb": peak_rss_mb()}


# -- phases (each run in its own process) -------------------------------------------
def phase_store(args, url: str) -> dict:
    from storage import open_store

    store = open_store(url)
    out = _timed(batches(args.meters, args.days, args.batch_days), store.write_samples)
    store.close()
    return out


def phase_bare_embedded(args, directory: str) -> dict:
    from core.sqlite import transaction
    from storage.embedded import SAMPLE_SCHEMA, SCHEMA, connect

    con = connect(Path(directory) / "bare.sqlite3")
    cur = con.cursor()
    for statement in filter(str.strip, SCHEMA.split(";")):
        cur.execute(statement)
    keys = pd.Index(meter_ids(args.meters))

    def write(frame: pd.DataFrame) -> None:
        table = pa.table([keys.get_indexer(frame["meter_id"]).astype(np.int64) + 1, frame["t"].to_numpy(np.int64),
                          frame["value"].to_numpy(float), frame["quality"].to_numpy(np.int64)], schema=SAMPLE_SCHEMA)
        with transaction(cur):
            cur.executemany("INSERT OR REPLACE INTO sample VALUES (?,?,?,?)", table)

    out = _timed(batches(args.meters, args.days, args.batch_days), write)
    cur.close()
    con.close()
    for f in Path(directory).glob("bare.sqlite3*"):  # the next repetition writes a fresh file
        f.unlink()
    return out


def phase_bare_influx(args, http: str) -> dict:
    import httpx

    from storage.influx import BATCH_LINES, sample_body

    with httpx.Client(base_url=http, timeout=120) as client:
        client.post("/query", data={"q": f"CREATE DATABASE {args.db}"}).raise_for_status()

        def write(frame: pd.DataFrame) -> None:
            for i in range(0, len(frame), BATCH_LINES):
                client.post("/write", params={"db": args.db, "precision": "s"},
                            content=sample_body(frame.iloc[i:i + BATCH_LINES])).raise_for_status()

        return _timed(batches(args.meters, args.days, args.batch_days), write)


def phase_import(args, directory: str) -> dict:
    from civicwatt.cli import main as cli

    t, c = time.perf_counter(), cpu_s()
    code = cli(["import", "readings", f"{directory}/readings.csv", "--registry", f"{directory}/civicwatt.yaml",
                "--store", f"embedded:{directory}/imported"])
    took, cpu = time.perf_counter() - t, cpu_s() - c
    shutil.rmtree(f"{directory}/imported")  # the next repetition imports into a fresh store
    return {"samples": args.import_rows, "seconds": took, "cpu_s": cpu, "tenths": [], "peak_rss_mb": peak_rss_mb(),
            "exit": code}


def write_import_files(directory: Path, rows: int) -> tuple[int, int]:
    """A registry of the sample portfolio (30 institutions, more when `rows` needs more
    than a year per meter) and a readings CSV of `rows` rows (15-minute indices of its
    first meters, one year at most per meter)."""
    from civicwatt.sample import write_sample
    from core.registry import load_registry

    year, institutions = 365 * 96, 30
    while True:  # a sample portfolio with enough meters for `rows` (at most a year per meter)
        write_sample(directory, n_institutions=institutions)
        ids = [m.id for m in load_registry(directory / "civicwatt.yaml").meters]
        if len(ids) * year >= rows:
            break
        institutions = -(-institutions * rows // (len(ids) * year)) + 1
    per = min(year, rows // len(ids) + 1)
    n_meters = -(-rows // per)
    times = pd.date_range(START, periods=per, freq="15min").strftime("%Y-%m-%dT%H:%M:%S+08:00").to_numpy()
    with open(directory / "readings.csv", "w") as f:
        f.write("meter_id,time,value\n")
        for k, m in enumerate(ids[:n_meters]):
            n = min(per, rows - k * per)
            v = np.round(np.cumsum(np.full(n, 0.75)), 2)
            pd.DataFrame({"meter_id": m, "time": times[:n], "value": v}).to_csv(f, header=False, index=False)
    return n_meters, per


# -- orchestration ------------------------------------------------------------------
def run_phase(name: str, argv: list[str], target: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--target", target, *argv],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(label: str, runs: list[tuple[dict, dict]]) -> None:
    """Print each repetition's pair, then the median and spread of the ratios (wall
    time, and CPU time: on a shared machine the steadier figure)."""
    def line(name: str, r: dict) -> str:
        return (f"{label:<9} {name:<18} {r['samples']:>11,} samples {r['samples'] / r['seconds']:>9,.0f}/s "
                f"({r['seconds']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU)  peak RSS {r['peak_rss_mb']:,.0f} MB")

    wall, cpu = [], []
    for ours, bare in runs:
        print(line("with consumption", ours))
        print(line("bare write", bare))
        wall.append(bare["seconds"] / ours["seconds"])  # same samples: the ratio of rates
        cpu.append(bare["cpu_s"] / ours["cpu_s"])
        for name, r in (("with consumption", ours), ("bare write", bare)):
            if r["tenths"]:
                print(f"{label:<9} {name:<18} k samples/s per tenth of the run: "
                      + " ".join(f"{x / 1000:.0f}" for x in r["tenths"]))
    rss = max(ours["peak_rss_mb"] for ours, _ in runs)
    print(f"{label:<9} ratio (rate with consumption / bare), {len(runs)} runs: wall median {np.median(wall):.2f} "
          f"(min {min(wall):.2f}, max {max(wall):.2f}); CPU median {np.median(cpu):.2f} "
          f"(min {min(cpu):.2f}, max {max(cpu):.2f}); target >= 0.7. Peak RSS {rss:,.0f} MB (target <= 2048)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--batch-days", type=int, default=5)
    parser.add_argument("--influx-meters", type=int, default=200)
    parser.add_argument("--influx-days", type=int, default=60)
    parser.add_argument("--import-rows", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (ours, bare) per kind")
    parser.add_argument("--skip", default="", help="comma-separated: embedded,influx,import")
    parser.add_argument("--db", default="bare", help=argparse.SUPPRESS)
    parser.add_argument("--phase")
    parser.add_argument("--target")
    args = parser.parse_args()
    if args.phase:
        fn = {"store": phase_store, "bare_embedded": phase_bare_embedded, "bare_influx": phase_bare_influx,
              "import": phase_import}[args.phase]
        print(json.dumps(fn(args, args.target)))
        return
    skip = set(filter(None, args.skip.split(",")))
    common = ["--batch-days", str(args.batch_days)]
    if "embedded" not in skip:
        argv = ["--meters", str(args.meters), "--days", str(args.days), *common]
        print(f"embedded: {args.meters} meters x {args.days} days of 15-minute samples, "
              f"batches of {args.batch_days} days x all meters")
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=".") as d:
                runs.append((run_phase("store", argv, f"embedded:{d}/store"), run_phase("bare_embedded", argv, d)))
        report("embedded", runs)
    if "influx" not in skip:
        from tests.servers import Influxd

        argv = ["--meters", str(args.influx_meters), "--days", str(args.influx_days), *common]
        print(f"influxdb: {args.influx_meters} meters x {args.influx_days} days (a real influxd on loopback)")
        server = Influxd()
        server.start()
        runs = []
        try:
            for k in range(args.repeat):
                runs.append((run_phase("store", argv, server.url(f"ours{k}")),
                             run_phase("bare_influx", [*argv, "--db", f"bare{k}"], server.http)))
        finally:
            server.cleanup()
        report("influxdb", runs)
    if "import" not in skip:
        with tempfile.TemporaryDirectory(dir=".") as d:
            n_meters, per = write_import_files(Path(d), args.import_rows)
            print(f"import: civicwatt import readings of a {args.import_rows:,}-row CSV "
                  f"({n_meters} meters x {per:,} samples), vs the bare write of the same rows")
            runs = []
            for _ in range(args.repeat):
                runs.append((run_phase("import", ["--import-rows", str(args.import_rows)], d),
                             run_phase("bare_embedded", ["--meters", str(n_meters), "--days", str(-(-per // 96)),
                                                         *common], d)))
        report("import", runs)


if __name__ == "__main__":
    main()
