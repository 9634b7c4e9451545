"""The on-disk store-and-forward queue (SQLite in WAL mode, one file in the queue dir).

Every validated sample is committed here before anything is sent to the store, in the
same transaction as the collector's per-meter state (last good index, failures), so a
collector killed with SIGKILL restarts exactly where it was. A drainer sends the queue
to the store in order (oldest first, in batches) and deletes what the store
acknowledged; a sample sent twice (a crash between the write and the delete) is
harmless because store writes are idempotent on (meter, time).

While the store is down the queue grows, bounded only by the disk: the collector warns
when the backlog passes `warn_rows` (and every tenfold after) and when free disk space
falls under `min_free_bytes`, but never drops a sample. (When the disk is full the
ingest thread holds what it cannot commit in memory, bounded: `collectors.ingest`.)

One collector per queue directory: the collector opens its queue `exclusive`, holding an
advisory lock (flock) on `collector.lock` there, which names its pid; a second collector
on the same directory stops at once with QueueBusy naming the holder. The kernel
releases the lock when the process ends, however it ends (SIGKILL too). Readers (the
backlog seen from another process) open the queue without the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from collectors.meter_state import EVENT_COLUMNS, SAMPLE_COLUMNS, STATE_COLUMNS  # the tables' columns, in order
from core.sqlite import connect, transaction

log = logging.getLogger("civicwatt.collect")

QUEUE_FILE = "queue.sqlite3"
LOCK_FILE = "collector.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sample_q (seq INTEGER PRIMARY KEY AUTOINCREMENT, meter_id TEXT NOT NULL,
    t INTEGER NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS event_q (seq INTEGER PRIMARY KEY AUTOINCREMENT, meter_id TEXT NOT NULL,
    t INTEGER NOT NULL, kind TEXT NOT NULL, old_index REAL NOT NULL, new_index REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meter_state (meter_id TEXT PRIMARY KEY, t INTEGER NOT NULL, value REAL NOT NULL,
    fails INTEGER NOT NULL, offline_since INTEGER NOT NULL, spike_run INTEGER NOT NULL, seen_t INTEGER NOT NULL);
"""


class QueueBusy(RuntimeError):
    """Another collector holds the queue directory."""


def _lock(directory: Path) -> int:
    """An open descriptor of DIRECTORY/collector.lock holding an exclusive flock, the file
    naming this pid; QueueBusy naming the holder's pid when another process holds it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise QueueBusy(f"the queue directory {directory} is in use by another collector (pid {holder}): one "
                        "collector per queue; stop that one or give this one its own --queue") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class DiskQueue:
    """Samples and events waiting for the store; per-meter collector state. `exclusive`:
    the collector's own queue, locked against a second collector (module docstring)."""

    def __init__(self, directory: str | Path, warn_rows: int = 100_000, min_free_bytes: int = 500 * 2**20,
                 exclusive: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.directory) if exclusive else None
        self.path = self.directory / QUEUE_FILE
        self.warn_rows = warn_rows
        self.min_free_bytes = min_free_bytes
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._next_warn = warn_rows
        self._disk_warned = False
        con = self._con()
        con.executescript(SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect(str(self.path))
            con.execute("PRAGMA synchronous=FULL")  # a committed sample survives a power cut too
            self._local.con = con
            self._all.append(con)
        return con

    # -- writer side ------------------------------------------------------------
    def put(self, samples: pd.DataFrame, events: pd.DataFrame | None = None, state: pd.DataFrame | None = None
            ) -> None:
        """Append samples (meter_id, t, value, quality) and events (meter_id, t, kind,
        old_index, new_index), and upsert per-meter state, in one transaction."""
        with transaction(self._con()) as con:
            if len(samples):
                con.executemany("INSERT INTO sample_q (meter_id, t, value, quality) VALUES (?, ?, ?, ?)",
                                zip(samples["meter_id"].astype(str), samples["t"].astype(np.int64).tolist(),
                                    samples["value"].astype(float).tolist(),
                                    samples["quality"].astype(np.int64).tolist(), strict=True))
            if events is not None and len(events):
                con.executemany("INSERT INTO event_q (meter_id, t, kind, old_index, new_index) VALUES (?, ?, ?, ?, ?)",
                                events[list(EVENT_COLUMNS)].itertuples(index=False))
            if state is not None and len(state):
                con.executemany("INSERT OR REPLACE INTO meter_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                                state[STATE_COLUMNS].itertuples(index=False))
        self._check_limits()

    def load_state(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM meter_state", self._con())

    def _check_limits(self) -> None:
        n = self.backlog()
        if n >= self._next_warn:
            log.warning("store-and-forward queue holds %d samples (%s): the store is not keeping up or is down; "
                        "nothing is dropped", n, self.path)
            self._next_warn *= 10
        elif n < self.warn_rows:
            self._next_warn = self.warn_rows
        free = shutil.disk_usage(self.directory).free
        if free < self.min_free_bytes and not self._disk_warned:
            log.warning("only %d MB free on the disk of the queue %s: collection continues until the disk is full",
                        free // 2**20, self.path)
            self._disk_warned = True
        elif free >= self.min_free_bytes:
            self._disk_warned = False

    # -- drainer side -----------------------------------------------------------
    def backlog(self) -> int:
        """Rows waiting. Rows are appended with increasing seq and acknowledged from the
        oldest, so the count is max - min + 1: two index look-ups, not a scan of a
        backlog that may hold millions of rows after a long outage."""
        row = self._con().execute(
            "SELECT coalesce((SELECT max(seq) - min(seq) + 1 FROM sample_q), 0)"
            " + coalesce((SELECT max(seq) - min(seq) + 1 FROM event_q), 0)").fetchone()
        return int(row[0])

    def _peek(self, table: str, columns: tuple[str, ...], limit: int) -> tuple[pd.DataFrame, int]:
        df = pd.read_sql_query(f"SELECT seq, {', '.join(columns)} FROM {table} ORDER BY seq LIMIT ?",
                               self._con(), params=(limit,))
        return df.drop(columns="seq"), int(df["seq"].iloc[-1]) if len(df) else 0

    def peek_samples(self, limit: int) -> tuple[pd.DataFrame, int]:
        """The oldest `limit` samples (meter_id, t, value, quality) and the last seq."""
        return self._peek("sample_q", SAMPLE_COLUMNS, limit)

    def ack_samples(self, last_seq: int) -> None:
        """Delete the samples up to `last_seq` (the store has them)."""
        self._con().execute("DELETE FROM sample_q WHERE seq <= ?", (last_seq,))

    def peek_events(self, limit: int) -> tuple[pd.DataFrame, int]:
        """The oldest `limit` events (meter_id, t, kind, old_index, new_index) and the last seq."""
        return self._peek("event_q", EVENT_COLUMNS, limit)

    def ack_events(self, last_seq: int) -> None:
        """Delete the events up to `last_seq` (the store has them)."""
        self._con().execute("DELETE FROM event_q WHERE seq <= ?", (last_seq,))

    def close(self) -> None:
        for con in self._all:
            with contextlib.suppress(sqlite3.ProgrammingError):  # opened by a thread that is gone
                con.close()
        self._all.clear()
        self._local = threading.local()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
