"""The collector service: wires the scheduler, the poll loop, the state machine, the disk queue and the store.

    APScheduler job per poll interval -> PollLoop (collectors.poll_loop: asyncio, one
      GatewayPoller per gateway, in its own thread)
      -> Ingester thread (collectors.ingest): collectors.meter_state.step (validity
         checks, gap attribution, offline/online events), one SQLite transaction per
         batch with the meters' new state (collectors.queue)
      -> Forwarder thread (collectors.forward): queue -> store.write_samples /
         write_events, in order

Sample times are the poll *slots*: multiples of the meter's interval (15 min by
default) in epoch time, i.e. aligned to the local hour in whole-hour time zones. A
sample's key (meter, slot) is then the same however late a poll answers or however
often a sample is re-sent, and "every expected sample" is well defined.

Offline meters and gap attribution: see `collectors.meter_state`. The state survives
in the queue file, so a gap while the collector itself was down is attributed too.

APScheduler (`self.scheduler`, a BackgroundScheduler) fires one job per distinct poll
interval; a job only hands the slot to the asyncio loop, so no poll can stall the
scheduler. Other components add their jobs to it (`civicwatt.runtime`: consumption
upkeep, alert checks and delivery, registered jobs).

Health: `health()` is the `collect` section of the process heartbeat (`core.health`):
last (successful) poll, counters, queue backlog, poll slots the scheduler skipped;
given a `heartbeat`, the service registers it there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collectors import meter_state
from collectors.forward import Forwarder
from collectors.ingest import Ingester
from collectors.meter_state import MeterState, MeterTable
from collectors.poll_loop import PollLoop, build_pollers
from collectors.queue import DiskQueue
from collectors.shard import gateway_shard
from core.health import iso
from core.profiles import load_profiles
from core.schemas.gateways import GatewayOptions

log = logging.getLogger("civicwatt.collect")

SEED_FILTER_MAX = 500  # more meters to seed than this: read every meter's last sample (no 10k-term filters)


class CollectorService:
    """Collect every Modbus meter of `registry` (or of its shard) into `store`."""

    def __init__(self, registry: Any, store: Any, queue_dir: str | Path, shard: tuple[int, int] = (1, 1),
                 gateway_options: dict[str, GatewayOptions | dict[str, Any]] | None = None,
                 interval_s: int | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
                 max_gateways_in_flight: int = 256, offline_after: int | None = None, heartbeat: Any = None):
        self.registry = registry
        self.store = store
        self.shard = shard
        self.on_event = on_event
        self.offline_after = offline_after  # None: each gateway's offline_polls (core.rules.OFFLINE_POLLS)
        self.max_gateways_in_flight = max_gateways_in_flight
        self.queue = DiskQueue(queue_dir, exclusive=True)  # QueueBusy if another collector has it
        self.events_file = Path(queue_dir) / "events.jsonl"
        i, n = shard
        meters = [m for m in registry.meters
                  if m.modbus is not None and gateway_shard(m.modbus.host, m.modbus.port, n) == i]
        options = {k: (v if isinstance(v, GatewayOptions) else GatewayOptions.from_dict(v))
                   for k, v in (gateway_options or {}).items()}
        self.meters = MeterTable.from_meters(meters, interval_s, options)
        self.meter_ids = self.meters.meter_ids
        self.pollers = build_pollers(meters, options, load_profiles())
        state = meter_state.restore_state(self.meters, self.queue.load_state())  # after a restart
        for target in (t for p in self.pollers.values() for t in p.targets):
            target.fails = int(state.fails[target.row])
        self._forwarder = Forwarder(self.queue, store)
        self._ingester = Ingester(self.meters, self._seed_from_store(state), self.queue, self._emit,
                                  self._forwarder.wake, offline_after)
        self._loop = PollLoop(self.pollers, self.meters.interval_s, self._ingester.put, max_gateways_in_flight)
        self.scheduler = BackgroundScheduler(timezone=str(getattr(registry, "timezone", "UTC")))
        self.slots_missed = 0  # poll slots the scheduler skipped (a cycle still running, or the process stalled)
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        if heartbeat is not None:
            heartbeat.provide("collect", self.health)

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: polls, ok, failed, samples_queued, estimated (filled
        slots), sent (to the store), store_errors, cycles (gateway poll cycles)."""
        return {**self._ingester.counts, **self._forwarder.counts, "cycles": self._loop.cycles}

    def health(self) -> dict[str, Any]:
        """The `collect` section of the heartbeat (format: `core.health`)."""
        intervals = self.meters.interval_s
        return {"shard": f"{self.shard[0]}/{self.shard[1]}", "meters": len(self.meter_ids),
                "gateways": len(self.pollers), "poll_interval_s": int(intervals.min()) if len(intervals) else None,
                "last_poll_at": iso(self._ingester.last_poll_at), "last_poll_ok_at": iso(self._ingester.last_ok_at),
                **self.stats, "queue_backlog": self.queue.backlog(), "slots_missed": self.slots_missed,
                "held_in_memory": self._ingester.held, "dropped": self._ingester.dropped}

    def _missed(self, event: JobEvent) -> None:
        if str(event.job_id).startswith("poll-"):
            self.slots_missed += 1
            log.warning("poll job %s skipped a slot (the previous cycles are still running)", event.job_id)

    @property
    def state(self) -> MeterState:
        """The meters' state as last committed to the queue."""
        return self._ingester.state

    def _seed_from_store(self, state: MeterState) -> MeterState:
        """Meters the queue has no state for (first start, or after `civicwatt demo`'s
        backfill) take the store's last sample as their baseline."""
        fresh = state.unseeded()
        if len(fresh) == 0:
            return state
        try:
            ids = [self.meter_ids[r] for r in fresh] if len(fresh) <= SEED_FILTER_MAX else None
            last = self.store.last_samples_before(pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1), ids)
        except Exception as exc:  # the store may be down at start: collect anyway
            log.warning("could not read the last stored samples (%s); starting without a baseline", exc)
            return state
        return meter_state.seed_state(self.meters, state, last)

    # -- lifecycle --------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._loop.running:
            return
        self._loop.start()
        self._ingester.start()
        self._forwarder.start()

    def start(self) -> CollectorService:
        """Start polling on schedule (and the queue drainer)."""
        self._ensure_running()
        now = time.time()
        for iv in sorted(set(self.meters.interval_s.tolist())):
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
        self._loop.wait_inflight(flush_timeout_s)
        if not self._loop.running:
            return self.queue.backlog() == 0
        self._ingester.sync()
        empty = self.flush(max(0.0, deadline - time.monotonic()))
        self._loop.stop()
        self._ingester.stop()
        self._forwarder.stop()
        return empty

    def close(self) -> None:
        self.stop()
        self.queue.close()

    # -- polling ----------------------------------------------------------------
    def _tick(self, iv: int) -> None:
        # the job is due at a slot boundary: the nearest boundary is its slot (a job that
        # fires a hair early must not poll the previous slot again)
        self._loop.submit(round(time.time() / iv) * iv, iv)

    def poll_once(self, at: float | pd.Timestamp | None = None, timeout_s: float = 600.0) -> dict[str, int]:
        """Poll every meter once for the slot containing `at` (epoch s or a timestamp;
        default now), wait until the samples are committed to the disk queue; return
        counts (polls, ok, failed)."""
        self._ensure_running()
        t = time.time() if at is None else (pd.Timestamp(at).timestamp() if not isinstance(at, int | float) else at)
        before = self.stats
        self._loop.submit(float(t)).result(timeout_s)
        self._ingester.sync()
        after = self.stats
        return {k: after[k] - before[k] for k in ("polls", "ok", "failed")}

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the queue is empty (everything in the store); True if it is."""
        return self._forwarder.flush(timeout_s)

    # -- events -----------------------------------------------------------------
    def _emit(self, event: dict[str, Any]) -> None:
        """An offline/online event to the log, QUEUE/events.jsonl and `on_event`."""
        (log.warning if event["severity"] == "warning" else log.info)(event["message_en"])
        with contextlib.suppress(OSError), self.events_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("event handler failed")
