"""The storage contract: every test runs on the embedded store and on a real influxd."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import ImportRejected, rollup
from storage.base import normalize_events, normalize_samples, regroup
from storage.quality import BACKFILL, ESTIMATED, IMPORTED

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


def test_spans_are_sums_of_their_days(store):
    """`consumption_between`: each span [starts[k], starts[k+1]) (the last to `end`) is the
    sum of its days, summed by the server (both backends) as the base class sums the daily
    rows (the fallback of a backend that cannot), with the multiplier and the estimated part."""
    from storage.base import Store

    v = np.cumsum(np.random.default_rng(5).uniform(0, 5, 96 * 40))
    store.write_samples(pd.concat([series("M", v, start=pd.Timestamp("2025-02-25", tz=TZ)),
                                   series("N", v[: 96 * 9] * 2, start=pd.Timestamp("2025-02-25", tz=TZ))]))
    meters(store, M={"multiplier": 3.0}, N={})
    starts = pd.DatetimeIndex(["2025-02-26", "2025-03-01", "2025-03-02", "2025-03-15"]).tz_localize(TZ)
    end = pd.Timestamp("2025-03-20 12:00", tz=TZ)  # a running day: counted while it has rows
    days = store.consumption("day", starts[0], end, ["M", "N"])
    got = store.consumption_between(starts, end, ["M", "N"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "_sums_between", Store._sums_between.__get__(store))  # the daily read summed here
        summed_here = store.consumption_between(starts, end, ["M", "N"])
    span = np.searchsorted(starts, days["period_start"], side="right") - 1
    want = days.assign(span=starts[span], est=days["quantity"] * days["estimated_share"]).groupby(
        ["meter_id", "span"], as_index=False)[["quantity", "est"]].sum()
    for out in (got, summed_here):
        assert list(zip(out["meter_id"], out["period_start"], strict=True)) == list(
            zip(want["meter_id"], want["span"], strict=True))
        np.testing.assert_allclose(out["quantity"], want["quantity"], rtol=1e-12)
        np.testing.assert_allclose(out["quantity"] * out["estimated_share"], want["est"], rtol=1e-9, atol=1e-9)
    assert set(got["meter_id"]) == {"M", "N"} and (got["meter_id"] == "N").sum() == 3  # N ends on 6 March
    assert store.consumption_between(starts[:0], end, ["M"]).empty


def test_spans_with_nothing_stored_are_empty_and_a_last_span_is_found(store):
    """Month sums over a range before the first stored day are empty, with the columns of
    a filled read; a range whose only stored days fall in its last month still finds
    them (the embedded store probes the whole range once before the per-span queries)."""
    v = np.cumsum(np.random.default_rng(7).uniform(0, 5, 96 * 6))
    store.write_samples(series("M", v, start=pd.Timestamp("2025-03-28", tz=TZ)))
    meters(store, M={})
    before = store.consumption("month", "2024-01-01", "2025-01-01", ["M"])
    assert before.empty and list(before.columns) == list(store.consumption("month", "2025-03-01", "2025-04-01").columns)
    late = store.consumption("month", "2024-12-01", "2025-04-01", ["M"])
    days = store.consumption("day", "2025-03-01", "2025-04-01", ["M"])
    assert list(late["period_start"]) == [pd.Timestamp("2025-03-01", tz=TZ)]
    assert late["quantity"].iloc[0] == pytest.approx(days["quantity"].sum(), rel=1e-12) and len(days) == 4


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


def test_bills_keep_their_heating_and_estimated_parts(store):
    bills = pd.DataFrame({"institution_id": ["I1", "I1"], "energy": ["natural_gas", "water"],
                          "period_start": ["2025-01-01", "2025-01-01"], "period_end": ["2025-01-31", "2025-01-31"],
                          "quantity": [1860.0, 90.0], "unit": ["m3", "m3"], "cost_cny": [np.nan, 4.5],
                          "heating_quantity": [1500.25, np.nan], "estimated_quantity": [np.nan, 3.5]})
    assert len(store.import_bills(bills).new) == 2
    got = store.read_bills(["I1"])
    assert got["heating_quantity"].iloc[0] == 1500.25 and np.isnan(got["heating_quantity"].iloc[1])
    assert np.isnan(got["estimated_quantity"].iloc[0]) and got["estimated_quantity"].iloc[1] == 3.5
    assert store.import_bills(bills).identical == 2
    with pytest.raises(ImportRejected, match="heating_quantity differs"):
        store.import_bills(bills.assign(heating_quantity=[1400.0, np.nan]))
    done = store.import_bills(bills.assign(heating_quantity=[1400.0, np.nan]), replace=True)
    assert done.replaced["differs"].tolist() == ["heating_quantity"]
    assert done.replaced["heating_quantity_old"].tolist() == [1500.25]
    assert store.read_bills(["I1"])["heating_quantity"].iloc[0] == 1400.0


def test_bills_append_only_with_explicit_replace(store):
    """Issue 15 item 2: a differing bill is refused unless replaced; the old values come back."""
    first = pd.DataFrame({"institution_id": ["I1", "I1"], "energy": ["diesel", "heat"],
                          "period_start": ["2025-01-01", "2025-01-15"], "period_end": ["2025-01-31", "2025-02-14"],
                          "quantity": [120.5, 33.0], "unit": ["L", "GJ"], "cost_cny": [900.0, np.nan]})
    got = store.import_bills(first)
    assert (len(got.new), got.identical, len(got.replaced)) == (2, 0, 0)
    again = store.import_bills(first)
    assert (len(again.new), again.identical) == (0, 2)
    changed = first.assign(quantity=[130.0, 33.0])
    with pytest.raises(ImportRejected) as info:
        store.import_bills(changed)
    assert "I1 diesel 2025-01-01..2025-01-31: quantity differs from the stored bill (120.5 L, 900 CNY stored" in str(
        info.value)
    assert store.read_bills(["I1"])["quantity"].tolist() == [120.5, 33.0]
    cost_only = store.import_bills(first.assign(cost_cny=[900.0, 50.0]), replace=True)
    assert cost_only.replaced["differs"].tolist() == ["cost_cny"]
    done = store.import_bills(changed.assign(cost_cny=[900.0, 50.0]), replace=True)
    assert done.replaced["quantity_old"].tolist() == [120.5]
    assert done.replaced["quantity"].tolist() == [130.0]
    assert store.read_bills(["I1"])["quantity"].tolist() == [130.0, 33.0]


def test_bills_overlapping_a_stored_period_are_refused(store):
    store.import_bills(pd.DataFrame({"institution_id": ["I1"], "energy": ["heat"], "period_start": ["2025-01-01"],
                                     "period_end": ["2025-01-31"], "quantity": [10.0], "unit": ["GJ"],
                                     "cost_cny": [np.nan]}))
    overlap = pd.DataFrame({"institution_id": ["I1", "I1", "I2"], "energy": ["heat", "water", "heat"],
                            "period_start": ["2025-01-20", "2025-01-20", "2025-01-20"],
                            "period_end": ["2025-02-19", "2025-02-19", "2025-02-19"], "quantity": [5.0, 1.0, 2.0],
                            "unit": ["GJ", "m3", "GJ"], "cost_cny": [np.nan] * 3})
    for replace in (False, True):
        with pytest.raises(ImportRejected) as info:
            store.import_bills(overlap, replace=replace)
        assert info.value.problems == ["bill I1 heat 2025-01-20..2025-02-19 overlaps the stored bill "
                                       "2025-01-01..2025-01-31"]
    assert len(store.read_bills()) == 1
    store.import_bills(overlap.iloc[1:])  # another energy, another institution: no overlap
    assert len(store.read_bills()) == 3


def test_import_conflict_leaves_store_unchanged(store):
    store.write_samples(series("A", [1.0, 2.0, 3.0]))
    before = store.read_samples()
    incoming = pd.concat([series("A", [1.0, 2.5, 3.0]), series("C", [7.0, 8.0])])
    with pytest.raises(ImportRejected) as info:
        store.import_samples(incoming)
    assert "value 2.5 differs from the stored 2" in str(info.value)
    assert info.value.rejected == 1  # the one sample that would change a stored value
    after = store.read_samples()
    pd.testing.assert_frame_equal(before, after)
    assert store.meter_ids() == ["A"]
    # the same values again are accepted (idempotent import)
    done = store.import_samples(series("A", [1.0, 2.0, 3.0, 4.0]))
    assert (done.new, done.identical) == (1, 3)  # three were stored already: only the fourth is written
    assert store.read_samples()["value"].tolist() == [1.0, 2.0, 3.0, 4.0]
    again = store.import_samples(series("A", [1.0, 2.0, 3.0, 4.0]))
    assert (again.new, again.identical) == (0, 4)
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
    assert info.value.rejected == 60
    assert problems[0].startswith("meter A at 2025-03-09T16:00:00+00:00: value 0.5 differs from the stored 0")
    assert store.read_samples(meter_ids=["A"])["value"].tolist() == list(np.arange(60, dtype=float))


# -- materialised consumption equals the reference path ----------------------------
_meter_counter = itertools.count()


@st.composite
def histories(draw):
    """One meter's samples over ~3 days with resets, rollovers, a replacement, gaps and
    mixed quality flags, plus the events recorded for it and its register maximum."""
    n = draw(st.integers(min_value=2, max_value=160))
    slots = np.sort(draw(st.lists(st.integers(min_value=0, max_value=300), min_size=n, max_size=n, unique=True)))
    incs = np.asarray(draw(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=n, max_size=n)))
    top = 1000.0 if draw(st.booleans()) else np.nan  # a register that wraps at 1000
    v = draw(st.floats(min_value=0, max_value=900)) + np.cumsum(incs)
    events = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):  # unrecorded counter resets
        k = draw(st.integers(min_value=1, max_value=n - 1))
        v[k:] = v[k:] - v[k] + draw(st.floats(min_value=0, max_value=5))
    if n > 3 and draw(st.booleans()):  # a replacement, recorded
        k = draw(st.integers(min_value=1, max_value=n - 1))
        new_start = draw(st.floats(min_value=0, max_value=50))
        old_final = v[k - 1] + 0.5
        events.append((int(slots[k - 1]) * 900 + 60, old_final, new_start))
        v[k:] = v[k:] - v[k] + new_start + 0.25
    if np.isfinite(top):
        v = np.mod(v, top)
    quality = draw(st.lists(st.sampled_from([0, 0, 0, ESTIMATED, BACKFILL, IMPORTED, BACKFILL | ESTIMATED]),
                            min_size=n, max_size=n))
    times = DAY0 + pd.to_timedelta(slots * 900 + draw(st.integers(0, 899)), unit="s")
    samples = pd.DataFrame({"time": times.tz_convert("UTC"), "value": v, "quality": quality})
    return samples, events, top


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(), st.integers(min_value=1, max_value=6), st.randoms(use_true_random=False))
def test_materialised_consumption_equals_the_reference(store, history, n_batches, rnd):
    samples, events, top = history
    meter = f"H{next(_meter_counter)}"
    samples = samples.assign(meter_id=meter)
    meters(store, **{meter: {"rollover_at": top, "multiplier": 2.0}})
    # written in random batches (late samples, back-fills) in random order, events anywhere
    part = np.asarray([rnd.randrange(n_batches) for _ in range(len(samples))])
    order = list(range(n_batches))
    rnd.shuffle(order)
    ev = pd.DataFrame({"meter_id": meter, "time": [DAY0 + pd.Timedelta(seconds=t) for t, _, _ in events],
                       "kind": "replacement", "old_index": [o for _, o, _ in events],
                       "new_index": [i for _, _, i in events]})
    at = rnd.randrange(n_batches + 1)
    for k, b in enumerate(order):
        if k == at and len(ev):
            store.write_events(ev)
        batch = samples[part == b]
        store.write_samples(batch.sample(frac=1.0, random_state=k))  # rows in any order
    if at == n_batches and len(ev):
        store.write_events(ev)

    lo, hi = DAY0 - pd.Timedelta(days=1), DAY0 + pd.Timedelta(days=5)
    norm = normalize_samples(samples)
    for freq in ("hour", "day", "month"):
        ref = rollup.consumption(norm, lo, hi, "hour" if freq == "hour" else "day", TZ,
                                 events=normalize_events(ev) if len(ev) else None,
                                 multiplier=pd.Series({meter: 2.0}), rollover_at=pd.Series({meter: top}))
        if freq == "month":
            ref = regroup(ref, "month", TZ)
        got = store.consumption(freq, lo, hi, [meter])
        assert got["period_start"].tolist() == ref["period_start"].tolist(), freq
        np.testing.assert_allclose(got["quantity"], ref["quantity"], rtol=1e-9, atol=1e-6)
        # the estimated part (share x quantity): the share of a quantity of ~1e-12 is 0 or 1
        # depending on the last bit of a sum, its estimated part is ~0 either way
        np.testing.assert_allclose(got["estimated_share"] * got["quantity"], ref["estimated_share"] * ref["quantity"],
                                   rtol=1e-6, atol=1e-6)

    counts = store.period_counts("day", lo, hi, [meter]).set_index("period_start")
    local_day = pd.DatetimeIndex(samples["time"]).tz_convert(TZ).normalize()
    expect = pd.DataFrame({"samples": 1, "stored": (samples["quality"].to_numpy() & (BACKFILL | IMPORTED)) != 0},
                          index=local_day).groupby(level=0).sum()
    got = counts[counts["samples"] > 0]
    assert got.index.tolist() == expect.index.tolist()
    assert got["samples"].tolist() == expect["samples"].tolist()
    assert got["stored"].tolist() == expect["stored"].astype(int).tolist()
    # flags: OR of the flags of the intervals overlapping each day
    iv = rollup.interval_increases(norm, normalize_events(ev) if len(ev) else None, pd.Series({meter: top}))
    edges = rollup.period_edges(lo, hi, "day", TZ)
    spread = rollup.spread_over_periods(iv, edges)
    want_flags = dict(zip(pd.to_datetime(edges[spread["period"]], unit="s", utc=True).tz_convert(TZ),
                          spread["flags"], strict=True))
    assert {k: int(v) for k, v in counts["flags"].items() if k in want_flags} == want_flags


def test_a_late_sample_changes_exactly_the_periods_it_touches(store):
    v = np.arange(96 * 3, dtype=float) * 2.0  # 2 per 15 minutes, 3 days
    df = series("L", v)
    late_at = 96 + 48  # day 2, 12:00: the interval 11:45-12:15 is split over hours 11 and 12
    store.write_samples(df.drop(index=late_at))
    meters(store, L={})
    lo, hi = DAY0, DAY0 + pd.Timedelta(days=3)
    hours_before = store.consumption("hour", lo, hi, ["L"]).set_index("period_start")
    days_before = store.consumption("day", lo, hi, ["L"]).set_index("period_start")
    counts_before = store.period_counts("hour", lo, hi, ["L"]).set_index("period_start")

    late = df.iloc[[late_at]].assign(value=v[late_at] + 1.0)  # read 1 above the straight line
    store.write_samples(late)
    hours = store.consumption("hour", lo, hi, ["L"]).set_index("period_start")
    days = store.consumption("day", lo, hi, ["L"]).set_index("period_start")
    counts = store.period_counts("hour", lo, hi, ["L"]).set_index("period_start")

    h11, h12 = DAY0 + pd.Timedelta(hours=24 + 11), DAY0 + pd.Timedelta(hours=24 + 12)
    changed = hours.index[hours["quantity"].to_numpy() != hours_before["quantity"].to_numpy()]
    assert changed.tolist() == [h11, h12]
    assert hours_before.loc[h11, "quantity"] == hours_before.loc[h12, "quantity"] == pytest.approx(8.0)
    assert hours.loc[h11, "quantity"] == pytest.approx(6.0 + 3.0)  # 11:00-11:45, then 11:45-12:00
    assert hours.loc[h12, "quantity"] == pytest.approx(1.0 + 6.0)  # 12:00-12:15, then 12:15-13:00
    assert (counts["samples"] - counts_before["samples"]).loc[lambda d: d != 0].to_dict() == {h12: 1}
    assert days["quantity"].tolist() == pytest.approx(days_before["quantity"].tolist(), rel=1e-12)
    pd.testing.assert_frame_equal(hours.drop(index=[h11, h12]), hours_before.drop(index=[h11, h12]))


def test_a_recorded_event_recomputes_its_interval(store):
    v = np.r_[np.arange(48, dtype=float) + 500, np.arange(48, dtype=float)]  # falls at 12:00: a reset
    store.write_samples(series("E", v))
    meters(store, E={})
    before = store.consumption("hour", DAY0, DAY0 + pd.Timedelta(days=1), ["E"]).set_index("period_start")
    assert before["quantity"].sum() == pytest.approx(47 + 0 + 47)  # the reset interval counts from 0
    # now the replacement is recorded: old register ended at 548, the new one started at -1
    store.write_events(pd.DataFrame({"meter_id": ["E"], "time": [DAY0 + pd.Timedelta(minutes=11 * 60 + 50)],
                                     "kind": ["replacement"], "old_index": [548.0], "new_index": [-1.0]}))
    after = store.consumption("hour", DAY0, DAY0 + pd.Timedelta(days=1), ["E"]).set_index("period_start")
    assert after["quantity"].sum() == pytest.approx(47 + 1 + 1 + 47)
    changed = after.index[after["quantity"].to_numpy() != before["quantity"].to_numpy()]
    assert changed.tolist() == [DAY0 + pd.Timedelta(hours=11)]  # the interval 11:45-12:00


def test_a_changed_register_maximum_recomputes_the_meter(store):
    top = 1000.0
    v = (np.arange(96, dtype=float) * 5 + 800) % top  # wraps at 1000
    store.write_samples(series("W2", v))
    meters(store, W2={})  # no register maximum known: the wrap is a counter reset
    assert daily(store, "W2", 1) == {"2025-03-10": 95 * 5.0 - 5.0}
    meters(store, W2={"rollover_at": top})
    assert daily(store, "W2", 1) == {"2025-03-10": 95 * 5.0}
