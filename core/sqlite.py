"""One SQLite transaction helper and connection settings for every SQLite file of ours (store, queue, outbox)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.private import private_dir, private_file

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


class SQLiteBook:
    """A private SQLite file of ours (0600 in a 0700 directory) with its `schema`: one
    connection per thread (`con()`) and `transaction()`, which nested calls join."""

    def __init__(self, directory: str | Path, db_name: str, schema: str):
        self.directory = private_dir(directory)
        self.path = private_file(self.directory / db_name)
        self._local = threading.local()
        self._depth = 0
        self._lock = threading.RLock()
        for statement in filter(str.strip, schema.split(";")):
            self._con().execute(statement)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = connect(str(self.path))
        return con

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction for everything written inside (nested calls join the outer one)."""
        with self._lock:
            if self._depth:
                yield
                return
            self._depth += 1
            try:
                with transaction(self._con()):
                    yield
            finally:
                self._depth -= 1

    def close(self) -> None:
        """Close this thread's connection (another thread's closes with its thread)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
