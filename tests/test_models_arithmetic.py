"""Hand-computed checks of the models' arithmetic (domain.md §2-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.registry import Registry
from core.yamlfile import ConfigError
from models.api import (
    aggregate,
    consumption_by,
    energy_ledger,
    energy_sums,
    energy_use,
    indicators,
    indicators_from_frames,
    load_factors,
    split_bills,
    submeter_balance,
    submeter_balance_from_frames,
)
from models.indicators import heating_fraction

TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def factors():
    return load_factors()


def _inst(**over) -> pd.DataFrame:
    row = {"institution_id": "A", "name": "甲", "region": "hebei", "category": "government",
           "floor_area_m2": 1000.0, "heated_area_m2": 800.0, "occupants": 50}
    row.update(over)
    return pd.DataFrame([row])


def _use(rows: list[tuple], tz: str = TZ) -> pd.DataFrame:
    """rows of (institution_id, energy, period_start, quantity[, heating, estimated_share])."""
    out = []
    for r in rows:
        inst, energy, start, qty = r[:4]
        out.append({"institution_id": inst, "energy": energy, "period_start": pd.Timestamp(start, tz=tz),
                    "quantity": float(qty), "heating": r[4] if len(r) > 4 else energy == "heat",
                    "estimated_share": r[5] if len(r) > 5 else 0.0})
    return pd.DataFrame(out)


def test_every_energy_type_coal_and_carbon(factors):
    use = _use([("A", "electricity", "2022-06-01", 1000), ("A", "water", "2022-06-01", 100),
                ("A", "natural_gas", "2022-06-01", 100), ("A", "heat", "2022-06-01", 10),
                ("A", "gasoline", "2022-06-01", 100), ("A", "diesel", "2022-06-01", 100),
                ("A", "lpg", "2022-06-01", 10), ("A", "coal", "2022-06-01", 100), ("A", "pv", "2022-06-01", 500)])
    ind = indicators_from_frames(use, _inst(), factors, freq="month").iloc[0]
    # GB/T 2589-2020: 0.1229 kgce/kWh, 1.2143 kgce/m3, 34.12 kgce/GJ, 1.4714, 1.4571, 1.7143, 0.7143 kgce/kg
    parts = {"electricity": 1000 * 0.1229, "gas": 100 * 1.2143, "heat": 10 * 34.12, "gasoline": 100 * 1.4714,
             "diesel": 100 * 1.4571, "lpg": 10 * 1.7143, "coal": 100 * 0.7143}
    kgce = sum(parts.values())
    assert ind["kgce"] == pytest.approx(kgce)
    assert ind["tce"] == pytest.approx(kgce / 1000)
    assert ind["water_m3"] == 100 and ind["pv_kwh"] == 500
    # scope 1: 1.974 kgCO2/m3 gas-field gas (cn-2025: 35,544 kJ/m3 x 15.3 tC/TJ x 99 % x 44/12, the
    # heating value of its 1.2143 kgce/m3), 2.925 / 3.096 / 3.101 / 1.9 tCO2/t fuels
    s1 = 100 * 1.974 + 100 * 2.925 + 100 * 3.096 + 10 * 3.101 + 100 * 1.9
    # scope 2: Hebei 2022 grid 0.7252 tCO2/MWh; heat 0.11 tCO2/GJ
    s2 = 1000 * 0.7252 + 10 * 110
    assert ind["t_co2_scope1"] == pytest.approx(s1 / 1000)
    assert ind["t_co2_scope2"] == pytest.approx(s2 / 1000)
    assert ind["t_co2"] == pytest.approx((s1 + s2) / 1000)
    assert ind["kgce_per_m2"] == pytest.approx(kgce / 1000)
    assert ind["kgce_per_person"] == pytest.approx(kgce / 50)
    assert ind["water_m3_per_person"] == pytest.approx(2.0)
    assert ind["kgco2_per_m2"] == pytest.approx((s1 + s2) / 1000)
    # June is outside the heating season: heating energy 0; vehicle fuel out of non-heating
    assert ind["heating_kgce"] == 0
    assert ind["vehicle_kgce"] == pytest.approx(parts["gasoline"] + parts["diesel"])
    assert ind["nonheating_kgce_per_m2"] == pytest.approx((kgce - parts["gasoline"] - parts["diesel"]) / 1000)
    assert ind["basis"] == "equivalent" and "当量值" in ind["basis_label"] and ind["factor_set"] == "cn-2025"
    assert ind["provisional"]  # raw coal's 1.9 tCO2/t is shipped marked "check"
    no_coal = indicators_from_frames(use[use["energy"] != "coal"], _inst(), factors, freq="month").iloc[0]
    assert not no_coal["provisional"]


def test_both_electricity_bases(factors):
    use = _use([("A", "electricity", "2020-03-01", 10_000), ("A", "natural_gas", "2020-03-01", 100)])
    eq = indicators_from_frames(use, _inst(), factors, basis="equivalent", freq="month").iloc[0]
    ev = indicators_from_frames(use, _inst(), factors, basis="equal_value", freq="month").iloc[0]
    assert eq["kgce"] == pytest.approx(10_000 * 0.1229 + 100 * 1.2143)
    assert ev["kgce"] == pytest.approx(10_000 * 0.3055 + 100 * 1.2143)  # 等价值 2020: 305.5 gce/kWh
    assert eq["basis"] == "equivalent" and ev["basis"] == "equal_value"
    assert "等价值" in ev["basis_label"]
    # carbon does not depend on the basis
    assert eq["t_co2"] == pytest.approx(ev["t_co2"])
    # a year without its own 等价值 figure uses the latest earlier one, marked provisional
    use21 = _use([("A", "electricity", "2021-03-01", 10_000)])
    ev21 = indicators_from_frames(use21, _inst(), factors, basis="等价值", freq="month").iloc[0]
    assert ev21["kgce"] == pytest.approx(10_000 * 0.3055)
    assert ev21["provisional"]
    with pytest.raises(ValueError, match="basis"):
        indicators_from_frames(use, _inst(), factors, basis="market", freq="month")


def test_grid_factor_fallbacks(factors):
    # province, then grid region, then national; latest year when missing (provisional)
    assert factors.emission_factor("electricity", "hebei", 2021).value == 0.7901
    f = factors.emission_factor("electricity", "hebei", 2024)
    assert (f.value, f.year, f.provisional) == (0.7252, 2022, True)
    f = factors.emission_factor("electricity", "tianjin", 2022)
    assert (f.value, f.region) == (0.7041, "tianjin")  # cn-2025: Tianjin's own published factor
    f = factors.emission_factor("electricity", "tianjin", 2023)  # no province figure for 2023 yet
    assert (f.value, f.year, f.provisional) == (0.7041, 2022, True)
    f = factors.emission_factor("electricity", "north_china", 2023)
    assert (f.value, f.region, f.provisional) == (0.6361, "north_china", False)
    f = factors.emission_factor("electricity", None, 2023)
    assert (f.value, f.region, f.provisional) == (0.5306, "national", False)
    use = _use([("A", "electricity", "2023-05-01", 1000), ("B", "electricity", "2023-05-01", 1000),
                ("C", "electricity", "2022-05-01", 1000)])
    inst = pd.concat([_inst(), _inst(institution_id="B", region="天津市"), _inst(institution_id="C", region="xx")])
    ind = indicators_from_frames(use, inst, factors, freq="month").set_index("institution_id")
    assert ind.loc["A", "t_co2"] == pytest.approx(0.7252) and ind.loc["A", "provisional"]
    assert ind.loc["B", "t_co2"] == pytest.approx(0.7041)  # matched by name 天津市 (2022, latest)
    assert ind.loc["C", "t_co2"] == pytest.approx(0.5366)  # unknown region: national 2022


def test_heating_season_split_daily_and_monthly(factors):
    # Heat every day of November 2022 (30 days): 15 Nov .. 30 Nov are in the season (16 days).
    days = pd.date_range("2022-11-01", periods=30, freq="D", tz=TZ)
    use = pd.DataFrame({"institution_id": "A", "energy": "heat", "period_start": days, "quantity": 1.0})
    gas = pd.DataFrame({"institution_id": "A", "energy": "natural_gas", "period_start": days, "quantity": 10.0,
                        "heating": False})
    both = pd.concat([use.assign(heating=True), gas], ignore_index=True)
    ind = indicators_from_frames(both, _inst(), factors, freq="day").iloc[0]
    heating = 16 * 34.12
    total = 30 * 34.12 + 300 * 1.2143
    assert ind["heating_kgce"] == pytest.approx(heating)
    assert ind["heating_kgce_per_m2"] == pytest.approx(heating / 800)  # per heated area
    assert ind["nonheating_kgce_per_m2"] == pytest.approx((total - heating) / 1000)  # per floor area
    # the same month as one monthly row: 16/30 of it is in the season
    monthly = pd.DataFrame({"institution_id": ["A"], "energy": ["heat"], "quantity": [30.0], "heating": [True],
                            "period_start": [pd.Timestamp("2022-11-01", tz=TZ)]})
    indm = indicators_from_frames(monthly, _inst(), factors, freq="month").iloc[0]
    assert indm["heating_kgce"] == pytest.approx(heating)
    # a region with its own season (e.g. 11-01 .. 03-31): all 30 days are heating
    own = _inst(heating_start="11-01", heating_end="03-31")
    assert indicators_from_frames(use, own, factors, freq="day").iloc[0]["heating_kgce"] == pytest.approx(30 * 34.12)
    # boundaries are inclusive and wrap the new year
    p = pd.DatetimeIndex(["2023-03-15", "2023-03-16", "2022-11-14", "2022-11-15", "2023-01-01"]).tz_localize(TZ)
    assert heating_fraction(p, "day", [("11-15", "03-15")])[0].tolist() == [1, 0, 0, 1, 1]
    # a year: 15 Nov-31 Dec (47 days) + 1 Jan-15 Mar (74 days) of 365
    y = heating_fraction(pd.DatetimeIndex(["2022-01-01"]).tz_localize(TZ), "year", [("11-15", "03-15")])
    assert y[0, 0] == pytest.approx(121 / 365)


def test_bill_spanning_two_months(factors):
    bills = pd.DataFrame({"institution_id": ["A"], "energy": ["electricity"], "period_start": ["2024-01-20"],
                          "period_end": ["2024-02-09"], "quantity": [2100.0], "unit": ["kWh"], "cost_cny": [1500.0]})
    m = split_bills(bills, "month", TZ, factors=factors)
    assert m["quantity"].tolist() == pytest.approx([1200.0, 900.0])  # 12 days of 21, 9 days of 21
    assert [p.strftime("%Y-%m-%d") for p in m["period_start"]] == ["2024-01-01", "2024-02-01"]
    d = split_bills(bills, "day", TZ, "2024-02-01", "2024-02-05", factors=factors)
    assert len(d) == 4 and d["quantity"].sum() == pytest.approx(400.0)
    # units: litres of gasoline become kg (0.73 kg/L), tonnes become kg, MWh kWh
    fuel = pd.DataFrame({"institution_id": ["A", "A", "A"], "energy": ["gasoline", "coal", "electricity"],
                         "period_start": ["2024-03-01"] * 3, "period_end": ["2024-03-31"] * 3,
                         "quantity": [100.0, 2.0, 1.5], "unit": ["L", "t", "MWh"], "cost_cny": [0.0] * 3})
    f = split_bills(fuel, "month", TZ, factors=factors).set_index("energy")["quantity"]
    assert f["gasoline"] == pytest.approx(73.0) and f["coal"] == pytest.approx(2000.0)
    assert f["electricity"] == pytest.approx(1500.0)
    with pytest.raises(ValueError, match="water"):
        split_bills(fuel.assign(energy="water", unit="GJ"), "month", TZ, factors=factors)


def _registry(**kw) -> Registry:
    from core.registry import Institution, Meter, Region

    return Registry(
        regions=(Region(id="hebei", name="河北省"), Region(id="sjz", name="石家庄市", parent="hebei")),
        institutions=(Institution(id="A", name="甲", region="sjz", category="school", floor_area_m2=1000,
                                  heated_area_m2=900, occupants=100),
                      Institution(id="B", name="乙", region="sjz", category="school", floor_area_m2=2000,
                                  heated_area_m2=0, occupants=40)),
        meters=(Meter(id="A-E0", institution="A", energy="electricity", multiplier=10, rollover=100000),
                Meter(id="A-E1", institution="A", energy="electricity", subitem="hvac", parent="A-E0"),
                Meter(id="A-E2", institution="A", energy="electricity", subitem="lighting_socket", parent="A-E0"),
                Meter(id="A-G0", institution="A", energy="gasoline")),
        **kw)


def _samples(meter: str, times: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"meter_id": meter, "time": pd.to_datetime(times).tz_localize(TZ).tz_convert("UTC"),
                         "value": values, "quality": 0})


def test_store_rollover_bills_and_submeters(store, factors):
    """Through a real store (both backends): a register rollover, a fuel meter in litres,
    sub-meters kept out of totals, and bills only for energies without a meter."""
    reg = _registry()
    store.set_meters(reg.meters_frame())
    days = ["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-03 00:00", "2024-01-04 00:00"]
    # main meter wraps at 100000: 99990 -> 99995 -> 5 -> 25: increases 5, 10, 20 (x10 multiplier)
    store.write_samples(pd.concat([
        _samples("A-E0", days, [99990, 99995, 5, 25]),
        _samples("A-E1", days, [0, 20, 50, 100]),
        _samples("A-E2", days, [0, 10, 30, 60]),
        _samples("A-G0", days, [0, 10, 10, 30]),
    ], ignore_index=True))
    store.write_bills(pd.DataFrame({
        "institution_id": ["A", "A", "B"], "energy": ["electricity", "heat", "water"],
        "period_start": ["2024-01-01", "2024-01-01", "2023-12-30"], "period_end": ["2024-01-03", "2024-01-03",
                                                                                 "2024-01-02"],
        "quantity": [999.0, 30.0, 40.0], "unit": ["kWh", "GJ", "m3"], "cost_cny": [1.0, 1.0, 1.0]}))
    use = energy_use(store, reg, "2024-01-01", "2024-01-04", "day", factors)
    e0 = use[use["meter_id"] == "A-E0"]["quantity"].tolist()
    assert e0 == pytest.approx([50.0, 100.0, 200.0])  # rollover handled, x multiplier 10
    hourly = energy_use(store, reg, "2024-01-02", "2024-01-03", "hour", factors)
    h0 = hourly[hourly["meter_id"] == "A-E0"]
    assert len(h0) == 24 and h0["quantity"].sum() == pytest.approx(100.0)  # the wrap day, hour by hour
    monthly = energy_use(store, reg, "2024-01-01", "2024-02-01", "month", factors)
    assert monthly[monthly["meter_id"] == "A-E0"]["quantity"].sum() == pytest.approx(350.0)
    assert set(use["meter_id"].dropna()) == {"A-E0", "A-G0"}  # no sub-meters
    gas = use[use["meter_id"] == "A-G0"]
    assert gas["quantity"].sum() == pytest.approx(30 * 0.73) and set(gas["unit"]) == {"kg"}
    billed = use[use["source"] == "bill"].groupby(["institution_id", "energy"])["quantity"].sum()
    assert ("A", "electricity") not in billed.index  # metered: the bill is not counted twice
    assert billed[("A", "heat")] == pytest.approx(30.0)
    assert billed[("B", "water")] == pytest.approx(40.0 / 4 * 2)  # 2 of its 4 days are in the window
    ind = indicators(use, reg, factors, freq="day").set_index("institution_id")
    assert ind.loc["A", "electricity_kwh"] == pytest.approx(350.0)
    assert ind.loc["A", "kgce"] == pytest.approx(350 * 0.1229 + 30 * 0.73 * 1.4714 + 30 * 34.12)
    assert ind.loc["A", "heating_kgce"] == pytest.approx(30 * 34.12)  # January, purchased heat
    assert ind.loc["B", "water_m3_per_person"] == pytest.approx(20.0 / 40)
    bal = submeter_balance(store, reg, "2024-01-01", "2024-01-04").set_index("parent_meter_id")
    assert bal.loc["A-E0", "parent_quantity"] == pytest.approx(350.0)
    assert bal.loc["A-E0", "children_quantity"] == pytest.approx(160.0)
    assert bal.loc["A-E0", "unaccounted_share"] == pytest.approx(190 / 350)
    assert bal.loc["A-E0", "children"] == 2 and not bal.loc["A-E0", "over_parent"]
    # with sub-meters included the totals do not change
    use_all = energy_use(store, reg, "2024-01-01", "2024-01-04", "day", factors, include_submeters=True)
    assert (~use_all["is_main"]).sum() == 6
    ind_all = indicators(use_all, reg, factors, freq="day").set_index("institution_id")
    assert ind_all.loc["A", "kgce"] == pytest.approx(ind.loc["A", "kgce"])
    by_meter = consumption_by(use_all, reg.institutions_frame(), by=["meter_id"])
    assert by_meter[by_meter["meter_id"] == "A-E1"]["quantity"].sum() == pytest.approx(100.0)


def test_submeter_balance_flags_children_over_parent():
    meters = pd.DataFrame({"meter_id": ["P", "C1", "C2", "Q"], "institution_id": "A", "energy": "electricity",
                           "parent": [None, "P", "P", None]})
    cons = pd.DataFrame({"meter_id": ["P", "C1", "C2", "P", "Q"], "quantity": [60.0, 20.0, 30.0, 40.0, 5.0]})
    bal = submeter_balance_from_frames(cons, meters).set_index("parent_meter_id")
    assert list(bal.index) == ["P"]
    assert bal.loc["P", "parent_quantity"] == pytest.approx(100.0)
    assert bal.loc["P", "unaccounted"] == pytest.approx(50.0)
    assert bal.loc["P", "unaccounted_share"] == pytest.approx(0.5)
    cons2 = cons.assign(quantity=[60.0, 70.0, 35.0, 40.0, 5.0])
    assert submeter_balance_from_frames(cons2, meters).iloc[0]["over_parent"]


def test_aggregate_is_ratio_of_sums_not_mean_of_ratios(factors):
    inst = pd.concat([_inst(institution_id="A", floor_area_m2=100.0, occupants=10, region="sjz"),
                      _inst(institution_id="B", floor_area_m2=900.0, occupants=10, region="bd"),
                      _inst(institution_id="C", floor_area_m2=500.0, occupants=5, region="bd")])
    kwh = 1000 / 0.1229  # 1000 kgce each for A and B, C has no data
    use = _use([("A", "electricity", "2023-05-01", kwh), ("B", "electricity", "2023-05-01", kwh)])
    ind = indicators_from_frames(use, inst, factors, freq="month")
    assert ind.set_index("institution_id").loc["A", "kgce_per_m2"] == pytest.approx(10.0)
    assert ind.set_index("institution_id").loc["B", "kgce_per_m2"] == pytest.approx(1000 / 900)
    assert np.isnan(ind.set_index("institution_id").loc["C", "kgce_per_m2"])  # no data: not zero
    agg = aggregate(ind, ["category"]).iloc[0]
    assert agg["kgce_per_m2"] == pytest.approx(2.0)  # 2000 kgce / 1000 m2 (C has no data)
    assert agg["kgce_per_m2"] != pytest.approx(ind["kgce_per_m2"].mean())
    assert agg["institutions"] == 3 and agg["institutions_with_data"] == 2
    # a region roll-up through the tree: hebei covers sjz and bd
    tree = {"hebei": None, "sjz": "hebei", "bd": "hebei"}
    by_region = aggregate(ind, ["region"], regions=tree).set_index("region")
    assert by_region.loc["hebei", "kgce"] == pytest.approx(2000.0)
    assert by_region.loc["bd", "kgce_per_m2"] == pytest.approx(1000 / 900)


def test_estimated_share_is_carried(factors):
    use = _use([("A", "electricity", "2023-05-01", 1000, False, 0.5),
                ("A", "electricity", "2023-05-02", 3000, False, 0.0),
                ("A", "water", "2023-05-01", 10, False, 1.0)])
    ind = indicators_from_frames(use, _inst(), factors, freq="day").iloc[0]
    assert ind["estimated_share"] == pytest.approx(500 / 4000)
    assert ind["water_estimated_share"] == pytest.approx(1.0)


def test_unknown_institution_is_refused(factors):
    use = _use([("Z", "electricity", "2023-05-01", 1)])
    with pytest.raises(ValueError, match="Z"):
        indicators_from_frames(use, _inst(), factors, freq="day")


def test_energy_ledger_rows(factors):
    use = _use([("A", "electricity", "2022-05-01", 1000), ("A", "natural_gas", "2022-05-01", 10)])
    sums = energy_sums(use, _inst(), freq="month")
    led = energy_ledger(sums, _inst(), factors).set_index("energy")
    assert led.loc["electricity", "emission_factor"] == pytest.approx(0.7252)
    assert led.loc["electricity", "scope"] == 2 and led.loc["natural_gas", "scope"] == 1
    assert led.loc["natural_gas", "t_co2"] == pytest.approx(10 * 1.974 / 1000)
    assert "GB/T 2589" in led.loc["natural_gas", "coal_source"]


def test_user_factor_override(tmp_path, factors):
    f = tmp_path / "mine.yaml"
    f.write_text("id: hebei-local\ngrid:\n  - {region: hebei, year: 2022, value: 0.70, source: local}\n"
                 "  - {region: hebei, year: 2024, value: 0.65, source: local}\n", encoding="utf-8")
    fs = load_factors(f)
    assert fs.id == "cn-2025+hebei-local"
    assert fs.emission_factor("electricity", "hebei", 2022).value == 0.70
    assert fs.emission_factor("electricity", "hebei", 2021).value == 0.7901  # shipped entry kept
    assert fs.emission_factor("electricity", "hebei", 2024).value == 0.65
    use = _use([("A", "electricity", "2024-05-01", 1000)])
    ind = indicators_from_frames(use, _inst(), fs, freq="month").iloc[0]
    assert ind["factor_set"] == "cn-2025+hebei-local" and ind["t_co2"] == pytest.approx(0.65)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ngrid:\n  - {region: hebei, year: 2022, value: -1}\n"
                   "conversion:\n  - {energy: plasma, value: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_factors(bad)
    text = str(err.value)
    assert "bad.yaml:3: grid[0].value" in text and "bad.yaml:5: conversion[0].energy" in text


def test_registry_seasons_and_factor_regions(factors):
    from core.registry import HeatingSeason, Region

    reg = _registry()
    reg2 = Registry(regions=(Region(id="hebei", name="河北省", heating_season=HeatingSeason(start="11-01",
                                                                                     end="03-31")),
                             Region(id="sjz", name="石家庄市", parent="hebei")),
                    institutions=reg.institutions, meters=reg.meters)
    days = pd.date_range("2023-11-01", periods=10, freq="D", tz=TZ)
    use = pd.DataFrame({"institution_id": "A", "energy": "heat", "period_start": days, "quantity": 1.0})
    assert indicators(use, reg, factors, freq="day").iloc[0]["heating_kgce"] == 0  # before 11-15
    assert indicators(use, reg2, factors, freq="day").iloc[0]["heating_kgce"] == pytest.approx(10 * 34.12)
    e = pd.DataFrame({"institution_id": "A", "energy": "electricity", "period_start": days, "quantity": 1.0})
    assert indicators(e, reg, factors, freq="day").iloc[0]["t_co2"] == pytest.approx(10 * 0.7252 / 1000)
