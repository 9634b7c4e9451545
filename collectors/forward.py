"""The forwarder thread: the disk queue to the store, oldest first, in batches, acknowledged.

Rollover events, then samples, `DRAIN_BATCH` rows at a time: a batch is deleted from
the queue only after the store accepted it (store writes are idempotent on (meter,
time), so a batch re-sent after a crash is harmless). While the store is down it
retries with exponential backoff (up to `DRAIN_BACKOFF_MAX_S`) and warns at most once a
minute; polling is not affected.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pandas as pd

from collectors.queue import DiskQueue

log = logging.getLogger("civicwatt.collect")

DRAIN_BATCH = 50_000
DRAIN_BACKOFF_MIN_S = 0.5
DRAIN_BACKOFF_MAX_S = 30.0
IDLE_WAIT_S = 1.0  # an empty queue is looked at again after this long (or when woken)
WARN_EVERY_S = 60.0


class Forwarder:
    """Sends what `queue` holds to `store` (write_events, write_samples)."""

    def __init__(self, queue: DiskQueue, store: Any):
        self.queue = queue
        self.store = store
        self.counts = {"sent": 0, "store_errors": 0}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = -WARN_EVERY_S

    def wake(self) -> None:
        """Something was queued: look now (any thread)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._main, name="civicwatt-drain", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def drain_once(self) -> int:
        """Send one batch of events and samples; return how many rows were sent."""
        ev, ev_seq = self.queue.peek_events(DRAIN_BATCH)
        if len(ev):
            ev = ev.assign(time=pd.to_datetime(ev["t"], unit="s", utc=True)).drop(columns="t")
            self.store.write_events(ev[["meter_id", "time", "kind", "old_index", "new_index"]])
            self.queue.ack_events(ev_seq)
        df, seq = self.queue.peek_samples(DRAIN_BATCH)
        if len(df):
            self.store.write_samples(df)
            self.queue.ack_samples(seq)
            self.counts["sent"] += len(df)
        return len(df) + len(ev)

    def _main(self) -> None:
        backoff = DRAIN_BACKOFF_MIN_S
        while not self._stopping.is_set():
            try:
                sent = self.drain_once()
            except Exception as exc:
                self.counts["store_errors"] += 1
                if time.monotonic() - self._last_warning > WARN_EVERY_S:
                    log.warning("store unavailable (%s); %d samples wait in the queue", exc, self.queue.backlog())
                    self._last_warning = time.monotonic()
                self._sleep(backoff)
                backoff = min(DRAIN_BACKOFF_MAX_S, backoff * 2)
                continue
            backoff = DRAIN_BACKOFF_MIN_S
            if sent == 0:
                self._sleep(IDLE_WAIT_S)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the queue is empty (everything in the store); True if it is. Without
        the thread running, send from this thread."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.queue.backlog() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            if self._thread is None or not self._thread.is_alive():
                try:
                    self.drain_once()
                except Exception:
                    time.sleep(0.2)
            else:
                self._wake.set()
                time.sleep(0.02)
