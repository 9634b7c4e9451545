"""The embedded store: one SQLite database (WAL mode) in a directory, no server.

Why SQLite: it ships everywhere, a transaction makes an import all-or-nothing, and in
WAL mode any number of readers (the dashboard, `civicwatt export`, a second process)
read a consistent snapshot while one writer (the collectors) appends. DuckDB, the
faster analytical engine, lets only one process open a database for writing and blocks
readers in other processes; Parquet partitions would need a second copy of the data
and their own commit protocol. The analytical load is kept small instead: consumption
is materialised as samples arrive (`storage.base`): `cons_day`, one row per meter and
local day (clustered on `(meter, t)`, WITHOUT ROWID), so a year is 365 rows per meter, and
`cons_hour_day`, the hourly periods stored densely, one row per meter and local day whose
BLOB columns pack that day's hours (HOUR_DTYPES; `t` as offsets in s from the day key, so
23- and 25-hour days and half-hour zones need nothing special). A write has a quarter as
many hours as 15-minute samples; one row per day instead of per hour cuts their insert from
~0.20 s to ~0.03 s of CPU per 120,000 hours (measured on this machine kind). The rows
(~1 KB) are too wide for WITHOUT ROWID (they would spill into overflow pages: as slow as
per-hour rows), so the table has a rowid and the `(meter, day)` key is a unique index.

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

from core.frames import labels
from core.sqlite import BUSY_TIMEOUT_MS, transaction
from storage.base import (
    BILL_COLUMNS,
    BILL_FIGURES,
    EVENT_COLUMNS,
    PERIOD_COLUMNS,
    PERIOD_DTYPES,
    SAMPLE_COLUMNS,
    Store,
    StoreError,
    StoreMissing,
    empty_periods,
    expected_samples,
    from_epoch_s,
    local_floor_day,
    local_next_day,
    ts,
)

DB_NAME = "civicwatt.sqlite3"
CACHE_KIB = 65_536  # page cache per connection (KiB): keeps the B-tree pages of a write chunk in memory
# Memory-mapped reads (bytes; the bundled SQLite's compiled maximum, SQLITE_MAX_MMAP_SIZE
# 0x7fff0000): a page is read from the OS page cache without a pread() and a copy. A
# province's month views re-read leaf pages per span (~3 million preads, 4-5 s of
# system time in `quotas check` at 31,600 institutions); mapped pages count in the
# process's RSS (shared, file-backed: the kernel reclaims them under pressure).
MMAP_BYTES = 0x7FFF0000
TABLES = {"hour": "cons_hour_day", "day": "cons_day"}
DAY_S = 86_400.0  # the completeness rule's spacing when nothing else tells (models.completeness.DAY_S)
_PERIOD_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    meter INTEGER NOT NULL, t INTEGER NOT NULL, quantity REAL NOT NULL, est REAL NOT NULL,
    flags INTEGER NOT NULL, samples INTEGER NOT NULL, stored INTEGER NOT NULL, covered INTEGER NOT NULL,
    step REAL NOT NULL, PRIMARY KEY (meter, t)) WITHOUT ROWID;
"""
# The packed hourly values of one meter-day in cons_hour_day: little-endian numpy dtypes per column
# (t: offset in s from the row's day key; flags hold quality bits, samples and stored counts per hour)
HOUR_DTYPES = {"t": "<i4", "quantity": "<f8", "est": "<f8", "flags": "<i4", "samples": "<i4", "stored": "<i4",
               "covered": "<i1", "step": "<f8"}
_HOUR_TABLE = f"""CREATE TABLE IF NOT EXISTS {TABLES['hour']} (
    meter INTEGER NOT NULL, day INTEGER NOT NULL, {', '.join(f'{c} BLOB NOT NULL' for c in HOUR_DTYPES)},
    PRIMARY KEY (meter, day));
"""
HOUR_GROUP_METERS = 64  # meters converted at a time from the per-hour table of earlier versions
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
""" + _PERIOD_TABLE.format(name=TABLES["day"]) + _HOUR_TABLE
# the lazily refreshed daily cache of earlier versions, replaced by cons_day
OLD_TABLES = ("rollup_day", "dirty")
OLD_HOUR_TABLE = "cons_hour"  # one row per meter-hour, before cons_hour_day: converted at open
SAMPLE_SCHEMA = pa.schema([("meter", pa.int64()), ("t", pa.int64()), ("value", pa.float64()),
                           ("quality", pa.int64())])


def connect(path: Path) -> adbc.Connection:
    """An ADBC connection in autocommit mode (transactions are explicit), WAL journal,
    synchronous=NORMAL, the busy timeout of `core.sqlite`, CACHE_KIB of page cache and
    MMAP_BYTES of memory-mapped reads."""
    con = adbc.connect(str(path), autocommit=True)
    cur = con.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MS}",
                   f"cache_size=-{CACHE_KIB}", "temp_store=MEMORY", f"mmap_size={MMAP_BYTES}"):
        cur.execute(f"PRAGMA {pragma}")
        cur.fetchall()
    cur.close()
    return con


def _close_all(connections: list[tuple[threading.Thread, adbc.Connection, adbc.Cursor]]) -> None:
    """Close each cursor, then its connection (ADBC refuses the other order), of the
    calling thread and of threads that have ended. A connection of another thread that
    is still running stays open (it may be in the middle of a query: closing it under
    that thread crashes the process) and is closed by a later call once its thread
    ended, or when the store is dropped."""
    me = threading.current_thread()
    keep = []
    for owner, con, cur in connections:
        if owner is me or not owner.is_alive():
            cur.close()
            con.close()
        else:
            keep.append((owner, con, cur))
    connections[:] = keep


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
        self._open: list[tuple[threading.Thread, adbc.Connection, adbc.Cursor]] = []  # each thread's, see _close_all
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
                or tables & {*OLD_TABLES, OLD_HOUR_TABLE} or stale):
            with self._writing():  # only when the schema is missing or old: readers never wait for a writer here
                cur = self._cur()
                old = set(self._arrow("SELECT name FROM sqlite_master WHERE type='table'")["name"].to_pylist())
                for name in (*OLD_TABLES, *((*TABLES.values(), OLD_HOUR_TABLE) if stale else ())):
                    cur.execute(f"DROP TABLE IF EXISTS {name}")  # stale: rebuilt by the version
                for statement in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(statement)
                if OLD_HOUR_TABLE in old and not stale:
                    self._convert_old_hours()
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
                self._open.append((threading.current_thread(), con, cur))
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
        keys = list(map(self._keys.get, ids))  # one lookup a meter (87,000 at a province)
        if None in keys:  # another writer may have added meters
            self._refresh_keys()
            keys = list(map(self._keys.get, ids))
        return [k for k in keys if k is not None]

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
        }, copy=False)

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
        keys = pd.Series(windows["meter_id"].to_numpy(object)).map(self._keys)
        if keys.isna().any():  # another writer may have added meters
            self._refresh_keys()
            keys = pd.Series(windows["meter_id"].to_numpy(object)).map(self._keys)
        known = keys.notna().to_numpy()
        if not known.any():
            return self._norm(SAMPLE_SCHEMA.empty_table())
        cur = self._cur()
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS win (meter INTEGER PRIMARY KEY, lo INTEGER, hi INTEGER, "
                    "a INTEGER, b INTEGER)")
        cur.execute("DELETE FROM win")
        cur.executemany("INSERT INTO win (meter, lo, hi) VALUES (?,?,?)", pa.table({
            "meter": keys[known].to_numpy(np.int64), "lo": windows["lo"].to_numpy(np.int64)[known],
            "hi": windows["hi"].to_numpy(np.int64)[known]}))
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
        keys = self._keys_for(rows["meter_id"])
        if freq == "hour":
            self._put_hours(keys, {c: rows[c].to_numpy() for c in PERIOD_COLUMNS[1:]})
            return
        cols = {c: rows[c].to_numpy() for c in PERIOD_COLUMNS[1:]}
        self._cur().executemany(f"INSERT OR REPLACE INTO {TABLES[freq]} VALUES (?,?,?,?,?,?,?,?,?)",
                                pa.table({"meter": keys, **cols}))

    def _put_hours(self, keys: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        """Upsert hourly rows (meter keys, then t and the other PERIOD_COLUMNS) into
        cons_hour_day: grouped by meter and local day and packed, one row per meter-day.
        A meter-day the rows do not cover hour by hour (a write that starts or ends in
        it) is merged with its stored row first (stored hours not in `rows` stay, as with
        per-hour rows), in the caller's transaction."""
        flat = {"meter": np.asarray(keys, np.int64), **cols}
        flat["t"] = np.asarray(flat["t"], np.int64)
        flat["day"] = self._day_of(flat["t"])
        flat = _sorted(flat)
        starts = _run_starts(flat["meter"], flat["day"])
        day = flat["day"][starts]
        hours = (local_next_day(day, self.tz) - day) // 3600
        partial = np.diff(np.r_[starts, len(flat["t"])]) != hours
        if partial.any():
            stored = self._hours_of(flat["meter"][starts][partial], day[partial])
            if len(stored["t"]):
                flat = _overlay(stored, flat)
                starts = _run_starts(flat["meter"], flat["day"])
        offsets = flat["t"] - flat["day"]
        packed = {c: _pack(offsets if c == "t" else flat[c], dtype, starts) for c, dtype in HOUR_DTYPES.items()}
        self._cur().executemany(
            f"INSERT OR REPLACE INTO {TABLES['hour']} (meter, day, {', '.join(HOUR_DTYPES)}) "
            f"VALUES ({', '.join('?' * (len(HOUR_DTYPES) + 2))})",
            pa.table({"meter": flat["meter"][starts], "day": flat["day"][starts], **packed}))

    def _day_of(self, t: np.ndarray) -> np.ndarray:
        """The local day (its first instant, epoch s) of each `t`, converted once per distinct value."""
        uniq = np.sort(pd.unique(t))  # few distinct hours: a hash, then a search in them
        return local_floor_day(uniq, self.tz)[np.searchsorted(uniq, t)]

    def _hours_of(self, meters: np.ndarray, days: np.ndarray) -> dict[str, np.ndarray]:
        """The stored hourly rows (unpacked, every column) of these meter-days."""
        pairs = json.dumps(np.column_stack([meters, days]).tolist())
        return _unpack(self._arrow(
            f"SELECT meter, day, {', '.join(HOUR_DTYPES)} FROM {TABLES['hour']} WHERE (meter, day) IN "
            "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))", [pairs]),
            list(HOUR_DTYPES))

    def _read_periods(self, freq: str, lo: int, hi: int, meter_ids: list[str] | None,
                      columns: list[str]) -> pd.DataFrame:
        where, params = self._ids_filter(meter_ids)
        if freq == "hour":
            day_lo = int(local_floor_day(np.asarray([lo], np.int64), self.tz)[0])
            flat = _unpack(self._arrow(
                f"SELECT meter, day, t, {', '.join(columns)} FROM {TABLES['hour']} "
                f"WHERE day >= ? AND day < ?{where} ORDER BY meter, day", [day_lo, hi, *params]), ["t", *columns])
            keep = (flat["t"] >= lo) & (flat["t"] < hi)
            if not keep.any():
                return empty_periods(columns)
            df = pd.DataFrame({c: flat[c][keep].astype(PERIOD_DTYPES[c]) for c in ["t", *columns]})
            df.insert(0, "meter_id", self._names(flat["meter"][keep]))
            return df
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
        covered days (a year of 21,000 meters answers 21,000 rows, not 7.7 million daily
        ones). Inside `judging_completeness`, the judged meters of one poll interval whose
        spans' days are of one length also count their complete days in the same pass
        (`_SUMS_JUDGED`: the sums are the same)."""
        sets, length = self._judged_sets(meter_ids, cuts)
        parts = []
        for interval, ids in sets:
            where, params = self._ids_filter(ids)
            judged = bool(np.isfinite(interval))
            covered = "(covered = 1 OR samples > 0)" if judged else "covered = 1"
            # one probe first: a range with nothing stored (e.g. the year before the first) needs no query per span
            stored = self._arrow(f"SELECT 1 AS one FROM {TABLES['day']} WHERE t >= ? AND t < ? AND {covered}{where} "
                                 "LIMIT 1", [int(cuts[0]), int(cuts[-1]), *params]).num_rows > 0
            counts = []
            for k, (a, b) in enumerate(itertools.pairwise(cuts) if stored else ()):
                if not judged:
                    parts.append((k, self._arrow(f"SELECT meter, sum(quantity) AS quantity, sum(est) AS est "
                                                 f"FROM {TABLES['day']} WHERE t >= ? AND t < ? AND covered = 1{where} "
                                                 "GROUP BY meter", [int(a), int(b), *params])))
                    continue
                t = self._arrow(_SUMS_JUDGED, [float(length[k]), float(expected_samples(length[k], interval)),
                                               self._judging_target(), int(a), int(b), *params])
                done = t["complete"].to_numpy().astype(np.int64)
                counts.append((t["meter"].to_numpy().astype(np.int64)[done > 0], k, done[done > 0]))
                parts.append((k, t.filter(t["quantity"].is_valid())))  # the meters with a covered day
            if judged:
                meter = np.concatenate([m for m, _, _ in counts] or [np.zeros(0, np.int64)])
                self._keep_judged(interval, cuts, ids, pd.DataFrame({
                    "meter_id": self._names(meter), "span": np.repeat([k for _, k, _ in counts],
                                                                      [len(m) for m, _, _ in counts]).astype(np.int64),
                    "complete": np.concatenate([n for _, _, n in counts] or [np.zeros(0, np.int64)])}))
        period = np.repeat([k for k, _ in parts], [t.num_rows for _, t in parts]).astype(np.int64)

        def column(name: str, dtype: type) -> np.ndarray:  # the spans' rows of one column (none: empty)
            return np.concatenate([t[name].to_numpy() for _, t in parts] or [[]]).astype(dtype)

        # by meter id and period: the ids' order ranked once per meter, then an integer sort
        meter, at = np.unique(column("meter", np.int64), return_inverse=True)
        names = self._names(meter)
        rank = np.empty(len(names), np.int64)
        rank[np.argsort(names, kind="stable")] = np.arange(len(names))
        order = np.lexsort((period, rank[at]))
        return pd.DataFrame({"meter_id": labels(names, at[order]), "period_start": keys[period[order]],
                             "quantity": column("quantity", float)[order], "est": column("est", float)[order]})

    def _completeness_sums(self, days: pd.DataFrame, meters: pd.DataFrame, target: float,
                           full: bool = True) -> pd.DataFrame:
        """The completeness rule summed by SQLite (`Store._completeness_sums`), so memory
        is bounded by the sums (a province year: ~87,000 meters x 12 months), not by the
        ~30 million meter-days. A day's share is that of
        `models.completeness.completeness_from_counts`, in the same float arithmetic:
        min(samples / max(floor(span / interval), 1), 1), the interval being the day's own
        step if all its samples are stored (and step > 0), else the live poll interval,
        else (a meter without one) the median of the positive steps of its days in
        [lo, t] (`_COMPLETENESS_FEED`), else DAY_S. Live meters: one `GROUP BY meter` over
        the primary key per run of days of equal length in a group and per interval; not
        `full` (only complete), for up to PACKED_GROUPS groups of at most 31 days (a
        year's months), one pass per run of days of equal length: the groups' complete
        days packed in PACK_BITS bits each of one integer sum (`_COMPLETENESS_PACKED`;
        only groups with a complete day, days NaN)."""
        found, meters = self._complete_alongside(days, meters, target) if not full else (None, meters)
        if found is not None and not len(meters):
            return found
        ids = meters["meter_id"].astype(str).to_numpy(object)
        known = np.asarray([m in self._keys for m in ids], bool)
        if not known.all():  # another writer may have added meters
            self._refresh_keys()
            known = np.asarray([m in self._keys for m in ids], bool)
        keys = np.asarray([self._keys[m] for m in ids[known]], np.int64)
        interval = meters["interval_s"].to_numpy(float)[known]
        t, span, group = (days[c].to_numpy(np.int64) for c in ("t", "span", "group"))
        cut = np.flatnonzero(np.r_[True, (group[1:] != group[:-1]) | (span[1:] != span[:-1])])
        runs = [(int(t[a]), int(t[b - 1] + span[b - 1]), float(span[a]), int(group[a]))
                for a, b in zip(cut, np.r_[cut[1:], len(t)], strict=True)]
        parts: list[tuple[pa.Table, int]] = []
        live = np.isfinite(interval)
        n_groups = int(group.max()) + 1 if len(group) else 0
        if not full and live.any() and n_groups <= PACKED_GROUPS and np.bincount(group).max(initial=0) < 1 << PACK_BITS:
            packed = self._packed_counts(t, span, group, keys[live], interval[live], float(target))
        else:
            packed = None
        for iv in np.unique(interval[live]) if packed is None else ():
            wanted = json.dumps(np.sort(keys[interval == iv]).tolist())
            for lo, hi, length, g in runs:
                expected = float(expected_samples(length, iv))
                parts.append((self._arrow(_COMPLETENESS_LIVE, [length, expected, lo, hi, wanted, float(target)]), g))
        if (~live).any():
            wanted = json.dumps(np.sort(keys[~live]).tolist())
            lo_of = days["lo"].to_numpy(np.int64)
            for g in np.unique(group):
                at = group == g
                table = json.dumps(np.column_stack([t[at], lo_of[at], span[at]]).tolist())
                lo, hi = int(t[at][0]), int(t[at][-1] + span[at][-1])
                parts.append((self._arrow(_COMPLETENESS_FEED, [table, lo, hi, wanted, float(target)]), int(g)))
        cols = ["days", "complete", "share_sum", "share_min", "samples"]
        meter = np.concatenate([p["meter"].to_numpy() for p, _ in parts] or [np.zeros(0, np.int64)]).astype(np.int64)
        out = pd.DataFrame({
            "meter_id": self._names(meter),
            "period": np.repeat([g for _, g in parts], [p.num_rows for p, _ in parts]).astype(np.int64),
            **{c: np.concatenate([p[c].to_numpy(zero_copy_only=False) for p, _ in parts] or [np.zeros(0)]).astype(
                float if c.startswith("share") else np.int64) for c in cols},
        })
        if packed is not None:
            out = pd.concat([out, packed], ignore_index=True) if len(out) else packed
        if len(runs) > len(np.unique(group)) and len(out):  # a group of several runs (a 23- or 25-hour day)
            g = out.groupby(["meter_id", "period"], sort=True)  # (NaN stays NaN: min_count)
            out = g[["days", "complete", "share_sum", "samples"]].sum(min_count=1).join(g["share_min"].min())
            out = out.reset_index()
        return pd.concat([out, found], ignore_index=True) if found is not None else out

    def _packed_counts(self, t: np.ndarray, span: np.ndarray, group: np.ndarray, keys: np.ndarray,
                       interval: np.ndarray, target: float) -> pd.DataFrame:
        """complete of live meters per group (`_completeness_sums`, not full): one pass per
        poll interval and run of days of equal length, each group's count in PACK_BITS
        bits of one integer sum; the rows of groups with a complete day, days, share_sum,
        share_min and samples NaN."""
        cut = np.flatnonzero(np.r_[True, span[1:] != span[:-1]])
        frames = []
        for iv in np.unique(interval):
            wanted = json.dumps(np.sort(keys[interval == iv]).tolist())
            for a, b in zip(cut, np.r_[cut[1:], len(t)], strict=True):
                g, tt = group[a:b], t[a:b]
                starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])  # each group's first day in the run
                sql = _COMPLETENESS_PACKED.format(shift=_bisect_case(tt[starts[1:]], g[starts] * PACK_BITS))
                expected = float(expected_samples(span[a], iv))
                tab = self._arrow(sql, [float(span[a]), expected, int(tt[0]), int(tt[-1] + span[b - 1]), wanted, target])
                meter = tab["meter"].to_numpy().astype(np.int64)
                done = tab["complete"].to_numpy().astype(np.int64)
                for k in np.unique(g):
                    n = (done >> (int(k) * PACK_BITS)) & ((1 << PACK_BITS) - 1)
                    frames.append(pd.DataFrame({"meter": meter[n > 0], "period": int(k), "complete": n[n > 0]}))
        f = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"meter": [], "period": [], "complete": []})
        return pd.DataFrame({"meter_id": self._names(f["meter"].to_numpy(np.int64)),
                             "period": f["period"].to_numpy(np.int64), "days": np.nan,
                             "complete": f["complete"].to_numpy(np.int64), "share_sum": np.nan, "share_min": np.nan,
                             "samples": np.nan})

    def _drop_periods(self) -> None:
        for name in TABLES.values():
            self._cur().execute(f"DELETE FROM {name}")

    def _convert_old_hours(self) -> None:
        """Pack the per-hour rows of an earlier version's cons_hour into cons_hour_day
        (HOUR_GROUP_METERS meters at a time: memory bounded by that), then drop it."""
        keys = self._arrow(f"SELECT DISTINCT meter FROM {OLD_HOUR_TABLE} ORDER BY meter")["meter"].to_numpy()
        for i in range(0, len(keys), HOUR_GROUP_METERS):
            part = self._arrow(f"SELECT meter, {', '.join(PERIOD_COLUMNS[1:])} FROM {OLD_HOUR_TABLE} "
                               "WHERE meter >= ? AND meter <= ?", [int(keys[i]), int(keys[i:i + HOUR_GROUP_METERS][-1])])
            self._put_hours(part["meter"].to_numpy(), {c: part[c].to_numpy() for c in PERIOD_COLUMNS[1:]})
        self._cur().execute(f"DROP TABLE {OLD_HOUR_TABLE}")

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


# A day's share of its expected samples before the cap at 1 (`models.completeness`): at its
# own step when all its samples are stored (and step > 0), else at the live expected count;
# parameters ?1 the day's length (s, REAL), ?2 that live count (`expected_samples`).
_SHARE = "samples * 1.0 / CASE WHEN stored = samples AND step > 0 THEN max(floor(?1 / step), 1.0) ELSE ?2 END"
# A day's share under the completeness rule (`EmbeddedStore._completeness_sums`), for one
# run of days of equal length and the live meters of one poll interval: parameters span
# (s, REAL), interval (s), lo, hi (epoch s), the meter keys (JSON) and the target.
# (the live expected count max(floor(span / interval), 1) computed once by the caller, ?2;
# the inner query, ordered and limited, is a co-routine: each share computed once, and the
# outer GROUP BY needs no sort)
_COMPLETENESS_LIVE = f"""
SELECT meter, count(*) AS days, sum(share >= ?6) AS complete, sum(share) AS share_sum, min(share) AS share_min,
       sum(samples) AS samples
FROM (SELECT meter, samples, min({_SHARE}, 1.0) AS share
      FROM {TABLES['day']} WHERE t >= ?3 AND t < ?4 AND samples > 0 AND meter IN (SELECT value FROM json_each(?5))
      ORDER BY meter LIMIT -1)
GROUP BY meter
"""
# complete days of several groups (months) in one pass: each group's count in PACK_BITS
# bits of one integer sum ({shift}: the group's bit offset from t), the rule a filter so
# only complete days are summed; parameters as _COMPLETENESS_LIVE. (No inner query here:
# at a province its co-routine cost more than evaluating the rule, 6.3 s against 4.6 s
# for a year of 86,900 meters.)
PACK_BITS = 5  # a group's day count (< 32) ...
PACKED_GROUPS = 12  # ... of at most 12 groups in one int64 (60 bits)
_COMPLETENESS_PACKED = f"""
SELECT meter, sum(1 << {{shift}}) AS complete FROM {TABLES['day']}
WHERE t >= ?3 AND t < ?4 AND samples > 0 AND meter IN (SELECT value FROM json_each(?5))
  AND {_SHARE} >= ?6
GROUP BY meter
"""
# The sums of one span (`EmbeddedStore._sums_between`) and, in the same pass, the complete
# days of its meters (one poll interval, days of one length): parameters span (s, REAL),
# the live expected count, the target, lo, hi (epoch s) and the meter keys (JSON). A meter
# with only uncovered days has NULL sums.
_SUMS_JUDGED = f"""
SELECT meter, sum(quantity) FILTER (WHERE covered = 1) AS quantity, sum(est) FILTER (WHERE covered = 1) AS est,
       count(*) FILTER (WHERE samples > 0 AND {_SHARE} >= ?3) AS complete
FROM {TABLES['day']} WHERE t >= ?4 AND t < ?5 AND (covered = 1 OR samples > 0)
  AND meter IN (SELECT value FROM json_each(?6))
GROUP BY meter
"""
# The same for meters without a poll interval (one group of days): a day not judged at its
# own step is judged at the median of the positive steps of the meter's days in [lo, t]
# (its usual spacing; no such day: DAY_S). Parameters: the days (JSON [t, lo, span]), lo,
# hi, the meter keys (JSON) and the target.
_COMPLETENESS_FEED = f"""
WITH d(t, lo, span) AS (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1)),
r AS (SELECT c.meter, c.t, c.samples, c.stored, c.step, d.lo, d.span,
             c.stored = c.samples AND c.step > 0 AS own
      FROM {TABLES['day']} c JOIN d ON d.t = c.t
      WHERE c.t >= ?2 AND c.t < ?3 AND c.samples > 0 AND c.meter IN (SELECT value FROM json_each(?4))),
w AS (SELECT r.meter, r.t, s.step, row_number() OVER (PARTITION BY r.meter, r.t ORDER BY s.step) AS k,
             count(*) OVER (PARTITION BY r.meter, r.t) AS n
      FROM r JOIN {TABLES['day']} s ON s.meter = r.meter AND s.t >= r.lo AND s.t <= r.t
      WHERE NOT r.own AND s.samples > 0 AND s.step > 0),
m AS (SELECT meter, t, (min(step) + max(step)) / 2.0 AS usual FROM w WHERE k IN ((n + 1) / 2, (n + 2) / 2)
      GROUP BY meter, t),
x AS (SELECT r.meter, r.samples,
             min(r.samples * 1.0 / max(floor(r.span * 1.0 / CASE WHEN r.own THEN r.step
                                                                 ELSE coalesce(m.usual, {DAY_S}) END), 1.0),
                 1.0) AS share
      FROM r LEFT JOIN m ON m.meter = r.meter AND m.t = r.t)
SELECT meter, count(*) AS days, sum(share >= ?5) AS complete, sum(share) AS share_sum, min(share) AS share_min,
       sum(samples) AS samples
FROM x GROUP BY meter
"""


def _bisect_case(edges: np.ndarray, values: np.ndarray) -> str:
    """An SQL expression of `t`: values[k] for edges[k-1] <= t < edges[k] (len(values) =
    len(edges) + 1), as nested CASEs that bisect the edges: ~log2(12) comparisons a row
    for a year's months instead of ~6 down a ladder (the packed completeness pass, ~10 %
    of its time at a province)."""
    if len(values) == 1:
        return str(int(values[0]))
    mid = len(values) // 2
    return (f"CASE WHEN t < {int(edges[mid - 1])} THEN {_bisect_case(edges[:mid - 1], values[:mid])} "
            f"ELSE {_bisect_case(edges[mid:], values[mid:])} END")


def _sorted(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns of hourly rows sorted by meter, day and t (not copied when they already are)."""
    m, d, t = flat["meter"], flat["day"], flat["t"]
    if len(t) < 2 or ((m[1:] > m[:-1]) | ((m[1:] == m[:-1]) & (t[1:] > t[:-1]))).all():
        return flat  # sorted by meter and t: then by day too
    order = np.lexsort((t, d, m))
    return {c: v[order] for c, v in flat.items()}


def _run_starts(meter: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Positions where each (meter, day) run of sorted rows begins."""
    return np.flatnonzero(np.r_[True, (meter[1:] != meter[:-1]) | (day[1:] != day[:-1])]) if len(meter) else \
        np.zeros(0, np.int64)


def _overlay(stored: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Hourly rows of `stored` and `new` in one sorted set, one per (meter, t), `new` winning."""
    both = {c: np.r_[stored[c], new[c]] for c in new}
    wins = np.r_[np.zeros(len(stored["t"]), np.int8), np.ones(len(new["t"]), np.int8)]
    order = np.lexsort((wins, both["t"], both["meter"]))
    m, t = both["meter"][order], both["t"][order]
    last = np.r_[(m[1:] != m[:-1]) | (t[1:] != t[:-1]), True]
    return {c: v[order][last] for c, v in both.items()}


def _pack(values: np.ndarray, dtype: str, starts: np.ndarray) -> pa.Array:
    """One BLOB per run of `values` (runs begin at `starts`): the run's values as `dtype`
    bytes, built as one Arrow binary array over one buffer (no Python object per row)."""
    data = np.ascontiguousarray(np.asarray(values).astype(dtype, casting="unsafe"))
    if dtype != "<f8" and len(data) and not np.array_equal(data, values):
        raise ValueError(f"hourly value out of range of {dtype}")
    offsets = (np.r_[starts, len(data)] * data.dtype.itemsize).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _unpack(table: pa.Table, columns: list[str]) -> dict[str, np.ndarray]:
    """Hourly rows of cons_hour_day rows (meter, day, and the packed `columns`, which
    include t): meter, t (epoch s) and each column, one element per hour."""
    if table.num_rows == 0:
        return {"meter": np.zeros(0, np.int64), "day": np.zeros(0, np.int64),
                **{c: np.zeros(0, HOUR_DTYPES[c]) for c in columns}}
    values = {}
    for c in columns:
        arr = table[c].combine_chunks()
        offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4)
        data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
        values[c] = data.view(HOUR_DTYPES[c])
        if c == "t":
            n = np.diff(offsets) // np.dtype(HOUR_DTYPES["t"]).itemsize
    day = np.repeat(table["day"].to_numpy(), n)
    out = {"meter": np.repeat(table["meter"].to_numpy(), n), "day": day,
           **{c: v for c, v in values.items() if c != "t"}, "t": day + values["t"]}
    if any(len(v) != len(day) for v in out.values()):
        raise StoreError(f"{TABLES['hour']}: a packed row's columns differ in length (the store is damaged)")
    return out


def _optional_floats(frame: pd.DataFrame, column: str) -> pa.Array:
    """`frame[column]` as float64 with nulls for NaN (all null without the column)."""
    values = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.full(len(frame), np.nan)
    return pa.array(values, pa.float64(), from_pandas=True)
