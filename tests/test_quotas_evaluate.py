"""Quota levels and dual-control target evaluation, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.api import indicators_from_frames, load_factors
from quotas.config import QuotaConfig, Standard, Target
from quotas.evaluate import evaluate_targets, project_scope_totals, project_year_end, quota_levels, quota_levels_wide

TZ = "Asia/Shanghai"
TREE = {"hebei": None, "sjz": "hebei", "bd": "hebei"}
KWH = 1 / 0.1229  # kWh giving 1 kgce (当量值)


def _levels_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "institution_id": ["S1", "S2", "S3", "S4", "H1", "X1"],
        "name": "n", "region": ["sjz", "sjz", "bd", "bd", "sjz", "bd"],
        "category": ["school", "school", "school", "school", "hospital", "venue"],
        "kgce_per_person": [7.0, 11.0, 9.0, 13.0, 30.0, 1.0],
        "water_m3_per_person": [4.0, 5.0, 9.0, 11.0, 1.0, np.nan],
        "kgce_per_m2": [1.0, 2.0, 3.0, 4.0, 5.0, 50.0],
    })


def test_quota_levels_most_specific_standard():
    cfg = QuotaConfig(standards=(
        Standard(id="hebei-school", category="school", region="hebei",
                 levels={"kgce_per_person": {"guide": 8, "baseline": 10, "constraint": 12},
                         "water_m3_per_person": {"advanced": 5, "general": 10}}),
        Standard(id="sjz-school", category="school", region="sjz",
                 levels={"kgce_per_person": {"guide": 6, "baseline": 7, "constraint": 10}}),
        Standard(id="any", name="general standard", source="somewhere",
                 levels={"kgce_per_m2": {"guide": 2, "baseline": 10, "constraint": 20}}),
    ))
    lv = quota_levels(_levels_frame(), cfg, regions=TREE)
    assert set(lv["name"]) == {"n"}  # the institutions' names, not the standards'
    got = lv.set_index(["institution_id", "indicator"])
    # sjz schools use the sjz standard (nearer region): 7 -> baseline (<= 7), 11 -> exceeds (> 10)
    assert got.loc[("S1", "kgce_per_person"), ["standard_id", "level"]].tolist() == ["sjz-school", "baseline"]
    assert got.loc[("S2", "kgce_per_person"), "level"] == "exceeds"
    # bd schools use the province standard: 9 -> baseline, 13 -> exceeds
    assert got.loc[("S3", "kgce_per_person"), ["standard_id", "level"]].tolist() == ["hebei-school", "baseline"]
    assert got.loc[("S4", "kgce_per_person"), "level"] == "exceeds"
    assert got.loc[("S4", "kgce_per_person"), "level_zh"] == "超约束值"
    # two-level water: <=5 advanced, <=10 general, else exceeds
    assert [got.loc[(i, "water_m3_per_person"), "level"] for i in ("S1", "S2", "S3", "S4")] == [
        "advanced", "advanced", "general", "exceeds"]
    assert got.loc[("S3", "water_m3_per_person"), "meets_constraint"]
    assert not got.loc[("S4", "water_m3_per_person"), "meets_constraint"]
    # the general standard applies to every category; 2 is exactly the guide value
    assert got.loc[("S2", "kgce_per_m2"), "level"] == "guide"
    assert got.loc[("H1", "kgce_per_m2"), "level"] == "baseline"
    assert got.loc[("X1", "kgce_per_m2"), "level"] == "exceeds"
    # hospitals have no per-person standard here: no row
    assert ("H1", "kgce_per_person") not in got.index
    wide = quota_levels_wide(lv).set_index("institution_id")
    assert wide.loc["S3", "level_water_m3_per_person"] == "general"


@pytest.fixture(scope="module")
def monthly():
    """A and B are sjz/bd schools, C an sjz hospital. Last year A used 150 kgce a month
    in Jan-Jun and 50 in Jul-Dec; this year 180 a month to June and 30 in the first 15
    days of July. B has no data for last December."""
    inst = pd.DataFrame({"institution_id": ["A", "B", "C"], "name": ["a", "b", "c"], "region": ["sjz", "bd", "sjz"],
                         "category": ["school", "school", "hospital"], "floor_area_m2": [1000.0, 3000.0, 500.0],
                         "heated_area_m2": [0.0, 0.0, 0.0], "occupants": [100, 50, 20]})
    rows = []
    for m in range(1, 13):
        rows.append(("A", f"2024-{m:02d}-01", 150 if m <= 6 else 50))
        if m < 12:
            rows.append(("B", f"2024-{m:02d}-01", 100))
        rows.append(("C", f"2024-{m:02d}-01", 10))
    for m in range(1, 7):
        rows.append(("A", f"2025-{m:02d}-01", 180))
        rows.append(("B", f"2025-{m:02d}-01", 100))
    rows.append(("A", "2025-07-01", 30))
    use = pd.DataFrame({"institution_id": [r[0] for r in rows], "energy": "electricity",
                        "period_start": [pd.Timestamp(r[1], tz=TZ) for r in rows],
                        "quantity": [r[2] * KWH for r in rows]})
    water = pd.DataFrame({"institution_id": "A", "energy": "water", "period_start": pd.Timestamp("2025-02-01", tz=TZ),
                          "quantity": [500.0]})
    use = pd.concat([use, water], ignore_index=True)
    return indicators_from_frames(use, inst, load_factors(), freq="month", by_period="month")


AS_OF = "2025-07-16"  # data up to 15 July: 15 of July's 31 days
SEASONAL = (6 * 150 + 50 * 15 / 31) / 1200  # last year's share of use before AS_OF
FLAT = 196 / 365  # days from 1 January to 15 July


def _targets(projection: str = "last_year") -> QuotaConfig:
    return QuotaConfig(projection=projection, targets=(
        Target(id="a-warn", year=2025, institution="A", limits={"energy_tce": 1.5}),
        Target(id="a-proj", year=2025, institution="A", limits={"energy_tce": 1.4}),
        Target(id="a-breach", year=2025, institution="A", limits={"energy_tce": 1.0, "water_m3": 1000}),
        Target(id="b-flat", year=2025, institution="B", limits={"energy_tce": 2.0}),
        Target(id="sjz-school", year=2025, region="sjz", category="school", limits={"energy_tce": 5.0}),
        Target(id="hebei", year=2025, region="hebei", limits={"energy_tce": 3.0, "kgce_per_m2": 0.5}),
        Target(id="other-year", year=2026, region="hebei", limits={"energy_tce": 3.0}),
    ))


def test_seasonal_projection_and_status(monthly):
    ev = evaluate_targets(_targets(), monthly, AS_OF, regions=TREE)
    assert "other-year" not in set(ev["target_id"])
    r = ev.set_index(["target_id", "indicator"])
    a = r.loc[("a-warn", "energy_tce")]
    assert a["actual"] == pytest.approx(1.11)  # 6 x 180 + 30 kgce
    assert a["elapsed_share"] == pytest.approx(SEASONAL)
    assert a["method"] == "last_year"
    assert a["projected"] == pytest.approx(1.11 / SEASONAL)  # 1.441 tce
    assert a["prorated_limit"] == pytest.approx(1.5 * SEASONAL)
    assert a["status"] == "warning"  # 1.441 >= 95 % of 1.5
    # flagged before it happens: year to date is under 1.4 but the projection is over
    p = r.loc[("a-proj", "energy_tce")]
    assert p["actual"] < 1.4 and p["status"] == "projected_breach"
    assert r.loc[("a-breach", "energy_tce"), "status"] == "breach"
    w = r.loc[("a-breach", "water_m3")]
    assert w["actual"] == pytest.approx(500.0)
    # B lacks last December: flat (days) share
    b = r.loc[("b-flat", "energy_tce")]
    assert b["method"] == "flat" and b["elapsed_share"] == pytest.approx(FLAT)
    assert b["projected"] == pytest.approx(0.6 / FLAT) and b["status"] == "ok"
    # the region/category scope holds only A; the province holds A, B and C (C: no data this year)
    assert r.loc[("sjz-school", "energy_tce"), "actual"] == pytest.approx(1.11)
    assert r.loc[("sjz-school", "energy_tce"), "institutions"] == 1
    h = r.loc[("hebei", "energy_tce")]
    assert h["actual"] == pytest.approx(1.71) and h["institutions"] == 2
    # B has a missing month last year: the province's shape comes from A and C
    shape = (6 * 160 + 60 * 15 / 31) / 1320
    assert h["method"] == "last_year" and h["elapsed_share"] == pytest.approx(shape)
    k = r.loc[("hebei", "kgce_per_m2")]
    assert k["actual"] == pytest.approx(1710 / 4000)  # C has no data this year: not in the denominator
    assert k["projected"] == pytest.approx(1710 / 4000 / shape)
    assert k["status"] == "projected_breach"
    assert set(ev["scope"]) >= {"institution:A", "region:sjz/category:school", "region:hebei"}


def test_flat_projection_and_basis_guard(monthly):
    ev = evaluate_targets(_targets("flat"), monthly, AS_OF, regions=TREE).set_index("target_id")
    a = ev.loc["a-warn"]
    assert a["method"] == "flat" and a["projected"] == pytest.approx(1.11 / FLAT)
    assert a["status"] == "projected_breach"  # without the seasonal shape winter use looks like a breach
    with pytest.raises(ValueError, match="basis"):
        evaluate_targets(QuotaConfig(basis="equal_value", targets=_targets().targets), monthly, AS_OF, TREE)


def test_past_year_is_evaluated_whole(monthly):
    cfg = QuotaConfig(targets=(Target(id="a2024", year=2024, institution="A", limits={"energy_tce": 1.1}),))
    ev = evaluate_targets(cfg, monthly, AS_OF, regions=TREE, year=2024).iloc[0]
    assert ev["elapsed_share"] == pytest.approx(1.0)
    assert ev["actual"] == pytest.approx(1.2) and ev["projected"] == pytest.approx(1.2)
    assert ev["status"] == "breach"


def test_project_year_end_seasonal_flat_and_past():
    """The one year-end projection (dashboard and targets), against hand-computed values."""
    last = [10, 10, 10, 20, 5, 5, 5, 5, 5, 5, 5, 5]  # 90 over the year, 30 before April
    # last year's 30 of 90 by 1 April: this year's 40 projects to 120
    p = project_year_end([40.0], [last], "2025-04-01")
    assert p.elapsed_share[0] == pytest.approx(30 / 90) and p.projected[0] == pytest.approx(120.0)
    assert p.method[0] == "last_year"
    # no last year: linear in time; 2 April 06:00 is 91.25 of 365 days = a quarter
    p = project_year_end([100.0], [np.zeros(12)], pd.Timestamp("2025-04-02 06:00"))
    assert p.method[0] == "flat" and p.elapsed_share[0] == pytest.approx(0.25)
    assert p.projected[0] == pytest.approx(400.0)
    # a running day counts pro rata: 15.5 of April's 30 days
    share = (30 + 20 * 15.5 / 30) / 90
    p = project_year_end([50.0], [last], "2025-04-16 12:00")
    assert p.elapsed_share[0] == pytest.approx(share) and p.projected[0] == pytest.approx(50.0 / share)
    # vectorised over scopes; 'flat' ignores the shape; one month missing last year: flat
    gap = [*last[:11], 0.0]
    p = project_year_end([40.0, 40.0], [last, gap], "2025-04-01", method="flat")
    assert list(p.method) == ["flat", "flat"] and p.elapsed_share == pytest.approx([90 / 365] * 2)
    p = project_year_end([40.0, 40.0], [last, gap], "2025-04-01")
    assert list(p.method) == ["last_year", "flat"]
    assert p.projected == pytest.approx([120.0, 40.0 / (90 / 365)])
    # nothing elapsed yet: no projection; a past year is complete
    assert np.isnan(project_year_end([10.0], [last], "2025-01-01").projected[0])
    p = project_year_end([75.0], [last], "2025-04-01", year=2024)
    assert p.elapsed_share[0] == pytest.approx(1.0) and p.projected[0] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="projection method"):
        project_year_end([1.0], [last], "2025-04-01", method="linear")


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.1, max_value=1e6), st.integers(0, 364 * 24 * 4), st.floats(min_value=0, max_value=1e6))
def test_seasonal_share_of_a_steady_year_is_the_share_of_days(rate, quarter_hours, actual):
    """Constant use (each month in proportion to its days) has no season: both methods
    agree, and projected x elapsed share gives back the year to date."""
    as_of = pd.Timestamp("2025-01-01") + pd.Timedelta(minutes=15 * quarter_hours)
    days = np.array([pd.Period(f"2025-{m:02d}").days_in_month for m in range(1, 13)], float)
    seasonal = project_year_end([actual], [rate * days], as_of)
    flat = project_year_end([actual], [rate * days], as_of, method="flat")
    assert seasonal.elapsed_share[0] == pytest.approx(flat.elapsed_share[0], rel=1e-9, abs=1e-12)
    assert seasonal.elapsed_share[0] == pytest.approx(quarter_hours / (365 * 96), rel=1e-9, abs=1e-12)
    if quarter_hours:
        assert seasonal.projected[0] * seasonal.elapsed_share[0] == pytest.approx(actual, rel=1e-9, abs=1e-9)


def test_scope_without_target_projects_as_a_target_would(monthly):
    """project_scope_totals (the dashboard's scopes without a target) gives the numbers
    evaluate_targets gives the same scope with a target."""
    ev = evaluate_targets(_targets(), monthly, AS_OF, regions=TREE).set_index(["target_id", "indicator"])
    a = project_scope_totals(monthly, AS_OF, institution_ids=["A"]).set_index("indicator")
    assert a.loc["energy_tce", "actual"] == pytest.approx(1.11)
    assert a.loc["energy_tce", "elapsed_share"] == pytest.approx(SEASONAL)
    assert a.loc["energy_tce", "projected"] == pytest.approx(1.11 / SEASONAL)
    assert a.loc["energy_tce", "projected"] == pytest.approx(ev.loc[("a-warn", "energy_tce"), "projected"], rel=1e-12)
    # A had no water last year: flat
    assert a.loc["water_m3", "method"] == "flat" and a.loc["water_m3", "projected"] == pytest.approx(500 / FLAT)
    assert a.loc["water_m3", "unit"] == "m3" and a.loc["energy_tce", "institutions"] == 1
    # the whole province: the shape of A and C only (B misses last December)
    h = project_scope_totals(monthly, AS_OF).set_index("indicator").loc["energy_tce"]
    shape = (6 * 160 + 60 * 15 / 31) / 1320
    assert h["elapsed_share"] == pytest.approx(shape) and h["projected"] == pytest.approx(1.71 / shape)
    assert h["projected"] == pytest.approx(ev.loc[("hebei", "energy_tce"), "projected"], rel=1e-12)
    # the quota file's 'flat' method, and a scope without data
    f = project_scope_totals(monthly, AS_OF, method="flat", institution_ids=["A"]).set_index("indicator")
    assert f.loc["energy_tce", "projected"] == pytest.approx(1.11 / FLAT)
    none = project_scope_totals(monthly, AS_OF, institution_ids=["nobody"])
    assert none["projected"].isna().all() and (none["institutions"] == 0).all()
