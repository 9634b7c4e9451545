"""Meter-data alert rules on a real embedded store with synthetic 15-minute data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.registry import Institution, Meter, ModbusAddress, Region, Registry
from quotas.alerts_meter import abnormal_levels, completeness, meter_alerts, step_changes
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
    assert off.actual == pytest.approx(3.25) and off.limit == pytest.approx(1.0) and off.severity == "critical"
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
    s = pd.DataFrame({"meter_id": "m", "time": t})
    out = completeness(s, pd.Series({"m": float(interval)}), day, day + pd.Timedelta(days=1)).iloc[0]
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
