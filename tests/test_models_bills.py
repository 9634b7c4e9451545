"""Property tests of the bill splitter and unit conversion."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.api import consumption_by, load_factors, split_bills

FACTORS = load_factors()
TZ = "Asia/Shanghai"


@settings(max_examples=60, deadline=None)
@given(st.dates(dt.date(2023, 1, 1), dt.date(2025, 12, 31)), st.integers(0, 120), st.floats(0, 1e7),
       st.sampled_from(["hour", "day", "month", "year"]))
def test_bill_split_keeps_the_total_and_is_uniform(start, days, qty, freq):
    end = start + dt.timedelta(days=days)
    bills = pd.DataFrame({"institution_id": ["A"], "energy": ["natural_gas"], "period_start": [start],
                          "period_end": [end], "quantity": [qty], "unit": ["m3"], "cost_cny": [0.0]})
    out = split_bills(bills, freq, TZ, factors=FACTORS)
    assert out["quantity"].sum() == pytest.approx(qty, rel=1e-9, abs=1e-6)
    per_day = qty / (days + 1)
    local = pd.DatetimeIndex(out["period_start"]).tz_localize(None)
    assert local.min() <= pd.Timestamp(start) and local.max() < pd.Timestamp(end) + pd.Timedelta(days=1)
    if freq == "hour":
        assert len(out) == 24 * (days + 1)
        assert out["quantity"].to_numpy() == pytest.approx([per_day / 24] * len(out))
    if freq == "day":
        assert len(out) == days + 1
        assert out["quantity"].to_numpy() == pytest.approx([per_day] * (days + 1))
    if freq == "month":  # each month gets per_day x its days inside the bill
        for p, q in zip(local, out["quantity"], strict=True):
            lo = max(p, pd.Timestamp(start))
            hi = min(p + pd.offsets.MonthBegin(1), pd.Timestamp(end) + pd.Timedelta(days=1))
            assert q == pytest.approx(per_day * (hi - lo).days, rel=1e-9, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 1e6), st.sampled_from([("gasoline", "L", 0.73), ("diesel", "L", 0.84), ("coal", "t", 1000.0),
                                           ("electricity", "万kWh", 1e4), ("heat", "MJ", 1e-3), ("water", "t", 1.0)]))
def test_units_are_converted(qty, conv):
    energy, unit, scale = conv
    bills = pd.DataFrame({"institution_id": ["A"], "energy": [energy], "period_start": ["2024-05-01"],
                          "period_end": ["2024-05-31"], "quantity": [qty], "unit": [unit], "cost_cny": [0.0]})
    out = split_bills(bills, "month", TZ, factors=FACTORS)
    assert out["quantity"].sum() == pytest.approx(qty * scale, rel=1e-9, abs=1e-9)


def test_consumption_by_region_tree_and_category():
    inst = pd.DataFrame({"institution_id": ["A", "B", "C"], "region": ["sjz", "bd", "sjz"],
                         "category": ["school", "school", "hospital"]})
    p = pd.Timestamp("2024-01-01", tz=TZ)
    use = pd.DataFrame({"institution_id": ["A", "B", "C", "A"], "energy": ["electricity"] * 3 + ["water"],
                        "period_start": [p] * 4, "quantity": [10.0, 20.0, 30.0, 5.0],
                        "estimated_share": [0.5, 0.0, 0.0, 0.0], "is_main": True})
    tree = {"hebei": None, "sjz": "hebei", "bd": "hebei"}
    g = consumption_by(use, inst, by=["region"], regions=tree).set_index(["region", "energy"])
    assert g.loc[("hebei", "electricity"), "quantity"] == pytest.approx(60.0)
    assert g.loc[("hebei", "electricity"), "estimated_share"] == pytest.approx(5 / 60)
    assert g.loc[("hebei", "electricity"), "institutions"] == 3
    assert g.loc[("sjz", "electricity"), "quantity"] == pytest.approx(40.0)
    c = consumption_by(use, inst, by=["region", "category"]).set_index(["region", "category", "energy"])
    assert c.loc[("sjz", "school", "water"), "quantity"] == pytest.approx(5.0)
    assert c.loc[("sjz", "school", "electricity"), "unit"] == "kWh"


SEASONS = pd.DataFrame({"institution_id": ["A"], "heating_start": ["11-15"], "heating_end": ["03-15"]})


@settings(max_examples=40, deadline=None)
@given(st.dates(dt.date(2023, 1, 1), dt.date(2025, 12, 31)), st.integers(0, 120), st.floats(1, 1e6),
       st.floats(0, 1), st.floats(0, 1), st.sampled_from(["hour", "day"]))
def test_a_bills_heating_and_estimated_parts_are_kept_exactly(start, days, qty, heat_frac, est_frac, freq):
    from models.api import energy_sums

    end = start + dt.timedelta(days=days)
    bills = pd.DataFrame({"institution_id": ["A"], "energy": ["natural_gas"], "period_start": [start],
                          "period_end": [end], "quantity": [qty], "unit": ["m3"], "cost_cny": [None],
                          "heating_quantity": [qty * heat_frac], "estimated_quantity": [qty * est_frac]})
    out = split_bills(bills, freq, TZ, factors=FACTORS, seasons=SEASONS)
    assert out["quantity"].sum() == pytest.approx(qty, rel=1e-9)
    used = out["quantity"].to_numpy() > 0
    assert out["estimated_share"].to_numpy()[used] == pytest.approx(est_frac, abs=1e-12)  # every row
    heating = out[out["heating"]]
    assert heating["quantity"].sum() == pytest.approx(qty * heat_frac, rel=1e-9, abs=1e-9)
    days_in = pd.date_range(start, end, freq="D")
    md = days_in.month * 100 + days_in.day
    in_season = (md >= 1115) | (md <= 315)
    if in_season.any():  # the heating part lies on the season's days only, and counts whole as heating
        local = pd.DatetimeIndex(heating["period_start"]).tz_localize(None).normalize()
        hmd = local.month * 100 + local.day
        assert ((hmd >= 1115) | (hmd <= 315)).all()
        inst = SEASONS.assign(floor_area_m2=1.0, occupants=1)
        sums = energy_sums(out, inst, period="year", freq=freq, tz=TZ)
        assert sums["heating_quantity"].sum() == pytest.approx(qty * heat_frac, rel=1e-9, abs=1e-9)
    plain = split_bills(bills, freq, TZ, factors=FACTORS)  # without seasons: the rule for bills (gas is not heating)
    assert not plain["heating"].any() and plain["quantity"].sum() == pytest.approx(qty, rel=1e-9)
