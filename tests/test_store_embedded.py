"""Embedded-store specifics: a store written by an earlier version (a lazily refreshed
daily rollup cache, per-hour rows) gets its consumption tables when opened; the dense
hourly table (one packed row per meter and local day) reads back what was written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import open_store, rollup
from storage.base import PERIOD_COLUMNS, PERIOD_DTYPES
from storage.embedded import _PERIOD_TABLE, DB_NAME, connect

TZ = "Asia/Shanghai"


def test_a_store_of_the_earlier_schema_is_rebuilt_when_opened(tmp_path):
    con = connect(tmp_path / DB_NAME)
    cur = con.cursor()
    for statement in (
            "CREATE TABLE meter (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
            "CREATE TABLE sample (meter INTEGER NOT NULL, t INTEGER NOT NULL, value REAL NOT NULL, "
            "quality INTEGER NOT NULL, PRIMARY KEY (meter, t)) WITHOUT ROWID",
            "CREATE TABLE rollup_day (meter INTEGER NOT NULL, t INTEGER NOT NULL, quantity REAL NOT NULL, "
            "est REAL NOT NULL, PRIMARY KEY (meter, t)) WITHOUT ROWID",
            "CREATE TABLE dirty (meter INTEGER PRIMARY KEY, since INTEGER NOT NULL, gen INTEGER NOT NULL)",
            "INSERT INTO meter VALUES (1, 'OLD')"):
        cur.execute(statement)
    t0 = int(pd.Timestamp("2025-03-10", tz=TZ).timestamp())
    for k in range(97):  # one day of 15-minute samples, 1.5 per interval
        cur.execute("INSERT INTO sample VALUES (1, ?, ?, 0)", (t0 + 900 * k, 1.5 * k))
    cur.close()
    con.close()

    store = open_store(f"embedded:{tmp_path}")
    store.set_meters(pd.DataFrame({"meter_id": ["OLD"], "multiplier": [2.0], "rollover_at": [np.nan]}))
    got = store.consumption("day", "2025-03-10", "2025-03-11", ["OLD"])
    assert got["quantity"].tolist() == [96 * 1.5 * 2.0]
    tables = store._arrow("SELECT name FROM sqlite_master WHERE type='table'")["name"].to_pylist()
    assert "rollup_day" not in tables and "cons_day" in tables
    store.close()


def test_period_tables_without_step_are_rebuilt_when_opened(tmp_path):
    """A store whose period rows predate `step` (PERIODS_VERSION 1) gets them recomputed at open."""
    t = pd.date_range("2024-01-01", periods=24 * 4 * 3, freq="15min", tz="UTC")
    store = open_store(f"embedded:{tmp_path}")
    store.write_samples(pd.DataFrame({"meter_id": "m", "time": t, "value": np.arange(len(t), dtype=float)}))
    want = store.period_counts("day", "2024-01-01", "2024-01-05")
    store.close()
    con = connect(tmp_path / DB_NAME)
    cur = con.cursor()
    cur.execute("ALTER TABLE cons_day DROP COLUMN step")
    cur.execute("DROP TABLE cons_hour_day")  # version 1 kept hours in per-hour rows, without step
    cur.execute(_PERIOD_TABLE.format(name="cons_hour").replace(",\n    step REAL NOT NULL", ""))
    cur.execute("UPDATE meta SET value = json_remove(value, '$.version')")
    cur.close()
    con.close()
    with open_store(f"embedded:{tmp_path}") as again:
        got = again.period_counts("day", "2024-01-01", "2024-01-05")
    assert (want["step"].iloc[1:] == 900.0).all()
    pd.testing.assert_frame_equal(got, want)


def test_bills_of_a_store_written_before_bill_figures_get_them_when_opened(tmp_path):
    open_store(f"embedded:{tmp_path}", tz=TZ).close()
    con = connect(tmp_path / DB_NAME)
    cur = con.cursor()
    for statement in (
            "DROP TABLE bill",
            "CREATE TABLE bill (institution_id TEXT NOT NULL, energy TEXT NOT NULL, period_start TEXT NOT NULL, "
            "period_end TEXT NOT NULL, quantity REAL NOT NULL, unit TEXT NOT NULL, cost_cny REAL, "
            "PRIMARY KEY (institution_id, energy, period_start, period_end))",
            "INSERT INTO bill VALUES ('I1', 'heat', '2025-01-01', '2025-01-31', 31.0, 'GJ', 600.0)"):
        cur.execute(statement)
    cur.close()
    con.close()
    store = open_store(f"embedded:{tmp_path}", tz=TZ, create=False)
    try:
        got = store.read_bills()
        assert got[["quantity", "cost_cny"]].iloc[0].tolist() == [31.0, 600.0]
        assert np.isnan(got["heating_quantity"].iloc[0]) and np.isnan(got["estimated_quantity"].iloc[0])
        store.import_bills(got.assign(heating_quantity=20.0), replace=True)
        assert store.read_bills()["heating_quantity"].tolist() == [20.0]
    finally:
        store.close()


def test_a_store_with_per_hour_rows_gets_them_packed_when_opened(tmp_path):
    """A store of the version before cons_hour_day (one cons_hour row per meter-hour) has
    its stored hourly rows converted, not recomputed: a row changed in the old table
    comes through (a rebuild would restore it), and the old table is gone."""
    t = pd.date_range("2025-03-09 22:00", periods=4 * 30, freq="15min", tz=TZ)
    with open_store(f"embedded:{tmp_path}", tz=TZ) as store:
        store.write_samples(pd.concat([
            pd.DataFrame({"meter_id": m, "time": t, "value": np.arange(len(t), dtype=float) * k})
            for m, k in (("A", 1.0), ("B", 2.5))]))
        want = store._read_periods("hour", 0, 2**40, None, PERIOD_COLUMNS[2:])
        keys = store._keys_for(want["meter_id"])
    want.loc[3, "quantity"] = 123.25  # what only a conversion keeps
    con = connect(tmp_path / DB_NAME)
    cur = con.cursor()
    cur.execute("DROP TABLE cons_hour_day")
    cur.execute(_PERIOD_TABLE.format(name="cons_hour"))
    cur.executemany("INSERT INTO cons_hour VALUES (?,?,?,?,?,?,?,?,?)", pa.table(
        {"meter": keys, **{c: want[c].to_numpy() for c in PERIOD_COLUMNS[1:]}}))
    cur.close()
    con.close()
    with open_store(f"embedded:{tmp_path}", tz=TZ, create=False) as again:
        got = again._read_periods("hour", 0, 2**40, None, PERIOD_COLUMNS[2:])
        tables = again._arrow("SELECT name FROM sqlite_master WHERE type='table'")["name"].to_pylist()
        hourly = again.consumption("hour", "2025-03-09 23:00", "2025-03-10 01:00", ["B"])
    assert len(want) == 2 * 30 and "cons_hour" not in tables and "cons_hour_day" in tables
    pd.testing.assert_frame_equal(got, want)
    assert hourly["quantity"].tolist() == [4 * 2.5, 4 * 2.5]


ZONES = ["Asia/Shanghai", "Asia/Kolkata", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"]


@st.composite
def hourly_writes(draw):
    """A time zone, its local hours over four days around a daylight-saving change (where
    it has one), and 1-4 writes of hourly rows for up to three meters on any subset of
    those hours (partial days, late rewrites of single hours, whole days)."""
    tz = draw(st.sampled_from(ZONES))
    first = pd.Timestamp(draw(st.sampled_from(["2025-03-29", "2025-04-04", "2025-10-25", "2025-06-01"])), tz=tz)
    edges = rollup.period_edges(first, first + pd.Timedelta(days=4), "hour", tz)[:-1]
    writes = []
    for _ in range(draw(st.integers(1, 4))):
        rows = draw(st.lists(st.tuples(st.sampled_from(["m1", "m2", "m3"]), st.integers(0, len(edges) - 1)),
                             min_size=1, max_size=120, unique=True))
        n = len(rows)
        floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
        writes.append(pd.DataFrame({
            "meter_id": [m for m, _ in rows], "t": edges[[k for _, k in rows]],
            "quantity": draw(st.lists(floats, min_size=n, max_size=n)),
            "est": draw(st.lists(floats, min_size=n, max_size=n)),
            "flags": draw(st.lists(st.integers(0, 127), min_size=n, max_size=n)),
            "samples": draw(st.lists(st.integers(0, 3600), min_size=n, max_size=n)),
            "stored": draw(st.lists(st.integers(0, 3600), min_size=n, max_size=n)),
            "covered": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
            "step": draw(st.lists(st.floats(min_value=0, max_value=1e6), min_size=n, max_size=n)),
        }))
    lo, hi = sorted(draw(st.lists(st.integers(0, len(edges)), min_size=2, max_size=2)))
    bounds = np.r_[edges, edges[-1] + 3600]
    return tz, writes, int(bounds[lo]), int(bounds[hi])


@pytest.fixture(scope="module")
def zone_stores(tmp_path_factory):
    """One embedded store per zone of ZONES, shared by the examples (each empties it)."""
    stores = {tz: open_store(f"embedded:{tmp_path_factory.mktemp('packed')}", tz=tz) for tz in ZONES}
    yield stores
    for store in stores.values():
        store.close()


@settings(max_examples=60, deadline=None)
@given(hourly_writes())
def test_packed_hours_read_back_exactly_what_was_written(zone_stores, case):
    """The dense hourly table returns, for any range, exactly the rows per-hour upserts
    would hold (the last write of each meter-hour wins, stored hours a later write does
    not cover stay), bit for bit, each meter's rows together and by time, in any zone
    (half-hour offsets, 23- and 25-hour days, a 30-minute daylight-saving shift)."""
    tz, writes, lo, hi = case
    store = zone_stores[tz]
    with store._writing():
        store._drop_periods()
    for rows in writes:
        with store._writing():
            store._put_periods("hour", rows)
    got = store._read_periods("hour", lo, hi, None, PERIOD_COLUMNS[2:])
    some = store._read_periods("hour", lo, hi, ["m2"], ["quantity", "flags"])
    m, t = got["meter_id"].to_numpy(), got["t"].to_numpy()
    assert ((m[1:] != m[:-1]) | (t[1:] > t[:-1])).all() and len(set(m)) == (len(m) > 0) + (m[1:] != m[:-1]).sum()
    got = got.sort_values(["meter_id", "t"]).reset_index(drop=True)
    want = pd.concat(writes, ignore_index=True).drop_duplicates(["meter_id", "t"], keep="last")
    want = want[(want["t"] >= lo) & (want["t"] < hi)].sort_values(["meter_id", "t"]).reset_index(drop=True)
    assert got["meter_id"].tolist() == want["meter_id"].tolist()
    for c in PERIOD_COLUMNS[1:]:
        assert got[c].dtype == PERIOD_DTYPES[c]
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy().astype(PERIOD_DTYPES[c]), strict=False)
    m2 = want[want["meter_id"] == "m2"].reset_index(drop=True)
    assert some.columns.tolist() == ["meter_id", "t", "quantity", "flags"]
    np.testing.assert_array_equal(some["quantity"].to_numpy(), m2["quantity"].to_numpy())
    np.testing.assert_array_equal(some["t"].to_numpy(), m2["t"].to_numpy())


def test_a_packed_value_out_of_its_range_is_refused(tmp_path):
    """A count too large for its packed type is an error, never a silently wrapped value."""
    with open_store(f"embedded:{tmp_path}", tz=TZ) as store:
        rows = pd.DataFrame({"meter_id": ["m"], "t": [int(pd.Timestamp("2025-01-01", tz=TZ).timestamp())],
                             "quantity": [1.0], "est": [0.0], "flags": [0], "samples": [2**40], "stored": [0],
                             "covered": [1], "step": [900.0]})
        with pytest.raises(ValueError, match="out of range"), store._writing():
            store._put_periods("hour", rows)
        assert store._read_periods("hour", 0, 2**40, None, ["samples"]).empty


def test_closing_the_store_leaves_another_threads_running_query_alone(tmp_path):
    """`close()` while another thread is in the middle of a query (a dashboard request,
    the warm-up) closes that thread's connection only once the thread has ended: closed
    under it, SQLite's statement would be freed mid-step and the process crash."""
    import threading

    store = open_store(f"embedded:{tmp_path}")
    n = 2_000_000
    started, result = threading.Event(), {}

    def long_query() -> None:
        store._arrow("SELECT 1")  # this thread's connection
        started.set()
        result["sum"] = store._arrow(f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
                                     "SELECT sum(x) AS s FROM c")["s"][0].as_py()

    worker = threading.Thread(target=long_query)
    worker.start()
    started.wait(10)
    store.close()  # the worker's query is running
    assert len(store._open) == 1 and store._open[0][0] is worker  # its connection is still open
    worker.join(60)
    assert result["sum"] == n * (n + 1) // 2
    store.close()  # the worker has ended: its connection is closed now
    assert store._open == []
