"""Store write throughput against a bare baseline in the same engine, same process.

    python benchmarks/bench_store.py [--samples 1000000]

* embedded: `EmbeddedStore.write_samples` (with its hourly and daily consumption
  maintained) vs a bare bulk insert of the same rows, converted to Arrow the same way,
  into the `sample` table of the same schema by the same engine (ADBC SQLite,
  `storage.embedded.connect`: same pragmas), one transaction.
* InfluxDB: `InfluxStore.write_samples` (build line protocol, batch, retry, and the
  consumption measurements; gzip is off for a loopback server, and also measured on) vs
  posting pre-built line protocol straight to `/write` in the same batch size.
  A real influxd is started on a free loopback port (Debian's `influxdb` package).
* import: `civicwatt import readings` of a 1-million-row CSV into the embedded store.

Target: each ratio >= 0.7.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa

from civicwatt.cli import main as cli
from civicwatt.sample import write_sample
from core.sqlite import transaction
from storage.base import normalize_samples, to_epoch_s
from storage.embedded import SAMPLE_SCHEMA, SCHEMA, EmbeddedStore, connect
from storage.influx import BATCH_LINES, InfluxStore, sample_body
from tests.servers import Influxd


def make_samples(n: int, meters: int = 200, start: str = "2025-01-01") -> pd.DataFrame:
    per = n // meters
    t0 = int(pd.Timestamp(start, tz="UTC").timestamp())
    t = np.tile(t0 + np.arange(per, dtype=np.int64) * 900, meters)
    ids = np.repeat([f"M{k:05d}" for k in range(meters)], per)
    v = np.tile(np.cumsum(np.full(per, 1.25)), meters)
    return pd.DataFrame({"meter_id": ids, "time": pd.to_datetime(t, unit="s", utc=True), "value": v, "quality": 0})


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} samples/s ({seconds:.2f} s)"


def bench_embedded(df: pd.DataFrame) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = EmbeddedStore(Path(d) / "store")
        t = time.perf_counter()
        store.write_samples(df)
        ours = time.perf_counter() - t
        store.close()

        con = connect(Path(d) / "bare.sqlite3")
        cur = con.cursor()
        for statement in filter(str.strip, SCHEMA.split(";")):
            cur.execute(statement)
        t = time.perf_counter()
        with transaction(cur):
            table = pa.table([pd.factorize(df["meter_id"])[0].astype(np.int64),
                              to_epoch_s(df["time"]), df["value"].to_numpy(float),
                              df["quality"].to_numpy(np.int64)], schema=SAMPLE_SCHEMA)
            cur.executemany("INSERT OR REPLACE INTO sample VALUES (?,?,?,?)", table)
        bare = time.perf_counter() - t
        cur.close()
        con.close()
    print(f"embedded  write_samples  {rate(len(df), ours)}")
    print(f"embedded  bare insert    {rate(len(df), bare)}")
    print(f"embedded  ratio          {bare / ours:.2f}  (target >= 0.7)")
    return bare / ours


def bench_influx(df: pd.DataFrame, rounds: int = 2) -> float:
    """Best of `rounds` for each side, alternating, each round into a fresh database.

    The store's default to a loopback server is uncompressed (gzip only costs CPU there);
    the gzip figure is what a remote server gets."""
    server = Influxd()
    server.start()
    ours = ours_gz = bare = float("inf")
    norm = normalize_samples(df)
    try:
        with httpx.Client(base_url=server.http, timeout=60) as client:
            for r in range(rounds):
                for gz in (False, True):
                    store = InfluxStore(server.url(f"ours{r}{int(gz)}") + ("?gzip=true" if gz else ""))
                    store.write_samples(df.iloc[:1000])  # warm-up: create the shard
                    t = time.perf_counter()
                    store.write_samples(df)
                    took = time.perf_counter() - t
                    store.close()
                    if gz:
                        ours_gz = min(ours_gz, took)
                    else:
                        ours = min(ours, took)

                client.post("/query", data={"q": f"CREATE DATABASE bare{r}"})
                bodies = [sample_body(norm.iloc[i:i + BATCH_LINES]) for i in range(0, len(norm), BATCH_LINES)]
                client.post("/write", params={"db": f"bare{r}", "precision": "s"}, content=b"warmup value=1 1")
                t = time.perf_counter()
                for body in bodies:
                    client.post("/write", params={"db": f"bare{r}", "precision": "s"}, content=body).raise_for_status()
                bare = min(bare, time.perf_counter() - t)
    finally:
        server.cleanup()
    print(f"influxdb  write_samples  {rate(len(df), ours)}")
    print(f"influxdb  ... with gzip  {rate(len(df), ours_gz)}  (ratio {bare / ours_gz:.2f})")
    print(f"influxdb  bare /write    {rate(len(df), bare)}")
    print(f"influxdb  ratio          {bare / ours:.2f}  (target >= 0.7)")
    return bare / ours


def bench_import(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        write_sample(d, n_institutions=30)
        from core.registry import load_registry

        ids = [m.id for m in load_registry(Path(d) / "civicwatt.yaml").meters][:100]
        per = n // len(ids)
        times = pd.date_range("2024-01-01", periods=per, freq="15min", tz="Asia/Shanghai")
        stamps = times.strftime("%Y-%m-%dT%H:%M:%S+08:00")
        df = pd.DataFrame({"meter_id": np.repeat(ids, per), "time": np.tile(stamps, len(ids)),
                           "value": np.tile(np.round(np.cumsum(np.full(per, 0.75)), 2), len(ids))})
        csv = Path(d) / "readings.csv"
        df.to_csv(csv, index=False)
        t = time.perf_counter()
        code = cli(["import", "readings", str(csv), "--registry", f"{d}/civicwatt.yaml", "--store", f"embedded:{d}/data"])
        took = time.perf_counter() - t
    print(f"import    {len(df):,}-row CSV  {rate(len(df), took)}  exit {code}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    df = make_samples(args.samples)
    print(f"{len(df):,} samples, {df['meter_id'].nunique()} meters")
    bench_embedded(df)
    bench_influx(df)
    bench_import(args.samples)


if __name__ == "__main__":
    main()
