"""The accounting boundary (registry `boundary: excluded`): totals, intensities, targets and
the ledger count the net figure; the ledger shows gross, excluded and net. Hand-computed."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core.registry import load_registry
from core.yamlfile import ConfigError
from models.api import energy_use, indicators, load_factors
from reports.ledger import build_ledger, ledger_csv_bytes
from storage import open_store
from tests.test_mv_synthetic import samples_for

TZ = "Asia/Shanghai"
YEAR = 2025
DAYS = 365
REGISTRY = """\
regions:
  - {id: hebei, name: 河北省}
institutions:
  - id: A
    name: 甲机关
    region: hebei
    category: government
    floor_area_m2: 10000
    occupants: 200
    bills:
      - {energy: heat, boundary: excluded, boundary_reason: 家属区, start: 2025-11-15}
  - {id: B, name: 乙学校, region: hebei, category: school, floor_area_m2: 5000, occupants: 100}
meters:
  - {id: A-E0, institution: A, energy: electricity}
  - {id: A-E1, institution: A, energy: electricity, parent: A-E0, boundary: excluded, boundary_reason: 出租}
  - {id: A-E2, institution: A, energy: electricity, boundary: excluded, boundary_reason: 家属区}
  - {id: A-E3, institution: A, energy: electricity, parent: A-E2}
  - {id: B-E0, institution: B, energy: electricity}
"""
# kWh per day: A's main 1000 of which the leased shop (A-E1) 200; the staff housing's own
# main meter (A-E2) 300 (its sub-meter A-E3 50 is inside it, not deducted again); B 400.
KWH_DAY = {"A-E0": 1000.0, "A-E1": 200.0, "A-E2": 300.0, "A-E3": 50.0, "B-E0": 400.0}
HEAT_GJ = {("2025-01-01", "2025-03-15"): 740.0, ("2025-11-15", "2025-12-31"): 470.0}  # A's heat bills


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("boundary")
    (base / "civicwatt.yaml").write_text(REGISTRY, encoding="utf-8")
    reg = load_registry(base / "civicwatt.yaml")
    store = open_store(f"embedded:{base / 'store'}", tz=TZ)
    store.set_meters(reg.meters_frame())
    dates = pd.date_range(f"{YEAR}-01-01", f"{YEAR}-12-31", freq="D")
    for m, kwh in KWH_DAY.items():
        store.write_samples(samples_for(m, pd.DataFrame({"date": dates, "use_kwh": kwh})))
    store.write_bills(pd.DataFrame([{"institution_id": "A", "energy": "heat", "period_start": a, "period_end": b,
                                     "quantity": q, "unit": "GJ", "cost_cny": None} for (a, b), q in HEAT_GJ.items()]))
    yield reg, store
    store.close()


def test_net_gross_and_excluded_by_hand(world):
    reg, store = world
    f = load_factors()
    kgce_kwh, kgce_gj = f.coal_kgce_per_unit("electricity"), f.coal_kgce_per_unit("heat")
    net_kwh = DAYS * (1000 - 200)  # A-E2 (with A-E3) left out, A-E1 deducted from A-E0
    excl_kwh = DAYS * (200 + 300)
    net_gj, excl_gj = 740.0, 470.0  # the bill from 15 Nov is the staff housing's

    led = build_ledger(store, reg, YEAR)
    rows = led.ledger.set_index(["institution_id", "energy"])
    e = rows.loc[("A", "electricity")]
    assert e["quantity"] == pytest.approx(net_kwh) and e["excluded_quantity"] == pytest.approx(excl_kwh)
    assert e["gross_quantity"] == pytest.approx(DAYS * 1300)
    assert e["kgce"] == pytest.approx(net_kwh * kgce_kwh) and e["excluded_kgce"] == pytest.approx(excl_kwh * kgce_kwh)
    assert e["boundary_reasons"] == "出租、家属区"
    h = rows.loc[("A", "heat")]
    assert h["quantity"] == pytest.approx(net_gj) and h["excluded_quantity"] == pytest.approx(excl_gj)
    assert h["gross_quantity"] == pytest.approx(1210.0) and h["boundary_reasons"] == "家属区"
    b = rows.loc[("B", "electricity")]
    assert b["excluded_quantity"] == 0 and b["quantity"] == pytest.approx(DAYS * 400) and b["boundary_reasons"] == ""

    s = led.summary.set_index("institution_id")
    net_kgce = net_kwh * kgce_kwh + net_gj * kgce_gj
    assert s.at["A", "kgce"] == pytest.approx(net_kgce)
    assert s.at["A", "excluded_kgce"] == pytest.approx(excl_kwh * kgce_kwh + excl_gj * kgce_gj)
    assert s.at["A", "gross_kgce"] == pytest.approx(s.at["A", "kgce"] + s.at["A", "excluded_kgce"])
    assert s.at["A", "kgce_per_m2"] == pytest.approx(net_kgce / 10000)  # intensity on the net figure
    t = led.totals.set_index(["group", "key"])
    assert t.loc[("all", "all"), "kgce"] == pytest.approx(net_kgce + DAYS * 400 * kgce_kwh)
    assert "excluded_quantity" in ledger_csv_bytes(led).decode("utf-8-sig").splitlines()[0]


def test_every_indicator_reads_the_net_use(world):
    reg, store = world
    f = load_factors()
    start, end = f"{YEAR}-01-01", f"{YEAR + 1}-01-01"
    net = energy_use(store, reg, start, end, "day", f)
    gross = energy_use(store, reg, start, end, "day", f, boundary="gross")
    excl = energy_use(store, reg, start, end, "day", f, boundary="excluded")
    for e in ("electricity", "heat"):
        q = [u.loc[(u["institution_id"] == "A") & (u["energy"] == e), "quantity"].sum() for u in (net, gross, excl)]
        assert q[1] == pytest.approx(q[0] + q[2])  # gross = net + excluded
    ind = indicators(net, reg, f, freq="day").set_index("institution_id")
    assert ind.at["A", "electricity_kwh"] == pytest.approx(DAYS * 800)


def test_an_exclusion_needs_its_reason(tmp_path):
    bad = REGISTRY.replace("boundary: excluded, boundary_reason: 出租", "boundary: excluded")
    (tmp_path / "r.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path / "r.yaml")
    assert "r.yaml:15: meters[1].boundary_reason: an excluded meter or bill needs its reason" in str(err.value)
    assert dt.date(2025, 11, 15) == load_registry_ok(tmp_path).institution_by_id["A"].bills[0].start


def load_registry_ok(tmp_path):
    (tmp_path / "ok.yaml").write_text(REGISTRY, encoding="utf-8")
    return load_registry(tmp_path / "ok.yaml")
