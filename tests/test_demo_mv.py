"""The demo's energy-performance contract: a simulated retrofit that verification finds.

The load model really simulates the retrofit (history and live simulator alike), and
the savings verification finds it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from civicwatt.context import open_registry_store
from civicwatt.sample import (
    CWS_CONTRACTOR_SHARE,
    CWS_INSTITUTION,
    CWS_PROJECT_ID,
    CWS_RETROFIT_FACTOR,
    CWS_RETROFIT_METER,
    CWS_TARIFF_CNY_PER_M3,
    MV_CONTRACTOR_SHARE,
    MV_RETROFIT_FACTOR,
    MV_RETROFIT_METER,
    MV_TARIFF_CNY_PER_KWH,
    apply_retrofits,
    read_sample_mv_setup,
    sample_mv_setup,
    sample_retrofits,
    write_sample,
    write_sample_mv_project,
)
from core.registry import load_registry
from device_sim.history import end_values, generate_history
from device_sim.load import (
    STEP_S,
    T_COLDEST_DAY,
    Calendar,
    MeterModel,
    daily_calendar,
    daily_temperature,
    normal_temperature,
)
from device_sim.server import Simulator
from tests.support_collect import registry_doc, write_registry
from verification import load_project, verify

TZ = "Asia/Shanghai"
RETROFIT = "2026-02-01"
FACTOR = 0.85
SEED = 3


@pytest.fixture(scope="module")
def hb1(tmp_path_factory):
    """The sample institution HB-0001's meters (main E0, sub-meters E1-E4, water, gas)."""
    _, meters, _ = write_registry(tmp_path_factory.mktemp("reg"), registry_doc(n_institutions=1))
    return meters


def _daily(hist: pd.DataFrame, meters: list[dict]) -> pd.DataFrame:
    """Energy per local day per meter (primary units) from cumulative hourly indices."""
    wide = hist.pivot(index="time", columns="meter_id", values="value")
    wide = wide[wide.index.tz_convert(TZ).hour == 0]  # local midnights
    mult = pd.Series({m["id"]: float(m.get("multiplier") or 1.0) for m in meters})
    out = wide.diff().iloc[1:] * mult[wide.columns]
    out.index = out.index.tz_convert(TZ).tz_localize(None) - pd.Timedelta(days=1)  # the day that ended
    return out


def _verified(tmp_path, registry, project, samples: pd.DataFrame):
    """`verify` of `project` on a new embedded store holding `samples`."""
    store = open_registry_store(registry, f"embedded:{tmp_path / 'data'}")
    try:
        store.write_samples(samples)
        return verify(project, store, registry)
    finally:
        store.close()


# -- the retrofit in the load model -------------------------------------------------
def test_retrofit_scales_the_meter_and_its_parent_drops_by_the_same_energy(hb1):
    retro = apply_retrofits(hb1, {"HB-0001-E1": {"start": RETROFIT, "factor": FACTOR}})
    before = _daily(generate_history(hb1, "2026-01-20", "2026-02-12", 3600, seed=SEED), hb1)
    after = _daily(generate_history(retro, "2026-01-20", "2026-02-12", 3600, seed=SEED), hb1)
    pre, post = before.index < pd.Timestamp(RETROFIT), before.index >= pd.Timestamp(RETROFIT)
    assert pre.sum() == 12 and post.sum() == 11
    e1, e1r = before["HB-0001-E1"], after["HB-0001-E1"]
    np.testing.assert_allclose(e1r[pre], e1[pre], atol=0.01)
    np.testing.assert_allclose(e1r[post], FACTOR * e1[post], atol=0.01)
    assert (e1[post] - e1r[post]).min() > 5.0  # kWh a day: a real change, not rounding
    # the main meter drops by exactly the sub-meter's saving (the unmetered share stays)
    drop_e0 = before["HB-0001-E0"] - after["HB-0001-E0"]
    np.testing.assert_allclose(drop_e0, e1 - e1r, atol=0.3)
    for other in ("HB-0001-E2", "HB-0001-E3", "HB-0001-E4", "HB-0001-W0", "HB-0001-G0"):
        np.testing.assert_allclose(after[other], before[other], atol=1e-9)


def test_nested_sub_meters_pass_the_same_energy_up():
    meters = [
        {"id": "A", "energy": "electricity", "subitem": "total", "rated": 500.0, "category": "school"},
        {"id": "B", "energy": "electricity", "subitem": "total", "parent": "A", "rated": 300.0, "category": "school"},
        {"id": "C", "energy": "electricity", "subitem": "lighting_socket", "parent": "B", "rated": 100.0,
         "category": "school"},
        {"id": "D", "energy": "electricity", "subitem": "hvac", "parent": "B", "rated": 150.0, "category": "school"},
        {"id": "E", "energy": "electricity", "subitem": "power", "parent": "A", "rated": 80.0, "category": "school"},
    ]
    start = pd.Timestamp("2026-03-01", tz=TZ).timestamp()
    steps = np.arange(int(start // STEP_S) - 96, int(start // STEP_S) + 96)
    p0 = MeterModel(meters, seed=SEED).power(steps)
    p1 = MeterModel(apply_retrofits(meters, {"C": {"start": "2026-03-01", "factor": 0.5}}), seed=SEED).power(steps)
    saved = p0 - p1
    np.testing.assert_allclose(saved[:, :96], 0.0, atol=1e-12)  # the day before
    np.testing.assert_allclose(saved[2, 96:], 0.5 * p0[2, 96:], rtol=1e-12)
    np.testing.assert_allclose(saved[1], saved[2], rtol=1e-12, atol=1e-9)  # B, then A, lose what C saves
    np.testing.assert_allclose(saved[0], saved[2], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(saved[[3, 4]], 0.0, atol=1e-12)


@pytest.mark.parametrize(("meter", "retrofit", "message"), [
    ("B", {"start": "2026-03-01", "factor": 0.8}, "not on a meter with sub-meters"),
    ("C", {"start": "2026-02-30", "factor": 0.8}, "retrofit.start"),
    ("C", {"start": "2026-03-01", "factor": -0.1}, "retrofit.factor"),
    ("C", {"factor": 0.8}, "retrofit must be"),
])
def test_bad_retrofits_are_named(meter, retrofit, message):
    meters = [{"id": "B", "energy": "electricity", "subitem": "total"},
              {"id": "C", "energy": "electricity", "subitem": "lighting_socket", "parent": "B"}]
    with pytest.raises(ValueError, match=message) as info:
        MeterModel(apply_retrofits(meters, {meter: retrofit}))
    assert f"meter {meter}" in str(info.value)


def test_simulator_continues_the_retrofitted_history(hb1):
    retro = apply_retrofits(hb1, {"HB-0001-E1": {"start": RETROFIT, "factor": FACTOR}})
    end = pd.Timestamp("2026-01-31 21:00", tz=TZ)  # live time runs across the retrofit's start
    at = (end + pd.Timedelta(hours=5)).timestamp()
    hist = generate_history(retro, "2026-01-25", end, interval_s=900, seed=SEED)
    longer = generate_history(retro, "2026-01-25", end + pd.Timedelta(hours=5), interval_s=900, seed=SEED)
    expected = longer[longer["time"] == pd.Timestamp(at, unit="s", tz="UTC")].set_index("meter_id")["value"]
    sim = Simulator(retro, seed=SEED, start_values=end_values(hist), clock=lambda: at)
    plain = Simulator(hb1, seed=SEED, start_values=end_values(hist), clock=lambda: at)
    for m in hb1:
        assert sim.index(m["id"]) == pytest.approx(expected[m["id"]], rel=1e-6, abs=0.02), m["id"]
    for mid in ("HB-0001-E1", "HB-0001-E0"):  # without the retrofit the live index would run ahead
        assert plain.index(mid) - expected[mid] > 0.5 / (80.0 if mid.endswith("E0") else 1.0)


# -- the temperature and calendar drivers -------------------------------------------
def test_daily_temperature_is_the_models_own_driver():
    temps = daily_temperature("2026-01-01", "2026-01-10", seed=SEED)
    assert list(temps.columns) == ["date", "temp_c"] and len(temps) == 10
    day = pd.Timestamp("2026-01-07", tz=TZ).timestamp()
    steps = np.arange(int(day // STEP_S), int(day // STEP_S) + 96)
    assert temps["temp_c"].iloc[6] == pytest.approx(Calendar(steps, SEED).temp_c.mean(), abs=1e-9)
    other = daily_temperature("2026-01-01", "2026-01-10", seed=SEED + 1)
    assert not np.allclose(other["temp_c"], temps["temp_c"])  # the day-to-day weather follows the seed
    normal = normal_temperature(2026)
    assert len(normal) == 365 and normal["temp_c"].idxmin() == T_COLDEST_DAY  # days counted from 0
    assert 12.0 < normal["temp_c"].mean() < 15.0
    cal = daily_calendar("2026-09-19", "2026-10-11").set_index("date")["working"]
    assert cal[pd.Timestamp("2026-09-20")] == 1  # a Sunday, make-up working day
    assert cal[pd.Timestamp("2026-10-05")] == 0  # a Monday of the National Day holiday
    assert cal[pd.Timestamp("2026-10-09")] == 1 and cal[pd.Timestamp("2026-10-11")] == 0
    assert cal.sum() == 15 - 6 + 2  # weekdays - holiday weekdays (25 Sep, 1-2 and 5-7 Oct) + make-up days


# -- the demo project -----------------------------------------------------------------
def test_sample_setup_dates():
    s = sample_mv_setup(pd.Timestamp("2026-11-21 10:00", tz=TZ))
    assert s.retrofit_start == dt.date(2026, 2, 1)
    assert s.baseline == (dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    assert s.reporting == (dt.date(2026, 3, 1), dt.date(2026, 11, 20))
    early = sample_mv_setup(pd.Timestamp("2026-04-10 01:00", tz=TZ))  # not two months to report yet
    assert early.retrofit_start == dt.date(2025, 2, 1) and early.baseline[0] == dt.date(2024, 1, 1)
    assert early.reporting == (dt.date(2025, 3, 1), dt.date(2026, 4, 9))
    # local time decides the day: 23:30 UTC is already the next morning in Shanghai
    assert sample_mv_setup(pd.Timestamp("2026-11-20 23:30", tz="UTC")).reporting[1] == dt.date(2026, 11, 20)


def test_demo_project_verifies_the_simulated_saving(tmp_path):
    now = pd.Timestamp("2026-11-21 10:00", tz=TZ)
    write_sample(tmp_path)
    registry = load_registry(tmp_path / "civicwatt.yaml")
    from civicwatt.commands.simulate import meters_for_sim

    meters = [m for m in meters_for_sim(registry) if m["institution"] == "HB-0001"]
    setup = sample_mv_setup(now)
    retro = apply_retrofits(meters, sample_retrofits(setup))
    start = pd.Timestamp(setup.history_start, tz=TZ) - pd.Timedelta(days=2)
    with_retrofit = generate_history(retro, start, now, interval_s=3600, seed=1)
    without = generate_history(meters, start, now, interval_s=3600, seed=1)

    written = write_sample_mv_project(tmp_path, registry, now, seed=1)
    assert sorted(p.name for p in written) == ["cws-001.yaml", "emc-001.yaml", "normal.csv", "temps.csv", "workdays.csv"]
    assert write_sample_mv_project(tmp_path, registry, now + pd.Timedelta(days=30)) == []  # kept
    assert read_sample_mv_setup(tmp_path) == setup
    project = load_project(tmp_path / "mv" / "emc-001.yaml", registry)
    assert project.option == "C" and project.meter_ids == ["HB-0001-E0"]
    assert (project.baseline_start, project.reporting_end) == (dt.date(2025, 1, 1), dt.date(2026, 11, 20))
    np.testing.assert_allclose(project.temperature["temp_c"],
                               daily_temperature(dt.date(2025, 1, 1), dt.date(2026, 11, 20), seed=1)["temp_c"],
                               atol=0.006)  # written at 0.01 °C

    result = _verified(tmp_path, registry, project, with_retrofit)

    # the true saving: the main meter's use over the reporting period without and with the retrofit
    r0 = pd.Timestamp(setup.reporting[0])
    r1 = pd.Timestamp(setup.reporting[1]) + pd.Timedelta(days=1)
    use = {name: _daily(h[h["meter_id"].isin(["HB-0001-E0", MV_RETROFIT_METER])], meters)
           for name, h in (("with", with_retrofit), ("without", without))}
    in_rep = (use["with"].index >= r0) & (use["with"].index < r1)
    actual = use["with"].loc[in_rep, "HB-0001-E0"].sum()
    true_saving = use["without"].loc[in_rep, "HB-0001-E0"].sum() - actual
    lighting_saving = (use["without"] - use["with"]).loc[in_rep, MV_RETROFIT_METER].sum()
    assert true_saving == pytest.approx(lighting_saving, rel=1e-4)
    assert lighting_saving == pytest.approx((1 - MV_RETROFIT_FACTOR) / MV_RETROFIT_FACTOR
                                            * use["with"].loc[in_rep, MV_RETROFIT_METER].sum(), rel=1e-4)

    s = result.summary
    assert s["reporting_actual"] == pytest.approx(actual, rel=1e-5)
    assert s["meets_ashrae14"]
    assert s["avoided_low90"] <= true_saving <= s["avoided_high90"], (true_saving, s)
    assert s["savings_significant"] and s["avoided_low90"] > 0
    assert s["savings_verified"] and s["fsu68"] < 0.5 and s["verdict"].startswith("savings verified")
    # 264 reporting days: too few for a reporting-period model, so no normalized savings, and the report says why
    assert s["normalized_savings"] is None and s["normalized_low90"] is None
    assert [f.code for f in result.findings] == ["normalized_too_little_data"]
    assert 0.07 < s["avoided_fraction"] < 0.15  # a visible ~10 % of the whole building
    assert s["payment_cny"] == pytest.approx(s["avoided"] * MV_TARIFF_CNY_PER_KWH * MV_CONTRACTOR_SHARE, rel=1e-9)


def test_demo_sets_up_the_project_only_with_a_history_to_match(tmp_path):
    from civicwatt.commands.demo import demo_mv_setup

    now = pd.Timestamp("2026-11-21 02:00", tz="UTC")
    write_sample(tmp_path)
    registry = load_registry(tmp_path / "civicwatt.yaml")
    store = open_registry_store(registry, f"embedded:{tmp_path / 'data'}")
    try:
        fresh, note = demo_mv_setup(tmp_path, store, registry, now, None)
        assert fresh == sample_mv_setup(now) and "[new]" in note
        short, note = demo_mv_setup(tmp_path, store, registry, now, 3)  # `--days 3` cannot hold the baseline
        assert short is None and "--days 3" in note
        store.write_samples(generate_history([{"id": MV_RETROFIT_METER, "profile": "ddsu666"}],
                                             "2026-11-19", now, 3600))
        old, note = demo_mv_setup(tmp_path, store, registry, now, None)  # history without the retrofit
        assert old is None and "predates" in note
        write_sample_mv_project(tmp_path, registry, now - pd.Timedelta(days=200))  # a project written in May
        kept, _ = demo_mv_setup(tmp_path, store, registry, now, None)
        assert kept == sample_mv_setup(now - pd.Timedelta(days=200)) and kept.reporting[1] == dt.date(2026, 5, 4)
    finally:
        store.close()


def test_demo_water_project_verifies_the_simulated_saving(tmp_path):
    """合同节水管理 in the demo: HB-0003's main water meter draws CWS_RETROFIT_FACTOR of its
    use from the retrofit on; cws-001 (written with emc-001, same periods and drivers)
    finds the simulated saving, in m3, inside its 90 % interval."""
    now = pd.Timestamp("2026-11-21 10:00", tz=TZ)
    write_sample(tmp_path)
    registry = load_registry(tmp_path / "civicwatt.yaml")
    from civicwatt.commands.simulate import meters_for_sim

    meters = [m for m in meters_for_sim(registry) if m["institution"] == CWS_INSTITUTION]
    setup = sample_mv_setup(now)
    assert sample_retrofits(setup)[CWS_RETROFIT_METER] == {"start": "2026-02-01", "factor": CWS_RETROFIT_FACTOR}
    start = pd.Timestamp(setup.history_start, tz=TZ) - pd.Timedelta(days=2)
    water = [m for m in meters if m["id"] == CWS_RETROFIT_METER]
    with_retrofit = generate_history(apply_retrofits(water, sample_retrofits(setup)), start, now, 3600, seed=1)
    without = generate_history(water, start, now, 3600, seed=1)

    written = write_sample_mv_project(tmp_path, registry, now, seed=1)
    assert f"{CWS_PROJECT_ID}.yaml" in {p.name for p in written}
    assert sample_retrofits(setup, tmp_path) == sample_retrofits(setup)  # both projects written: both retrofits
    project = load_project(tmp_path / "mv" / f"{CWS_PROJECT_ID}.yaml", registry)
    assert (project.energy, project.unit, project.option, project.meter_ids) == ("water", "m3", "C",
                                                                                 [CWS_RETROFIT_METER])
    assert (project.baseline_start, project.reporting_end) == (setup.baseline[0], setup.reporting[1])

    result = _verified(tmp_path, registry, project, with_retrofit)

    r0, r1 = pd.Timestamp(setup.reporting[0]), pd.Timestamp(setup.reporting[1]) + pd.Timedelta(days=1)
    use = {name: _daily(h, water) for name, h in (("with", with_retrofit), ("without", without))}
    in_rep = (use["with"].index >= r0) & (use["with"].index < r1)
    actual = use["with"].loc[in_rep, CWS_RETROFIT_METER].sum()
    true_saving = use["without"].loc[in_rep, CWS_RETROFIT_METER].sum() - actual
    # the simulator's parameter: the use without the retrofit is the actual use / factor
    assert true_saving == pytest.approx((1 - CWS_RETROFIT_FACTOR) / CWS_RETROFIT_FACTOR * actual, rel=1e-4)

    s = result.summary
    assert s["unit"] == "m3" and s["reporting_actual"] == pytest.approx(actual, rel=1e-5)
    assert s["meets_ashrae14"] and s["savings_verified"] and s["avoided_low90"] > 0
    assert s["avoided_low90"] <= true_saving <= s["avoided_high90"], (true_saving, s)
    assert s["avoided_fraction"] == pytest.approx(1 - CWS_RETROFIT_FACTOR, abs=0.02)
    assert s["payment_cny"] == pytest.approx(s["avoided"] * CWS_TARIFF_CNY_PER_M3 * CWS_CONTRACTOR_SHARE, rel=1e-9)


def test_an_older_demo_directory_gets_no_water_project(tmp_path):
    """A directory whose emc-001 predates the water project keeps its history as it was:
    no cws-001 is added and the water meter gets no retrofit."""
    now = pd.Timestamp("2026-11-21 10:00", tz=TZ)
    write_sample(tmp_path)
    registry = load_registry(tmp_path / "civicwatt.yaml")
    write_sample_mv_project(tmp_path, registry, now)
    (tmp_path / "mv" / f"{CWS_PROJECT_ID}.yaml").unlink()  # as a directory written before it existed
    assert write_sample_mv_project(tmp_path, registry, now + pd.Timedelta(days=3)) == []
    setup = read_sample_mv_setup(tmp_path)
    assert list(sample_retrofits(setup, tmp_path)) == [MV_RETROFIT_METER]
