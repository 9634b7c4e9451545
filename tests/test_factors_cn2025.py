"""Factor set cn-2025 against the published tables (MEE/NBS electricity CO2 factors for 2021,
2022, 2023; GB/T 2589-2020), the natural-gas heating-value choice, market-based Scope 2."""

from __future__ import annotations

import pandas as pd
import pytest

from core.registry import load_registry
from core.yamlfile import ConfigError
from models.factors import DEFAULT_SET, load_factors
from reports.ledger import build_ledger
from storage import open_store
from tests.test_mv_synthetic import samples_for

# (region, year) -> tCO2/MWh as published (domain.md §8 and the 2022 announcement's summary)
PUBLISHED = {
    ("national", 2021): 0.5568, ("national", 2022): 0.5366, ("national", 2023): 0.5306,
    ("north_china", 2021): 0.7120, ("north_china", 2022): 0.6776, ("north_china", 2023): 0.6361,
    ("tianjin", 2021): 0.7355, ("tianjin", 2022): 0.7041, ("shanxi", 2021): 0.7222, ("shanxi", 2022): 0.7096,
    ("shandong", 2021): 0.6838, ("shandong", 2022): 0.6410, ("beijing", 2021): 0.5688, ("hebei", 2022): 0.7252,
    ("inner_mongolia", 2022): 0.6849, ("anhui", 2022): 0.6782, ("yunnan", 2022): 0.1073,
    ("southwest", 2022): 0.2268, ("south_china", 2022): 0.3869, ("east_china", 2022): 0.5617,
}
PROVINCES = 30  # the 31 provincial units of the mainland but Tibet, which the tables do not list
GRIDS = 7  # 华北 东北 华东 华中 西北 南方 西南


def test_default_set_is_cn_2025_and_pins_the_published_grid_factors():
    f = load_factors()
    assert f.id == DEFAULT_SET == "cn-2025"
    for (region, year), value in PUBLISHED.items():
        got = f.emission_factor("electricity", region, year)
        assert (got.value, got.region, got.year) == (value, region, year), (region, year)
        assert not got.provisional, (region, year)  # confirmed: no "check" mark
        assert "生态环境部" in got.source
    assert f.market_grid_factor(2022).value == 0.5856 and f.market_grid_factor(2023).value == 0.6096
    fossil = f.grid[f.grid["kind"] == "fossil"].set_index("year")["value"]
    assert fossil.to_dict() == {2021.0: 0.8426, 2022.0: 0.8325, 2023.0: 0.8273}


def test_every_province_and_grid_has_2021_and_2022_with_a_source():
    f = load_factors()
    levels = pd.Series({k: v.get("level") for k, v in f.regions.items()})
    provinces, grids = levels[levels == "province"].index, levels[levels == "grid"].index
    assert len(provinces) == PROVINCES and len(grids) == GRIDS
    loc = f.grid[f.grid["kind"] == "location"]
    for region in [*provinces, *grids]:
        rows = loc[loc["region"] == region]
        assert {2021.0, 2022.0} <= set(rows["year"]), region
        assert rows["source"].str.contains("电力二氧化碳排放因子").all(), region
    for p in provinces:  # each province falls back to a grid that exists
        assert f.regions[p]["grid"] in grids
    # a 2023 activity in Tianjin: no province figure yet, its 2022 figure, provisional
    got = f.emission_factor("electricity", "tianjin", 2023)
    assert (got.value, got.year, got.provisional) == (0.7041, 2022, True)


def test_natural_gas_rests_on_one_heating_value(tmp_path):
    gas_field = load_factors()
    assert gas_field.choices["natural_gas"] == "gas_field"
    assert gas_field.coal_kgce_per_unit("natural_gas") == 1.2143  # 35,544 kJ/m3 / 29,271 kJ/kgce
    assert gas_field.emission_factor("natural_gas").value == 1.974
    # 35.544e-6 TJ/m3 x 15.3 tC/TJ x 0.99 x 44/12 (kg per m3)
    assert pytest.approx(1.974, abs=5e-4) == 35.544e-3 * 15.3 * 0.99 * 44 / 12
    (tmp_path / "oil.yaml").write_text("id: oil\nchoices: {natural_gas: oil_field}\n", encoding="utf-8")
    oil = load_factors(tmp_path / "oil.yaml")
    assert oil.id == "cn-2025+oil"
    assert oil.coal_kgce_per_unit("natural_gas") == 1.3300 and oil.emission_factor("natural_gas").value == 2.162
    # one heating value: the same CO2 per kgce whichever gas
    ratio = [s.emission_factor("natural_gas").value / s.coal_kgce_per_unit("natural_gas") for s in (gas_field, oil)]
    assert ratio[0] == pytest.approx(ratio[1], rel=1e-3)
    (tmp_path / "bad.yaml").write_text("id: bad\nchoices: {natural_gas: lng}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"choices\.natural_gas: choose one of gas_field, oil_field"):
        load_factors(tmp_path / "bad.yaml")


def test_cn_2024_is_kept_for_reproducibility():
    old = load_factors("cn-2024")
    assert old.id == "cn-2024"
    assert old.emission_factor("natural_gas").value == 2.162
    assert old.emission_factor("electricity", "tianjin", 2022).value == 0.6776  # its regional fallback


def test_market_based_scope2_beside_location_based(tmp_path):
    """100,000 kWh in Hebei in 2023 of which 40,000 kWh green power bought: location-based
    100,000 x 0.7252 (Hebei 2022, the latest) = 72.52 t; market-based 60,000 x 0.6096 =
    36.576 t. The ledger records its factor set."""
    (tmp_path / "r.yaml").write_text(
        "regions:\n  - {id: hebei, name: 河北省}\ninstitutions:\n"
        "  - {id: A, name: 甲, region: hebei, category: government, floor_area_m2: 1000, occupants: 10}\n"
        "meters:\n  - {id: A-E0, institution: A, energy: electricity}\n", encoding="utf-8")
    reg = load_registry(tmp_path / "r.yaml")
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=reg.timezone)
    try:
        store.set_meters(reg.meters_frame())
        dates = pd.date_range("2023-01-01", "2023-12-31", freq="D")
        store.write_samples(samples_for("A-E0", pd.DataFrame({"date": dates, "use_kwh": 100_000 / len(dates)})))
        store.write_bills(pd.DataFrame([{"institution_id": "A", "energy": "green_power", "period_start": "2023-01-01",
                                         "period_end": "2023-12-31", "quantity": 40.0, "unit": "MWh",
                                         "cost_cny": None}]))
        s = build_ledger(store, reg, 2023).summary.set_index("institution_id").loc["A"]
    finally:
        store.close()
    assert s["electricity_kwh"] == pytest.approx(100_000)  # the purchase is not use
    assert s["green_power_kwh"] == pytest.approx(40_000)
    assert s["t_co2_scope2"] == pytest.approx(72.52)
    assert s["t_co2_scope2_market"] == pytest.approx(36.576)
    assert s["market_factor"] == 0.6096 and s["factor_set"] == "cn-2025"
