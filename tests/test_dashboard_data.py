"""Dashboard arithmetic and queries: indicators, quota levels, heating season,
projection, the ranking query (hypothesis), on a real embedded store."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.data import (
    KGCE_PER_UNIT,
    KGCO2_PER_UNIT,
    DataService,
    in_heating_season,
    project_year_end,
    quota_level,
)
from dashboard.ranking import RankQuery, rank_query, ranked
from tests import test_dashboard_world as w


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from storage import open_store

    reg = w.registry()
    store = open_store(f"embedded:{tmp_path_factory.mktemp('dash') / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    yield reg, DataService(reg, store, now=lambda: w.NOW)
    store.close()


def test_indicators_match_closed_form(world):
    reg, svc = world
    table = svc.indicators(2025).set_index("institution_id")
    hours = 365 * 24
    for inst in reg.institutions:
        kw = w.ELEC_KW_PER_M2 * inst.floor_area_m2
        gas_m3 = w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * 365
        has_gas = any(m.energy == "natural_gas" for m in reg.meters if m.institution == inst.id)
        kgce = kw * hours * KGCE_PER_UNIT["electricity"] + (gas_m3 * KGCE_PER_UNIT["natural_gas"] if has_gas else 0)
        row = table.loc[inst.id]
        assert row["kgce"] == pytest.approx(kgce, rel=1e-6)
        assert row["kgce_per_m2"] == pytest.approx(kgce / inst.floor_area_m2, rel=1e-6)
        assert row["kgce_per_person"] == pytest.approx(kgce / inst.occupants, rel=1e-6)
        assert row["water_m3_per_person"] == pytest.approx(w.WATER_M3_PER_PERSON_DAY * 365, rel=1e-6)
        co2 = kw * hours * KGCO2_PER_UNIT["electricity"] + (gas_m3 * KGCO2_PER_UNIT["natural_gas"] if has_gas else 0)
        assert row["t_co2"] == pytest.approx(co2 / 1000, rel=1e-6)
        # heating gas in the season 2025: 1 Jan - 15 Mar (74 days) and 15 Nov - 31 Dec (47 days)
        heat = w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * (74 + 47) * KGCE_PER_UNIT["natural_gas"] if has_gas else 0
        assert row["heating_kgce_per_m2"] == pytest.approx(heat / inst.heated_area_m2, rel=1e-6)
        assert row["nonheating_kgce_per_m2"] == pytest.approx((kgce - heat) / inst.floor_area_m2, rel=1e-6)
        assert row["estimated_share"] == pytest.approx(0.0, abs=1e-9)


def test_running_year_stops_today_and_yoy(world):
    reg, svc = world
    table = svc.ranking_table(2026).set_index("institution_id")
    inst = reg.institutions[0]
    # 1 Jan to 10 Mar 2026 12:00 (the clock): 68.5 days of electricity
    kwh = w.ELEC_KW_PER_M2 * inst.floor_area_m2 * 68.5 * 24
    elec = kwh * KGCE_PER_UNIT["electricity"]
    gas = w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * 68.5 * KGCE_PER_UNIT["natural_gas"]
    assert table.loc[inst.id, "kgce"] == pytest.approx(elec + gas, rel=1e-3)
    full = svc.indicators(2025).set_index("institution_id").loc[inst.id, "kgce"]
    assert table.loc[inst.id, "yoy_kgce"] == pytest.approx(((elec + gas) - full) / full * 100, rel=1e-3)


def test_data_quality_flags_the_silent_meter(world):
    _reg, svc = world
    q = svc.data_quality("HB-0002").set_index("meter_id")
    assert bool(q.loc[w.OFFLINE_METER, "offline"])
    assert not q.drop(index=w.OFFLINE_METER)["offline"].any()
    # 7 full days before today's midnight; the meter went silent on 8 Mar 12:00
    assert q.loc[w.OFFLINE_METER, "completeness"] == pytest.approx(5.5 / 7, abs=0.01)
    assert q.loc["HB-0002-E0", "completeness"] == pytest.approx(1.0, abs=0.01)


@given(st.lists(st.tuples(st.floats(0, 500), st.floats(50, 500), st.floats(0, 1), st.floats(0, 1)),
                min_size=1, max_size=30))
def test_quota_level_is_the_best_level_met(rows):
    v = np.array([r[0] for r in rows])
    c = np.array([r[1] for r in rows])
    b = c * np.array([r[2] for r in rows])
    g = b * np.array([r[3] for r in rows])
    out = quota_level(v, c, b, g)
    for x, ci, bi, gi, lvl in zip(v, c, b, g, out, strict=True):
        expect = "guide" if x <= gi else "baseline" if x <= bi else "constraint" if x <= ci else "over_constraint"
        assert lvl == expect


def test_quota_level_without_a_standard_or_value():
    out = quota_level(np.array([np.nan, 5.0]), np.array([10.0, np.nan]), np.array([8.0, np.nan]),
                      np.array([6.0, np.nan]))
    assert list(out) == ["none", "none"]


@given(st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)), st.integers(1, 12), st.integers(1, 28),
       st.integers(1, 12), st.integers(1, 28))
def test_heating_season_matches_calendar_logic(day, sm, sd, em, ed):
    got = in_heating_season(pd.DatetimeIndex([pd.Timestamp(day)]), np.array([sm * 100 + sd]),
                            np.array([em * 100 + ed]))[0]
    md = (day.month, day.day)
    start, end = (sm, sd), (em, ed)
    expect = (start <= md <= end) if start <= end else (md >= start or md <= end)
    assert bool(got) == expect


def test_projection_seasonal_and_linear():
    assert project_year_end(100.0, 0.25) == pytest.approx(400.0)
    # last year: 30 by this date, 90 over the year -> this year's 40 projects to 120
    assert project_year_end(40.0, 0.25, 30.0, 90.0) == pytest.approx(120.0)
    assert project_year_end(10.0, 0.0) is None


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = np.array(["government", "school", "hospital", "venue"])
    val = rng.uniform(1, 50, n)
    val[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "institution_id": [f"I{k:05d}" for k in range(n)],
        "name": [f"机构{k}" for k in range(n)],
        "region": rng.choice(["r1", "r2", "r3"], n),
        "category": rng.choice(cats, n),
        "kgce_per_m2": val,
        "yoy_kgce_per_m2": rng.normal(0, 10, n),
        "level_kgce_per_m2": rng.choice(["guide", "baseline", "constraint", "over_constraint"], n),
        "estimated_share": rng.uniform(0, 0.2, n),
    })


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 10**6), st.sampled_from([None, "school", "hospital"]),
       st.sampled_from([None, frozenset({"r1"}), frozenset({"r2", "r3"})]), st.integers(1, 40),
       st.sampled_from([("rank", "asc"), ("value", "desc"), ("name", "asc"), ("level", "asc"), ("yoy", "desc")]))
def test_rank_pages_partition_the_filtered_rows(n, seed, category, regions, page_size, sort):
    table = _table(n, seed)
    q = RankQuery(indicator="kgce_per_m2", regions=regions, category=category, sort_by=(sort,), page_size=page_size)
    full = ranked(table, q)
    expected = table[table["kgce_per_m2"].notna()
                     & (table["category"] == category if category else True)
                     & (table["region"].isin(regions) if regions else True)]
    assert set(full["institution_id"]) == set(expected["institution_id"])
    pages = []
    total = None
    for p in range(len(full) // page_size + 1):
        rows, total = rank_query(table, RankQuery(**{**q.__dict__, "page": p}))
        pages.append(rows)
    joined = pd.concat(pages)
    assert total == len(full)
    assert list(joined["institution_id"]) == list(full["institution_id"])  # no overlap, no gap
    # rank = 1 + number of peers (same category among the filtered rows) with a lower value
    e = expected.set_index("institution_id")
    for r in full.head(20).itertuples():
        peers = e[e["category"] == r.category]["kgce_per_m2"]
        assert r.rank == 1 + int((peers < r.value).sum())
        assert r.peers == len(peers)


def test_rank_visible_and_search_keep_true_ranks():
    table = _table(200, 3)
    everyone = ranked(table, RankQuery()).set_index("institution_id")
    mine = "I00007" if pd.notna(table.loc[7, "kgce_per_m2"]) else "I00008"
    rows, total = rank_query(table, RankQuery(visible=frozenset({mine})))
    assert total == 1 and rows.iloc[0]["institution_id"] == mine
    assert rows.iloc[0]["rank"] == everyone.loc[mine, "rank"]
    found = ranked(table, RankQuery(search="机构1"))
    assert len(found) and all("机构1" in n for n in found["name"])
    assert (found.set_index("institution_id")["rank"] == everyone.loc[found["institution_id"], "rank"]).all()


def test_rank_unknown_indicator_is_refused():
    with pytest.raises(ValueError, match="unknown indicator"):
        ranked(_table(5, 1), RankQuery(indicator="nope"))
