"""The embedded store: one SQLite database (WAL mode) in a directory, no server.

Why SQLite: it ships with Python, a transaction makes an import all-or-nothing, and in
WAL mode any number of readers (the dashboard, `civicwatt export`, a second process)
read a consistent snapshot while one writer (the collectors) appends; DuckDB, the
faster analytical engine, lets only one process open a database for writing and
blocks readers in other processes. The analytical load is kept small instead: samples
sit in a clustered `(meter, t)` table (WITHOUT ROWID), and daily consumption is kept in
a rollup table that is refreshed incrementally (only days touched by new samples or
events are recomputed), so months and years are sums over a few hundred rows per meter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from storage import rollup
from storage.base import (
    BILL_COLUMNS,
    EVENT_COLUMNS,
    IMPORT_CHUNK,
    MAX_CONFLICTS_LISTED,
    SAMPLE_COLUMNS,
    ImportRejected,
    Store,
    StoreMissing,
    from_epoch_s,
    normalize_events,
    normalize_samples,
    ts,
)

DB_NAME = "civicwatt.sqlite3"
BUSY_TIMEOUT_MS = 60_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meter (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sample (
    meter INTEGER NOT NULL, t INTEGER NOT NULL, value REAL NOT NULL, quality INTEGER NOT NULL,
    PRIMARY KEY (meter, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event (
    meter_id TEXT NOT NULL, t INTEGER NOT NULL, kind TEXT NOT NULL,
    old_index REAL NOT NULL, new_index REAL NOT NULL, PRIMARY KEY (meter_id, t, kind));
CREATE TABLE IF NOT EXISTS bill (
    institution_id TEXT NOT NULL, energy TEXT NOT NULL, period_start TEXT NOT NULL,
    period_end TEXT NOT NULL, quantity REAL NOT NULL, unit TEXT NOT NULL, cost_cny REAL,
    PRIMARY KEY (institution_id, energy, period_start, period_end));
CREATE TABLE IF NOT EXISTS rollup_day (
    meter INTEGER NOT NULL, t INTEGER NOT NULL, quantity REAL NOT NULL, est REAL NOT NULL,
    PRIMARY KEY (meter, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty (meter INTEGER PRIMARY KEY, since INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class EmbeddedStore(Store):
    """SQLite-backed store in `directory` (created if missing, unless `create=False`:
    then StoreMissing)."""

    def __init__(self, directory: str | Path, tz: str = "Asia/Shanghai", create: bool = True):
        super().__init__(tz)
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        if not create and not self.path.is_file():
            raise StoreMissing(f"no store at embedded:{self.directory}: {self.path} does not exist")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.url = f"embedded:{self.directory}"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._keys: dict[str, int] = {}
        with self._write_lock:
            con = self._con()
            con.executescript(SCHEMA)
            self._check_rollup_settings(con, {"tz": tz})

    # -- plumbing ---------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                  check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def _check_rollup_settings(self, con: sqlite3.Connection, settings: dict) -> None:
        """Drop the rollup cache when what it was computed with has changed."""
        row = con.execute("SELECT value FROM meta WHERE key='rollup_settings'").fetchone()
        stored = json.loads(row[0]) if row else {}
        merged = {**stored, **settings}
        if merged != stored:
            con.execute("BEGIN IMMEDIATE")
            if any(stored.get(k) != v for k, v in settings.items() if k in stored):
                con.execute("DELETE FROM rollup_day")
                con.execute("INSERT OR REPLACE INTO dirty SELECT key, 0, 1 FROM meter")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('rollup_settings', ?)", (json.dumps(merged),))
            con.execute("COMMIT")

    def set_meters(self, meters: pd.DataFrame) -> None:
        super().set_meters(meters)
        rollovers = {str(k): (None if pd.isna(v) else float(v)) for k, v in self.rollovers.items()}
        with self._write_lock:
            self._check_rollup_settings(self._con(), {"rollover": rollovers})

    def _keys_for(self, con: sqlite3.Connection, ids: np.ndarray) -> np.ndarray:
        codes, uniq = pd.factorize(ids)
        missing = [m for m in uniq if m not in self._keys]
        if missing:
            con.executemany("INSERT OR IGNORE INTO meter(id) VALUES (?)", [(m,) for m in missing])
            self._refresh_keys(con)
        return np.asarray([self._keys[m] for m in uniq], dtype=np.int64)[codes]

    def _refresh_keys(self, con: sqlite3.Connection) -> None:
        self._keys = dict(con.execute("SELECT id, key FROM meter").fetchall())

    def _ids_filter(self, meter_ids: Iterable[str] | None) -> tuple[str, list]:
        if meter_ids is None:
            return "", []
        ids = list(meter_ids)
        if any(m not in self._keys for m in ids):  # another writer may have added meters
            self._refresh_keys(self._con())
        keys = [self._keys[m] for m in ids if m in self._keys]
        return f" AND meter IN ({','.join('?' * len(keys))})", keys

    def _names(self, keys: Iterable[int]) -> dict[int, str]:
        """Meter id by key, re-read from the database if another writer added meters."""
        names = {v: k for k, v in self._keys.items()}
        if any(k not in names for k in keys):
            self._refresh_keys(self._con())
            names = {v: k for k, v in self._keys.items()}
        return names

    def _frame(self, rows: list[tuple]) -> pd.DataFrame:
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in
                                 zip(SAMPLE_COLUMNS, [object, "datetime64[s, UTC]", float, np.int64], strict=True)})
        arr = pd.DataFrame.from_records(rows, columns=["meter", "t", "value", "quality"])
        names = self._names(arr["meter"].unique().tolist())
        return pd.DataFrame({
            "meter_id": arr["meter"].map(names).to_numpy(),
            "time": from_epoch_s(arr["t"].to_numpy()),
            "value": arr["value"].to_numpy(float),
            "quality": arr["quality"].to_numpy(np.int64),
        })

    # -- samples ----------------------------------------------------------------
    def _insert(self, con: sqlite3.Connection, norm: pd.DataFrame) -> None:
        keys = self._keys_for(con, norm["meter_id"].to_numpy())
        con.executemany(
            "INSERT OR REPLACE INTO sample VALUES (?,?,?,?)",
            zip(keys.tolist(), norm["t"].tolist(), norm["value"].tolist(), norm["quality"].tolist(), strict=True),
        )
        self._mark_dirty(con, keys, norm["t"].to_numpy())

    @staticmethod
    def _mark_dirty(con: sqlite3.Connection, keys: np.ndarray, t: np.ndarray) -> None:
        """Record, per meter, the earliest time whose daily rollup must be recomputed."""
        order = np.lexsort((t, keys))
        first = np.r_[True, keys[order][1:] != keys[order][:-1]]
        con.executemany(
            "INSERT INTO dirty VALUES (?,?,1) ON CONFLICT(meter) DO UPDATE "
            "SET since=min(since, excluded.since), gen=gen+1",
            zip(keys[order][first].tolist(), t[order][first].tolist(), strict=True),
        )

    def write_samples(self, samples: pd.DataFrame) -> int:
        norm = normalize_samples(samples)
        if norm.empty:
            return 0
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                self._insert(con, norm)
            except BaseException:
                con.execute("ROLLBACK")
                self._keys = {}
                raise
            con.execute("COMMIT")
        return len(norm)

    def import_samples(self, samples: pd.DataFrame, progress: Callable[[int], object] | None = None) -> int:
        """All-or-nothing in one transaction: stage, look for conflicts, then insert."""
        norm = normalize_samples(samples)
        if norm.empty:
            return 0
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                keys = self._keys_for(con, norm["meter_id"].to_numpy())
                con.execute("CREATE TEMP TABLE IF NOT EXISTS staged (meter INTEGER, t INTEGER, value REAL)")
                con.execute("DELETE FROM staged")
                con.executemany("INSERT INTO staged VALUES (?,?,?)",
                                zip(keys.tolist(), norm["t"].tolist(), norm["value"].tolist(), strict=True))
                conflicts = con.execute(
                    "SELECT m.id, s.t, s.value, o.value FROM staged s JOIN sample o ON o.meter=s.meter AND o.t=s.t "
                    "JOIN meter m ON m.key=s.meter WHERE abs(o.value - s.value) > 1e-9 ORDER BY m.id, s.t LIMIT ?",
                    (MAX_CONFLICTS_LISTED + 1,)).fetchall()
                con.execute("DELETE FROM staged")
                if conflicts:
                    raise ImportRejected.conflicts(conflicts)
                for i in range(0, len(norm), IMPORT_CHUNK):
                    chunk = norm.iloc[i:i + IMPORT_CHUNK]
                    self._insert(con, chunk)
                    if progress is not None:
                        progress(len(chunk))
            except BaseException:
                con.execute("ROLLBACK")
                self._keys = {}
                raise
            con.execute("COMMIT")
        return len(norm)

    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        lo = -(2**62) if start is None else int(ts(start, self.tz).timestamp())
        hi = 2**62 if end is None else int(np.ceil(ts(end, self.tz).timestamp()))
        where, keys = self._ids_filter(meter_ids)
        rows = self._con().execute(
            f"SELECT meter, t, value, quality FROM sample WHERE t >= ? AND t < ?{where} ORDER BY meter, t",
            [lo, hi, *keys]).fetchall()
        df = self._frame(rows)
        return df.sort_values(["meter_id", "time"], kind="stable").reset_index(drop=True)

    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        hi = int(np.ceil(ts(t, self.tz).timestamp()))
        where, keys = self._ids_filter(meter_ids)
        rows = self._con().execute(
            "SELECT s.meter, s.t, s.value, s.quality FROM meter m JOIN sample s ON s.meter = m.key "
            f"AND s.t = (SELECT max(t) FROM sample WHERE meter = m.key AND t < ?) WHERE 1=1{where.replace('meter', 'm.key')}",
            [hi, *keys]).fetchall()
        return self._frame(rows)

    def meter_ids(self) -> list[str]:
        return [r[0] for r in self._con().execute(
            "SELECT id FROM meter m WHERE EXISTS (SELECT 1 FROM sample WHERE meter = m.key) ORDER BY id")]

    def count_samples(self) -> int:
        return int(self._con().execute("SELECT count(*) FROM sample").fetchone()[0])

    # -- events -----------------------------------------------------------------
    def write_events(self, events: pd.DataFrame) -> None:
        ev = normalize_events(events)
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR REPLACE INTO event VALUES (?,?,?,?,?)",
                                ev[["meter_id", "t", "kind", "old_index", "new_index"]].itertuples(index=False))
                self._mark_dirty(con, self._keys_for(con, ev["meter_id"].to_numpy()), ev["t"].to_numpy())
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def read_events(self, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        rows = self._con().execute("SELECT meter_id, t, kind, old_index, new_index FROM event ORDER BY meter_id, t").fetchall()
        df = pd.DataFrame.from_records(rows, columns=["meter_id", "t", "kind", "old_index", "new_index"])
        if meter_ids is not None:
            df = df[df["meter_id"].isin(list(meter_ids))]
        df.insert(1, "time", from_epoch_s(df["t"].to_numpy()))
        return df[EVENT_COLUMNS].reset_index(drop=True)

    # -- bills ------------------------------------------------------------------
    def write_bills(self, bills: pd.DataFrame) -> int:
        rows = pd.DataFrame({
            "institution_id": bills["institution_id"].astype(str),
            "energy": bills["energy"].astype(str),
            "period_start": pd.to_datetime(bills["period_start"]).dt.strftime("%Y-%m-%d"),
            "period_end": pd.to_datetime(bills["period_end"]).dt.strftime("%Y-%m-%d"),
            "quantity": bills["quantity"].astype(float),
            "unit": bills["unit"].astype(str),
            "cost_cny": pd.to_numeric(bills.get("cost_cny", np.nan), errors="coerce"),
        })
        with self._write_lock:
            con = self._con()
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR REPLACE INTO bill VALUES (?,?,?,?,?,?,?)",
                                [tuple(None if (isinstance(x, float) and np.isnan(x)) else x for x in r)
                                 for r in rows.itertuples(index=False)])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        return len(rows)

    def read_bills(self, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        rows = self._con().execute(f"SELECT {', '.join(BILL_COLUMNS)} FROM bill ORDER BY institution_id, energy, period_start").fetchall()
        df = pd.DataFrame.from_records(rows, columns=BILL_COLUMNS)
        if institution_ids is not None:
            df = df[df["institution_id"].isin(list(institution_ids))]
        for c in ("period_start", "period_end"):
            df[c] = pd.to_datetime(df[c]).dt.date
        df["cost_cny"] = df["cost_cny"].astype(float)
        return df.reset_index(drop=True)

    # -- consumption (daily rollup cache) -----------------------------------------
    def refresh_rollups(self) -> int:
        """Recompute daily rollups for meters with new samples or events; return how
        many meters were refreshed."""
        con = self._con()
        dirty = con.execute("SELECT meter, since, gen FROM dirty").fetchall()
        if not dirty:
            return 0
        names = self._names(d[0] for d in dirty)
        since = min(d[1] for d in dirty)
        ids = [names[d[0]] for d in dirty if d[0] in names]
        first = pd.Timestamp(since, unit="s", tz="UTC") - pd.Timedelta(days=1)
        last_t = con.execute("SELECT max(t) FROM sample").fetchone()[0] or since
        end = pd.Timestamp(last_t, unit="s", tz="UTC") + pd.Timedelta(days=2)
        edges = rollup.period_edges(first, end, "day", self.tz)
        day0 = from_epoch_s([edges[0]])[0]
        raw = self._consumption_from_samples("day", day0, end, ids, apply_multiplier=False)
        keys = raw["meter_id"].map(self._keys).to_numpy(np.int64)
        t = (pd.DatetimeIndex(raw["period_start"]).tz_convert("UTC").as_unit("s").asi8).astype(np.int64)
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                for key, _since, _gen in dirty:
                    con.execute("DELETE FROM rollup_day WHERE meter = ? AND t >= ?", (key, int(edges[0])))
                con.executemany("INSERT OR REPLACE INTO rollup_day VALUES (?,?,?,?)", zip(
                    keys.tolist(), t.tolist(), raw["quantity"].tolist(),
                    (raw["quantity"] * raw["estimated_share"]).tolist(), strict=True))
                con.executemany("DELETE FROM dirty WHERE meter = ? AND gen = ?", [(k, g) for k, _s, g in dirty])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        return len(dirty)

    def _daily_consumption(self, start: pd.Timestamp, end: pd.Timestamp, ids: list[str] | None) -> pd.DataFrame:
        self.refresh_rollups()
        edges = rollup.period_edges(start, end, "day", self.tz)
        where, keys = self._ids_filter(ids)
        rows = self._con().execute(
            f"SELECT meter, t, quantity, est FROM rollup_day WHERE t >= ? AND t < ?{where} ORDER BY meter, t",
            [int(edges[0]), int(ts(end).timestamp()), *keys]).fetchall()
        df = pd.DataFrame.from_records(rows, columns=["meter", "t", "quantity", "est"])
        names = self._names(df["meter"].unique().tolist())
        meter_id = df["meter"].map(names)
        mult = meter_id.map(self.multipliers).fillna(1.0).to_numpy(float) if len(df) else np.ones(0)
        q = df["quantity"].to_numpy(float)
        share = np.divide(df["est"].to_numpy(float), q, out=np.zeros_like(q), where=np.abs(q) > 1e-12)
        return pd.DataFrame({
            "meter_id": meter_id.to_numpy(),
            "period_start": from_epoch_s(df["t"].to_numpy()).tz_convert(self.tz),
            "quantity": q * mult,
            "estimated_share": np.clip(share, 0, 1),
        })
