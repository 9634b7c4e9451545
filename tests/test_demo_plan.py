"""The demo's five-year-plan panel against its own portfolio (issue 18 item 4).

The sample quota file's plan base values are the 30 sample institutions' 2020 as the
load model simulates it (not the whole province's statistics), so the overview and the
assessment show changes and progress of the size a real portfolio has. Both the base
values and the demo's plan rows are computed here by hand: annual use of each main
meter x the factor set's coefficients, summed per region (ratios of sums)."""

from __future__ import annotations

import pandas as pd
import pytest

from civicwatt.commands.simulate import meters_for_sim
from core.schemas.quotas import PLAN_INTENSITIES
from device_sim.history import generate_history
from models.factors import load_factors
from quotas.assessment import plan_for, plan_members
from quotas.config import load_quotas
from reports.assessment import plan_inputs
from tests import support_dashboard_world as w

TZ = "Asia/Shanghai"
SCOPES = ("hebei", "sjz", "bd", "ts")  # the province and its three cities


def region_intensities(annual: pd.Series, registry, year: int) -> pd.DataFrame:
    """kgce, water and CO2 intensities per region (the province: every institution) from
    each main meter's use of the year (meter_id -> kWh or m3), by hand."""
    f = load_factors()
    region = f.match_region(["hebei", "河北省"])
    kgce = {e: f.coal_kgce_per_unit(e, "equivalent", region, year) for e in ("electricity", "natural_gas")}
    kgco2 = {e: f.emission_factor(e, region, year).value for e in ("electricity", "natural_gas")}
    main = [m for m in registry.meters if m.parent is None]
    use = pd.DataFrame({"institution": [m.institution for m in main], "energy": [m.energy for m in main],
                        "q": annual.reindex([m.id for m in main]).fillna(0.0).to_numpy()})
    per = use.pivot_table(index="institution", columns="energy", values="q", aggfunc="sum").fillna(0.0)
    inst = pd.DataFrame([{"institution": i.id, "region": i.region, "area": i.floor_area_m2, "occupants": i.occupants}
                         for i in registry.institutions]).set_index("institution")
    per = per.join(inst)
    per["kgce"] = per["electricity"] * kgce["electricity"] + per["natural_gas"] * kgce["natural_gas"]
    per["kgco2"] = per["electricity"] * kgco2["electricity"] + per["natural_gas"] * kgco2["natural_gas"]
    rows = {}
    for scope in SCOPES:
        s = (per if scope == "hebei" else per[per["region"] == scope]).sum(numeric_only=True)
        rows[scope] = {"kgce_per_m2": s["kgce"] / s["area"], "kgce_per_person": s["kgce"] / s["occupants"],
                       "water_m3_per_person": s["water"] / s["occupants"], "kgco2_per_m2": s["kgco2"] / s["area"]}
    return pd.DataFrame.from_dict(rows, orient="index")[list(PLAN_INTENSITIES)]


@pytest.fixture(scope="module")
def world():
    reg, store, quotas_path, _ = w.shared_demo_world()
    return reg, store, load_quotas(quotas_path, reg)


def _published(config) -> pd.DataFrame:
    return pd.DataFrame([b.model_dump() for b in config.plan.base_values]).set_index("region")[list(PLAN_INTENSITIES)]


def test_sample_base_values_are_the_simulated_base_year(world):
    """Each base value of the sample file is the load model's 2020 (the demo's seed) for
    the sample portfolio, to the file's two decimals."""
    reg, _, config = world
    year = config.plan.base_year
    start, end = pd.Timestamp(f"{year}-01-01", tz=TZ), pd.Timestamp(f"{year + 1}-01-01", tz=TZ)
    meters = meters_for_sim(reg)
    h = generate_history(meters, start, end, interval_s=3600, seed=1)
    idx = h[h["time"].isin([start, end])].pivot(index="meter_id", columns="time", values="value")
    mult = pd.Series({m["id"]: float(m.get("multiplier") or 1.0) for m in meters})
    annual = (idx[end] - idx[start]) * mult[idx.index]
    assert (annual > 0).all()  # no register wrapped within the year
    expected = region_intensities(annual, reg, year)
    published = _published(config).loc[list(SCOPES)]
    pd.testing.assert_frame_equal(published, expected, check_names=False, atol=0.006, rtol=0)


def test_demo_plan_progress_is_plausible_and_computed_by_hand(world):
    """The plan rows of the demo's last complete year (the overview's panel and the
    assessment compute them alike): value by hand from the store, the base from the
    file, change = value / base - 1, progress = change / target; all of a plausible size
    (|change| under 10 %, progress between -100 % and +200 %), unlike the province's
    statistics measured against 30 institutions (+43 %: progress -850 %)."""
    reg, store, config = world
    year = 2025
    inputs = plan_inputs(store, reg, config, year)
    rows = plan_for(inputs, config, plan_members(inputs.current, reg)).set_index(["scope", "indicator"])
    main = [m.id for m in reg.meters if m.parent is None]
    cons = store.consumption("year", pd.Timestamp(f"{year}-01-01", tz=TZ), pd.Timestamp(f"{year + 1}-01-01", tz=TZ),
                             meter_ids=main)
    value = region_intensities(cons.groupby("meter_id")["quantity"].sum(), reg, year)
    base = _published(config)
    for scope in SCOPES:
        for name in PLAN_INTENSITIES:
            r = rows.loc[(scope, name)]
            target = getattr(config.plan.targets, name)
            change = value.loc[scope, name] / base.loc[scope, name] - 1
            assert r["base_source"] == "published" and r["base_value"] == base.loc[scope, name]
            assert r["value"] == pytest.approx(value.loc[scope, name], rel=1e-9), (scope, name)
            assert r["change"] == pytest.approx(change, rel=1e-9, abs=1e-12)
            assert r["progress"] == pytest.approx(change / target, rel=1e-9, abs=1e-12)
            assert abs(r["change"]) < 0.10 and -1.0 <= r["progress"] <= 2.0, (scope, name, r["change"])
            assert bool(r["on_track"]) == (change <= target)  # 2025 is the target year: the whole target is due
