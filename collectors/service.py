"""The collector service: schedule, poll, decode, validate, queue on disk, store.

    poll (asyncio, one GatewayPoller per gateway)
      -> ingest thread: validity checks (collectors.validate), gap attribution,
         offline/online events, one SQLite transaction per batch (collectors.queue)
      -> drainer thread: queue -> store.write_samples / write_events, in order

Sample times are the poll *slots*: multiples of the meter's interval (15 min by
default) in epoch time, i.e. aligned to the local hour in whole-hour time zones. A
sample's key (meter, slot) is then the same however late a poll answers or however
often a sample is re-sent, and "every expected sample" is well defined.

Offline meters: after `offline_after` failed polls in a row the meter is offline (an
event, see `on_event`). When it answers again, every slot it missed gets a sample
interpolated linearly between the last good index and the new one (the consumption of
the gap attributed in proportion to time), flagged ESTIMATED, and the first sample
after the gap is flagged ESTIMATED too (its interval's consumption is attributed). The
same happens after the collector itself was down (state survives in the queue file).

APScheduler (`self.scheduler`, a BackgroundScheduler) fires one job per distinct poll
interval; a job only hands the slot to the asyncio loop, so no poll can stall the
scheduler. Other components may add their jobs (rollups, quota checks) to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collectors import validate
from collectors.decode import INSTANT_REGISTERS, profile_plan
from collectors.poller import GatewayOptions, GatewayPoller, Target
from collectors.queue import STATE_COLUMNS, DiskQueue
from collectors.shard import gateway_shard
from core.profiles import load_profiles
from storage import quality

log = logging.getLogger("civicwatt.collect")

OFFLINE_AFTER = 3  # domain.md section 5: a meter that has not answered for N polls is offline
MAX_FILL_SLOTS = 20_000  # longest gap filled sample by sample (longer gaps: the rollup interpolates)
INGEST_BATCH_S = 0.25  # the ingest thread commits at least this often while polls come in
DRAIN_BATCH = 50_000
DRAIN_BACKOFF_MAX_S = 30.0


class CollectorService:
    """Collect every Modbus meter of `registry` (or of its shard) into `store`."""

    def __init__(self, registry: Any, store: Any, queue_dir: str | Path, shard: tuple[int, int] = (1, 1),
                 gateway_options: dict[str, GatewayOptions | dict[str, Any]] | None = None,
                 interval_s: int | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
                 max_gateways_in_flight: int = 256, offline_after: int = OFFLINE_AFTER):
        self.registry = registry
        self.store = store
        self.shard = shard
        self.on_event = on_event
        self.offline_after = offline_after
        self.max_gateways_in_flight = max_gateways_in_flight
        self.queue = DiskQueue(queue_dir)
        self.events_file = Path(queue_dir) / "events.jsonl"
        options = {k: (v if isinstance(v, GatewayOptions) else GatewayOptions.from_dict(v))
                   for k, v in (gateway_options or {}).items()}
        default = options.get("*", GatewayOptions())
        i, n = shard
        profiles = load_profiles()
        meters = [m for m in registry.meters
                  if m.modbus is not None and gateway_shard(m.modbus.host, m.modbus.port, n) == i]
        self.meter_ids = [m.id for m in meters]
        self.row_of = {mid: r for r, mid in enumerate(self.meter_ids)}
        n_rows = len(meters)
        self.interval = np.array([int(interval_s or m.modbus.interval_s) for m in meters], dtype=np.int64)
        self.rated = np.array([m.rated if m.rated else np.nan for m in meters], dtype=float)
        self.multiplier = np.array([m.multiplier for m in meters], dtype=float)
        self.rollover = np.array([m.rollover_at if m.rollover_at else np.nan for m in meters], dtype=float)
        self.institution = [m.institution for m in meters]
        self.pollers: dict[tuple[str, int], GatewayPoller] = {}
        groups: dict[tuple[str, int], list[Target]] = {}
        plans: dict[tuple[str, int], Any] = {}
        for r, m in enumerate(meters):
            key = (m.modbus.host, m.modbus.port)
            opts = options.get(f"{key[0]}:{key[1]}", default)
            prof = profiles[m.modbus.profile]
            if (m.modbus.profile, opts.max_registers) not in plans:
                plans[(m.modbus.profile, opts.max_registers)] = profile_plan(m.modbus.profile, opts.max_registers)
            plan = plans[(m.modbus.profile, opts.max_registers)]
            inst = next((x for x in INSTANT_REGISTERS if x in prof["registers"]), None)
            ispec = prof["registers"].get(inst, {}) if inst else {}
            groups.setdefault(key, []).append(Target(
                row=r, meter_id=m.id, unit=m.modbus.unit, plan=plan, multiplier=float(m.multiplier),
                energy_ct_pt=bool(prof["registers"]["energy"].get("ct_pt")), instant_name=inst,
                instant_ct_pt=bool(ispec.get("ct_pt")), instant_per_kilo=0.001 if ispec.get("unit") == "W" else 1.0))
        for key, targets in groups.items():
            self.pollers[key] = GatewayPoller(key[0], key[1], targets,
                                              options.get(f"{key[0]}:{key[1]}", default))
        # per-meter state (restored from the queue file after a restart)
        self.last_t = np.full(n_rows, -1, dtype=np.int64)
        self.last_v = np.full(n_rows, np.nan)
        self.fails = np.zeros(n_rows, dtype=np.int64)
        self.offline_since = np.full(n_rows, -1, dtype=np.int64)
        self.spike_run = np.zeros(n_rows, dtype=np.int64)
        self.seen_t = np.full(n_rows, -1, dtype=np.int64)  # last slot answered (flagged or not)
        saved = self.queue.load_state()
        if len(saved):
            rows = pd.Index(self.meter_ids).get_indexer(saved["meter_id"])
            ok = rows >= 0
            r = rows[ok]
            self.last_t[r] = saved["t"].to_numpy(np.int64)[ok]
            self.last_v[r] = saved["value"].to_numpy(float)[ok]
            self.fails[r] = saved["fails"].to_numpy(np.int64)[ok]
            self.offline_since[r] = saved["offline_since"].to_numpy(np.int64)[ok]
            self.spike_run[r] = saved["spike_run"].to_numpy(np.int64)[ok]
            self.seen_t[r] = saved["seen_t"].to_numpy(np.int64)[ok]
            for t in (t for p in self.pollers.values() for t in p.targets):
                t.fails = int(self.fails[t.row])
        self._seed_from_store()
        self.scheduler = BackgroundScheduler(timezone=str(getattr(registry, "timezone", "UTC")))
        self.stats = {"polls": 0, "ok": 0, "failed": 0, "samples_queued": 0, "estimated": 0, "sent": 0,
                      "store_errors": 0, "cycles": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._ingest_q: queue_mod.Queue = queue_mod.Queue()
        self._ingest_thread: threading.Thread | None = None
        self._drain_thread: threading.Thread | None = None
        self._drain_wake = threading.Event()
        self._stopping = threading.Event()
        self._sem: asyncio.Semaphore | None = None
        self._inflight: set[Any] = set()
        self._inflight_lock = threading.Lock()
        self._last_store_warning = 0.0

    def _seed_from_store(self) -> None:
        """Meters the queue has no state for (first start, or after `civicwatt demo`'s
        backfill) take the store's last sample as their baseline, so checks and gap
        attribution continue from the stored history."""
        fresh = np.flatnonzero(self.last_t < 0)
        if len(fresh) == 0:
            return
        try:
            ids = [self.meter_ids[r] for r in fresh] if len(fresh) <= 500 else None  # no 10k-term filters
            last = self.store.last_samples_before(pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1), ids)
        except Exception as exc:  # the store may be down at start: collect anyway
            log.warning("could not read the last stored samples (%s); starting without a baseline", exc)
            return
        if len(last) == 0:
            return
        rows = pd.Index(self.meter_ids).get_indexer(last["meter_id"])
        t = pd.DatetimeIndex(last["time"]).as_unit("s").asi8
        ok = rows >= 0
        ok[ok] &= self.last_t[rows[ok]] < 0
        self.last_t[rows[ok]] = t[ok]
        self.seen_t[rows[ok]] = t[ok]
        self.last_v[rows[ok]] = last["value"].to_numpy(float)[ok]

    # -- lifecycle --------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._loop_thread is not None:
            return
        self._stopping.clear()
        ready = threading.Event()

        def loop_main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._sem = asyncio.Semaphore(self.max_gateways_in_flight)
            ready.set()
            self._loop.run_forever()
            for poller in self.pollers.values():
                self._loop.run_until_complete(poller.close())
            self._loop.close()

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # timeouts are ours to report
        self._loop_thread = threading.Thread(target=loop_main, name="civicwatt-poll", daemon=True)
        self._loop_thread.start()
        ready.wait()
        self._ingest_thread = threading.Thread(target=self._ingest_main, name="civicwatt-ingest", daemon=True)
        self._ingest_thread.start()
        self._drain_thread = threading.Thread(target=self._drain_main, name="civicwatt-drain", daemon=True)
        self._drain_thread.start()

    def start(self) -> CollectorService:
        """Start polling on schedule (and the queue drainer)."""
        self._ensure_running()
        now = time.time()
        for iv in sorted(set(self.interval.tolist())):
            first = math.floor(now / iv) * iv + iv
            self.scheduler.add_job(self._tick, IntervalTrigger(seconds=int(iv), start_date=pd.Timestamp(
                first, unit="s", tz="UTC").to_pydatetime()), args=[int(iv)], id=f"poll-{iv}s",
                name=f"poll meters every {iv}s", misfire_grace_time=int(iv), coalesce=True, max_instances=4,
                replace_existing=True)
        if not self.scheduler.running:
            self.scheduler.start()
        log.info("collecting %d meters behind %d gateways (shard %d/%d)", len(self.meter_ids), len(self.pollers),
                 *self.shard)
        return self

    def stop(self, flush_timeout_s: float = 30.0) -> bool:
        """Stop polling, commit what was polled, try to send the queue to the store.
        Returns True when the queue is empty (else it stays on disk for the next start)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + flush_timeout_s
        with self._inflight_lock:
            inflight = list(self._inflight)
        for fut in inflight:
            with contextlib.suppress(Exception):
                fut.result(timeout=max(0.1, deadline - time.monotonic()))
        if self._loop_thread is None:
            return self.queue.backlog() == 0
        self._sync_ingest()
        empty = self.flush(max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        self._drain_wake.set()
        self._ingest_q.put(None)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        for th in (self._loop_thread, self._ingest_thread, self._drain_thread):
            if th is not None:
                th.join(10)
        self._loop_thread = self._ingest_thread = self._drain_thread = None
        return empty

    def close(self) -> None:
        self.stop()
        self.queue.close()

    # -- polling ----------------------------------------------------------------
    def _tick(self, iv: int) -> None:
        # the job is due at a slot boundary: the nearest boundary is its slot (a job that
        # fires a hair early must not poll the previous slot again)
        slot = round(time.time() / iv) * iv
        self._submit(slot, iv)

    def _submit(self, at: float, only_interval: int | None = None) -> Any:
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(self._poll_all(at, only_interval), self._loop)
        with self._inflight_lock:
            self._inflight.add(fut)
        fut.add_done_callback(lambda f: self._inflight.discard(f))
        return fut

    async def _poll_gateway(self, poller: GatewayPoller, slot_of: dict[int, int], deadline: float) -> None:
        assert self._sem is not None
        async with self._sem:
            out: list[tuple] = []
            try:
                await poller.poll(slot_of, deadline, out)
            finally:
                self.stats["cycles"] += 1
                if out:
                    self._ingest_q.put(out)

    async def _poll_all(self, at: float, only_interval: int | None) -> None:
        tasks = []
        for poller in self.pollers.values():
            rows = [t.row for t in poller.targets if only_interval is None or self.interval[t.row] == only_interval]
            if not rows:
                continue
            slot_of = {r: int(math.floor(at / self.interval[r]) * self.interval[r]) for r in rows}
            deadline = max(1.0, float(min(self.interval[rows])) * poller.options.cycle_fraction)
            tasks.append(self._poll_gateway(poller, slot_of, deadline))
        await asyncio.gather(*tasks)

    def poll_once(self, at: float | pd.Timestamp | None = None, timeout_s: float = 600.0) -> dict[str, int]:
        """Poll every meter once for the slot containing `at` (default now), wait until
        the samples are committed to the disk queue; return counts (polls, ok, failed)."""
        self._ensure_running()
        t = time.time() if at is None else (pd.Timestamp(at).timestamp() if not isinstance(at, int | float) else at)
        before = {k: self.stats[k] for k in ("polls", "ok", "failed")}
        self._submit(float(t)).result(timeout_s)
        self._sync_ingest()
        return {k: self.stats[k] - before[k] for k in before}

    # -- ingest -----------------------------------------------------------------
    def _sync_ingest(self) -> None:
        """Wait until everything handed to the ingest thread is committed."""
        if self._ingest_thread is None:
            return
        done = threading.Event()
        self._ingest_q.put(done)
        done.wait()

    def _ingest_main(self) -> None:
        pending: list[tuple] = []  # polled but not yet committed (kept when the disk refuses a commit)
        while True:
            try:
                item = self._ingest_q.get(timeout=1.0 if pending else None)
            except queue_mod.Empty:
                item = []
            if item is None:
                if pending:
                    log.error("stopping with %d polled samples that could not be written to the queue", len(pending))
                return
            batch: list[tuple] = []
            waiters: list[threading.Event] = []
            deadline = time.monotonic() + INGEST_BATCH_S
            while True:
                if isinstance(item, threading.Event):
                    waiters.append(item)
                    break  # commit now: someone waits
                if item is None:
                    self._ingest_q.put(None)
                    break
                batch.extend(item)
                try:
                    item = self._ingest_q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue_mod.Empty:
                    break
            pending.extend(batch)
            if pending:
                try:
                    self._ingest(pending)
                    pending = []
                except Exception:  # e.g. disk full: keep the samples in memory, retry, keep polling
                    log.exception("could not commit %d poll results to the queue; keeping them and retrying",
                                  len(pending))
            for w in waiters:
                w.set()

    _STATE = ("last_t", "last_v", "fails", "offline_since", "spike_run", "seen_t")

    def _ingest(self, batch: list[tuple]) -> None:
        """Validate and commit a batch; on failure the per-meter state is as before."""
        saved = {name: getattr(self, name).copy() for name in self._STATE}
        stats = dict(self.stats)
        try:
            self._ingest_unsafe(batch)
        except BaseException:
            for name, arr in saved.items():
                setattr(self, name, arr)
            self.stats.update(stats)
            raise

    def _ingest_unsafe(self, batch: list[tuple]) -> None:
        df = pd.DataFrame(batch, columns=["row", "t", "value", "power", "error"])
        self.stats["polls"] += len(df)
        ok = df["error"].isna().to_numpy() & np.isfinite(df["value"].to_numpy(float))
        failed = df[~ok]
        good = df[ok].sort_values(["t", "row"], kind="stable")
        self.stats["ok"] += len(good)
        self.stats["failed"] += len(failed)
        events_out: list[dict[str, Any]] = []
        changed = set()
        # failures: count, raise `offline` once
        if len(failed):
            rows = failed["row"].to_numpy(np.int64)
            ts = failed["t"].to_numpy(np.int64)
            np.add.at(self.fails, rows, 1)
            newly = (self.fails[rows] >= self.offline_after) & (self.offline_since[rows] < 0)
            for r, t in zip(rows[newly], ts[newly], strict=True):
                self.offline_since[r] = int(t) - (self.offline_after - 1) * int(self.interval[r])
                events_out.append(self._event("meter_offline", int(r), int(self.offline_since[r]), None,
                                              failed.loc[failed["row"] == r, "error"].iloc[-1]))
            changed.update(rows.tolist())
        samples, sample_events = [], []
        # successes, one round per repeated meter so each row sees its predecessor
        rnd = good.groupby("row").cumcount().to_numpy()
        for k in range(int(rnd.max()) + 1 if len(good) else 0):
            part = good[rnd == k]
            rows = part["row"].to_numpy(np.int64)
            t = part["t"].to_numpy(np.int64)
            v = part["value"].to_numpy(float)
            has_prev = self.last_t[rows] >= 0
            prev_v = np.where(has_prev, self.last_v[rows], np.nan)
            dt = np.where(has_prev, t - self.last_t[rows], np.nan).astype(float)
            newer = ~has_prev | (t > self.last_t[rows])
            flags, wrap = validate.check(v, part["power"].to_numpy(float), prev_v, dt, self.rated[rows],
                                         self.multiplier[rows], self.rollover[rows])
            spike = (flags & quality.SPIKE) != 0
            decrease = (flags & quality.DECREASE) != 0
            iv = self.interval[rows]
            seen = np.maximum(self.seen_t[rows], self.last_t[rows])
            gap = has_prev & newer & (t - seen > iv)
            fill = gap & ~spike & ~decrease & ~wrap
            flags = np.where(gap, flags | quality.ESTIMATED, flags)
            # attribute the gap: interpolate the index at every missed slot (from the
            # last good sample to this one, at the slots after the last answered one)
            if fill.any():
                f_rows = rows[fill]
                rep, ft, fv = validate.attribute_gaps(self.last_t[rows][fill], self.last_v[rows][fill], seen[fill],
                                                      t[fill], v[fill], iv[fill], MAX_FILL_SLOTS)
                if len(ft):
                    samples.append(pd.DataFrame({"row": f_rows[rep], "t": ft, "value": fv,
                                                 "quality": np.full(len(ft), quality.ESTIMATED, np.int64)}))
                    self.stats["estimated"] += len(ft)
            samples.append(pd.DataFrame({"row": rows, "t": t, "value": v, "quality": flags}))
            if wrap.any():
                sample_events.append(pd.DataFrame({"row": rows[wrap], "t": t[wrap], "kind": "rollover",
                                                   "old_index": self.rollover[rows][wrap], "new_index": 0.0}))
            # back online?
            back = self.offline_since[rows] >= 0
            for r, tt in zip(rows[back], t[back], strict=True):
                events_out.append(self._event("meter_online", int(r), int(self.offline_since[r]), int(tt), None))
            self.offline_since[rows] = -1
            self.fails[rows] = 0
            # the new baseline: not a one-off spike (a second spike in a row is a real jump)
            run = np.where(spike, self.spike_run[rows] + 1, 0)
            take = newer & (~spike | (run >= 2))
            self.spike_run[rows] = np.where(take, 0, run)
            self.seen_t[rows] = np.maximum(self.seen_t[rows], t)
            self.last_t[rows[take]] = t[take]
            self.last_v[rows[take]] = v[take]
            changed.update(rows.tolist())
        all_samples = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(
            columns=["row", "t", "value", "quality"])
        ids = np.array(self.meter_ids, dtype=object)
        all_samples["meter_id"] = ids[all_samples["row"].to_numpy(np.int64)] if len(all_samples) else []
        ev = pd.concat(sample_events, ignore_index=True) if sample_events else None
        if ev is not None:
            ev["meter_id"] = ids[ev["row"].to_numpy(np.int64)]
        ch = np.array(sorted(changed), dtype=np.int64)
        state = pd.DataFrame({"meter_id": ids[ch], "t": self.last_t[ch], "value": self.last_v[ch],
                              "fails": self.fails[ch], "offline_since": self.offline_since[ch],
                              "spike_run": self.spike_run[ch], "seen_t": self.seen_t[ch]})[STATE_COLUMNS]
        state = state[state["t"] >= 0] if len(state) else state
        self.queue.put(all_samples, ev, state.fillna({"value": 0.0}))
        self.stats["samples_queued"] += len(all_samples)
        self._drain_wake.set()
        for e in events_out:
            self._emit(e)

    def _event(self, rule: str, row: int, since: int, until: int | None, error: str | None) -> dict[str, Any]:
        mid = self.meter_ids[row]
        iso = pd.Timestamp(since, unit="s", tz="UTC").isoformat()
        if rule == "meter_offline":
            en = f"meter {mid} has not answered since {iso} ({error})"
            zh = f"计量表 {mid} 自 {iso} 起无应答（{error}）"
            severity = "warning"
        else:
            missed = (until - since) // int(self.interval[row]) if until else 0
            en = f"meter {mid} answers again; {missed} missed polls since {iso} filled as estimated"
            zh = f"计量表 {mid} 已恢复；自 {iso} 起缺失的 {missed} 次采集已按估算补齐"
            severity = "info"
        return {"rule": rule, "severity": severity, "institution_id": self.institution[row], "meter_id": mid,
                "indicator": "completeness", "period": iso, "since": iso,
                "until": None if until is None else pd.Timestamp(until, unit="s", tz="UTC").isoformat(),
                "message_en": en, "message_zh": zh,
                "first_seen": pd.Timestamp.now(tz="UTC").isoformat(), "key": f"{rule}:{mid}:{since}"}

    def _emit(self, event: dict[str, Any]) -> None:
        (log.warning if event["severity"] == "warning" else log.info)(event["message_en"])
        with contextlib.suppress(OSError), self.events_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("event handler failed")

    # -- draining ---------------------------------------------------------------
    def _drain_once(self) -> int:
        """Send one batch of events and samples; return how many samples were sent."""
        ev, ev_seq = self.queue.peek_events(DRAIN_BATCH)
        if len(ev):
            ev = ev.assign(time=pd.to_datetime(ev["t"], unit="s", utc=True)).drop(columns="t")
            self.store.write_events(ev[["meter_id", "time", "kind", "old_index", "new_index"]])
            self.queue.ack_events(ev_seq)
        df, seq = self.queue.peek_samples(DRAIN_BATCH)
        if len(df):
            self.store.write_samples(df)
            self.queue.ack_samples(seq)
            self.stats["sent"] += len(df)
        return len(df) + len(ev)

    def _drain_main(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                sent = self._drain_once()
            except Exception as exc:
                self.stats["store_errors"] += 1
                if time.monotonic() - self._last_store_warning > 60:
                    log.warning("store unavailable (%s); %d samples wait in the queue", exc, self.queue.backlog())
                    self._last_store_warning = time.monotonic()
                self._drain_wake.wait(backoff)
                self._drain_wake.clear()
                backoff = min(DRAIN_BACKOFF_MAX_S, backoff * 2)
                continue
            backoff = 0.5
            if sent == 0:
                self._drain_wake.wait(1.0)
                self._drain_wake.clear()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the queue is empty (everything in the store); True if it is."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.queue.backlog() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            if self._drain_thread is None or not self._drain_thread.is_alive():
                try:
                    self._drain_once()
                except Exception:
                    time.sleep(0.2)
            else:
                self._drain_wake.set()
                time.sleep(0.02)
