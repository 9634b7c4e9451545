"""`civicwatt demo`: the whole system on one laptop.

1. writes the sample portfolio (`civicwatt.yaml`, `quotas.yaml`, `channels.yaml`) into
   `--dir` (default ./civicwatt-demo) unless it is there already, and `civicwatt.toml` in
   the current directory (next to `--dir` when that lies outside it) naming the demo's
   registry, store, quotas, channels and users, so that every other verb run there finds
   them without options (a civicwatt.toml the demo did not write is left alone);
2. writes the demo energy-performance contract into `--dir`/mv (`emc-001.yaml` with
   `temps.csv`, `normal.csv`, `workdays.csv`, each only when missing): HB-0001's
   lighting retrofit, which the simulation really contains: from 1 February of this
   year (of last year before 1 May) the lighting & sockets sub-meter HB-0001-E1 draws
   30 % less, and the building's main meter the same kWh less; the project verifies it
   on the main meter (IPMVP option C), baseline the calendar year before, reporting from
   1 March to yesterday (`civicwatt.sample.sample_mv_setup`, docs/mv.md "Demo projects");
   with it the water-saving contract `cws-001.yaml`: from the same day HB-0003's main
   water meter HB-0003-W0 draws 20 % less (water-saving fixtures), verified alike in m3.
   The retrofits come with the projects: a store whose history predates them (an older
   demo directory), or a `--days` too short for the baseline, gets neither;
3. backfills `--days` of history (default: back to 1 January of last year, at least
   400 days, and back to the demo project's baseline) straight into the store
   (computed, not polled; the last 35 days at the 15-minute poll interval, hourly
   before), unless the store already holds it;
4. starts the Modbus simulator for every meter (with the same retrofit), continuing the
   history's indices;
5. starts the runtime `civicwatt collect` runs (`civicwatt.runtime`: 15-minute polls,
   alert checks at start-up and every 15 minutes, delivery through
   `--dir`/channels.yaml, the heartbeat in DATA/health/demo.json);
6. serves the dashboard (the savings-verification page reads `--dir`/mv) and prints
   where, with a generated admin password (`civicwatt users passwd admin` sets a new one).

Ctrl-C stops the dashboard, flushes the collectors' queue into the store, and stops the
simulator.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from alerts.outbox import default_outbox_dir
from civicwatt.context import load_optional_quotas, open_registry_store, redact_url, write_workdir_config
from civicwatt.sample import (
    CWS_PROJECT_ID,
    CWS_RETROFIT_METER,
    MV_PROJECT_ID,
    MV_RETROFIT_METER,
    SampleMVSetup,
    apply_retrofits,
    read_sample_mv_setup,
    sample_mv_applies,
    sample_mv_setup,
    sample_retrofits,
    write_sample,
    write_sample_mv_project,
)
from core.registry import Registry, load_registry
from storage import Store

MIN_HISTORY_DAYS = 400
LIVE_INTERVAL_S = 900  # the sample meters are polled every 15 minutes
FULL_RESOLUTION_DAYS = 35  # recent history at the poll interval, older history hourly
WRITE_CHUNK = 500_000  # samples per store write (and progress step)
SEED = 1  # the load model's seed, for the history, the simulator and the demo project's temperatures


def history_days(now: pd.Timestamp, tz: str) -> int:
    """At least `MIN_HISTORY_DAYS`, and back to 1 January of last year, so rankings, quota
    levels and the carbon ledger have one complete year and this year has a
    year-on-year comparison."""
    jan1 = pd.Timestamp(year=now.tz_convert(tz).year - 1, month=1, day=1, tz=tz)
    return max(MIN_HISTORY_DAYS, (now - jan1).days + 1)


def backfill(store: Store, registry: Registry, days: int, now: pd.Timestamp,
             meters: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Write `days` of history up to `now` for meters that have none; return the last
    stored sample of every meter (where the simulator continues). `meters`: the
    simulator's meter dicts (default `meters_for_sim(registry)`; the demo passes them
    with its retrofit).

    The history is generated in one pass at the poll interval (indices must be
    continuous), then kept at that interval for the last `FULL_RESOLUTION_DAYS` and
    hourly before, which is how a site with a year of archived hourly readings and a
    month of live polling looks."""
    from civicwatt.commands.simulate import meters_for_sim
    from device_sim.history import end_values, generate_history

    have = set(store.meter_ids())
    todo = [m for m in (meters if meters is not None else meters_for_sim(registry)) if m["id"] not in have]
    if not todo:
        last = store.last_samples_before(now + pd.Timedelta(seconds=1))
        return last[["meter_id", "time", "value"]]
    start = (now - pd.Timedelta(days=days)).floor("D")
    interval = min(int(m.get("interval_s") or LIVE_INTERVAL_S) for m in todo)
    with tqdm(total=days, desc=f"generating {days} days x {len(todo)} meters", unit="day", file=sys.stderr) as bar:
        def advance(done: int, total: int) -> None:
            bar.update(round(days * done / total) - bar.n)

        history = generate_history(todo, start, now, interval_s=interval, seed=SEED, progress=advance)
    t = history["time"]
    recent = t >= now - pd.Timedelta(days=FULL_RESOLUTION_DAYS)
    history = history[recent | (t.dt.minute == 0) & (t.dt.second == 0)]
    # the store keeps hourly and daily consumption up to date as the samples go in
    with tqdm(total=len(history), desc="history into the store (with consumption)", unit="sample", unit_scale=True,
              file=sys.stderr) as bar:
        for i in range(0, len(history), WRITE_CHUNK):
            chunk = history.iloc[i:i + WRITE_CHUNK]
            store.write_samples(chunk)
            bar.update(len(chunk))
    last = end_values(history)
    if have:
        last = pd.concat([store.last_samples_before(now + pd.Timedelta(seconds=1), sorted(have)), last])
    return last[["meter_id", "time", "value"]].reset_index(drop=True)


def run(args: argparse.Namespace) -> int:
    from civicwatt.commands.simulate import meters_for_sim
    from civicwatt.runtime import Runtime
    from civicwatt.web import announce_ready, create_web_app
    from core.users import ensure_admin
    from dashboard.app import serve
    from device_sim.server import Simulator

    base = Path(args.dir)
    written = write_sample(base, base_port=args.modbus_port)
    registry_path = Path(args.registry)  # the CLI's default: base/civicwatt.yaml
    registry = load_registry(registry_path)
    busy = _busy_ports(args.host, args.port, registry)
    if busy:
        print(f"civicwatt demo: {busy}", file=sys.stderr)
        return 1
    quotas_path = base / "quotas.yaml"
    store = open_registry_store(registry, args.store)
    print(f"registry   {registry_path} ({len(registry.institutions)} institutions, {len(registry.meters)} meters)"
          + (" [new]" if written else ""))
    print(f"store      {redact_url(store.url)}")
    users_file = Path(args.users)
    config_note, found_here = _write_config(base, args, quotas_path)
    print(f"config     {config_note}")

    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    setup, note = demo_mv_setup(base, store, registry, now, args.days)
    days = args.days or history_days(now, registry.timezone)
    if setup is not None and not args.days:
        days = max(days, (now.tz_convert(registry.timezone).date() - setup.history_start).days + 1)
    meters = meters_for_sim(registry)
    if setup is not None:
        write_sample_mv_project(base, registry, now, seed=SEED)
        retrofits = sample_retrofits(setup, base)
        meters = apply_retrofits(meters, retrofits)
        if CWS_RETROFIT_METER in retrofits:
            note += f"\n           {base / 'mv' / f'{CWS_PROJECT_ID}.yaml'} (water: retrofit of {CWS_RETROFIT_METER})"
    print(f"mv         {note}")
    last = backfill(store, registry, days, now, meters)
    print(f"history    {days} days up to {now.tz_convert(registry.timezone):%Y-%m-%d %H:%M} "
          f"({time.perf_counter() - started:.0f} s)")

    sim = Simulator(meters, seed=SEED, start_values=last).start()
    ports = sorted({m.modbus.port for m in registry.meters if m.modbus})
    print(f"simulator  Modbus TCP on 127.0.0.1 ports {ports[0]}-{ports[-1]} ({len(ports)} gateways)")

    outbox_dir = default_outbox_dir(store.url, fallback=base)
    quotas = load_optional_quotas(str(quotas_path), registry)
    channels = base / "channels.yaml"
    rt = Runtime(registry, store, base / "queue", outbox_dir, role="demo", quotas=quotas,
                 channels=channels if channels.exists() else None).start()
    print(f"collectors polling {len(registry.meters)} meters; queue in {base / 'queue'}")
    print(f"alerts     checks now and every {rt.check_interval_s / 60:g} min; outbox in {outbox_dir}"
          + ("" if quotas else " (no quotas.yaml: only the meter-data rules)"))
    print(f"health     {rt.heartbeat.path}")

    password = ensure_admin(users_file)
    mv_dirs = list(dict.fromkeys(p.resolve() for p in (registry_path.parent / "mv", outbox_dir / "mv", base / "mv")))
    app = create_web_app(registry, store, users_file, quotas_path=quotas_path if quotas_path.exists() else None,
                         data_dir=outbox_dir, mv_dirs=mv_dirs)
    handle = serve(app, args.host, args.port)
    print(f"dashboard  {handle.url}  user admin" + (f", password {password}" if password else
                                                     " (password set at the first start)"))
    print(f"api        {handle.url}/api/v1 (openapi.json; tokens: {_self_command()} users token admin), "
          f"health {handle.url}/healthz")
    print(f"           new admin password: {_self_command()} users passwd admin --generate"
          f"{'' if found_here else f' --users {users_file}'}")
    print("Ctrl-C stops everything.")
    announce_ready(app, "ready      the dashboard's first pages prepared in {s:.0f} s")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
    finally:
        handle.shutdown()
        rt.stop()
        sim.stop()
        rt.close()
        store.close()
    print("stopped; everything collected is in the store.")
    return 0


def _busy_ports(host: str, port: int, registry: Registry) -> str | None:
    """Why the demo cannot start, when the dashboard's port or one of the simulator's
    (from the registry) is taken; checked before the minute of backfilling."""
    def taken(h: str, p: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as both servers do
            try:
                s.bind((h, p))
            except OSError:
                return True
        return False

    if taken(host, port):
        return f"port {port} for the dashboard is in use: give --port N"
    modbus = sorted({(m.modbus.host, m.modbus.port) for m in registry.meters if m.modbus})
    used = [p for h, p in modbus if taken(h, p)]
    if used:
        return (f"Modbus port(s) {', '.join(map(str, used[:5]))}{' ...' if len(used) > 5 else ''} for the simulator "
                f"in use. The ports ({modbus[0][1]}-{modbus[-1][1]}) are in {registry.source}, written on the first "
                "start: free them, edit the file, or start afresh with another --dir and --modbus-port N")
    return None


def _config_dir(base: Path) -> Path:
    """Where the demo writes civicwatt.toml: the current directory, or next to `base`
    when `base` lies outside it."""
    cwd = Path.cwd()
    return cwd if base.resolve().is_relative_to(cwd) else base.resolve().parent


def _write_config(base: Path, args: argparse.Namespace, quotas_path: Path) -> tuple[str, bool]:
    """Write civicwatt.toml for the other verbs; return what to say about it, and
    whether verbs run in the current directory now find the demo's files."""
    path, ok = write_workdir_config(_config_dir(base), {
        "registry": args.registry, "store": args.store, "quotas": str(quotas_path),
        "channels": str(base / "channels.yaml"), "users": args.users})
    if not ok:
        return (f"{path} was not written by the demo and is left as it is: give the other verbs "
                f"--registry {args.registry} --store {args.store}"), False
    if path.parent == Path.cwd():
        return f"{path}: the other verbs run here find registry, store and users without options", True
    return f"{path}: the other verbs find registry, store and users when run in {path.parent}", False


def _self_command() -> str:
    """How to call this civicwatt again: `civicwatt` when that is on PATH, else its path."""
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    found = shutil.which("civicwatt")
    if me is not None and me.name == "civicwatt" and (found is None or Path(found).resolve() != me):
        return str(me)
    return "civicwatt"


def demo_mv_setup(base: Path, store: Store, registry: Registry, now: pd.Timestamp,
                  days: int | None) -> tuple[SampleMVSetup | None, str]:
    """The demo project's set-up (None: no project, no retrofit) and a line saying why.

    An existing project in `base`/mv fixes the dates (its history was generated with
    its retrofit); otherwise a new one is set up for `now`, unless the store already
    holds history of the retrofitted meter without it, or `days` is too short to cover
    its baseline."""
    mv_file = base / "mv" / f"{MV_PROJECT_ID}.yaml"
    if not sample_mv_applies(registry):
        return None, f"no demo savings project (the registry has no {MV_RETROFIT_METER} lighting sub-meter)"
    existing = read_sample_mv_setup(base)
    if existing is not None:
        return existing, f"{mv_file} (retrofit of {MV_RETROFIT_METER} from {existing.retrofit_start})"
    if MV_RETROFIT_METER in set(store.meter_ids()):
        return None, (f"no demo savings project: the store's history of {MV_RETROFIT_METER} predates it "
                      "(start with a new --dir to get one)")
    setup = sample_mv_setup(now, registry.timezone)
    if days and (now.tz_convert(registry.timezone).date() - setup.history_start).days + 1 > days:
        return None, f"no demo savings project: --days {days} does not reach its baseline ({setup.baseline[0]})"
    return setup, f"{mv_file} [new] (retrofit of {MV_RETROFIT_METER} from {setup.retrofit_start})"
