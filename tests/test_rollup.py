"""Property tests of the pure consumption arithmetic (storage.rollup)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.quality import DECREASE
from storage.rollup import consumption, interval_increases, period_edges

TZ = "Asia/Shanghai"
T0 = int(pd.Timestamp("2025-01-30", tz=TZ).timestamp())

increments = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=2, max_size=300)
steps = st.lists(st.integers(min_value=60, max_value=6 * 3600), min_size=2, max_size=300)


def frame(incs, gaps, start=0.0):
    n = min(len(incs), len(gaps))
    t = T0 + np.cumsum(np.asarray(gaps[:n], dtype=np.int64))
    v = start + np.cumsum(np.asarray(incs[:n], dtype=float))
    return pd.DataFrame({"meter_id": "m", "t": t, "value": v, "quality": 0})


def window(df):
    lo = pd.Timestamp(int(df["t"].min()), unit="s", tz="UTC")
    hi = pd.Timestamp(int(df["t"].max()) + 1, unit="s", tz="UTC")
    return lo, hi


@settings(max_examples=60, deadline=None)
@given(increments, steps, st.sampled_from(["hour", "day", "month"]))
def test_periods_add_up_to_the_index_increase(incs, gaps, freq):
    df = frame(incs, gaps)
    lo, hi = window(df)
    out = consumption(df, lo, hi, freq, TZ)
    total = df["value"].iloc[-1] - df["value"].iloc[0]
    assert np.isclose(out["quantity"].sum(), total, rtol=1e-9, atol=1e-6)
    assert (out["estimated_share"].between(0, 1)).all()


@settings(max_examples=40, deadline=None)
@given(increments, steps, st.floats(min_value=0.01, max_value=1000))
def test_scaling_readings_scales_consumption(incs, gaps, k):
    df = frame(incs, gaps)
    lo, hi = window(df)
    a = consumption(df, lo, hi, "day", TZ)
    b = consumption(df.assign(value=df["value"] * k), lo, hi, "day", TZ)
    assert np.allclose(b["quantity"], a["quantity"] * k, rtol=1e-9, atol=1e-6)
    assert np.allclose(b["estimated_share"], a["estimated_share"], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(increments, steps, st.integers(min_value=1, max_value=298))
def test_split_range_is_additive(incs, gaps, cut):
    df = frame(incs, gaps)
    lo, hi = window(df)
    edges = period_edges(lo, hi, "hour", TZ)
    mid = pd.Timestamp(int(edges[min(cut, len(edges) - 1)]), unit="s", tz="UTC")
    whole = consumption(df, lo, hi, "hour", TZ)["quantity"].sum()
    parts = consumption(df, lo, mid, "hour", TZ)["quantity"].sum() + consumption(df, mid, hi, "hour", TZ)[
        "quantity"].sum()
    assert np.isclose(whole, parts, rtol=1e-9, atol=1e-6)


@given(st.floats(min_value=1000, max_value=1e7), st.floats(min_value=0, max_value=0.049),
       st.floats(min_value=0, max_value=0.049))
def test_rollover_is_recognised(top, before, after):
    """A wrap whose increase is under 10 % of the register range is a rollover."""
    prev = top * (1 - before)
    cur = top * after
    df = pd.DataFrame({"meter_id": "m", "t": [0, 900], "value": [prev, cur], "quality": 0})
    inc = interval_increases(df, rollover_at=pd.Series({"m": top}))
    assert np.isclose(inc["increase"].iloc[0], top - prev + cur)
    assert inc["flags"].iloc[0] == 0


def test_a_fall_too_large_for_a_wrap_is_a_flagged_reset():
    # 950 -> 60 on a 1000 register: a wrap would mean 110 (11 % of the range): a reset instead
    df = pd.DataFrame({"meter_id": "m", "t": [0, 900], "value": [950.0, 60.0], "quality": 0})
    inc = interval_increases(df, rollover_at=pd.Series({"m": 1000.0}))
    assert inc["increase"].iloc[0] == 60.0
    assert inc["flags"].iloc[0] & DECREASE


def test_local_day_edges_follow_the_time_zone():
    edges = period_edges(pd.Timestamp("2025-01-01", tz=TZ), pd.Timestamp("2025-01-03", tz=TZ), "day", TZ)
    assert [pd.Timestamp(e, unit="s", tz="UTC").tz_convert(TZ).hour for e in edges] == [0, 0, 0]
    assert edges[1] - edges[0] == 86400
    months = period_edges(pd.Timestamp("2024-01-15", tz=TZ), pd.Timestamp("2024-03-02", tz=TZ), "month", TZ)
    assert np.diff(months).tolist() == [31 * 86400, 29 * 86400, 31 * 86400]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.sampled_from([0.5, 1.0, 2.0, float("nan")])),
                min_size=1, max_size=80))
def test_group_median_is_the_groupby_median(rows):
    """The run-wise median (NaN skipped) the period counts use equals pandas' groupby median."""
    from storage.rollup import group_median, group_starts

    key = np.asarray([k for k, _, _ in rows], np.int64)
    values = np.asarray([v * (1 + j) for _, j, v in rows])
    order, starts = group_starts(key)
    got = group_median(values[order], key[order], starts)
    want = pd.Series(values).groupby(key).median().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 300)), min_size=2, max_size=120, unique=True),
       st.randoms(use_true_random=False))
def test_counts_and_spread_do_not_depend_on_row_order(keys, rnd):
    """Sorted input takes the no-sort path, shuffled input the sorting one: same periods."""
    from storage.rollup import sample_counts, spread_over_periods

    df = pd.DataFrame({"meter_id": [m for m, _ in keys], "t": [T0 + 900 * s for _, s in keys]})
    df = df.sort_values(["meter_id", "t"], ignore_index=True)
    df["value"] = df.groupby("meter_id").cumcount().astype(float) * 1.5
    df["quality"] = np.arange(len(df)) % 3
    shuffled = df.iloc[rnd.sample(range(len(df)), len(df))]
    edges = period_edges(pd.Timestamp(T0, unit="s", tz="UTC"), pd.Timestamp(T0 + 301 * 900, unit="s", tz="UTC"),
                         "hour", TZ)
    pd.testing.assert_frame_equal(sample_counts(df, edges), sample_counts(shuffled, edges))
    pd.testing.assert_frame_equal(spread_over_periods(interval_increases(df), edges),
                                  spread_over_periods(interval_increases(shuffled), edges))
    assert sample_counts(df, edges)["samples"].sum() == len(df)
