"""Cost in 元: region tariffs in the registry (validated, inherited down the tree) and
the one cost rule (`models.cost`): a bill's cost on its days, else metered use at the
tariff, else unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.registry import load_registry, validate_registry_doc
from core.yamlfile import load_yaml
from models import api as models_api
from models.cost import bill_costs, cost_by_period, energy_cost, tariff_frame

TZ = "Asia/Shanghai"
REGISTRY = """\
regions:
  - {id: hebei, name: 河北省, tariffs: {electricity: 0.65, water: 4.2}}
  - {id: sjz, name: 石家庄市, parent: hebei, tariffs: {electricity: 0.7, natural_gas: 3.1}}
  - {id: bd, name: 保定市, parent: hebei}
institutions:
  - {id: A, name: 甲, region: sjz, category: government, floor_area_m2: 1000, occupants: 10}
  - {id: B, name: 乙, region: bd, category: school, floor_area_m2: 1000, occupants: 10}
meters:
  - {id: A-E0, institution: A, energy: electricity}
  - {id: B-E0, institution: B, energy: electricity}
  - {id: B-H0, institution: B, energy: heat}
"""


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "civicwatt.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return load_registry(path)


def test_tariffs_are_inherited_down_the_region_tree(registry):
    assert registry.tariffs_of("sjz") == {"electricity": 0.7, "water": 4.2, "natural_gas": 3.1}
    assert registry.tariffs_of("bd") == {"electricity": 0.65, "water": 4.2}
    frame = tariff_frame(registry).set_index(["institution_id", "energy"])["cny_per_unit"]
    assert frame[("A", "electricity")] == 0.7 and frame[("B", "electricity")] == 0.65
    assert ("B", "heat") not in frame.index  # no price of heat anywhere


def test_a_bad_tariff_names_its_line_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(REGISTRY.replace("tariffs: {electricity: 0.65, water: 4.2}",
                                     "tariffs: {electricity: -1, steam: 2}"), encoding="utf-8")
    _reg, problems = validate_registry_doc(load_yaml(path), str(path))
    fields = {(p.line, p.field) for p in problems}
    assert (2, "regions[0].tariffs.electricity") in fields
    assert any(f.startswith("regions[0].tariffs.steam") for _line, f in fields)


def _use(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    days = pd.DatetimeIndex([pd.Timestamp(d, tz=TZ) for _i, _e, d, _q in rows])
    return pd.DataFrame({"institution_id": [i for i, *_ in rows], "energy": [e for _i, e, *_ in rows],
                         "is_main": True, "period_start": days, "quantity": [q for *_x, q in rows]})


def test_bill_cost_wins_on_its_days_tariff_elsewhere_unknown_without_either(registry):
    # A: metered 100 kWh on 1 and 2 Oct; a bill covers 2-3 Oct for 30 元 (15 元 a day)
    # B: metered 50 kWh on 1 Oct (bd: 0.65); heat 10 GJ on 1 Oct with neither bill nor tariff
    use = _use([("A", "electricity", "2026-10-01", 100.0), ("A", "electricity", "2026-10-02", 100.0),
                ("B", "electricity", "2026-10-01", 50.0), ("B", "heat", "2026-10-01", 10.0)])
    bills = pd.DataFrame([{"institution_id": "A", "energy": "electricity", "period_start": "2026-10-02",
                           "period_end": "2026-10-03", "quantity": 999.0, "unit": "kWh", "cost_cny": 30.0},
                          {"institution_id": "B", "energy": "electricity", "period_start": "2026-10-05",
                           "period_end": "2026-10-05", "quantity": 1.0, "unit": "kWh", "cost_cny": np.nan}])
    cost = energy_cost(use, bill_costs(bills, "day", TZ), tariff_frame(registry))
    got = {(r.institution_id, r.energy, r.period_start.day): (r.cost_cny, r.cost_source)
           for r in cost.itertuples(index=False)}
    assert got[("A", "electricity", 1)] == (pytest.approx(70.0), "tariff")  # 100 kWh x 0.70
    assert got[("A", "electricity", 2)] == (pytest.approx(15.0), "bill")  # the bill's day, not 100 x 0.70
    assert got[("A", "electricity", 3)] == (pytest.approx(15.0), "bill")  # billed, not metered
    assert got[("B", "electricity", 1)] == (pytest.approx(32.5), "tariff")
    heat = got[("B", "heat", 1)]
    assert np.isnan(heat[0]) and heat[1] == "none"
    assert ("B", "electricity", 5) not in got  # a bill without a cost prices nothing
    month = cost_by_period(cost, "month", TZ, by=("institution_id",)).set_index("institution_id")
    assert month.at["A", "cost_cny"] == pytest.approx(100.0)
    assert month.at["B", "cost_cny"] == pytest.approx(32.5) and month.at["B", "priced_share"] == pytest.approx(0.5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=40),
       st.floats(min_value=0.01, max_value=10))
def test_cost_at_the_tariff_adds_up_over_any_period(quantities, price):
    """Without bills the cost of a period is its use times the tariff, however it is summed."""
    days = pd.date_range("2026-01-25", periods=len(quantities), freq="D", tz=TZ)
    use = pd.DataFrame({"institution_id": "A", "energy": "electricity", "is_main": True, "period_start": days,
                        "quantity": quantities})
    tariffs = pd.DataFrame({"institution_id": ["A"], "energy": ["electricity"], "cny_per_unit": [price]})
    cost = energy_cost(use, bill_costs(pd.DataFrame(), "day", TZ), tariffs)
    for period in ("day", "month", "year", "all"):
        total = cost_by_period(cost, period, TZ, by=())["cost_cny"].sum()
        assert total == pytest.approx(sum(quantities) * price, rel=1e-9, abs=1e-6)


def test_the_api_exports_the_cost_functions():
    assert models_api.energy_cost is energy_cost and models_api.tariff_frame is tariff_frame
