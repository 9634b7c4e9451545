"""One SQLite transaction helper and connection settings for every SQLite file of ours (store, queue, outbox)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

BUSY_TIMEOUT_MS = 60_000


def connect(path: str, *, wal: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see `transaction`), WAL
    journal and synchronous=NORMAL, usable from the thread that asks for it or any other."""
    con = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    con.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return con


@contextmanager
def transaction(con: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """`BEGIN <mode>` ... `COMMIT`, or `ROLLBACK` on any exception (re-raised), on an
    autocommit connection (`isolation_level=None`)."""
    con.execute(f"BEGIN {mode}")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
