"""Local days, hours and months in zones with daylight saving and odd or historical offsets
(issue 15 item 1): a period starts at the zone's first instant of its label, never at a
literal midnight that does not exist, and the periods of a range sum to its total on both
store backends."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import localtime
from models.energy import split_bills
from storage import open_store, rollup
from storage.base import normalize_samples

HAVANA = "America/Havana"  # springs forward at 00:00: 2024-03-10 begins at 01:00
ZONES = ["America/Havana", "America/Santiago", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/London",
         "Asia/Shanghai"]


def _transitions(tz: str, lo: str = "1990-01-01", hi: str = "2026-01-01") -> list[pd.Timestamp]:
    """Instants (UTC) around which `tz` changes its offset, found hourly (Asia/Shanghai:
    its 1990-1991 daylight saving; Asia/Kathmandu none after 1986: a plain span)."""
    t = pd.date_range(lo, hi, freq="3h", tz="UTC")
    off = (t.tz_convert(tz).tz_localize(None) - t.tz_localize(None)).asi8
    at = np.flatnonzero(off[1:] != off[:-1])
    return [t[i] for i in at] or [pd.Timestamp("2024-06-01", tz="UTC")]


TRANSITIONS = {tz: _transitions(tz) for tz in ZONES}


def _utc(edges: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(edges, unit="s", utc=True)


# -- the boundaries -------------------------------------------------------------------
def test_a_day_whose_midnight_does_not_exist_starts_at_the_end_of_the_gap():
    edges = _utc(rollup.period_edges(pd.Timestamp("2024-03-09", tz="UTC"), pd.Timestamp("2024-03-12", tz="UTC"),
                                     "day", HAVANA)).tz_convert(HAVANA)
    assert [e.strftime("%m-%d %H:%M") for e in edges] == ["03-08 00:00", "03-09 00:00", "03-10 01:00",
                                                          "03-11 00:00", "03-12 00:00"]
    assert np.diff(edges.as_unit("s").asi8).tolist()[1:3] == [24 * 3600, 23 * 3600]


def test_shanghai_1919_and_the_1986_1991_daylight_saving():
    sh = "Asia/Shanghai"
    day = localtime.first_instant(pd.DatetimeIndex(["1919-04-13", "1990-04-15", "1990-04-15 02:00"]), sh)
    assert [d.strftime("%Y-%m-%d %H:%M%z") for d in day] == ["1919-04-13 01:00+0900", "1990-04-15 00:00+0800",
                                                             "1990-04-15 03:00+0900"]
    hours = rollup.period_edges(pd.Timestamp("1990-04-14 17:00", tz="UTC"), pd.Timestamp("1990-04-14 20:00", tz="UTC"),
                                "hour", sh)
    assert np.diff(hours).tolist() == [3600, 3600, 3600]
    assert [t.hour for t in _utc(hours).tz_convert(sh)] == [1, 3, 4, 5]  # 02:00 was skipped: no such period


def test_a_repeated_hour_belongs_to_its_first_occurrence_and_half_hour_shifts_are_kept():
    # Lord Howe moves 30 minutes: 2024-10-06 02:00 -> 02:30 (+10:30 -> +11)
    lh = "Australia/Lord_Howe"
    t = pd.DatetimeIndex(["2024-10-05 15:40"], tz="UTC")  # 02:40 +11 (15:30 UTC was 02:00 +10:30, now 02:30)
    assert localtime.local_floor(t, "hour", lh)[0].strftime("%H:%M%z") == "02:30+1100"
    # London falls back 2024-10-27 02:00 -> 01:00: both 01:xx belong to the hour that starts first
    second = pd.DatetimeIndex(["2024-10-27 01:30"], tz="UTC")  # 01:30 GMT, the second 01:30
    assert localtime.local_floor(second, "hour", "Europe/London")[0] == pd.Timestamp("2024-10-27 00:00", tz="UTC")
    # Kathmandu +05:45: a local day starts at 18:15 UTC
    assert localtime.first_instant_of("2024-01-02", "Asia/Kathmandu") == pd.Timestamp("2024-01-01 18:15", tz="UTC")


def test_bills_split_over_a_day_without_midnight_keep_their_quantity():
    bill = pd.DataFrame({"institution_id": ["I1"], "energy": ["electricity"], "period_start": ["2024-03-01"],
                         "period_end": ["2024-03-31"], "quantity": [3100.0], "unit": ["kWh"]})
    for freq in ("hour", "day", "month"):
        use = split_bills(bill, freq, HAVANA)
        assert use["quantity"].sum() == pytest.approx(3100.0), freq
        assert use["period_start"].notna().all()
    days = split_bills(bill, "day", HAVANA).set_index("period_start")["quantity"]
    assert days[localtime.first_instant_of("2024-03-10", HAVANA)] == pytest.approx(100.0)


# -- both backends --------------------------------------------------------------------
_n = itertools.count()


@pytest.fixture(params=["embedded", "influxdb"])
def zone_store(request, tmp_path):
    """A store per time zone (the store's zone is fixed when it is opened), on each backend."""
    opened: dict[str, object] = {}

    def make(tz: str):
        if tz not in opened:
            url = (f"embedded:{tmp_path / f'store{len(opened)}'}" if request.param == "embedded"
                   else request.getfixturevalue("influxd").url(f"zones{next(_n)}"))
            opened[tz] = open_store(url, tz=tz)
        return opened[tz]

    yield make
    for s in opened.values():
        s.close()


def _set_meter(store, meter: str) -> None:
    store.set_meters(pd.DataFrame([{"meter_id": meter, "multiplier": 1.0, "rollover_at": np.nan}]))


def test_one_reading_on_a_day_without_midnight_does_not_break_the_store(zone_store):
    store = zone_store(HAVANA)
    times = pd.DatetimeIndex(["2024-03-09 12:00", "2024-03-10 12:00", "2024-03-11 12:00"], tz=HAVANA)
    store.write_samples(pd.DataFrame({"meter_id": "M", "time": times.tz_convert("UTC"), "value": [0.0, 23.0, 47.0],
                                      "quality": 0}))
    _set_meter(store, "M")
    daily = store.consumption("day", "2024-03-09", "2024-03-12", ["M"])
    starts = [t.strftime("%d %H:%M") for t in daily["period_start"]]
    assert starts == ["09 00:00", "10 01:00", "11 00:00"]
    # 0 -> 23 over 23 real hours, then 24 over 24: 12 h on the 9th, 11 + 12 on the 10th (23 h long), 12 on the 11th
    assert daily["quantity"].round(9).tolist() == [12.0, 23.0, 12.0]
    assert store.consumption("month", "2024-03-01", "2024-04-01", ["M"])["quantity"].sum() == pytest.approx(47.0)
    assert store.period_counts("day", "2024-03-09", "2024-03-12", ["M"])["samples"].tolist() == [1, 1, 1]


@st.composite
def zone_histories(draw):
    """A zone, and one meter's increasing index read at irregular spacing over a few days
    around one of the zone's offset changes."""
    tz = draw(st.sampled_from(ZONES))
    around = draw(st.sampled_from(TRANSITIONS[tz]))
    n = draw(st.integers(min_value=2, max_value=120))
    step = draw(st.sampled_from([300, 900, 1800, 3600, 5400]))
    gaps = np.asarray(draw(st.lists(st.integers(min_value=1, max_value=3), min_size=n - 1, max_size=n - 1)))
    offset = draw(st.integers(min_value=-3 * 86400, max_value=0))
    t = (around + pd.Timedelta(seconds=offset)).floor("s").value // 10**9 + np.r_[0, np.cumsum(gaps * step)]
    incs = draw(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=n - 1, max_size=n - 1))
    values = 100.0 + np.r_[0.0, np.cumsum(incs)]
    return tz, pd.to_datetime(t, unit="s", utc=True), values


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(zone_histories())
def test_local_days_hours_and_months_sum_to_the_total_in_every_zone(zone_store, history):
    tz, times, values = history
    store = zone_store(tz)
    meter = f"Z{next(_n)}"
    samples = pd.DataFrame({"meter_id": meter, "time": times, "value": values, "quality": 0})
    store.write_samples(samples)
    _set_meter(store, meter)
    total = values[-1] - values[0]
    lo, hi = times[0] - pd.Timedelta(days=40), times[-1] + pd.Timedelta(days=40)
    for freq in ("hour", "day", "month"):
        got = store.consumption(freq, lo, hi, [meter])
        assert got["quantity"].sum() == pytest.approx(total, rel=1e-9, abs=1e-6), freq
        starts = pd.DatetimeIndex(got["period_start"])
        assert (localtime.local_floor(starts, freq, tz) == starts).all(), freq  # each starts at its first instant
        assert starts.is_monotonic_increasing and starts.is_unique
    ref = rollup.consumption(normalize_samples(samples), lo, hi, "day", tz)
    day = store.consumption("day", lo, hi, [meter])
    assert day["period_start"].tolist() == ref["period_start"].tolist()
    labels = localtime.local_wall(pd.DatetimeIndex(day["period_start"]), tz).normalize()
    assert labels.is_unique  # one period per local date


def test_check_config_import_and_export_in_havana(tmp_path, capsys):
    from civicwatt.cli import main
    from civicwatt.sample import write_sample

    write_sample(tmp_path, n_institutions=1)
    reg = tmp_path / "civicwatt.yaml"
    text = reg.read_text(encoding="utf-8")
    reg.write_text(text.replace("timezone: Asia/Shanghai", f"timezone: {HAVANA}") if "timezone:" in text
                   else f"timezone: {HAVANA}\n{text}", encoding="utf-8")
    common = ["--registry", str(reg), "--store", f"embedded:{tmp_path / 'data'}"]
    assert main(["check-config", "--registry", str(reg)]) == 0
    (tmp_path / "r.csv").write_text("meter_id,time,value\nHB-0001-E0,2024-03-09T12:00:00-05:00,0\n"
                                    "HB-0001-E0,2024-03-10T12:00:00-04:00,23\nHB-0001-E0,2024-03-11T12:00:00-04:00,47\n",
                                    encoding="utf-8")
    assert main(["import", "readings", str(tmp_path / "r.csv"), *common]) == 0
    out = tmp_path / "c.csv"
    assert main(["export", "consumption", "--start", "2024-03-09", "--end", "2024-03-12", "--freq", "day",
                 "--out", str(out), *common]) == 0
    got = pd.read_csv(out)
    q = got["quantity"].to_numpy(float)
    np.testing.assert_allclose(q / q[0], [1.0, 23 / 12, 1.0])  # (times the meter's multiplier)
    assert str(got["period_start"].iloc[1]).startswith("2024-03-10T01:00:00-04:00")
