"""`civicwatt demo`: the whole system on one laptop.

1. writes the sample portfolio (`civicwatt.yaml`, `quotas.yaml`) into `--dir` unless it is
   there already;
2. backfills `--days` of hourly history straight into the store (computed, not polled),
   unless the store already holds it;
3. starts the Modbus simulator for every meter, continuing the history's indices;
4. starts the collectors and the scheduler (15-minute polls, rollups, quota checks and
   alerts);
5. serves the dashboard and prints where, with a generated admin password.

Ctrl-C stops the dashboard, flushes the collectors' queue into the store, and stops the
simulator.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from civicwatt.context import open_registry_store
from civicwatt.registry import Registry, load_registry
from civicwatt.sample import write_sample
from quotas.notify import default_outbox_dir
from storage import Store

HISTORY_INTERVAL_S = 3600  # backfilled history is hourly; live polling is every 15 minutes
HISTORY_CHUNK_DAYS = 50  # days generated and written at a time (keeps memory flat)
ROLLUP_EVERY_MIN = 5
QUOTA_CHECK_EVERY_MIN = 60


def backfill(registry: Registry, store: Store, days: int, now: pd.Timestamp) -> pd.DataFrame:
    """Write `days` of hourly history up to `now` for meters that have none; return the
    last stored sample of every meter (where the simulator continues)."""
    from civicwatt.commands.simulate import meters_for_sim
    from device_sim.history import end_values, generate_history

    meters = meters_for_sim(registry)
    have = set(store.meter_ids())
    todo = [m for m in meters if m["id"] not in have]
    start = (now - pd.Timedelta(days=days)).floor("D")
    last = store.last_samples_before(now + pd.Timedelta(seconds=1))
    if todo:
        edges = pd.date_range(start, now, freq=f"{HISTORY_CHUNK_DAYS}D").append(pd.DatetimeIndex([now]))
        with tqdm(total=len(edges) - 1, desc=f"history {days} days x {len(todo)} meters", unit="chunk",
                  file=sys.stderr) as bar:
            prev_end = None
            for lo, hi in itertools.pairwise(edges):
                chunk = generate_history(todo, lo, hi, interval_s=HISTORY_INTERVAL_S, seed=1)
                if prev_end is not None:
                    chunk = chunk[chunk["time"] > prev_end]
                store.write_samples(chunk)
                prev_end = chunk["time"].max()
                last = end_values(chunk)
                bar.update(1)
        if hasattr(store, "refresh_rollups"):
            print("computing daily rollups ...", file=sys.stderr)
            store.refresh_rollups()
        last = store.last_samples_before(now + pd.Timedelta(seconds=1))
    return last[["meter_id", "time", "value"]]


def run(args: argparse.Namespace) -> int:
    from civicwatt.commands.simulate import meters_for_sim
    from collectors.service import CollectorService
    from dashboard.app import create_app, serve
    from dashboard.auth import ensure_admin
    from device_sim.server import Simulator

    base = Path(args.dir)
    written = write_sample(base, base_port=args.modbus_port)
    registry_path = base / "civicwatt.yaml"
    if args.registry != "./civicwatt.yaml":
        registry_path = Path(args.registry)
    registry = load_registry(registry_path)
    quotas_path = base / "quotas.yaml"
    store_url = args.store or f"embedded:{base / 'data'}"
    store = open_registry_store(registry, store_url)
    print(f"registry   {registry_path} ({len(registry.institutions)} institutions, {len(registry.meters)} meters)"
          + (" [new]" if written else ""))
    print(f"store      {store.url}")

    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    last = backfill(registry, store, args.days, now)
    print(f"history    {args.days} days up to {now.tz_convert(registry.timezone):%Y-%m-%d %H:%M} "
          f"({time.perf_counter() - started:.0f} s)")

    sim = Simulator(meters_for_sim(registry), seed=1, start_values=last).start()
    ports = sorted({m.modbus.port for m in registry.meters if m.modbus})
    print(f"simulator  Modbus TCP on 127.0.0.1 ports {ports[0]}-{ports[-1]} ({len(ports)} gateways)")

    collector = CollectorService(registry, store, base / "queue")
    if hasattr(store, "refresh_rollups"):
        collector.scheduler.add_job(store.refresh_rollups, "interval", minutes=ROLLUP_EVERY_MIN, id="rollups",
                                    max_instances=1, coalesce=True)
    outbox_dir = default_outbox_dir(store.url, fallback=base)
    alerts = _alert_service(registry, store, quotas_path, outbox_dir, base / "channels.yaml")
    if alerts is not None:
        alerts.add_jobs(collector.scheduler)
        collector.scheduler.add_job(alerts.daily, "date", id="first-alert-check")  # once at start-up
    collector.start()
    print(f"collectors polling {len(registry.meters)} meters; queue in {base / 'queue'}")
    print(f"alerts     outbox in {outbox_dir}" + ("" if alerts else " (no quotas.yaml: quota checks off)"))

    users_file = base / "users.yaml"
    password = ensure_admin(users_file)
    app = create_app(registry, store, users_file, quotas_path=quotas_path if quotas_path.exists() else None,
                     data_dir=outbox_dir)
    handle = serve(app, args.host, args.port)
    print(f"dashboard  {handle.url}  user admin" + (f", password {password}" if password else
                                                     f" (password set earlier, see {users_file})"))
    print("Ctrl-C stops everything.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
    finally:
        handle.shutdown()
        collector.stop()
        sim.stop()
        store.close()
    print("stopped; everything collected is in the store.")
    return 0


def _alert_service(registry: Registry, store: Store, quotas_path: Path, outbox_dir: Path, channels: Path):
    """Scheduled alert checks into the outbox, delivered through `channels` (a
    channels.yaml next to the registry; without it alerts are kept for the dashboard)."""
    if not quotas_path.exists():
        return None
    from quotas.alerts_schedule import AlertService
    from quotas.config import load_quotas
    from quotas.notify import Outbox

    outbox = Outbox(outbox_dir, channels if channels.exists() else None)
    return AlertService(store, registry, load_quotas(quotas_path, registry), outbox)
