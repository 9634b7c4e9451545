"""Embedded-store specifics: a store written by an earlier version (a lazily refreshed
daily rollup cache) gets its consumption tables when opened."""

from __future__ import annotations

import numpy as np
import pandas as pd

from storage import open_store
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
