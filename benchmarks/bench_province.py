"""The province through the store: ledger, monthly report, `quotas check` and the ranking.

    python benchmarks/bench_province.py [--institutions 31600] [--influx-institutions 1000]
                                        [--year 2025] [--queries 40] [--skip embedded,influx]
                                        [--keep DIR] [--repeat N] [--verbs ledger,report,quotas,ranking]

Builds the sample portfolio's registry (`civicwatt.sample`, `--institutions`
institutions, about 6.7 meters each, live 15-minute meters among them) and a full year of
daily consumption for every meter in the store. **Bulk loader:** the day rows are written
with `Store._put_periods("day", ...)`, the backend's own writer of materialised rows that
the ingest upkeep calls, bypassing the raw samples and the rollup arithmetic (a year of
15-minute samples of 200,000 meters is 7 billion samples: out of reach here); each day
row says 96 samples at a 900 s step, so the completeness rule sees complete days.

Then, each in a fresh process reading the store (cold: imports, registry, store open):

* `civicwatt ledger --year`, `civicwatt report monthly --month YEAR-06`,
  `civicwatt quotas check --date YEAR-12-31`;
* the ranking: `DataService.ranking_table(year)` once (cold), then `--queries` calls of
  the ranking table's callback (`quotas.ranking.rank_query`: category, region, sort
  and search filters varied), p50 and p95.

Baseline of each verb, also a fresh process: the registry loaded exactly as every verb
loads it (`core.registry.load_registry`: the same file, through its validated snapshot in
the user's cache directory, which the benchmark's own first load writes; so both sides
pay the same registry cost, ~3 s at 31,600 institutions instead of 95 s of YAML), then
the same engine's plain columnar group-by over the same stored rows (SQLite via ADBC
into Arrow, on a connection with the store's own settings, `storage.embedded.connect`:
page cache and memory-mapped reads as the verbs have them; `SELECT meter,
sum(quantity), sum(est) FROM cons_day ... GROUP BY meter` for the year (ledger, quotas
check) and for the month, the year to date and the month a year before (monthly
report); on InfluxDB the same `sum() ... GROUP BY meter` InfluxQL over
`consumption_day`, one statement per span over every meter, while the verbs read many
meters as shares of `storage.influx.SHARE_METERS`, two at a time: the same rows from the
same server, so a ratio below 1 there is what the shares save over one plain statement,
not work the verb skips). (`quotas check` also reads last year's months, for the
seasonal projection, and the meter rules' recent days; the bulk load holds one year, so
the baseline's year is every stored row the verb's sums read.) That is the least any
year/month view must do: read the registry
(which meter is whose) and every day row of the period once. Both sides pay the same
cold start: a fresh interpreter and their imports; the clock starts at the child's first
line, CPU time counts the interpreter's start too. (Until 2026-12-02 the baseline first
skipped the registry, then parsed the YAML itself with libyaml into plain dicts; since
the snapshot it loads the registry the way the verbs do.) Printed: time, peak RSS (the
child's own VmHWM; on the embedded store it includes the database pages mapped by
SQLite's mmap, up to 2 GB, shared and file-backed) and the ratio (targets: each verb
<= 2x its baseline and <= 60 s, peak RSS <= 8 GB, ranking p95 < 300 ms). Each phase's CPU time (user + system, the
server's excluded) is printed too: on a shared machine it is steadier than wall time.
A verb that exits non-zero is marked `(exit N)` and its last five stderr lines printed.
Output is flushed line by line.

The InfluxDB server is started with `max-values-per-tag = 0`: every meter is a value of
the `meter` tag, and InfluxDB 1.x refuses more than 100,000 by default (README "Stores").
Its peak RSS is printed per phase (VmHWM reset before each child through
`/proc/PID/clear_refs`; Go keeps freed memory for a while, so a phase after a large one
may start high).

`--keep DIR` builds the embedded portfolio and store in `DIR/embedded-N` (N institutions),
and the InfluxDB one in `DIR/influxdb-N` (influxd's data dir in `influxd/`, the server
stopped at the end), and keeps them; a later run with the same `--keep` and size reuses
them (no load), e.g.
to profile a verb against the same store (`python -m cProfile -o OUT .venv/bin/civicwatt
ledger --year 2025 --registry DIR/embedded-N/civicwatt.yaml --store
embedded:DIR/embedded-N/data --out F.csv`). `--repeat N` runs every verb and its baseline
N times (interleaved) and prints each run; `--verbs` runs only some of them (e.g.
`--verbs ranking`). The completeness rule the report, the submissions and the ranking
need is summed by the store (`models.completeness.completeness_sums`, SQL in the embedded
store), so no verb holds the meter-days of a year in memory (until 2026-12-02 the cold
ranking table read them, ~15 GB at 31,600 institutions).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
LOAD_METERS = 2000  # meters per bulk-load step
VERBS = ("ledger", "report", "quotas", "ranking")


def load(registry, url: str, year: int) -> tuple[int, float]:
    """Day rows of `year` for every meter of `registry` into the store at `url` (bulk loader)."""
    from civicwatt.context import open_registry_store
    from storage.base import to_epoch_s

    tz = registry.timezone
    days = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="D", tz=tz, inclusive="left")
    t = to_epoch_s(days)
    season = 1.0 + 0.3 * np.cos(2 * np.pi * (days.day_of_year.to_numpy() - 15) / 365.0)
    work = np.where(days.day_of_week.to_numpy() < 5, 1.0, 0.6)
    ids = np.asarray([m.id for m in registry.meters], dtype=object)
    scale = {"electricity": 800.0, "water": 20.0, "natural_gas": 60.0, "heat": 5.0}
    size = np.asarray([scale.get(m.energy, 10.0) for m in registry.meters]) * (
        0.5 + (np.arange(len(ids)) % 13) / 8.0)
    store = open_registry_store(registry, url)
    started = time.perf_counter()
    n = 0
    try:
        for i in range(0, len(ids), LOAD_METERS):
            part = ids[i:i + LOAD_METERS]
            q = (size[i:i + LOAD_METERS, None] * (season * work)[None, :]).ravel()
            rows = pd.DataFrame({"meter_id": pd.Categorical(np.repeat(part, len(t)), categories=sorted(part)),
                                 "t": np.tile(t, len(part)), "quantity": q, "est": 0.0, "flags": 0,
                                 "samples": 96, "stored": 0, "covered": 1, "step": 900.0})
            with store._writing():
                store._put_periods("day", rows)
            n += len(rows)
    finally:
        store.close()
    return n, time.perf_counter() - started


#: Peak RSS of the child itself: VmHWM of /proc/self/status (ru_maxrss survives exec on
#: Linux, so it would start at the parent's peak).
PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

VERB_SNIPPET = PEAK + """
import json, resource, sys, time
t = time.perf_counter()
from civicwatt.cli import main
rc = main(sys.argv[1:])
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak_mb(), "cpu": u.ru_utime + u.ru_stime,
                  "rc": rc}))
"""

RANK_SNIPPET = PEAK + """
import json, resource, sys, time
import numpy as np
t = time.perf_counter()
from civicwatt.context import open_registry_store
from core.registry import load_registry
from dashboard.data import DataService
from quotas.ranking import RankQuery, rank_query
import pandas as pd
reg_path, url, year, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
registry = load_registry(reg_path)
store = open_registry_store(registry, url, create=False)
svc = DataService(registry, store, now=lambda: pd.Timestamp(f"{year + 1}-02-01 12:00", tz=registry.timezone))
table = svc.ranking_table(year)
cold = time.perf_counter() - t
regions = sorted(table["region"].dropna().unique())
cats = sorted(table["category"].dropna().unique())
sorts = [(("rank", "asc"),), (("value", "desc"),), (("yoy", "asc"),), (("name", "asc"),)]
times = []
for k in range(n):
    q = RankQuery(indicator="kgce_per_m2", regions=None if k % 3 == 0 else [regions[k % len(regions)]],
                  category=None if k % 2 else cats[k % len(cats)], search="" if k % 5 else "学",
                  sort_by=sorts[k % len(sorts)], page=k % 7, page_size=25, visible=None)
    t1 = time.perf_counter()
    page, total = rank_query(table, q)
    times.append(time.perf_counter() - t1)
store.close()
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": cold, "rss_mb": peak_mb(), "cpu": u.ru_utime + u.ru_stime,
                  "p50_ms": 1000 * float(np.median(times)), "p95_ms": 1000 * float(np.percentile(times, 95)),
                  "rows": int(len(table))}))
"""

BARE_SNIPPET = PEAK + """
import json, resource, sys, time
t = time.perf_counter()
import pandas as pd
from core.registry import load_registry
kind, target, spans, reg_path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
registry = load_registry(reg_path)  # the registry, read as every verb reads it (its snapshot)
yaml_s = time.perf_counter() - t
frames = []
if kind == "embedded":
    from storage.embedded import connect  # the store's own connection settings (cache, mmap)
    con = connect(target)
    cur = con.cursor()
    for lo, hi in spans:
        cur.execute("SELECT meter, sum(quantity) AS quantity, sum(est) AS est FROM cons_day "
                    "WHERE t >= ? AND t < ? AND covered = 1 GROUP BY meter", (lo, hi))
        frames.append(cur.fetch_arrow_table().to_pandas())
    cur.close()
    con.close()
else:
    import io
    import httpx
    http, db = target.rsplit("/", 1)
    for lo, hi in spans:
        r = httpx.post(http + "/query", data={"db": db, "epoch": "s", "q": (
            f"SELECT sum(quantity) AS quantity, sum(est) AS est FROM consumption_day WHERE time >= {lo}s "
            f"AND time < {hi}s AND covered = 1 GROUP BY meter")}, headers={"Accept": "application/csv"}, timeout=600)
        if r.content.strip():
            frames.append(pd.read_csv(io.BytesIO(r.content)))
rows = sum(len(f) for f in frames)
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak_mb(), "cpu": u.ru_utime + u.ru_stime,
                  "rows": rows, "yaml_s": yaml_s}))
"""


def child(snippet: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", snippet, *argv], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{argv[:3]} failed:\n{out.stderr[-3000:]}")
    got = json.loads(lines[-1])
    if got.get("rc") not in (None, 0):  # the verb failed: show why (its last stderr lines)
        got["stderr"] = "\n".join(out.stderr.strip().splitlines()[-5:])
    return got


def spans(tz: str, year: int) -> dict[str, list[tuple[int, int]]]:
    def s(a: str, b: str) -> tuple[int, int]:
        return int(pd.Timestamp(a, tz=tz).timestamp()), int(pd.Timestamp(b, tz=tz).timestamp())

    whole = [s(f"{year}-01-01", f"{year + 1}-01-01")]
    month = [s(f"{year}-06-01", f"{year}-07-01"), s(f"{year}-01-01", f"{year}-07-01"),
             s(f"{year - 1}-06-01", f"{year - 1}-07-01")]
    return {"ledger": whole, "report": month, "quotas": whole, "ranking": whole}


def server_peak_mb(pid: int | None) -> float | None:
    """Peak RSS (MB) of the InfluxDB server since the last `reset_server_peak` (VmHWM of
    influxd), for the InfluxDB part."""
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def reset_server_peak(pid: int | None) -> None:
    """Start influxd's peak RSS afresh (Linux: writing 5 to clear_refs resets VmHWM to the
    current RSS), so each phase's own peak is printed."""
    if pid is not None:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def child_on(pid: int | None, snippet: str, *argv: str) -> tuple[dict, float | None]:
    """`child`, and the server's peak RSS while it ran."""
    reset_server_peak(pid)
    got = child(snippet, *argv)
    return got, server_peak_mb(pid)


def run_backend(name: str, base: Path, registry, url: str, bare_target: str, year: int, queries: int,
                repeat: int = 1, loaded: bool = False, server_pid: int | None = None,
                only: tuple[str, ...] = VERBS) -> None:
    if loaded:
        print(f"\n{name}: {len(registry.institutions):,} institutions, {len(registry.meters):,} meters, "
              f"store kept in {base} (not loaded again)")
    else:
        rows, took = load(registry, url, year)
        print(f"\n{name}: {len(registry.institutions):,} institutions, {len(registry.meters):,} meters, "
              f"{rows:,} day rows bulk-loaded in {took:.0f} s ({rows / took:,.0f} rows/s)"
              + ("" if server_pid is None else f"  (influxd peak RSS so far {server_peak_mb(server_pid):,.0f} MB)"))
    reg = str(base / "civicwatt.yaml")
    common = ["--registry", reg, "--store", url]
    verbs = {
        "ledger": ["ledger", "--year", str(year), "--out", str(base / f"ledger-{name}.csv"), *common,
                   "--quotas", str(base / "quotas.yaml")],
        "report": ["report", "monthly", "--month", f"{year}-06", "--out", str(base / f"report-{name}.xlsx"), *common,
                   "--quotas", str(base / "quotas.yaml")],
        "quotas": ["quotas", "check", "--date", f"{year}-12-31", "--outbox", str(base / f"outbox-{name}"), *common,
                   "--quotas", str(base / "quotas.yaml")],
    }
    sp = spans(registry.timezone, year)
    print(f"{'verb':<28}{'time':>9}{'cpu':>8}{'peak RSS':>11}{'bare':>9}{'cpu':>8}{'bare RSS':>10}{'ratio':>7}"
          f"{'cpu ratio':>10}")
    for key, argv in [(k, a) for k, a in [*verbs.items(), ("ranking", None)] if k in only for _ in range(repeat)]:
        got, got_server = (child_on(server_pid, VERB_SNIPPET, *argv) if argv else
                           child_on(server_pid, RANK_SNIPPET, reg, url, str(year), str(queries)))
        bare, bare_server = child_on(server_pid, BARE_SNIPPET, name, bare_target, json.dumps(sp[key]), reg)
        label = {"ledger": "civicwatt ledger --year", "report": "civicwatt report monthly", "quotas": "civicwatt quotas check",
                 "ranking": "ranking table (cold)"}[key]
        print(f"{label:<28}{got['seconds']:8.1f}s{got['cpu']:7.1f}s{got['rss_mb']:9.0f}MB{bare['seconds']:8.1f}s"
              f"{bare['cpu']:7.1f}s{bare['rss_mb']:8.0f}MB{got['seconds'] / bare['seconds']:7.2f}"
              f"{got['cpu'] / bare['cpu']:10.2f}"
              + f"  (bare: {bare['yaml_s']:.1f}s of it the registry)"
              + (f"  (exit {got['rc']})" if got.get("rc") not in (None, 0) else "")
              + ("" if got_server is None else f"  (influxd peak RSS {got_server:,.0f} MB, bare {bare_server:,.0f} MB)"))
        if "stderr" in got:
            print("    " + got["stderr"].replace("\n", "\n    "))
        if key == "ranking":
            print(f"{'ranking callback':<28}p50 {got['p50_ms']:.0f} ms, p95 {got['p95_ms']:.0f} ms over {queries} "
                  f"queries on {got['rows']:,} institutions (target p95 < 300 ms)")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=31_600)
    parser.add_argument("--influx-institutions", type=int, default=1_000)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--skip", default="", help="comma-separated: embedded,influx (or influxdb)")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the portfolios and stores in DIR")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each verb and its baseline")
    parser.add_argument("--verbs", default=",".join(VERBS), help=f"comma-separated, of {','.join(VERBS)}")
    args = parser.parse_args()
    only = tuple(v for v in args.verbs.split(",") if v)
    if set(only) - set(VERBS):
        parser.error(f"--verbs: unknown {', '.join(sorted(set(only) - set(VERBS)))}")
    skip = {"influxdb" if s == "influx" else s for s in filter(None, args.skip.split(","))}
    from civicwatt.sample import write_sample
    from core.registry import load_registry
    from storage.embedded import DB_NAME

    for name, n in (("embedded", args.institutions), ("influxdb", args.influx_institutions)):
        if name in skip:
            continue
        if name == "embedded" and args.keep:
            base = args.keep / f"embedded-{n}"
            loaded = (base / "loaded").exists()
            if not loaded:
                write_sample(base, n_institutions=n)
            registry = load_registry(base / "civicwatt.yaml")
            run_backend(name, base, registry, f"embedded:{base / 'data'}", str(base / "data" / DB_NAME),
                        args.year, args.queries, args.repeat, loaded, only=only)
            (base / "loaded").touch()
            continue
        if name == "influxdb" and args.keep:
            from tests.servers import Influxd

            base = args.keep / f"influxdb-{n}"
            loaded = (base / "loaded").exists()
            if not loaded:
                write_sample(base, n_institutions=n)
            registry = load_registry(base / "civicwatt.yaml")
            (base / "influxd").mkdir(parents=True, exist_ok=True)
            server = Influxd(base / "influxd", max_values_per_tag=0)  # data dir kept, new ports each run; > 100,000 meters
            server.start()
            try:
                run_backend(name, base, registry, server.url("province"), f"{server.http}/province", args.year,
                            args.queries, args.repeat, loaded, server_pid=server.proc.pid, only=only)
                (base / "loaded").touch()
            finally:
                server.stop()
            continue
        with tempfile.TemporaryDirectory(prefix="bench-province-") as d:
            base = Path(d)
            write_sample(base, n_institutions=n)
            registry = load_registry(base / "civicwatt.yaml")
            if name == "embedded":
                run_backend(name, base, registry, f"embedded:{base / 'data'}", str(base / "data" / DB_NAME),
                            args.year, args.queries, args.repeat, only=only)
                continue
            from tests.servers import Influxd

            server = Influxd(max_values_per_tag=0)  # a province has more than 100,000 meters
            server.start()
            try:
                run_backend(name, base, registry, server.url("province"), f"{server.http}/province", args.year,
                            args.queries, args.repeat, server_pid=server.proc.pid, only=only)
            finally:
                server.cleanup()


if __name__ == "__main__":
    main()
