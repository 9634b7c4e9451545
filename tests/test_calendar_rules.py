"""The one holiday calendar (core.calendar) and the one offline rule (core.rules) as every layer sees them."""

from __future__ import annotations

import pandas as pd
import pytest

from alerts.meter_rules import is_non_working, offline_meters
from collectors.meter_state import MeterTable
from core.calendar import UnknownCalendarYear, day_types, known_years
from core.registry import Meter, ModbusAddress
from core.rules import OFFLINE_POLLS
from core.schemas.gateways import GatewayOptions, offline_polls_of
from device_sim.load import daily_calendar
from verification.frames import daily_drivers

# 2024 (国办发明电〔2023〕7号): National Day 1-7 Oct off, Sun 29 Sep and Sat 12 Oct worked;
# Spring Festival 10-17 Feb off, Sun 4 Feb and Sat 18 Feb worked (18 Feb 2024 was a Sunday).
DAYS = pd.DatetimeIndex(["2024-09-29", "2024-10-01", "2024-10-04", "2024-10-08", "2024-10-12", "2024-10-13",
                         "2024-02-04", "2024-02-12", "2024-02-18"])
WORKING = [True, False, False, True, True, False, True, False, True]


def test_calendar_knows_the_2024_notice_and_every_layer_agrees():
    t = day_types(DAYS)
    assert t.working.tolist() == WORKING
    assert t.holiday.tolist() == [False, True, True, False, False, False, False, True, False]
    assert t.makeup_workday.tolist() == [True, False, False, False, True, False, True, False, True]
    # the alert, the simulator and M&V read the same calendar
    assert (~is_non_working(DAYS)).tolist() == WORKING
    sim = daily_calendar("2024-01-01", "2024-12-31").set_index("date")["working"]
    assert [bool(sim.loc[pd.Timestamp(d).date()] if pd.Timestamp(d).date() in sim.index else sim.loc[d])
            for d in DAYS] == WORKING
    temps = pd.DataFrame({"date": pd.date_range("2024-01-01", "2024-12-31"), "temp_c": 10.0})
    mv = daily_drivers(temps, None, pd.Timestamp("2024-01-01").date(), pd.Timestamp("2024-12-31").date())
    assert mv.set_index("date").loc[DAYS, "working"].astype(bool).tolist() == WORKING
    assert int(mv["working"].sum()) == 251  # 2024: 366 days, 251 working days


def test_a_year_the_calendar_does_not_know_is_named():
    first, last = known_years()
    assert first <= 2004 and last >= 2025
    with pytest.raises(UnknownCalendarYear, match=str(last + 3)):
        day_types(pd.DatetimeIndex([f"{last + 3}-10-01"]))
    fallback = day_types(pd.DatetimeIndex([f"{last + 3}-10-01", "2024-10-01"]), unknown="weekdays")
    assert fallback.known.tolist() == [False, True]


def _meter(i: int, port: int) -> Meter:
    return Meter(id=f"M{i}", institution="HB-0001", energy="electricity",
                 modbus=ModbusAddress(host="127.0.0.1", port=port, unit=i, profile="dtsu666", interval_s=900))


def test_one_offline_threshold_per_gateway_for_collectors_and_alerts():
    meters = [_meter(1, 5020), _meter(2, 5021)]
    opts = {"127.0.0.1:5021": GatewayOptions(offline_polls=6)}
    table = MeterTable.from_meters(meters, gateway_options=opts)
    assert table.offline_polls.tolist() == [OFFLINE_POLLS, 6] == [3, 6]
    polls = offline_polls_of(meters, opts)
    assert polls == {"M1": 3, "M2": 6}
    now = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    live = pd.DataFrame({"meter_id": ["M1", "M2"], "institution_id": "HB-0001", "interval_s": 900})
    # both silent 1 h: 4 polls > 3 (M1 offline), < 6 (M2 online)
    last = pd.DataFrame({"meter_id": ["M1", "M2"], "time": [now - pd.Timedelta(hours=1)] * 2})
    off = offline_meters(last, live, now, polls)
    assert off["meter_id"].tolist() == ["M1"] and off["limit_s"].tolist() == [2700.0]
