"""Meter-data alert rules on a real embedded store with synthetic 15-minute data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerts.meter_rules import abnormal_levels, meter_alerts, step_changes
from core.registry import Institution, Meter, ModbusAddress, Region, Registry
from core.rules import OFFLINE_POLLS
from models.completeness import daily_completeness
from storage import open_store

TZ = "Asia/Shanghai"
START = pd.Timestamp("2025-02-05", tz=TZ)
AS_OF = pd.Timestamp("2025-03-16 01:00", tz=TZ)  # evaluates Saturday 2025-03-15


def _mb(unit: int) -> ModbusAddress:
    return ModbusAddress(port=15020, unit=unit, profile="dtsu666", interval_s=900)


def registry() -> Registry:
    insts = [Institution(id=i, name=i, region="hebei", category="government", floor_area_m2=1000, occupants=50)
             for i in ("A", "B", "C", "D")]
    meters = [
        Meter(id="A-E0", institution="A", energy="electricity", modbus=_mb(1)),
        Meter(id="A-E1", institution="A", energy="electricity", parent="A-E0", subitem="lighting_socket", modbus=_mb(2)),
        Meter(id="A-E2", institution="A", energy="electricity", parent="A-E0", subitem="hvac", modbus=_mb(3)),
        Meter(id="A-W0", institution="A", energy="water"),
        Meter(id="B-E0", institution="B", energy="electricity", modbus=_mb(4)),
        Meter(id="C-E0", institution="C", energy="electricity", modbus=_mb(5)),
        Meter(id="D-E0", institution="D", energy="electricity", modbus=_mb(6)),
    ]
    return Registry(regions=(Region(id="hebei", name="河北省"),), institutions=tuple(insts), meters=tuple(meters))


def power_kw(meter: str, t: pd.DatetimeIndex) -> np.ndarray:
    """Power over the 15 minutes starting at each local time."""
    h, dow = t.hour.to_numpy(), t.day_of_week.to_numpy()
    day = (h >= 8) & (h < 18)
    weekday = dow < 5
    last_night = (t >= pd.Timestamp("2025-03-15", tz=TZ)) & (t < pd.Timestamp("2025-03-15 05:00", tz=TZ))
    if meter in ("A-E0", "A-E1", "A-E2"):
        p = np.where(day, 10.0, 2.0)
        p = np.where(last_night, 6.0, p)
        return p * (0.6 if meter != "A-E0" else 1.0)
    if meter == "B-E0":
        return np.where(day, 8.0, 3.0)
    if meter == "C-E0":  # weekday daytime load doubles from 2025-03-09
        high = t >= pd.Timestamp("2025-03-09", tz=TZ)
        return np.where(day & weekday, np.where(high, 10.0, 5.0), 1.0)
    if meter == "D-E0":  # weekends quiet, except Saturday 2025-03-15 runs like a weekday
        sat = (t >= pd.Timestamp("2025-03-15", tz=TZ)) & (t < pd.Timestamp("2025-03-16", tz=TZ))
        return np.where(day & (weekday | sat), 10.0, 2.0)
    raise KeyError(meter)


def samples(end: pd.Timestamp) -> pd.DataFrame:
    frames = []
    t = pd.date_range(START, end, freq="15min", inclusive="left")
    for m in ("A-E0", "A-E1", "A-E2", "B-E0", "C-E0", "D-E0"):
        p = power_kw(m, t)
        idx = 1000.0 + np.concatenate([[0.0], np.cumsum(p * 0.25)])  # index at each edge
        times = t.append(pd.DatetimeIndex([t[-1] + pd.Timedelta(minutes=15)]))
        keep = np.ones(len(times), bool)
        if m == "B-E0":  # silent from 22:00 on the 15th
            keep = times < pd.Timestamp("2025-03-15 22:00", tz=TZ)
        keep &= times < end
        frames.append(pd.DataFrame({"meter_id": m, "time": times[keep].tz_convert("UTC"), "value": idx[keep]}))
    # water: hourly readings, 1 m3/h; on the 15th only hours 0..9 arrive
    th = pd.date_range(START, end, freq="h", inclusive="left")
    w = pd.DataFrame({"meter_id": "A-W0", "time": th.tz_convert("UTC"), "value": 50.0 + np.arange(len(th))})
    lost = (th >= pd.Timestamp("2025-03-15 10:00", tz=TZ)) & (th < pd.Timestamp("2025-03-16", tz=TZ))
    frames.append(w[~lost])
    out = pd.concat(frames, ignore_index=True)
    return out.assign(quality=0)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    reg = registry()
    store = open_store(f"embedded:{tmp_path_factory.mktemp('meter') / 'store'}", tz=TZ)
    store.set_meters(reg.meters_frame())
    store.write_samples(samples(AS_OF))
    yield reg, store
    store.close()


def test_every_meter_rule_fires_where_it_should(loaded):
    reg, store = loaded
    alerts = meter_alerts(store, reg, AS_OF)
    got = {(a.rule, a.scope): a for a in alerts}
    assert set(got) == {
        ("meter_offline", "meter:B-E0"),
        ("data_completeness", "meter:A-W0"),
        ("abnormal_night_load", "meter:A-E0"),
        ("step_change", "meter:C-E0"),
        ("abnormal_holiday_load", "meter:D-E0"),
        ("submeter_imbalance", "meter:A-E0"),
    }
    off = got[("meter_offline", "meter:B-E0")]
    assert off.actual == pytest.approx(3.25) and off.severity == "critical"
    assert off.limit == pytest.approx(OFFLINE_POLLS * 0.25) == pytest.approx(0.75)  # 3 polls of 15 min
    assert off.key == "meter_offline/meter:B-E0/last_sample_age_h/live"
    comp = got[("data_completeness", "meter:A-W0")]
    assert comp.actual == pytest.approx(round(10 / 24 * 100, 1)) and comp.period == "2025-03-15"
    assert comp.extra["max_gap_h"] == pytest.approx(15.0)  # 09:00 -> 24:00
    night = got[("abnormal_night_load", "meter:A-E0")]
    assert night.actual == pytest.approx(6.0) and night.extra["usual"] == pytest.approx(2.0)
    assert night.limit == pytest.approx(3.0) and night.institution_id == "A"
    step = got[("step_change", "meter:C-E0")]
    assert step.actual == pytest.approx(10 * 10 + 14 * 1) and step.extra["before"] == pytest.approx(5 * 10 + 14)
    hol = got[("abnormal_holiday_load", "meter:D-E0")]
    assert hol.actual == pytest.approx(10 * 10 + 14 * 2) and hol.extra["usual"] == pytest.approx(48.0)
    imb = got[("submeter_imbalance", "meter:A-E0")]
    assert imb.actual == pytest.approx(20.0)
    assert imb.extra["children_quantity"] == pytest.approx(1.2 * imb.extra["parent_quantity"])
    assert all(a.message_zh and a.message_en for a in alerts)
    assert all(json.loads(a.to_json())["key"] == a.key for a in alerts)  # plain JSON, numpy values included


def test_offline_meter_back_clears(loaded, tmp_path):
    reg, store = loaded
    later = AS_OF + pd.Timedelta(hours=1)
    t = pd.date_range(pd.Timestamp("2025-03-15 22:00", tz=TZ), later, freq="15min", inclusive="left")
    store.write_samples(pd.DataFrame({"meter_id": "B-E0", "time": t.tz_convert("UTC"),
                                      "value": 5000.0 + np.arange(len(t)), "quality": 0}))
    rules = {a.rule for a in meter_alerts(store, reg, later) if a.scope == "meter:B-E0"}
    assert "meter_offline" not in rules


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=86_399), max_size=120, unique=True),
       st.sampled_from([300, 900, 3600]))
def test_completeness_counts_and_gaps(offsets, interval):
    day = pd.Timestamp("2025-01-02", tz="UTC")
    t = day + pd.to_timedelta(sorted(offsets), unit="s")
    s = pd.DataFrame({"meter_id": "m", "time": t, "quality": 0})
    out = daily_completeness(s, pd.Series({"m": float(interval)}), day, day + pd.Timedelta(days=1)).iloc[0]
    expected = 86_400 // interval
    assert out["samples"] == len(offsets) and out["expected"] == expected
    assert out["share"] == pytest.approx(min(len(offsets) / expected, 1.0))
    edges = np.array([0, *sorted(offsets), 86_400])
    assert out["max_gap_s"] == pytest.approx(np.diff(edges).max())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.5, max_value=100), min_size=7, max_size=30),
       st.floats(min_value=0.0, max_value=400))
def test_abnormal_levels_threshold(history, level):
    hist = pd.DataFrame({"meter_id": "m", "level": history})
    hits = abnormal_levels(hist, pd.DataFrame({"meter_id": ["m"], "level": [level]}), 1.5, pd.Series({"m": 0.0}))
    med = float(np.median(history))
    mad = float(np.median(np.abs(np.array(history) - med)))
    should = level > med * 1.5 + 3 * mad and level - med > 0
    assert (len(hits) == 1) == should
    if should:
        assert hits.iloc[0]["limit"] == pytest.approx(med * 1.5 + 3 * mad)


def test_step_change_both_directions():
    days = pd.date_range("2025-01-01", periods=35, freq="D", tz=TZ)
    q_up = np.r_[np.full(28, 10.0), np.full(7, 20.0)]
    q_down = np.r_[np.full(28, 10.0), np.full(7, 5.0)]
    q_flat = np.r_[np.full(28, 10.0), np.full(7, 12.0)]
    df = pd.concat([pd.DataFrame({"meter_id": m, "period_start": days, "quantity": q})
                    for m, q in (("up", q_up), ("down", q_down), ("flat", q_flat))])
    out = step_changes(df, days[-1] + pd.Timedelta(days=1), 7, 28, 1.5).set_index("meter_id")
    assert sorted(out.index) == ["down", "up"]
    assert out.at["up", "ratio"] == pytest.approx(2.0) and out.at["down", "ratio"] == pytest.approx(0.5)


def test_rules_on_both_backends(store):
    """The same rules through the Store interface of each backend (embedded, InfluxDB)."""
    reg = registry()
    store.set_meters(reg.meters_frame())
    as_of = pd.Timestamp("2025-02-20 01:00", tz=TZ)
    full = samples(as_of)
    t = pd.to_datetime(full["time"], utc=True)
    keep = t >= pd.Timestamp("2025-02-10", tz=TZ)  # ten days of history
    keep &= ~((full["meter_id"] == "B-E0") & (t >= pd.Timestamp("2025-02-19 18:00", tz=TZ)))
    keep &= ~((full["meter_id"] == "A-W0") & (t >= pd.Timestamp("2025-02-19 06:00", tz=TZ))
              & (t < pd.Timestamp("2025-02-20", tz=TZ)))
    store.write_samples(full[keep])
    got = {(a.rule, a.scope): a for a in meter_alerts(store, reg, as_of)}
    # B-E0 silent since 18:00 on the 19th; A-W0 lost 18 of the 24 hourly readings of the
    # 19th; A's sub-meters exceed it by 20 %; the loads of this window are all usual.
    assert set(got) == {("meter_offline", "meter:B-E0"), ("data_completeness", "meter:A-W0"),
                        ("submeter_imbalance", "meter:A-E0")}
    assert got[("meter_offline", "meter:B-E0")].actual == pytest.approx(7.25)
    assert got[("data_completeness", "meter:A-W0")].actual == pytest.approx(25.0)
    assert got[("submeter_imbalance", "meter:A-E0")].actual == pytest.approx(20.0)


# -- the one completeness rule (daily_completeness) -----------------------------------
# Hand-computed: a 15-minute meter owes 96 samples a day; a day whose samples are all
# backfilled or imported owes one per the spacing it carries (hourly: 24).

DAY = pd.Timestamp("2025-03-10", tz=TZ)
LIVE_15 = pd.Series({"m": 900.0})


def _day_samples(day: pd.Timestamp, freq: str, flag: int = 0, meter: str = "m") -> pd.DataFrame:
    t = pd.date_range(day, day + pd.Timedelta(days=1), freq=freq, inclusive="left")
    return pd.DataFrame({"meter_id": meter, "time": t.tz_convert("UTC"), "quality": flag})


def _one_day(s: pd.DataFrame, live: pd.Series = LIVE_15, day: pd.Timestamp = DAY) -> pd.Series:
    out = daily_completeness(s, live, day, day + pd.Timedelta(days=1))
    return out.set_index(["meter_id", "day"]).loc[("m", day)]


def test_live_day_with_ten_percent_missing_is_at_the_target():
    """10 % of 96 polls is 9.6: 9 lost polls leave 87/96 = 90.6 % (complete), 10 leave
    86/96 = 89.6 % (incomplete, alerted)."""
    full = _day_samples(DAY, "15min")
    nine, ten = full.drop(index=range(0, 90, 10)), full.drop(index=range(0, 100, 10))
    a, b = _one_day(nine), _one_day(ten)
    assert (a["samples"], a["expected"], b["samples"]) == (87, 96, 86)
    assert a["share"] == pytest.approx(87 / 96) and a["share"] >= 0.90 > b["share"] == pytest.approx(86 / 96)
    assert a["share"] == pytest.approx(0.90, abs=1 / 96) and not a["stored"]


def test_hourly_backfilled_day_is_complete():
    from storage import quality

    for flag in (quality.BACKFILL, quality.IMPORTED, quality.BACKFILL | quality.ESTIMATED):
        r = _one_day(_day_samples(DAY, "h", flag))
        assert (r["samples"], r["expected"], r["interval_s"], r["share"]) == (24, 24, 3600.0, 1.0) and r["stored"]
    # the same hourly samples polled live (unflagged) owe the 96 polls: 25 %
    live = _one_day(_day_samples(DAY, "h"))
    assert live["expected"] == 96 and live["share"] == pytest.approx(0.25)
    # a day half live, half backfilled is a live day: 48 polls + 12 hourly = 60/96
    half = pd.concat([_day_samples(DAY, "15min").iloc[:48],
                      _day_samples(DAY, "h", quality.BACKFILL).iloc[12:]], ignore_index=True)
    assert _one_day(half)["share"] == pytest.approx(60 / 96)


def test_backfilled_day_among_live_days_is_complete():
    """The old alert took the expected spacing from the week's median (15 min) and read
    this day as 24/96 = 25 %; the report said 100 %. Both now say 100 %."""
    from storage import quality

    days = [DAY + pd.Timedelta(days=k) for k in range(-7, 2)]
    s = pd.concat([_day_samples(d, "h", quality.BACKFILL) if d == DAY else _day_samples(d, "15min") for d in days],
                  ignore_index=True)
    r = _one_day(s)
    assert (r["samples"], r["expected"], r["share"]) == (24, 24, 1.0)
    week = daily_completeness(s, LIVE_15, days[0], days[-1] + pd.Timedelta(days=1))
    assert (week["share"] == 1.0).all() and week["expected"].tolist() == [96] * 7 + [24, 96]


def test_live_day_with_a_six_hour_outage():
    s = _day_samples(DAY, "15min")
    local = pd.DatetimeIndex(s["time"]).tz_convert(TZ)
    s = s[(local.hour < 6) | (local.hour >= 12)]  # nothing from 06:00 to 11:45
    r = _one_day(s)
    assert (r["samples"], r["expected"]) == (72, 96) and r["share"] == pytest.approx(0.75)
    assert r["max_gap_s"] == pytest.approx(6.25 * 3600)  # 05:45 -> 12:00


def test_completeness_alert_uses_the_same_rule(tmp_path):
    """meter_alerts on a backfilled hourly day among live days (no alert) and on a live
    day with a 6-hour outage (75 %)."""
    from storage import quality

    reg = registry()
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=TZ)
    try:
        store.set_meters(reg.meters_frame())
        days = [DAY + pd.Timedelta(days=k) for k in range(-7, 3)]
        frames = []
        for d in days:
            if d == DAY:
                frames.append(_day_samples(d, "h", quality.BACKFILL, "B-E0"))
            else:
                frames.append(_day_samples(d, "15min", 0, "B-E0"))
            c = _day_samples(d, "15min", 0, "C-E0")
            if d == DAY:
                local = pd.DatetimeIndex(c["time"]).tz_convert(TZ)
                c = c[(local.hour < 6) | (local.hour >= 12)]
            frames.append(c)
        s = pd.concat(frames, ignore_index=True)
        store.write_samples(s.assign(value=s.groupby("meter_id").cumcount().astype(float)))
        comp = {a.scope: a for a in meter_alerts(store, reg, DAY + pd.Timedelta(days=1, hours=1))
                if a.rule == "data_completeness"}
        assert "meter:B-E0" not in comp
        assert comp["meter:C-E0"].actual == pytest.approx(75.0)
        assert comp["meter:C-E0"].extra == {"samples": 72, "expected": 96, "max_gap_h": 6.25}
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9 * 86_400 - 1), st.sampled_from([0, 32, 64, 1])), max_size=150,
                unique_by=lambda x: x[0]),
       st.sampled_from([None, 900.0, 3600.0]), st.integers(0, 4), st.integers(1, 5))
@example([(0, 64), (8 * 86_400 + 3600, 64)], 900.0, 0, 2)  # a predecessor just outside one window
@example([(0, 0), (8 * 86_400 + 3600, 0)], None, 0, 2)
def test_a_day_reads_the_same_in_any_window(points, live, first, ndays):
    """The alert (one day), the dashboard (a week) and the report (a month) call
    `daily_completeness` with different windows: a day's figures must not depend on it."""
    origin = pd.Timestamp("2025-03-01", tz=TZ)
    s = pd.DataFrame({"meter_id": "m", "time": [origin + pd.Timedelta(seconds=o) for o, _ in points],
                      "quality": [q for _, q in points]})
    iv = pd.Series({"m": live}) if live else pd.Series(dtype=float)
    start = origin + pd.Timedelta(days=7 + first // 2)
    end = min(start + pd.Timedelta(days=ndays), origin + pd.Timedelta(days=9))
    wide = daily_completeness(s, iv, start, end)
    for d in pd.date_range(start, end, freq="D", inclusive="left"):
        one = daily_completeness(s, iv, d, d + pd.Timedelta(days=1))
        got = wide[wide["day"] == d].reset_index(drop=True)
        pd.testing.assert_frame_equal(one.reset_index(drop=True), got, check_dtype=False)


def test_meters_fed_by_csv_imports_are_never_offline(tmp_path):
    """A registry written by `civicwatt init` keeps its Modbus blocks when its readings
    come from CSV files: imported meters and meters without data are not expected to
    report, so no meter_offline alert at all (it was one per meter, "never reported").
    Once a collector polls the registry, a meter that never answered is offline, while
    the meter fed by imports still is not."""
    from storage import quality

    reg = registry()
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=TZ)
    store.set_meters(reg.meters_frame())
    t = pd.date_range(START, AS_OF - pd.Timedelta(days=5), freq="h", inclusive="left")
    store.import_samples(pd.DataFrame({"meter_id": "A-E0", "time": t.tz_convert("UTC"),
                                       "value": 100.0 + np.arange(len(t)), "quality": quality.IMPORTED}))
    alerts = meter_alerts(store, reg, AS_OF)
    assert [a for a in alerts if a.rule == "meter_offline"] == []
    # nor do meters without any sample owe samples to the completeness rule
    assert {a.scope for a in alerts if a.rule == "data_completeness"} <= {"meter:A-E0", "meter:A-W0"}
    # a collector starts polling B-E0: the registry is polled now
    polled = pd.date_range(AS_OF - pd.Timedelta(hours=2), AS_OF, freq="15min", inclusive="left")
    store.write_samples(pd.DataFrame({"meter_id": "B-E0", "time": polled.tz_convert("UTC"),
                                      "value": 10.0 + np.arange(len(polled)), "quality": 0}))
    offline = {a.scope: a for a in meter_alerts(store, reg, AS_OF) if a.rule == "meter_offline"}
    assert set(offline) == {"meter:A-E1", "meter:A-E2", "meter:C-E0", "meter:D-E0"}  # Modbus meters, no sample
    assert all(a.actual is None and "never reported" in a.message_en for a in offline.values())
    late = {a.scope for a in meter_alerts(store, reg, AS_OF) if a.rule == "data_completeness"}
    assert not late & set(offline)  # an offline meter's completeness is not raised twice
    store.close()
