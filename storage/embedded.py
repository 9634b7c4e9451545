"""The embedded store: one SQLite database (WAL mode) in a directory, no server.

Why SQLite: it ships everywhere, a transaction makes an import all-or-nothing, and in
WAL mode any number of readers (the dashboard, `civicwatt export`, a second process)
read a consistent snapshot while one writer (the collectors) appends. DuckDB, the
faster analytical engine, lets only one process open a database for writing and blocks
readers in other processes; Parquet partitions would need a second copy of the data
and their own commit protocol. The analytical load is kept small instead: consumption
is materialised as samples arrive (`storage.base`) in clustered `(meter, t)` tables
(`cons_hour`, `cons_day`, WITHOUT ROWID), so a year is 365 rows per meter.

Why ADBC (`adbc-driver-sqlite`) and not the `sqlite3` module: results come back as
Arrow tables (no Python tuple per row) and bulk writes bind Arrow columns in C, about
twice the insert rate of `executemany` over Python tuples. Every connection to the store
goes through ADBC, never also through `sqlite3`: two copies of the SQLite library in one
process on one file break SQLite's POSIX locking (closing a file in one copy drops the
other copy's locks). Transactions use the one helper, `core.sqlite.transaction`
(`BEGIN IMMEDIATE` ... `COMMIT`, `ROLLBACK` on error).
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.sqlite import BUSY_TIMEOUT_MS, transaction
from storage.base import (
    BILL_COLUMNS,
    BILL_FIGURES,
    EVENT_COLUMNS,
    PERIOD_COLUMNS,
    SAMPLE_COLUMNS,
    Store,
    StoreMissing,
    empty_periods,
    from_epoch_s,
    ts,
)

DB_NAME = "civicwatt.sqlite3"
CACHE_KIB = 65_536  # page cache per connection (KiB): keeps the B-tree pages of a write chunk in memory
TABLES = {"hour": "cons_hour", "day": "cons_day"}
_PERIOD_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    meter INTEGER NOT NULL, t INTEGER NOT NULL, quantity REAL NOT NULL, est REAL NOT NULL,
    flags INTEGER NOT NULL, samples INTEGER NOT NULL, stored INTEGER NOT NULL, covered INTEGER NOT NULL,
    step REAL NOT NULL, PRIMARY KEY (meter, t)) WITHOUT ROWID;
"""
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
    heating_quantity REAL, estimated_quantity REAL, PRIMARY KEY (institution_id, energy, period_start, period_end));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + "".join(_PERIOD_TABLE.format(name=n) for n in TABLES.values())
# the lazily refreshed daily cache of earlier versions, replaced by cons_day
OLD_TABLES = ("rollup_day", "dirty")
SAMPLE_SCHEMA = pa.schema([("meter", pa.int64()), ("t", pa.int64()), ("value", pa.float64()),
                           ("quality", pa.int64())])


def connect(path: Path) -> adbc.Connection:
    """An ADBC connection in autocommit mode (transactions are explicit), WAL journal,
    synchronous=NORMAL and the busy timeout of `core.sqlite`."""
    con = adbc.connect(str(path), autocommit=True)
    cur = con.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}",
                   f"cache_size=-{CACHE_KIB}", "temp_store=MEMORY"):
        cur.execute(f"PRAGMA {pragma}")
        cur.fetchall()
    cur.close()
    return con


def _close_all(connections: list[tuple[adbc.Connection, adbc.Cursor]]) -> None:
    """Close each cursor, then its connection (ADBC refuses the other order)."""
    for con, cur in connections:
        cur.close()
        con.close()
    connections.clear()


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
        self._open: list[tuple[adbc.Connection, adbc.Cursor]] = []  # every thread's connection, closed by close()
        self._open_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._open)  # a store dropped without close(): cursors first
        self._keys: dict[str, int] = {}
        self._by_key = np.empty(0, dtype=object)  # meter id by key
        tables = set(self._arrow("SELECT name FROM sqlite_master WHERE type='table'")["name"].to_pylist())
        migrate = False
        stale = TABLES["day"] in tables and "step" not in self._arrow(
            f"SELECT name FROM pragma_table_info('{TABLES['day']}')")["name"].to_pylist()
        bill_columns = set(self._arrow("SELECT name FROM pragma_table_info('bill')")["name"].to_pylist())
        if "bill" in tables and not set(BILL_FIGURES) <= bill_columns:  # written before bills carried them
            with self._writing():
                for name in BILL_FIGURES:
                    if name not in bill_columns:
                        self._cur().execute(f"ALTER TABLE bill ADD COLUMN {name} REAL")
        if (not {"meter", "sample", "event", "bill", "meta", *TABLES.values()} <= tables
                or tables & set(OLD_TABLES) or stale):
            with self._writing():  # only when the schema is missing or old: readers never wait for a writer here
                cur = self._cur()
                old = set(self._arrow("SELECT name FROM sqlite_master WHERE type='table'")["name"].to_pylist())
                for statement in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(statement)
                for name in (*OLD_TABLES, *(TABLES.values() if stale else ())):  # stale: rebuilt by the version
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(statement)
                migrate = "sample" in old and TABLES["day"] not in old
        self._open_settings()
        if migrate:  # a store written before consumption was materialised
            self.rebuild_consumption()

    # -- plumbing ---------------------------------------------------------------
    def _cur(self) -> adbc.Cursor:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            con = connect(self.path)
            cur = self._local.cur = con.cursor()
            with self._open_lock:
                self._open.append((con, cur))
        return cur

    def _arrow(self, sql: str, params: Iterable = ()) -> pa.Table:
        cur = self._cur()
        cur.execute(sql, tuple(params))
        return cur.fetch_arrow_table()

    def ping(self) -> bool:
        """The database file is there and answers a query."""
        if not self.path.is_file():
            return False
        try:
            self._arrow("SELECT 1 AS one")
        except Exception:
            return False
        return True

    def close(self) -> None:
        super().close()
        with self._open_lock:
            _close_all(self._open)
        self._local = threading.local()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with transaction(self._cur()):
                yield
        except BaseException:
            self._keys, self._by_key = {}, np.empty(0, dtype=object)  # keys added in the rolled-back transaction are gone
            raise

    def _load_settings(self) -> dict:
        got = self._arrow("SELECT value FROM meta WHERE key = 'consumption_settings'")["value"].to_pylist()
        return json.loads(got[0]) if got else {}

    def _save_settings(self, settings: dict) -> None:
        self._cur().execute("INSERT OR REPLACE INTO meta VALUES ('consumption_settings', ?)", (json.dumps(settings),))

    def _keys_for(self, ids: np.ndarray | pd.Series | pd.Categorical) -> np.ndarray:
        """Meter keys of `ids` (strings or a Categorical), adding unknown meters (inside a write)."""
        if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
            cat = pd.Categorical(ids)
            codes, uniq = cat.codes, [str(c) for c in cat.categories]
        else:
            codes, uniq = pd.factorize(ids)
        missing = [m for m in uniq if m not in self._keys]
        if missing:
            self._cur().executemany("INSERT OR IGNORE INTO meter(id) VALUES (?)", pa.table({"id": missing}))
            self._refresh_keys()
        return np.asarray([self._keys[m] for m in uniq], dtype=np.int64)[codes]

    def _refresh_keys(self) -> None:
        t = self._arrow("SELECT id, key FROM meter")
        self._keys = dict(zip(t["id"].to_pylist(), t["key"].to_pylist(), strict=True))
        self._by_key = np.empty(max(self._keys.values(), default=0) + 1, dtype=object)
        self._by_key[t["key"].to_numpy()] = np.asarray(t["id"].to_pylist(), dtype=object)

    def _known_keys(self, meter_ids: Iterable[str]) -> list[int]:
        ids = [str(m) for m in meter_ids]
        if any(m not in self._keys for m in ids):  # another writer may have added meters
            self._refresh_keys()
        return [self._keys[m] for m in ids if m in self._keys]

    def _ids_filter(self, meter_ids: Iterable[str] | None, column: str = "meter") -> tuple[str, list]:
        """An SQL condition on meter keys (one JSON parameter, any number of meters)."""
        if meter_ids is None:
            return "", []
        return f" AND {column} IN (SELECT value FROM json_each(?))", [json.dumps(self._known_keys(meter_ids))]

    def _names(self, keys: np.ndarray) -> np.ndarray:
        """Meter ids of integer keys (vectorised; re-read if another writer added meters)."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and (keys.max() >= len(self._by_key) or any(v is None for v in self._by_key[np.unique(keys)])):
            self._refresh_keys()
        return self._by_key[keys]

    def _norm(self, table: pa.Table) -> pd.DataFrame:
        """Normalised samples (meter_id a Categorical, t, value, quality) of Arrow rows
        meter, t, value, quality."""
        keys, codes = np.unique(table["meter"].to_numpy(), return_inverse=True)
        return pd.DataFrame({
            "meter_id": pd.Categorical.from_codes(codes.astype(np.int64), categories=self._names(keys)),
            "t": table["t"].to_numpy().astype(np.int64),
            "value": table["value"].to_numpy().astype(float),
            "quality": table["quality"].to_numpy().astype(np.int64),
        })

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        return pd.DataFrame({"meter_id": self._names(table["meter"].to_numpy()),
                             "time": from_epoch_s(table["t"].to_numpy()),
                             "value": table["value"].to_numpy().astype(float),
                             "quality": table["quality"].to_numpy().astype(np.int64)})[SAMPLE_COLUMNS]

    # -- samples ----------------------------------------------------------------
    def _put_samples(self, norm: pd.DataFrame) -> None:
        self._put_samples_async(norm).result()

    def _put_samples_async(self, norm: pd.DataFrame) -> Future:
        """The insert runs in the writer thread on this thread's connection (inside its
        transaction; nothing else uses the connection until the result is waited for):
        ADBC releases the GIL while SQLite works."""
        keys = self._keys_for(norm["meter_id"])
        table = pa.table([keys, norm["t"].to_numpy(np.int64), norm["value"].to_numpy(float),
                          norm["quality"].to_numpy(np.int64)], schema=SAMPLE_SCHEMA)
        cur = self._cur()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        return self._writer.submit(cur.executemany, "INSERT OR REPLACE INTO sample VALUES (?,?,?,?)", table)

    def _samples_near(self, windows: pd.DataFrame, before: int, after: int, inside: bool = True) -> pd.DataFrame:
        if not windows["meter_id"].isin(self._keys.keys()).all():  # another writer may have added meters
            self._refresh_keys()
        known = windows[windows["meter_id"].isin(self._keys.keys())]
        if known.empty:
            return self._norm(SAMPLE_SCHEMA.empty_table())
        cur = self._cur()
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS win (meter INTEGER PRIMARY KEY, lo INTEGER, hi INTEGER, "
                    "a INTEGER, b INTEGER)")
        cur.execute("DELETE FROM win")
        cur.executemany("INSERT INTO win (meter, lo, hi) VALUES (?,?,?)", pa.table({
            "meter": known["meter_id"].map(self._keys).to_numpy(np.int64), "lo": known["lo"].to_numpy(np.int64),
            "hi": known["hi"].to_numpy(np.int64)}))
        # a, b: time of the `before`-th sample before lo and of the `after`-th at or after hi
        # (all of them if there are fewer)
        a = (f"coalesce((SELECT t FROM sample s WHERE s.meter = win.meter AND s.t < win.lo ORDER BY s.t DESC "
             f"LIMIT 1 OFFSET {before - 1}), -9000000000000000000)" if before else "win.lo")
        b = (f"coalesce((SELECT t FROM sample s WHERE s.meter = win.meter AND s.t >= win.hi ORDER BY s.t "
             f"LIMIT 1 OFFSET {after - 1}), 9000000000000000000)" if after else "win.hi - 1")
        cur.execute(f"UPDATE win SET a = {a}, b = {b}")
        pick = "SELECT s.meter, s.t, s.value, s.quality FROM win w CROSS JOIN sample s ON s.meter = w.meter AND "
        if inside:
            sql = pick + "s.t >= w.a AND s.t <= w.b"
        else:
            sql = pick + "s.t >= w.a AND s.t < w.lo UNION ALL " + pick + "s.t >= w.hi AND s.t <= w.b"
        return self._norm(self._arrow(sql))

    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        lo = -(2**62) if start is None else int(ts(start, self.tz).timestamp())
        hi = 2**62 if end is None else int(np.ceil(ts(end, self.tz).timestamp()))
        where, params = self._ids_filter(meter_ids)
        df = self._frame(self._arrow(
            f"SELECT meter, t, value, quality FROM sample WHERE t >= ? AND t < ?{where} ORDER BY meter, t",
            [lo, hi, *params]))
        return df.sort_values(["meter_id", "time"], kind="stable").reset_index(drop=True)

    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        hi = int(np.ceil(ts(t, self.tz).timestamp()))
        where, params = self._ids_filter(meter_ids, "m.key")
        return self._frame(self._arrow(
            "SELECT s.meter, s.t, s.value, s.quality FROM meter m CROSS JOIN sample s ON s.meter = m.key "
            f"AND s.t = (SELECT max(t) FROM sample WHERE meter = m.key AND t < ?) WHERE 1=1{where}", [hi, *params]))

    def meter_ids(self) -> list[str]:
        return self._arrow("SELECT id FROM meter m WHERE EXISTS (SELECT 1 FROM sample WHERE meter = m.key) "
                           "ORDER BY id")["id"].to_pylist()

    def count_samples(self) -> int:
        return int(self._arrow("SELECT count(*) AS n FROM sample")["n"][0].as_py())

    def _sample_span(self, meter_ids: list[str] | None) -> pd.DataFrame:
        where, params = self._ids_filter(meter_ids)
        t = self._arrow(f"SELECT meter, min(t) AS first, max(t) AS last FROM sample WHERE 1=1{where} "
                        "GROUP BY meter ORDER BY meter", params)
        return pd.DataFrame({"meter_id": self._names(t["meter"].to_numpy()), "first": t["first"].to_numpy(),
                             "last": t["last"].to_numpy()})

    # -- consumption tables -------------------------------------------------------
    def _put_periods(self, freq: str, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        cols = {c: rows[c].to_numpy() for c in PERIOD_COLUMNS[1:]}
        self._cur().executemany(f"INSERT OR REPLACE INTO {TABLES[freq]} VALUES (?,?,?,?,?,?,?,?,?)",
                                pa.table({"meter": self._keys_for(rows["meter_id"]), **cols}))

    def _read_periods(self, freq: str, lo: int, hi: int, meter_ids: list[str] | None,
                      columns: list[str]) -> pd.DataFrame:
        where, params = self._ids_filter(meter_ids)
        t = self._arrow(f"SELECT meter, t, {', '.join(columns)} FROM {TABLES[freq]} "
                        f"WHERE t >= ? AND t < ?{where} ORDER BY meter, t", [lo, hi, *params])
        if t.num_rows == 0:
            return empty_periods(columns)
        # rows come by meter: each meter's id is looked up once and Arrow repeats it (a
        # province year is ~8 million rows: no Python string per row, no re-inference)
        keys = t["meter"].to_numpy()
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        codes = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
        ids = pc.take(pa.array(self._names(keys[starts]).tolist(), pa.string()), pa.array(codes))
        return t.drop(["meter"]).add_column(0, "meter_id", ids).to_pandas()

    def _sums_between(self, keys: pd.DatetimeIndex, cuts: np.ndarray,
                      meter_ids: Iterable[str] | None) -> pd.DataFrame | None:
        """Spans summed by SQLite: one `sum() ... GROUP BY meter` per span over the
        covered days (a year of 21,000 meters answers 21,000 rows, not 7.7 million daily ones)."""
        where, params = self._ids_filter(meter_ids)
        parts = [self._arrow(f"SELECT meter, sum(quantity) AS quantity, sum(est) AS est FROM {TABLES['day']} "
                             f"WHERE t >= ? AND t < ? AND covered = 1{where} GROUP BY meter",
                             [int(a), int(b), *params]) for a, b in itertools.pairwise(cuts)]
        period = np.repeat(np.arange(len(parts)), [t.num_rows for t in parts])
        out = pd.DataFrame({
            "meter_id": self._names(np.concatenate([t["meter"].to_numpy() for t in parts]).astype(np.int64)),
            "period_start": keys[period],
            "quantity": np.concatenate([t["quantity"].to_numpy() for t in parts]).astype(float),
            "est": np.concatenate([t["est"].to_numpy() for t in parts]).astype(float),
        })
        return out.sort_values(["meter_id", "period_start"], kind="stable", ignore_index=True)

    def _drop_periods(self) -> None:
        for name in TABLES.values():
            self._cur().execute(f"DELETE FROM {name}")

    # -- events -----------------------------------------------------------------
    def _put_events(self, ev: pd.DataFrame) -> None:
        self._cur().executemany("INSERT OR REPLACE INTO event VALUES (?,?,?,?,?)", pa.Table.from_pandas(
            ev[["meter_id", "t", "kind", "old_index", "new_index"]], preserve_index=False))

    def read_events(self, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        where, params = ("", []) if meter_ids is None else (
            " WHERE meter_id IN (SELECT value FROM json_each(?))", [json.dumps([str(m) for m in meter_ids])])
        t = self._arrow(f"SELECT meter_id, t, kind, old_index, new_index FROM event{where} ORDER BY meter_id, t", params)
        return pd.DataFrame({
            "meter_id": np.asarray(t["meter_id"].to_pylist(), dtype=object),
            "time": from_epoch_s(t["t"].to_numpy()),
            "kind": np.asarray(t["kind"].to_pylist(), dtype=object),
            "old_index": t["old_index"].to_numpy().astype(float),
            "new_index": t["new_index"].to_numpy().astype(float),
        })[EVENT_COLUMNS]

    # -- bills ------------------------------------------------------------------
    def write_bills(self, bills: pd.DataFrame) -> int:
        rows = pa.table({
            "institution_id": bills["institution_id"].astype(str).to_numpy(),
            "energy": bills["energy"].astype(str).to_numpy(),
            "period_start": pd.to_datetime(bills["period_start"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "period_end": pd.to_datetime(bills["period_end"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "quantity": bills["quantity"].astype(float).to_numpy(),
            "unit": bills["unit"].astype(str).to_numpy(),
            **{c: _optional_floats(bills, c) for c in ("cost_cny", *BILL_FIGURES)},
        })
        with self._writing():
            self._cur().executemany(f"INSERT OR REPLACE INTO bill ({', '.join(BILL_COLUMNS)}) VALUES "
                                    f"({', '.join('?' * len(BILL_COLUMNS))})", rows)
        return rows.num_rows

    def read_bills(self, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        where, params = ("", []) if institution_ids is None else (
            " WHERE institution_id IN (SELECT value FROM json_each(?))", [json.dumps([str(i) for i in institution_ids])])
        t = self._arrow(f"SELECT {', '.join(BILL_COLUMNS)} FROM bill{where} "
                        "ORDER BY institution_id, energy, period_start", params)
        df = pd.DataFrame({c: t[c].to_pylist() for c in BILL_COLUMNS})
        for c in ("period_start", "period_end"):
            df[c] = pd.to_datetime(df[c]).dt.date
        df["quantity"] = df["quantity"].astype(float)
        for c in ("cost_cny", *BILL_FIGURES):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        return df


def _optional_floats(frame: pd.DataFrame, column: str) -> pa.Array:
    """`frame[column]` as float64 with nulls for NaN (all null without the column)."""
    values = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.full(len(frame), np.nan)
    return pa.array(values, pa.float64(), from_pandas=True)
