"""National indicators on Dask: per-worker peak memory against partition size, and a single-process baseline.

Dataset: synthetic provinces written by `national.dataset.write_month` (the writer of
`civicwatt national export`; `tests/support_national.build_dataset`), every institution
with daily electricity and water for the twelve months of 2024, so a province of 31,600
institutions (Hebei) holds 31,600 x 366 x 2 = 23 million daily rows in twelve
province-month partitions of ~1.9 million rows each.

Measured, each in a fresh process (so a peak RSS is that run's alone):

* dask: `national.compute.national_tables` on a new LocalCluster(2 workers, 1 thread
  each, processes): wall time, each worker's peak RSS (ru_maxrss, read on the workers
  with `client.run`) and the client's;
* baseline: `national.compute.national_tables_local` in one process: the same files
  read into one frame and the same models functions (energy_sums,
  indicators_from_sums, rank, aggregate) applied once. Fair: same files, same
  functions, same result (the test suite asserts equality to 1e-9); the difference is
  only that the baseline holds the whole year of the whole dataset at once.

Two series: growing partition size (institutions per province) at a fixed number of
provinces, and a growing number of provinces at a fixed partition size. Bounded memory
shows as a worker peak that follows the partition size and stays flat as provinces
are added, while the baseline's peak follows the dataset. Each point is repeated
(--repeat) and printed as the median with min-max.

    python benchmarks/bench_national.py [--sizes 3000,10000,31600] [--provinces 3]
        [--scale-size 10000] [--scale-provinces 2,4,8] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]
ENERGIES = ("electricity", "water")
PROVINCES = ["hebei", "shanxi", "shandong", "beijing", "tianjin", "henan", "hubei", "hunan", "anhui", "jiangxi"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _dask_run(dataset: str) -> dict:
    """In a fresh process: the Dask computation on a new LocalCluster."""
    from national.compute import dask_client, national_tables
    from national.dataset import open_catalog

    with dask_client() as client:
        idle = client.run(_peak_mb)
        t0 = time.perf_counter()
        tables = national_tables(open_catalog(dataset), 2024, client)
        seconds = time.perf_counter() - t0
        peaks = client.run(_peak_mb)
    return {"seconds": seconds, "workers": sorted(peaks.values()), "idle": max(idle.values()), "client": _peak_mb(),
            "kgce": float(tables.total["kgce"].iloc[0])}


def _local_run(dataset: str) -> dict:
    """In a fresh process: the single-process baseline."""
    from national.compute import national_tables_local
    from national.dataset import open_catalog

    t0 = time.perf_counter()
    tables = national_tables_local(open_catalog(dataset), 2024)
    return {"seconds": time.perf_counter() - t0, "peak": _peak_mb(), "kgce": float(tables.total["kgce"].iloc[0])}


def _fresh(fn, dataset: Path) -> dict:
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, str(dataset)).result()


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def measure(root: Path, provinces: int, institutions: int, repeat: int) -> dict:
    from tests.support_national import build_dataset

    dataset = root / f"p{provinces}-n{institutions}"
    t0 = time.perf_counter()
    build_dataset(dataset, {p: institutions for p in PROVINCES[:provinces]}, MONTHS, energies=ENERGIES)
    built = time.perf_counter() - t0
    files = sorted(dataset.glob("province=*/year=*/month=*/*.parquet"))
    import pyarrow.parquet as pq

    rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    mb = statistics.median(f.stat().st_size for f in files) / 2**20
    dask_runs = [_fresh(_dask_run, dataset) for _ in range(repeat)]
    local_runs = [_fresh(_local_run, dataset) for _ in range(repeat)]
    assert abs(dask_runs[0]["kgce"] / local_runs[0]["kgce"] - 1) < 1e-9, "the two engines disagree"
    shutil.rmtree(dataset)
    return {"provinces": provinces, "institutions": institutions, "partitions": len(files),
            "rows_per_partition": statistics.median(rows), "mb_per_partition": mb, "rows": sum(rows), "built": built,
            "dask_s": [r["seconds"] for r in dask_runs], "worker_peak": [max(r["workers"]) for r in dask_runs],
            "worker_idle": [r["idle"] for r in dask_runs], "client_peak": [r["client"] for r in dask_runs],
            "local_s": [r["seconds"] for r in local_runs], "local_peak": [r["peak"] for r in local_runs]}


HEADER = (f"{'prov':>4} {'inst/prov':>9} {'rows/part':>10} {'MB/part':>7} {'rows total':>11} | "
          f"{'dask s':>17} {'worker peak MB':>20} {'client MB':>9} | {'pandas s':>17} {'pandas peak MB':>20} | "
          f"{'peak ratio':>10}")


def row(m: dict) -> str:
    ratio = statistics.median(m["local_peak"]) / statistics.median(m["worker_peak"])
    return (f"{m['provinces']:>4} {m['institutions']:>9,} {m['rows_per_partition']:>10,.0f} "
            f"{m['mb_per_partition']:>7.1f} {m['rows']:>11,} | {_spread(m['dask_s']):>17} "
            f"{_spread(m['worker_peak'], '{:.0f}'):>20} {statistics.median(m['client_peak']):>9.0f} | "
            f"{_spread(m['local_s']):>17} {_spread(m['local_peak'], '{:.0f}'):>20} | {ratio:>9.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3000,10000,31600", help="institutions per province (series 1; '' to skip)")
    ap.add_argument("--provinces", type=int, default=3, help="provinces in series 1")
    ap.add_argument("--scale-size", type=int, default=10000, help="institutions per province in series 2")
    ap.add_argument("--scale-provinces", default="2,4,8", help="provinces in series 2 ('' to skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the datasets (default: a temporary directory)")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-national-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"LocalCluster(n_workers=2, threads_per_worker=1, processes=True); {len(MONTHS)} months of 2024, "
          f"energies {', '.join(ENERGIES)}; median (min-max) of {args.repeat} runs, each in a fresh process")
    print("worker peak: the larger of the two workers' peak RSS; peak ratio: pandas peak / worker peak\n")
    series = []
    if args.sizes:
        series.append(("series 1: growing partition size", [(args.provinces, int(n)) for n in args.sizes.split(",")]))
    if args.scale_provinces:
        series.append(("series 2: growing number of provinces",
                       [(int(p), args.scale_size) for p in args.scale_provinces.split(",")]))
    for title, points in series:
        print(title)
        print(HEADER)
        for provinces, n in points:
            m = measure(root, provinces, n, args.repeat)
            print(row(m), f"  [idle worker {statistics.median(m['worker_idle']):.0f} MB, built in {m['built']:.0f}s]",
                  flush=True)
        print()
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
