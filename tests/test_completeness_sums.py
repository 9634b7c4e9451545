"""The completeness rule summed by the embedded store in SQL equals the rule applied in
Python to the day counts (`models.completeness.completeness_from_counts`), meter by meter
and month by month, for live and import-fed meters, backfilled days, gaps, mixed spacings
(the usual-spacing median), lone samples and a DST zone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.completeness import (
    COMPLETENESS_TARGET,
    SUM_COLUMNS,
    completeness_from_counts,
    completeness_sums,
    judged_days,
    sums_of_daily,
)
from storage import open_store, quality
from storage.embedded import EmbeddedStore

LIVE = {"L-full": 900.0, "L-gaps": 900.0, "L-back": 900.0, "L-300": 300.0, "L-none": 900.0}


def _samples(tz: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-02-20", "2024-04-10", freq="D", tz=tz)
    rows = []

    def add(meter, times, q=0):
        rows.append(pd.DataFrame({"meter_id": meter, "time": times, "quality": q}))

    for day in days:
        nxt = day + pd.Timedelta(days=1)
        q15 = pd.date_range(day, nxt, freq="15min", inclusive="left")
        add("L-full", q15)
        keep = rng.random(len(q15)) > rng.choice([0.0, 0.05, 0.2, 0.7])
        add("L-gaps", q15[keep])
        if rng.random() < 0.4:  # a backfilled day at hourly resolution, else live
            add("L-back", pd.date_range(day, nxt, freq="h", inclusive="left"), quality.BACKFILL)
        else:
            add("L-back", q15[rng.random(len(q15)) > 0.08])
        add("L-300", q15)
        step = rng.choice(["15min", "30min", "h"])  # import-fed, spacing changing day by day
        feed = pd.date_range(day, nxt, freq=step, inclusive="left")
        add("F-mixed", feed[rng.random(len(feed)) > rng.choice([0.0, 0.1, 0.5])],
            quality.IMPORTED if rng.random() < 0.3 else 0)
        if rng.random() < 0.5:
            add("F-lone", [day + pd.Timedelta(hours=int(rng.integers(0, 23)))])  # one sample: no step
        if rng.random() < 0.7:
            add("F-15", q15[rng.random(len(q15)) > 0.05])
    s = pd.concat(rows, ignore_index=True)
    s["value"] = s.groupby("meter_id").cumcount().astype(float) * 0.5
    return s


@pytest.mark.parametrize(("tz", "seed"), [("Asia/Shanghai", 1), ("Europe/Berlin", 2), ("Europe/Berlin", 3)])
def test_sql_sums_equal_the_rule_in_python(tmp_path, tz, seed):
    store = EmbeddedStore(tmp_path / "s", tz=tz)
    try:
        store.write_samples(_samples(tz, seed))
        live = pd.Series(LIVE)
        ids = [*LIVE, "F-mixed", "F-lone", "F-15", "absent"]
        start, end = pd.Timestamp("2024-03-01", tz=tz), pd.Timestamp("2024-04-08", tz=tz)
        for by, full in (("month", True), ("span", True), ("month", False)):
            sql = completeness_sums(store, live, start, end, ids, by=by, full=full)
            python = store._completeness_sums
            store._completeness_sums = lambda *a: None  # the Python path: day counts, then the rule
            try:
                ref = completeness_sums(store, live, start, end, ids, by=by)
            finally:
                store._completeness_sums = python
            key = ["meter_id", "period"]
            sql, ref = (f.sort_values(key).reset_index(drop=True) for f in (sql, ref))
            assert list(sql.columns) == SUM_COLUMNS
            if not full:  # the complete days only, of the groups that have one (one pass over the live meters' days)
                both = ref.merge(sql, on=key, how="outer", suffixes=("", "_sql")).fillna({"complete_sql": 0})
                np.testing.assert_array_equal(both["complete_sql"].to_numpy(np.int64),
                                              both["complete"].to_numpy(np.int64))
                assert 0 < both["complete"].sum() < both["days"].sum()  # the rule discriminates
                continue
            assert len(ref) == (2 if by == "month" else 1) * 7  # the meters with samples, per group
            pd.testing.assert_frame_equal(sql[key], ref[key])
            for c in ("days", "complete"):
                np.testing.assert_array_equal(sql[c].to_numpy(np.int64), ref[c].to_numpy(np.int64), err_msg=c)
            # the rule really discriminates here: some meter-days complete, some not
            assert 0 < sql["complete"].sum() < sql["days"].sum()
            np.testing.assert_array_equal(sql["samples"].to_numpy(np.int64), ref["samples"].to_numpy(np.int64))
            np.testing.assert_array_equal(sql["share_min"].to_numpy(float), ref["share_min"].to_numpy(float))
            np.testing.assert_allclose(sql["share_sum"].to_numpy(float), ref["share_sum"].to_numpy(float),
                                       rtol=1e-12, atol=0)
            assert (sql["share_min"] < 0.9).any() and (sql["share_min"] > 0).any()
        assert "absent" not in set(sql["meter_id"])
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["embedded", "influxdb"])
@pytest.mark.parametrize(("tz", "seed", "cut"), [("Asia/Shanghai", 4, None), ("Asia/Shanghai", 5, "2024-03-15"),
                                                ("Europe/Berlin", 6, None)])
def test_complete_days_counted_with_the_sums_equal_their_own_pass(request, tmp_path, backend, tz, seed, cut):
    """Inside `judging_completeness`, month (or span) sums count the live meters' complete
    days in the same pass and the month completeness is answered from them: the same
    sums and counts as two separate reads, and no read of its own. Spans with a clock
    change (Berlin's March) are not counted with the sums: the completeness is then read
    on its own. (Both backends.)"""
    url = (f"embedded:{tmp_path / 's'}" if backend == "embedded"
           else request.getfixturevalue("influxd").url(f"judge{seed}"))
    store = open_store(url, tz=tz)
    try:
        store.write_samples(_samples(tz, seed))
        live = pd.Series(LIVE)  # two poll intervals: two passes
        ids = [*LIVE, "F-mixed", "F-lone", "F-15", "absent"]
        if backend == "influxdb":  # (with a meter without a poll interval it reads the day counts for all)
            ids = list(LIVE)  # (L-none: a live meter never stored)
        start, end = pd.Timestamp("2024-03-01", tz=tz), pd.Timestamp("2024-04-08", tz=tz)
        spans = pd.DatetimeIndex([start, *([pd.Timestamp(cut, tz=tz)] if cut else []), pd.Timestamp("2024-04-01", tz=tz)])

        def read() -> tuple[pd.DataFrame, pd.DataFrame]:
            sums = store.consumption_between(spans, end, ids) if cut else store.consumption("month", start, end, ids)
            return sums, completeness_sums(store, live, start, end, ids, by="month", full=False)

        sums, counts = read()
        own = "_packed_counts" if backend == "embedded" else "period_counts"  # a read of the days of its own
        own_read = getattr(store, own)
        calls = []
        setattr(store, own, lambda *a, **k: calls.append(1) or own_read(*a, **k))
        with store.judging_completeness(live, COMPLETENESS_TARGET):
            fused_sums, fused = read()
        assert bool(calls) == (tz == "Europe/Berlin")  # Shanghai: no read of its own
        if backend == "embedded":  # the same SQL sums
            pd.testing.assert_frame_equal(fused_sums, sums, check_exact=True)
        else:  # summed batch by batch: the same to the last bits of the order of the partial sums
            pd.testing.assert_frame_equal(fused_sums, sums, check_exact=False, rtol=1e-12)
        key = ["meter_id", "period"]
        both = counts.merge(fused, on=key, how="outer", suffixes=("", "_fused")).fillna(0)
        np.testing.assert_array_equal(both["complete_fused"].to_numpy(np.int64), both["complete"].to_numpy(np.int64))
        assert both["complete"].sum() > 0 and (both["complete"] < both["days"]).any()  # the rule discriminates
        calls.clear()
        completeness_sums(store, live, start, end, ids, by="month", full=False)
        assert calls  # outside the context each read is on its own again
    finally:
        store.close()


def test_sums_of_daily_group_by_month():
    tz = "Asia/Shanghai"
    start, end = pd.Timestamp("2024-01-30", tz=tz), pd.Timestamp("2024-02-02", tz=tz)
    days, keys = judged_days(start, end, "month")
    assert list(keys) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    counts = pd.DataFrame({"meter_id": ["a"] * 3, "period_start": pd.date_range("2024-01-30", periods=3, tz=tz),
                           "samples": [96, 48, 96], "stored": 0, "step": 900.0})
    daily = completeness_from_counts(counts, pd.Series({"a": 900.0}), start, end)
    got = sums_of_daily(daily, days)
    assert got[["period", "days", "complete", "samples"]].values.tolist() == [[0, 2, 1, 144], [1, 1, 1, 96]]
    assert got["share_sum"].tolist() == [1.5, 1.0] and got["share_min"].tolist() == [0.5, 1.0]
