"""Dashboard arithmetic and queries: indicators, quota levels, heating season,
projection and data quality (the same as quotas.evaluate and the meter alerts), the
ranking query (hypothesis), on a real embedded store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.meter_rules import meter_alerts
from dashboard.data import DataService
from models.api import load_factors
from models.completeness import daily_completeness
from quotas.config import load_quotas
from quotas.ranking import RankQuery, rank_query, ranked
from storage import quality
from tests import support_dashboard_world as w

FACTORS = load_factors()
KGCE_KWH = FACTORS.coal_kgce_per_unit("electricity")  # 0.1229 kgce/kWh (当量值)
KGCE_GAS_M3 = FACTORS.coal_kgce_per_unit("natural_gas")  # 1.2143 kgce/m3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from storage import open_store

    reg = w.registry()
    store = open_store(f"embedded:{tmp_path_factory.mktemp('dash') / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    quotas = load_quotas(w.write_quotas(tmp_path_factory.mktemp("q") / "quotas.yaml", reg), reg)
    yield reg, DataService(reg, store, quotas=lambda: quotas, now=lambda: w.NOW), quotas
    store.close()


def test_indicators_match_closed_form(world):
    reg, svc, _quotas = world
    table = svc.indicators(2025).set_index("institution_id")
    hours = 365 * 24
    for inst in reg.institutions:
        kw = w.ELEC_KW_PER_M2 * inst.floor_area_m2
        gas_m3 = w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * 365
        has_gas = any(m.energy == "natural_gas" for m in reg.meters if m.institution == inst.id)
        kgce = kw * hours * KGCE_KWH + (gas_m3 * KGCE_GAS_M3 if has_gas else 0)
        row = table.loc[inst.id]
        assert row["kgce"] == pytest.approx(kgce, rel=1e-6)
        assert row["kgce_per_m2"] == pytest.approx(kgce / inst.floor_area_m2, rel=1e-6)
        assert row["kgce_per_person"] == pytest.approx(kgce / inst.occupants, rel=1e-6)
        assert row["water_m3_per_person"] == pytest.approx(w.WATER_M3_PER_PERSON_DAY * 365, rel=1e-6)
        assert row["kgco2_per_m2"] == pytest.approx(row["t_co2"] * 1000 / inst.floor_area_m2, rel=1e-9)
        # heating gas in the season 2025: 1 Jan - 15 Mar (74 days) and 15 Nov - 31 Dec (47 days)
        heat = w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * (74 + 47) * KGCE_GAS_M3 if has_gas else 0
        assert row["heating_kgce_per_m2"] == pytest.approx(heat / inst.heated_area_m2, rel=1e-6)
        assert row["nonheating_kgce_per_m2"] == pytest.approx((kgce - heat) / inst.floor_area_m2, rel=1e-6)
        assert row["estimated_share"] == pytest.approx(0.0, abs=1e-9)


def test_running_year_stops_today_and_yoy(world):
    reg, svc, _quotas = world
    inst = reg.institutions[0]
    per_day = (w.ELEC_KW_PER_M2 * inst.floor_area_m2 * 24 * KGCE_KWH
               + w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * KGCE_GAS_M3)
    # the overview's running year: 1 Jan to 10 Mar 2026 12:00 (the clock), 68.5 days
    assert svc.indicators(2026).set_index("institution_id").loc[inst.id, "kgce"] == pytest.approx(68.5 * per_day,
                                                                                                 rel=1e-6)
    # the ranking counts complete days (68) and compares them with 1 Jan - 9 Mar 2025: no change
    table = svc.ranking_table(2026).set_index("institution_id")
    assert table.loc[inst.id, "kgce"] == pytest.approx(68 * per_day, rel=1e-6)
    assert table.loc[inst.id, "yoy_kgce"] == pytest.approx(0.0, abs=1e-6)
    assert (table["level_kgce_per_person"] == "partial").all()  # annual standards: no verdict mid-year
    assert svc.indicators(2025).set_index("institution_id").loc[inst.id, "kgce"] == pytest.approx(365 * per_day,
                                                                                                 rel=1e-6)


def test_data_quality_flags_the_silent_meter(world):
    _reg, svc, _quotas = world
    q = svc.data_quality("HB-0002").set_index("meter_id")
    assert bool(q.loc[w.OFFLINE_METER, "offline"])
    assert not q.drop(index=w.OFFLINE_METER)["offline"].any()
    # 7 full days before today's midnight; the meter went silent on 8 Mar 12:00
    assert q.loc[w.OFFLINE_METER, "completeness"] == pytest.approx(5.5 / 7, abs=0.01)
    assert q.loc["HB-0002-E0", "completeness"] == pytest.approx(1.0, abs=0.01)


def test_ranking_table_levels_follow_the_standard(world):
    reg, svc, quotas = world
    table = svc.ranking_table(2025).set_index("institution_id")
    std = {s.category: s.levels for s in quotas.standards}
    seen = set()
    for inst in reg.institutions:
        v = table.loc[inst.id, "kgce_per_person"]
        lv = std.get(inst.category, std[None])["kgce_per_person"]
        expect = ("guide" if v <= lv["guide"] else "baseline" if v <= lv["baseline"] else
                  "constraint" if v <= lv["constraint"] else "exceeds")
        assert table.loc[inst.id, "level_kgce_per_person"] == expect
        seen.add(expect)
        # a two-level water standard (general) and a three-level one (hospital)
        wl = std.get(inst.category, std[None])["water_m3_per_person"]
        wv = table.loc[inst.id, "water_m3_per_person"]
        if "general" in wl:
            wexp = "advanced" if wv <= wl["advanced"] else "general" if wv <= wl["general"] else "exceeds"
        else:
            wexp = "guide" if wv <= wl["guide"] else "baseline" if wv <= wl["baseline"] else \
                "constraint" if wv <= wl["constraint"] else "exceeds"
        assert table.loc[inst.id, "level_water_m3_per_person"] == wexp
    assert len(seen) >= 3  # the portfolio spans levels, so a constant answer would fail


def test_region_target_status(world):
    reg, svc, _quotas = world
    status = svc.target_status(2026)
    row = status[(status["scope"] == "institution:HB-0001") & (status["indicator"] == "energy_tce")].iloc[0]
    inst = reg.institution_by_id["HB-0001"]
    per_day = (w.ELEC_KW_PER_M2 * inst.floor_area_m2 * 24 * KGCE_KWH
               + w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * KGCE_GAS_M3)
    assert row["limit"] == w.TARGET_HB0001_TCE
    # data up to the end of today (10 Mar 12:00 is the last sample): 68.5 days
    assert row["actual"] == pytest.approx(68.5 * per_day / 1000, rel=1e-3)
    assert row["projected"] > row["actual"]


def test_projection_with_or_without_a_target_is_the_same(world):
    """A scope without a target is projected by quotas.evaluate like a target's scope:
    the same number for HB-0001 (which has a target) either way. Constant use: last
    year's shape is the share of days, to now (68.5 of 365 days), so the projection is
    a whole year of use."""
    reg, svc, _quotas = world
    inst = reg.institution_by_id["HB-0001"]
    per_day = (w.ELEC_KW_PER_M2 * inst.floor_area_m2 * 24 * KGCE_KWH
               + w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * KGCE_GAS_M3)
    status = svc.target_status(2026)
    target = status[(status["scope"] == "institution:HB-0001") & (status["indicator"] == "energy_tce")].iloc[0]
    own = svc.year_end_projection({"HB-0001"}, 2026).set_index("indicator")
    assert own.loc["energy_tce", "method"] == "last_year"
    assert own.loc["energy_tce", "elapsed_share"] == pytest.approx(68.5 / 365, rel=1e-9)
    assert own.loc["energy_tce", "projected"] == pytest.approx(365 * per_day / 1000, rel=1e-3)
    assert target["projected"] == pytest.approx(own.loc["energy_tce", "projected"], rel=1e-12)
    water = w.WATER_M3_PER_PERSON_DAY * inst.occupants * 365
    assert own.loc["water_m3", "projected"] == pytest.approx(water, rel=1e-3)
    # a past year is complete: projected = actual
    past = svc.year_end_projection({"HB-0001"}, 2025).set_index("indicator")
    assert past.loc["energy_tce", "projected"] == pytest.approx(365 * per_day / 1000, rel=1e-6)
    assert past.loc["energy_tce", "elapsed_share"] == pytest.approx(1.0)


def _quality_samples(until: pd.Timestamp) -> pd.DataFrame:
    """HB-0001 from 20 Feb: E0 hourly backfilled history (quality BACKFILL) to 7 Mar, E1
    the same hourly history unflagged, both then every 15 minutes; E2 stops 30 minutes
    before NOW, E3 60 minutes before (core.rules.OFFLINE_POLLS: 3 polls of 15 minutes = 45); the other meters
    never report."""
    hourly = pd.date_range(pd.Timestamp("2026-02-20 00:30", tz=w.TZ), pd.Timestamp("2026-03-07", tz=w.TZ), freq="h")
    fine = pd.date_range(pd.Timestamp("2026-03-07", tz=w.TZ), until, freq="15min")
    full = pd.date_range(pd.Timestamp("2026-02-20", tz=w.TZ), until, freq="15min")
    frames = []
    for m, t, flag in (("HB-0001-E0", hourly, quality.BACKFILL), ("HB-0001-E0", fine, 0),
                       ("HB-0001-E1", hourly, 0), ("HB-0001-E1", fine, 0),
                       ("HB-0001-E2", full[full <= w.NOW - pd.Timedelta(minutes=30)], 0),
                       ("HB-0001-E3", full[full <= w.NOW - pd.Timedelta(minutes=60)], 0)):
        frames.append(pd.DataFrame({"meter_id": m, "time": t.tz_convert("UTC"), "quality": flag}))
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out.groupby("meter_id").cumcount().astype(float) + 100.0
    return out


def test_data_quality_is_what_the_alerts_judge(tmp_path):
    """Completeness and offline on the institution page are the meter alerts' rules:
    backfilled history at its stored resolution, offline after 3 silent polls (core.rules)."""
    from storage import open_store

    reg = w.registry()
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=reg.timezone)
    try:
        store.set_meters(reg.meters_frame())
        store.write_samples(_quality_samples(w.NOW))
        svc = DataService(reg, store, now=lambda: w.NOW)
        q = svc.data_quality("HB-0001").set_index("meter_id")
        # window 3-9 March: E0's backfilled hourly days (3-6 Mar) are complete at 1 h
        assert q.loc["HB-0001-E0", "completeness"] == pytest.approx(1.0)
        # E1's unflagged hourly days count against its 15-minute polls: 24/96 on 4 days
        assert q.loc["HB-0001-E1", "completeness"] == pytest.approx((4 * 24 / 96 + 3) / 7)
        assert q.loc["HB-0001-W0", "completeness"] == 0.0
        # silent 30 min: online; 60 min: offline (more than OFFLINE_POLLS = 3 intervals of 15 min)
        assert not q.loc["HB-0001-E2", "offline"] and q.loc["HB-0001-E3", "offline"]
        alerts = meter_alerts(store, reg, w.NOW)
        off = {a.scope.removeprefix("meter:") for a in alerts if a.rule == "meter_offline"}
        assert set(q.index[q["offline"]]) == off & set(q.index)
        # a backfilled day: the alert's completeness of 4 March is the dashboard's day share
        day = pd.Timestamp("2026-03-04", tz=w.TZ)
        comp = {a.scope.removeprefix("meter:"): a.actual
                for a in meter_alerts(store, reg, day + pd.Timedelta(days=1, hours=1))
                if a.rule == "data_completeness"}
        assert comp["HB-0001-E1"] == pytest.approx(25.0) and "HB-0001-E0" not in comp
        samples = store.read_samples(day - pd.Timedelta(days=7), day + pd.Timedelta(days=1), ["HB-0001-E1"])
        d = daily_completeness(samples, pd.Series({"HB-0001-E1": 900.0}), day, day + pd.Timedelta(days=1))
        assert d["share"].iloc[0] * 100 == pytest.approx(comp["HB-0001-E1"])
    finally:
        store.close()


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
        "level_kgce_per_m2": rng.choice(["guide", "baseline", "constraint", "exceeds"], n),
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
    everyone = ranked(table, RankQuery(indicator="kgce_per_m2")).set_index("institution_id")
    mine = "I00007" if pd.notna(table.loc[7, "kgce_per_m2"]) else "I00008"
    rows, total = rank_query(table, RankQuery(indicator="kgce_per_m2", visible=frozenset({mine})))
    assert total == 1 and rows.iloc[0]["institution_id"] == mine
    assert rows.iloc[0]["rank"] == everyone.loc[mine, "rank"]
    found = ranked(table, RankQuery(indicator="kgce_per_m2", search="机构1"))
    assert len(found) and all("机构1" in n for n in found["name"])
    assert (found.set_index("institution_id")["rank"] == everyone.loc[found["institution_id"], "rank"]).all()


def test_rank_unknown_indicator_is_refused():
    with pytest.raises(ValueError, match="unknown indicator"):
        ranked(_table(5, 1), RankQuery(indicator="nope"))


def test_institution_figures_on_both_backends(store):
    """The institution page's reads (indicators, hourly, data quality) agree on the
    embedded store and on a real influxd."""
    reg = w.registry()
    w.fill_store(store, reg)
    svc = DataService(reg, store, now=lambda: w.NOW)
    inst = reg.institution_by_id["HB-0002"]
    kw = w.ELEC_KW_PER_M2 * inst.floor_area_m2
    row = svc.indicators(2025).set_index("institution_id").loc["HB-0002"]
    assert row["kgce"] == pytest.approx(365 * (24 * kw * KGCE_KWH + w.GAS_M3_PER_M2_DAY * inst.floor_area_m2
                                               * KGCE_GAS_M3), rel=1e-6)
    day = pd.Timestamp("2026-03-09", tz=w.TZ)
    hourly = svc.consumption("hour", day, day + pd.Timedelta(days=1), ["HB-0002-E0"])
    assert len(hourly) == 24 and np.allclose(hourly["quantity"], kw)
    q = svc.data_quality("HB-0002").set_index("meter_id")
    assert bool(q.loc[w.OFFLINE_METER, "offline"]) and not q.drop(index=w.OFFLINE_METER)["offline"].any()
    assert q.loc[w.OFFLINE_METER, "completeness"] == pytest.approx(5.5 / 7, abs=0.01)


def test_overview_group_intensity_is_the_ledgers(tmp_path):
    """One institution without data: the overview's kgce/m2 of its city (and of the whole
    portfolio) is the ledger's, a ratio of sums over the institutions with data."""
    from dashboard.pages.overview import group_totals
    from reports.ledger import build_ledger
    from storage import open_store

    reg = w.registry()
    silent = reg.institutions[-1]
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=reg.timezone)
    try:
        store.set_meters(reg.meters_frame())
        frame = w.samples(reg)
        quiet = {m.id for m in reg.meters if m.institution == silent.id}
        store.write_samples(frame[~frame["meter_id"].isin(quiet)].reset_index(drop=True))
        svc = DataService(reg, store, now=lambda: w.NOW)
        table = svc.indicators(2025)
        ledger = build_ledger(store, reg, 2025)
        totals = ledger.totals.set_index(["group", "key"])
        city = silent.region
        members = [i for i in reg.institutions if i.region == city]  # cities have no sub-regions here
        for key, rows in (("all", reg.institutions), (city, members)):
            sub = table[table["institution_id"].isin({i.id for i in rows})]
            group = "all" if key == "all" else "region"
            want = totals.loc[(group, key), "kgce_per_m2"]
            with_data = [i for i in rows if i.id != silent.id]
            kgce = sub["kgce"].sum()
            assert want == pytest.approx(kgce / sum(i.floor_area_m2 for i in with_data), rel=1e-12)
            assert want != pytest.approx(kgce / sum(i.floor_area_m2 for i in rows), rel=1e-6)  # not every institution
            assert group_totals(sub)["kgce_per_m2"] == pytest.approx(want, rel=1e-12)
            assert group_totals(sub)["institutions_with_data"] == len(with_data)
    finally:
        store.close()


def test_ranking_shows_no_yoy_over_an_incomplete_previous_year(tmp_path):
    """As in the demo: the previous year holds two days of data. The 2025 ranking shows
    no year-on-year value (with the reason), not a change of thousands of percent; the
    2026 running year, compared with the same complete dates of 2025, shows 0 %."""
    from dashboard.pages.ranking import ranking_rows
    from storage import open_store

    reg = w.registry()
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=reg.timezone)
    try:
        w.fill_store(store, reg)
        rates = w.rate_per_hour(reg)
        t = pd.date_range(pd.Timestamp("2024-12-30", tz=w.TZ), pd.Timestamp("2025-01-01", tz=w.TZ), freq="15min")
        hours = ((t - t[-1]) / pd.Timedelta(hours=1)).to_numpy(float)  # ends at the history's first index
        mult = pd.Series({m.id: m.multiplier for m in reg.meters})
        early = pd.concat([pd.DataFrame({"meter_id": m, "time": t[:-1].tz_convert("UTC"),
                                         "value": 100.0 + rates[m] / mult[m] * hours[:-1], "quality": 0})
                           for m in rates.index], ignore_index=True)
        store.write_samples(early)
        svc = DataService(reg, store, now=lambda: w.NOW)
        prev = svc.indicators(2024).set_index("institution_id")
        assert prev.loc["HB-0001", "kgce"] > 0  # two days of 2024 are there ...
        table = svc.ranking_table(2025)
        raw = (table["kgce"] / table["institution_id"].map(prev["kgce"]) - 1) * 100
        assert (raw > 10_000).all()  # ... what a naive 同比 would show
        assert table["yoy_kgce"].isna().all() and table["yoy_kgce_per_m2"].isna().all()
        assert (table["yoy_reason"] == "previous_incomplete").all()
        page = ranked(table, RankQuery(indicator="kgce_per_m2"))
        rows = ranking_rows(page, reg, "en")
        assert {r["yoy"] for r in rows} == {None}
        assert {r["yoy_note"] for r in rows} == {"last year incomplete: no comparison"}
        running = svc.ranking_table(2026).set_index("institution_id")
        assert running.loc["HB-0001", "yoy_kgce"] == pytest.approx(0.0, abs=1e-6)
        assert running.loc["HB-0001", "yoy_reason"] == ""
        # the overview's group figure follows the same rule
        everyone = [i.id for i in reg.institutions]
        change, reason = svc.group_yoy(everyone, 2025)
        assert np.isnan(change) and reason == "previous_incomplete"
        change, reason = svc.group_yoy(everyone, 2026)
        assert change == pytest.approx(0.0, abs=1e-9) and reason == ""
        from dashboard.pages.overview import Numbers, group_totals, intensity_table

        n = Numbers(group_totals(svc.indicators(2025)), {}, {}, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None)
        cells = intensity_table(n, "en", svc.group_yoy(everyone, 2025))
        yoy_row = cells.children[0].children[-1].children
        assert yoy_row[1].children == "" and yoy_row[2].children == "last year incomplete: no comparison"
    finally:
        store.close()


def test_province_year_sums_read_as_sums_equal_the_kept_days(tmp_path, monkeypatch):
    """A province's year tables (`keeps_days` False: the store sums all but heating
    meters and billed pairs per month) equal the ones from the kept daily use: energy
    sums with the heating split, and costs where a bill's cost replaces the tariff on
    its days (G2's electricity is metered, and billed from 10 March to the month's end)."""
    from civicwatt.context import open_registry_store
    from core.registry import load_registry
    from tests.support_ledger_world import build

    reg_path, _, url = build(tmp_path)
    text = reg_path.read_text(encoding="utf-8")
    text = text.replace("{id: hebei, name: 河北省}", "{id: hebei, name: 河北省, tariffs: {electricity: 0.65, water: 4.2, "
                                                    "natural_gas: 3.1, heat: 40.0}}")
    reg_path.write_text(text, encoding="utf-8")
    reg = load_registry(reg_path)
    with open_registry_store(reg, url) as store:
        store.write_bills(pd.DataFrame([{"institution_id": "G2", "energy": "electricity", "period_start": "2024-03-10",
                                         "period_end": "2024-03-31", "quantity": 11000.0, "unit": "kWh",
                                         "cost_cny": 12000.0}]))
        now = lambda: pd.Timestamp("2025-02-01 12:00", tz=reg.timezone)  # noqa: E731
        kept = DataService(reg, store, now=now)
        assert kept.keeps_days()
        want_sums, want_costs = kept.year_sums(2024)
        province = DataService(reg, store, now=now)
        monkeypatch.setattr(province, "keeps_days", lambda: False)
        got_sums, got_costs = province.year_sums(2024)
    pd.testing.assert_frame_equal(got_sums.drop(columns="rows"), want_sums.drop(columns="rows"), rtol=1e-12)
    pd.testing.assert_frame_equal(got_costs, want_costs, rtol=1e-12)
    assert want_sums["heating_quantity"].sum() > 0
    g2 = want_costs[(want_costs["institution_id"] == "G2") & (want_costs["energy"] == "electricity")]
    march = g2["period_start"].dt.month == 3
    # 1-9 March at the tariff (500 kWh a day), then the bill; not the tariff on the whole month as well
    assert g2.loc[march, "cost_cny"].item() == pytest.approx(0.65 * 9 * 500.0 + 12000.0)
    assert g2.loc[~march, "cost_cny"].gt(0).all() and len(g2) == 12
