"""Benchmark: each dashboard page interactive after login, cold, in Chromium.

How fast each dashboard page is interactive after login, cold, in Debian's Chromium
(Playwright), on the demo's world; and whether a slow download shows progress.

    python benchmarks/bench_pages.py [--dir DIR] [--repeat 3] [--pages /,/ranking,...] [--langs zh,en]
    python benchmarks/bench_pages.py --breakdown [--pages /] [--repeat 3]   # where a cold page's time goes

The world is what `civicwatt demo` builds (the 30-institution sample portfolio, its
history back to 1 January of last year at the demo's resolution, the demo's savings
project) with the alerts the rules raise on it; it is built once into `--dir` (about a
minute) and reused by later runs.

For every page, language and repetition a *fresh* dashboard is served in this process
(new data service: every cache empty, the savings verification not yet computed), a
fresh browser context logs in with the page as its `next`, and the time is taken from
the click on "log in" until the page's main content is drawn and no callback is
pending. Budget: 2 s per page (issue 16). `serve` starts the dashboard's warm-up
(`dashboard.warmup`) when the server listens; three figures per page:

* "after ready": the login starts once the server reports ready (its warm-up done:
  what a user who opens the dashboard after `civicwatt serve` printed "dashboard ready"
  gets; the warm-up's own seconds are printed too);
* "first request": the login starts the moment the server listens, the warm-up
  running meanwhile (the truly first request of a just-started server);
* "no warm-up": the same with the warm-up off: what a page costs from nothing.

The same page is then opened again on the "after ready" server (warm: the browser's
caches filled too) and, as the baseline, a page with no data work at all (the "not
found" page: the login, the Dash bundles and the frame) on a fresh server, so the
figures are read against what any page costs in this browser on this machine. Figures:
median and min..max over the repetitions (the machine is shared).

Downloads: on the reports page the monthly report of last month is built in a
callback; the benchmark times click -> download and checks that a spinner is shown
while it is being built (a download that takes more than 2 s must show progress). The
assessment workbook is a plain link without a spinner: it is timed to show it stays
within 2 s.

Breakdown (`--breakdown` for this alone): for each page after ready, and the "not found"
page, the browser's own timings from the dashboard page's navigation start (after the
login's redirect): DOMContentLoaded, the end of the scripts' downloads and their size,
Plotly's bundle (start, end, size), each callback request (start..end), the long tasks
(main thread busy > 50 ms: evaluating scripts, drawing charts) one by one and in all.
It showed where a cold chart page lost its time (docs/dashboard.md, "Speed"); a CPU
profile is not printed (Chromium's profiler slows the page it measures).

Server CPU (`--cpu-only` for this alone): the first screens' callbacks of `/` and
`/assessment` called in process, from nothing (no warm-up, the baseline) and after the
server reports ready.

Data path: the overview's numbers the way the dashboard read them before issue 16
(three reads of the store: the year's days for the totals, two years of months for the
targets, the year's months again for the trend) against now (one daily read per year,
shared), both cold, in this process on the same store: the part of the first page the
change was about.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BUDGET_S = 2.0
PASSWORD = "bench-pass-123"
PAGES = {"/": "#gauge-energy_tce .gauge-bar", "/ranking": "#rank-table td",
         "/institution/HB-0001": "#inst-period-table", "/compare": "#cmp-table", "/alerts": "#alerts-count",
         "/reports": "#ledger-xlsx", "/mv": "#mv-verdict", "/assessment": "#assess-count", "/wall": "#wall-title"}
BASELINE = ("/nowhere", ".empty")  # the frame and a "not found" message: no data work
SPINNER = ".dash-spinner, .dash-default-spinner, .dash-dot-spinner"
IDLE_JS = "() => !document.querySelector('[data-dash-is-loading=\"true\"]')"
CPU: dict[str, list[float]] = {}  # path -> CPU seconds of this process per login after ready


def build_world(base: Path) -> pd.Timestamp:
    """The demo's files and history in `base` (skipped when already there); the
    moment the history ends."""
    from civicwatt.commands.demo import backfill, demo_mv_setup, history_days
    from civicwatt.commands.simulate import meters_for_sim
    from civicwatt.context import open_registry_store
    from civicwatt.sample import apply_retrofits, sample_retrofits, write_sample, write_sample_mv_project
    from core.registry import load_registry

    stamp = base / "bench-now.txt"
    if stamp.exists():
        return pd.Timestamp(stamp.read_text().strip())
    write_sample(base, base_port=25020)
    reg = load_registry(base / "civicwatt.yaml")
    store = open_registry_store(reg, f"embedded:{base / 'data'}")
    now = pd.Timestamp.now(tz="UTC").floor("s")
    setup, _note = demo_mv_setup(base, store, reg, now, None)
    meters = meters_for_sim(reg)
    days = history_days(now, reg.timezone)
    if setup is not None:
        meters = apply_retrofits(meters, sample_retrofits(setup))
        write_sample_mv_project(base, reg, now, seed=1)
        days = max(days, (now.tz_convert(reg.timezone).date() - setup.history_start).days + 1)
    backfill(store, reg, days, now, meters)
    from alerts.outbox import Outbox
    from alerts.rules import evaluate_alerts
    from quotas.config import load_quotas

    alerts = evaluate_alerts(store, reg, load_quotas(base / "quotas.yaml", reg), now=now)
    Outbox(base / "data").submit(alerts)
    store.close()
    stamp.write_text(now.isoformat())
    return now


class Site:
    """A fresh dashboard over the world (all caches empty), served on a free port."""

    def __init__(self, base: Path, now: pd.Timestamp, warm_up: bool = True):
        from civicwatt.context import open_registry_store
        from core import users as auth
        from core.registry import load_registry
        from dashboard.app import create_app, serve

        self.reg = load_registry(base / "civicwatt.yaml")
        self.store = open_registry_store(self.reg, f"embedded:{base / 'data'}")
        users = base / "bench-users.yaml"
        if not users.exists():
            auth.set_user(users, "admin", "admin", None, PASSWORD)
        self.app = create_app(self.reg, self.store, users, quotas_path=base / "quotas.yaml", data_dir=base / "data",
                              secret_key="bench-secret", now=lambda: now, mv_dirs=[base / "mv"])
        self.handle = serve(self.app, "127.0.0.1", 0, warm_up=warm_up)
        self.url = self.handle.url

    def close(self) -> None:
        self.handle.shutdown()
        self.store.close()


def timed_login(browser, url: str, path: str, ready: str, lang: str = "zh",
                cpu: bool = False, init_script: str | None = None) -> tuple[float, object]:
    """Seconds from the click on "log in" (with `path` as the page to go to, in `lang`)
    until `ready` is visible and no callback is pending; and the page. With `cpu`, the
    CPU seconds this process (the dashboard's threads, and Playwright's client) spent
    meanwhile are added to `CPU[path]`: a figure the other programs on a shared machine
    disturb less. `init_script` runs in every document before its own scripts."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    if init_script:
        ctx.add_init_script(init_script)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{url}/login?next={path}")
    page.evaluate(f"localStorage.setItem('lang', JSON.stringify('{lang}'))")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    t0, c0 = time.perf_counter(), time.process_time()
    page.click("#login-button")
    page.wait_for_selector(ready, state="visible")
    page.wait_for_function(IDLE_JS)
    if cpu:
        CPU.setdefault(path, []).append(time.process_time() - c0)
    return time.perf_counter() - t0, page


LONGTASKS_JS = """window.__longtasks = [];
new PerformanceObserver(l => l.getEntries().forEach(e => window.__longtasks.push([e.startTime, e.duration])))
  .observe({type: 'longtask', buffered: true});"""
TIMINGS_JS = """() => ({nav: performance.getEntriesByType('navigation').map(e => [e.name, e.startTime, e.domContentLoadedEventEnd]),
  res: performance.getEntriesByType('resource').map(e => [e.name, e.startTime, e.responseEnd, e.encodedBodySize]),
  long: window.__longtasks || [], now: performance.now()})"""


def breakdown(browser, url: str, path: str, ready: str, lang: str) -> dict[str, float]:
    """Where the milliseconds of one cold page after login go in the browser, from the
    dashboard page's navigation start (after the login's redirect) to ready: the HTML
    until DOMContentLoaded, the scripts, Plotly's bundle (start..end of its download),
    each callback request (start..end), and the long tasks (main thread busy > 50 ms:
    parsing and compiling scripts, rendering) in all."""
    _, page = timed_login(browser, url, path, ready, lang, init_script=LONGTASKS_JS)
    tm = page.evaluate(TIMINGS_JS)
    page.context.close()
    out = {"DOMContentLoaded": tm["nav"][0][2], "ready": tm["now"],
           "long tasks (sum)": sum(d for _, d in tm["long"]), "long tasks (n)": len(tm["long"])}
    scripts = [r for r in tm["res"] if ".js" in r[0]]
    out["scripts end"] = max((r[2] for r in scripts), default=0.0)
    out["scripts kB"] = sum(r[3] for r in scripts) / 1e3
    for name, start, end, size in tm["res"]:
        if "plotly" in name.rsplit("/", 1)[-1] or "async-graph" in name:
            key = "plotly" if "plotly" in name.rsplit("/", 1)[-1] else "async-graph"
            out[f"{key} start"], out[f"{key} end"], out[f"{key} kB"] = start, end, size / 1e3
    for i, (start, dur) in enumerate(tm["long"]):
        out[f"long task {i + 1}"] = f"{start:.0f}+{dur:.0f}"  # type: ignore[assignment]
    calls = [(s, e) for n, s, e, _ in tm["res"] if "_dash-update-component" in n]
    out["callbacks (n)"] = len(calls)
    for i, (s, e) in enumerate(sorted(calls)):
        out[f"callback {i + 1}"] = f"{s:.0f}..{e:.0f}"  # type: ignore[assignment]
    return out


def print_breakdown(rows: list[dict]) -> None:
    """The breakdown's figures, median over the repetitions (ms from navigation start)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        if isinstance(vals[0], str):
            print(f"    {k:<20} {', '.join(vals)}")
        else:
            print(f"    {k:<20} {statistics.median(vals):8.0f}  ({min(vals):.0f}..{max(vals):.0f})")


def timed_visit(page, url: str, path: str, ready: str) -> float:
    t0 = time.perf_counter()
    page.goto(url + path)
    page.wait_for_selector(ready, state="visible")
    page.wait_for_function(IDLE_JS)
    return time.perf_counter() - t0


def timed_download(page, url: str) -> tuple[float, bool]:
    """The monthly report from the reports page: seconds click -> download, and whether
    a spinner showed while it was built."""
    timed_visit(page, url, "/reports", "#rep-download")
    t0 = time.perf_counter()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with page.expect_download(timeout=300_000) as dl:
        page.click("#rep-download")
        try:
            spinner = page.wait_for_selector(SPINNER, state="attached", timeout=2_000) is not None
        except PlaywrightTimeout:
            spinner = False
    dl.value.path()
    return time.perf_counter() - t0, spinner


def timed_link_download(page, url: str) -> float:
    """The assessment workbook from the assessment page (a plain link, no spinner: the
    assessment is built for the page itself, the link only writes the workbook):
    seconds click -> download."""
    timed_visit(page, url, "/assessment", PAGES["/assessment"])
    t0 = time.perf_counter()
    with page.expect_download(timeout=300_000) as dl:
        page.click("#assess-xlsx")
    dl.value.path()
    return time.perf_counter() - t0


def old_overview_data(store, reg, year: int, now: pd.Timestamp) -> None:
    """The overview's numbers as the dashboard read them before issue 16: the year's
    days (totals), two years of months (targets, projection), the year's months again
    (trend); the same models.api functions as the data service."""
    from models import api as models_api

    factors = models_api.load_factors()
    tz = reg.timezone
    start, end = pd.Timestamp(year=year, month=1, day=1, tz=tz), now.tz_convert(tz)
    use = models_api.energy_use(store, reg, start, end, "day", factors)
    models_api.indicators(use, reg, factors, "equivalent", freq="day")
    for y0, y1 in ((pd.Timestamp(year=year - 1, month=1, day=1, tz=tz), start), (start, end)):
        u = models_api.energy_use(store, reg, y0, y1, "month", factors)
        models_api.indicators(u, reg, factors, "equivalent", freq="month", by_period="month")
    u = models_api.energy_use(store, reg, start, end, "month", factors)
    inst = models_api.institution_context(reg, factors)
    models_api.priced_sums(models_api.energy_sums(u, inst, period="month", freq="month", tz=tz), inst, factors)


def new_overview_data(site: Site, year: int) -> None:
    svc = site.app.service
    svc.indicators(year)
    svc.target_status(year)
    svc.monthly_energy(year)


def server_cpu(base: Path, now: pd.Timestamp, repeat: int) -> None:
    """The server's CPU seconds (this thread's) for the first screen's callbacks of `/`
    (the overview and its period view) and `/assessment`, called in process for the
    administrator: with no warm-up (the baseline: the same work from nothing, on a fresh
    server) and after the server reports ready. CPU time is what the other programs on
    a shared machine disturb least."""
    from core.users import User
    from dashboard import period
    from dashboard.assessments import assessments_of, complete_years
    from dashboard.pages import assessment, overview

    admin = User("admin", "admin", None)

    def work(c, path: str) -> float:
        t = time.thread_time()
        if path == "/":
            scope = overview.scope_of(c, admin, "hebei", "zh")
            overview.content(c, scope, c.service.current_year(), "zh")
            period.view(c, scope.insts, period.parse(c, None, None), True, "zh", "ov")
        else:
            assessment.content(c, admin, assessments_of(c).for_user(admin, complete_years(c)[0]), False, "zh")
        return time.thread_time() - t

    out: dict[tuple[str, bool], list[float]] = {}
    for _ in range(repeat):
        for path in ("/", "/assessment"):
            for ready in (False, True):
                site = Site(base, now, warm_up=ready)
                try:
                    if ready:
                        site.app.warmup.wait()
                    out.setdefault((path, ready), []).append(work(site.app.warmup.c, path))
                finally:
                    site.close()
    print(f"\nserver CPU of the first screen's callbacks, in process, median (min..max) of {repeat}:")
    for path in ("/", "/assessment"):
        bare, ready = out[path, False], out[path, True]
        print(f"  {path:<12} no warm-up {spread(bare)}   after ready {spread(ready)}   "
              f"ratio {statistics.median(bare) / max(statistics.median(ready), 1e-9):.0f} x")


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} s  ({min(xs):.2f}..{max(xs):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="where the demo world is built (reused when it exists)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated paths of PAGES")
    ap.add_argument("--langs", default="zh", help="comma-separated languages: zh, en")
    ap.add_argument("--breakdown", action="store_true",
                    help="only where the time of each cold page goes in the browser (resource timings, long tasks)")
    ap.add_argument("--cpu-only", action="store_true", help="only the server CPU of the first screens (no browser)")
    args = ap.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "civicwatt-bench-pages"
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    now = build_world(base)
    print(f"world: {base} (history to {now}; ready in {time.perf_counter() - t0:.0f} s)")
    if args.cpu_only:
        server_cpu(base, now, args.repeat)
        return 0
    from playwright.sync_api import sync_playwright

    pages = [p for p in args.pages.split(",") if p in PAGES]
    langs = [x for x in args.langs.split(",") if x in ("zh", "en")]
    runs = [(lang, p) for lang in langs for p in pages]
    ready: dict[tuple, list[float]] = {r: [] for r in runs}
    first: dict[tuple, list[float]] = {r: [] for r in runs}
    bare: dict[tuple, list[float]] = {r: [] for r in runs}
    warm: dict[tuple, list[float]] = {r: [] for r in runs}
    baseline: list[float] = []
    warm_up_s: list[float] = []
    downloads: list[tuple[float, bool]] = []
    link_downloads: list[float] = []
    data_old: list[float] = []
    data_new: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if args.breakdown:
            for lang, path in [*runs, (langs[0], BASELINE[0])]:
                rows = []
                for _ in range(args.repeat):
                    site = Site(base, now)
                    try:
                        site.app.warmup.wait()
                        rows.append(breakdown(browser, site.url, path, {**PAGES, BASELINE[0]: BASELINE[1]}[path], lang))
                    finally:
                        site.close()
                print(f"  {lang} {path}: ms from the page's navigation start, median (min..max) of {args.repeat}")
                print_breakdown(rows)
            browser.close()
            return 0
        for _ in range(args.repeat):
            for lang, path in runs:
                site = Site(base, now)  # after the server reports ready
                try:
                    site.app.warmup.wait()
                    warm_up_s.append(site.app.warmup.seconds)
                    seconds, page = timed_login(browser, site.url, path, PAGES[path], lang, cpu=True)
                    ready[lang, path].append(seconds)
                    print(f"  {lang} {path}: after ready {seconds:.2f} s (warm-up {site.app.warmup.seconds:.1f} s)",
                          flush=True)
                    warm[lang, path].append(timed_visit(page, site.url, path, PAGES[path]))
                    if path == "/reports" and lang == langs[0]:
                        downloads.append(timed_download(page, site.url))
                    if path == "/assessment" and lang == langs[0]:
                        link_downloads.append(timed_link_download(page, site.url))
                    page.context.close()
                finally:
                    site.close()
                for column, warm_up in ((first, True), (bare, False)):
                    site = Site(base, now, warm_up=warm_up)  # the first request the server gets
                    try:
                        seconds, page = timed_login(browser, site.url, path, PAGES[path], lang)
                        column[lang, path].append(seconds)
                        print(f"  {lang} {path}: {'first request' if warm_up else 'no warm-up'} {seconds:.2f} s",
                              flush=True)
                        page.context.close()
                    finally:
                        site.close()
            site = Site(base, now, warm_up=False)
            try:
                seconds, page = timed_login(browser, site.url, BASELINE[0], BASELINE[1])
                baseline.append(seconds)
                page.context.close()
            finally:
                site.close()
            site = Site(base, now, warm_up=False)  # the data path, both cold on the same store
            year = site.app.service.current_year()
            t = time.perf_counter()
            old_overview_data(site.store, site.reg, year, now)
            data_old.append(time.perf_counter() - t)
            t = time.perf_counter()
            new_overview_data(site, year)
            data_new.append(time.perf_counter() - t)
            site.close()
        browser.close()
    base_med = statistics.median(baseline)
    print(f"\ninteractive after login, fresh server, median (min..max) of {args.repeat}; budget {BUDGET_S:.0f} s "
          f"(after ready)")
    print(f"server ready (warm-up done) {spread(warm_up_s)} after it started listening")
    print(f"{'lang':<5}{'page':<22}{'after ready':>25}{'first request':>25}{'no warm-up':>25}{'warm':>25}"
          "  ready/baseline  budget")
    for lang, path in runs:
        c = ready[lang, path]
        ok = "yes" if statistics.median(c) <= BUDGET_S else "NO"
        print(f"{lang:<5}{path:<22}{spread(c):>25}{spread(first[lang, path]):>25}{spread(bare[lang, path]):>25}"
              f"{spread(warm[lang, path]):>25}  {statistics.median(c) / base_med:8.1f} x      {ok}")
    print(f"{'':<5}{'baseline ' + BASELINE[0]:<22}{spread(baseline):>25}")
    print("\nCPU seconds of this process per page after ready, median (min..max):")
    for path in pages:
        print(f"  {path:<22}{spread(CPU.get(path, [0.0])):>25}")
    if downloads:
        secs = [s for s, _ in downloads]
        print(f"\nmonthly report download: {spread(secs)}; spinner while building: "
              f"{'yes' if all(sp for _, sp in downloads) else 'NO'} ({sum(sp for _, sp in downloads)}/{len(downloads)})")
    if link_downloads:
        print(f"assessment workbook (a link, no spinner): {spread(link_downloads)}; within {BUDGET_S:.0f} s: "
              f"{'yes' if max(link_downloads) <= BUDGET_S else 'NO'}")
    server_cpu(base, now, args.repeat)
    print(f"\noverview data, cold, in process: before (3 reads) {spread(data_old)}, now (1 daily read a year) "
          f"{spread(data_new)}, ratio {statistics.median(data_old) / statistics.median(data_new):.1f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
