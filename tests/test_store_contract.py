"""The storage contract: every test runs on the embedded store and on a real influxd."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import ImportRejected
from storage.quality import ESTIMATED

TZ = "Asia/Shanghai"
DAY0 = pd.Timestamp("2025-03-10", tz=TZ)


def series(meter: str, values, start=DAY0, step="15min") -> pd.DataFrame:
    times = pd.date_range(start, periods=len(values), freq=step)
    return pd.DataFrame({"meter_id": meter, "time": times.tz_convert("UTC"), "value": np.asarray(values, float),
                         "quality": 0})


def meters(store, **spec) -> None:
    rows = [{"meter_id": m, "multiplier": s.get("multiplier", 1.0), "rollover_at": s.get("rollover_at", np.nan)}
            for m, s in spec.items()]
    store.set_meters(pd.DataFrame(rows))


def daily(store, meter, days=3):
    out = store.consumption("day", DAY0, DAY0 + pd.Timedelta(days=days), [meter])
    return dict(zip(out["period_start"].dt.strftime("%Y-%m-%d"), out["quantity"].round(6), strict=True))


def test_idempotent_rewrite(store):
    df = series("A", np.arange(96 * 2) * 0.5)
    store.write_samples(df)
    store.write_samples(df)
    store.write_samples(df.iloc[10:50])
    got = store.read_samples(meter_ids=["A"])
    assert len(got) == 192
    assert got["value"].tolist() == df["value"].tolist()
    assert (got["time"] == df["time"]).all()
    meters(store, A={})
    assert daily(store, "A", 2) == {"2025-03-10": 48.0, "2025-03-11": 47.5}


def test_counter_reset_mid_day_is_counted(store):
    # 1 kWh per 15 min; at 12:00 on day 1 the counter restarts from 0 (no event recorded)
    v = np.arange(96 * 2, dtype=float) + 1000
    v[96 + 48:] = np.arange(48, dtype=float)
    store.write_samples(series("R", v))
    meters(store, R={})
    got = daily(store, "R", 2)
    assert got["2025-03-10"] == 96.0  # includes the interval into the next midnight
    # 47 increases before the reset, 0 in the reset interval (restart value 0), 47 after
    assert got["2025-03-11"] == 94.0
    assert store.consumption("hour", DAY0 + pd.Timedelta(hours=36), DAY0 + pd.Timedelta(hours=37),
                             ["R"])["quantity"].round(6).tolist() == [4.0]


def test_rollover_at_register_maximum(store):
    top = 99_999.0
    v = (np.arange(96, dtype=float) * 10 + 99_500) % (top + 1)  # wraps after 50 intervals
    store.write_samples(series("W", v))
    meters(store, W={"rollover_at": top + 1})
    assert daily(store, "W", 1) == {"2025-03-10": 950.0}


def test_meter_replacement_event(store):
    old = 5000 + np.arange(40, dtype=float) * 2  # old meter, 2 per interval, last read 5078
    new = 12 + np.arange(56, dtype=float) * 2  # new meter starts at its own index 12
    store.write_samples(series("X", np.concatenate([old, new])))
    swap = DAY0 + pd.Timedelta(minutes=15 * 39 + 5)
    store.write_events(pd.DataFrame({"meter_id": ["X"], "time": [swap], "kind": ["replacement"],
                                     "old_index": [5079.0], "new_index": [11.0]}))
    meters(store, X={})
    # 39 intervals on the old meter (78) + 1 on the old meter after the last read and 1 on the
    # new one before its first read (1 + 1) + 55 intervals on the new meter (110)
    assert daily(store, "X", 1) == {"2025-03-10": 78 + 2 + 110}
    ev = store.read_events(["X"])
    assert ev["kind"].tolist() == ["replacement"] and ev["new_index"].tolist() == [11.0]


def test_multiplier_and_estimated_gap(store):
    v = np.arange(96, dtype=float)
    df = series("G", v)
    df = df.drop(index=range(40, 60))  # 5 hours missing: interpolated, marked estimated
    store.write_samples(df)
    meters(store, G={"multiplier": 80.0})
    out = store.consumption("day", DAY0, DAY0 + pd.Timedelta(days=1), ["G"])
    assert out["quantity"].round(6).tolist() == [95 * 80.0]
    assert out["estimated_share"].round(6).tolist() == [round(21 / 95, 6)]
    hours = store.consumption("hour", DAY0 + pd.Timedelta(hours=10), DAY0 + pd.Timedelta(hours=15), ["G"])
    assert hours["quantity"].round(6).tolist() == [320.0] * 5  # gap spread linearly
    assert (hours["estimated_share"] > 0).all()


def test_quality_flags_survive(store):
    df = series("Q", [1.0, 2.0, 3.0])
    df.loc[1, "quality"] = ESTIMATED
    store.write_samples(df)
    assert store.read_samples(meter_ids=["Q"])["quality"].tolist() == [0, ESTIMATED, 0]


def test_range_and_last_before(store):
    store.write_samples(pd.concat([series("A", [1, 2, 3, 4]), series("B", [10, 20])]))
    t1 = DAY0 + pd.Timedelta(minutes=15)
    got = store.read_samples(t1, DAY0 + pd.Timedelta(minutes=45))
    assert got[["meter_id", "value"]].values.tolist() == [["A", 2.0], ["A", 3.0], ["B", 20.0]]
    last = store.last_samples_before(DAY0 + pd.Timedelta(minutes=40), ["A", "B"])
    assert dict(zip(last["meter_id"], last["value"], strict=True)) == {"A": 3.0, "B": 20.0}
    assert store.meter_ids() == ["A", "B"]
    assert store.read_samples(meter_ids=[]).empty


def test_month_is_sum_of_days(store):
    v = np.cumsum(np.random.default_rng(3).uniform(0, 5, 96 * 40))
    store.write_samples(series("M", v, start=pd.Timestamp("2025-02-25", tz=TZ)))
    meters(store, M={})
    days = store.consumption("day", "2025-03-01", "2025-04-01", ["M"])
    month = store.consumption("month", "2025-03-01", "2025-04-01", ["M"])
    assert len(days) == 31
    assert month["quantity"].iloc[0] == pytest.approx(days["quantity"].sum(), rel=1e-12)
    assert month["period_start"].iloc[0] == pd.Timestamp("2025-03-01", tz=TZ)


def test_bills_round_trip(store):
    bills = pd.DataFrame({"institution_id": ["I1", "I1"], "energy": ["diesel", "heat"],
                          "period_start": ["2025-01-01", "2025-01-15"], "period_end": ["2025-01-31", "2025-02-14"],
                          "quantity": [120.5, 33.0], "unit": ["L", "GJ"], "cost_cny": [900.0, np.nan]})
    store.write_bills(bills)
    store.write_bills(bills)  # idempotent
    got = store.read_bills(["I1"])
    assert len(got) == 2
    assert got["quantity"].tolist() == [120.5, 33.0]
    assert str(got["period_end"].iloc[1]) == "2025-02-14"
    assert got["cost_cny"].iloc[0] == 900.0 and np.isnan(got["cost_cny"].iloc[1])


def test_import_conflict_leaves_store_unchanged(store):
    store.write_samples(series("A", [1.0, 2.0, 3.0]))
    before = store.read_samples()
    incoming = pd.concat([series("A", [1.0, 2.5, 3.0]), series("C", [7.0, 8.0])])
    with pytest.raises(ImportRejected) as info:
        store.import_samples(incoming)
    assert "value 2.5 differs from the stored 2" in str(info.value)
    after = store.read_samples()
    pd.testing.assert_frame_equal(before, after)
    assert store.meter_ids() == ["A"]
    # the same values again are accepted (idempotent import)
    assert store.import_samples(series("A", [1.0, 2.0, 3.0, 4.0])) == 4
    assert store.read_samples()["value"].tolist() == [1.0, 2.0, 3.0, 4.0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False), min_size=1,
                max_size=50))
def test_values_round_trip_exactly(store, values):
    store.write_samples(series("F", values))
    got = store.read_samples(meter_ids=["F"])
    assert got["value"].tolist()[:len(values)] == [float(v) for v in values]


def test_non_finite_values_are_refused(store):
    with pytest.raises(ValueError, match="without a finite value"):
        store.write_samples(series("N", [1.0, float("nan"), 3.0]))
    assert store.read_samples(meter_ids=["N"]).empty


def test_many_conflicts_are_listed_up_to_the_cap(store):
    store.write_samples(series("A", np.arange(60, dtype=float)))
    with pytest.raises(ImportRejected) as info:
        store.import_samples(series("A", np.arange(60, dtype=float) + 0.5))
    problems = info.value.problems
    assert len(problems) == 51 and problems[-1].startswith("... and ")
    assert problems[0].startswith("meter A at 2025-03-09T16:00:00+00:00: value 0.5 differs from the stored 0")
    assert store.read_samples(meter_ids=["A"])["value"].tolist() == list(np.arange(60, dtype=float))
