"""The ingest thread: poll results -> the per-meter state machine -> one disk-queue transaction per batch.

Results handed over by the poll loop (`put`) are gathered for up to `INGEST_BATCH_S`
seconds, run through `collectors.meter_state.step` and committed to the disk queue with
the meters' new state in one transaction; only then is the new state adopted, the
counts added and the events emitted. A refused commit (a full disk) keeps the results
in memory and retries them with the next batch, against the unchanged state: one
warning a minute with what is held and what the queue holds, never a traceback a
second. At most `MEMORY_MAX_RESULTS` results are held; beyond that the oldest are
dropped, each drop logged as an error and counted (`dropped`, in the heartbeat's
`collect` section, which `/healthz` then reports as not ok: `core.health`). The slots
of dropped results are filled and flagged estimated like any missed poll.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from collectors import meter_state
from collectors.meter_state import MeterState, MeterTable
from collectors.queue import DiskQueue

log = logging.getLogger("civicwatt.collect")

INGEST_BATCH_S = 0.25  # the ingest thread commits at least this often while polls come in
COUNTS = ("polls", "ok", "failed", "samples_queued", "estimated")
MEMORY_MAX_RESULTS = 200_000  # poll results held in memory while the disk queue refuses commits
WARN_EVERY_S = 60.0


class Ingester:
    """Owns the meters' state; turns poll results into queued samples and events."""

    def __init__(self, table: MeterTable, state: MeterState, queue: DiskQueue,
                 emit: Callable[[dict[str, Any]], None], committed: Callable[[], None],
                 offline_after: int | None = None):
        self.table = table
        self.state = state
        self.queue = queue
        self.emit = emit  # called with each event once its batch is committed
        self.committed = committed  # called after each commit (wakes the forwarder)
        self.offline_after = offline_after  # None: each meter's (its gateway's offline_polls)
        self.counts = dict.fromkeys(COUNTS, 0)
        self.last_poll_at: float | None = None  # epoch s of the last committed batch (for the heartbeat)
        self.last_ok_at: float | None = None  # ... of the last one with at least one answer
        self._q: queue_mod.Queue = queue_mod.Queue()
        self._thread: threading.Thread | None = None
        self.held = 0  # poll results held in memory (the queue refused them)
        self.dropped = 0  # ... dropped, oldest first, beyond MEMORY_MAX_RESULTS
        self.max_held = MEMORY_MAX_RESULTS
        self._last_warning = -WARN_EVERY_S

    # -- the thread ---------------------------------------------------------------
    def put(self, results: list[tuple]) -> None:
        """Hand over poll results (row, slot t, raw index, instantaneous, error); any thread."""
        self._q.put(results)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="civicwatt-ingest", daemon=True)
            self._thread.start()

    def sync(self) -> None:
        """Wait until everything handed over so far is committed (or kept after a refusal)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._q.put(done)
        done.wait()

    def stop(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(10)
            self._thread = None

    def _main(self) -> None:
        pending: list[tuple] = []  # polled but not yet committed (kept when the disk refuses a commit)
        while True:
            try:
                item = self._q.get(timeout=1.0 if pending else None)
            except queue_mod.Empty:
                item = []
            if item is None:
                if pending:
                    log.error("stopping with %d polled samples that could not be written to the queue", len(pending))
                return
            batch, waiters = self._gather(item)
            pending.extend(batch)
            if pending:
                try:
                    self.ingest(pending)
                    if self.held:
                        log.warning("the disk queue %s takes writes again: %d held poll results committed",
                                    self.queue.path, len(pending))
                    pending = []
                except Exception as exc:  # e.g. disk full: keep the samples in memory, retry, keep polling
                    pending = self._hold(pending, exc)
                self.held = len(pending)
            for w in waiters:
                w.set()

    def _hold(self, pending: list[tuple], exc: Exception) -> list[tuple]:
        """`pending` after a refused commit: the newest `max_held` kept; warn (once a
        minute) and log every drop as an error."""
        over = len(pending) - self.max_held
        if over > 0:
            pending = pending[over:]
            self.dropped += over
            log.error("the disk queue %s refuses writes (%s): dropped the %d oldest poll results held in memory "
                      "(%d dropped since start; their slots will be estimated)", self.queue.path, exc, over,
                      self.dropped)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            try:
                backlog = f"{self.queue.backlog()} samples"
            except Exception:  # the queue file itself may be unreadable
                backlog = "an unknown number of samples"
            log.warning("cannot write the disk queue %s (%s): %d poll results held in memory (at most %d, then the "
                        "oldest are dropped); %s wait in the queue for the store", self.queue.path, exc,
                        len(pending), self.max_held, backlog)
            self._last_warning = now
        return pending

    def _gather(self, item: Any) -> tuple[list[tuple], list[threading.Event]]:
        """The results that come within INGEST_BATCH_S of `item`, and who waits for them:
        a waiter (from `sync`) or the stop marker ends the batch at once."""
        batch: list[tuple] = []
        waiters: list[threading.Event] = []
        deadline = time.monotonic() + INGEST_BATCH_S
        while True:
            if isinstance(item, threading.Event):
                waiters.append(item)
                break  # commit now: someone waits
            if item is None:
                self._q.put(None)  # for _main, after this batch
                break
            batch.extend(item)
            try:
                item = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue_mod.Empty:
                break
        return batch, waiters

    # -- one batch ------------------------------------------------------------------
    def ingest(self, results: list[tuple]) -> None:
        """Run `results` through the state machine and commit them; on failure nothing
        changes (the state, the counts) and the exception propagates."""
        out = meter_state.step(self.table, self.state, meter_state.polls_frame(results), pd.Timestamp.now(tz="UTC"),
                               self.offline_after)
        self.queue.put(out.samples, out.rollovers, out.state_rows)
        self.state = out.state
        for k in COUNTS:
            self.counts[k] += out.counts[k]
        self.last_poll_at = time.time()
        if out.counts["ok"]:
            self.last_ok_at = self.last_poll_at
        self.committed()
        for event in out.events:
            self.emit(event)
