"""`civicwatt report monthly`: every total of the workbook equals the models API.

The workbook is read back with openpyxl."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from civicwatt.cli import main
from models.api import aggregate, energy_use, indicators, load_factors
from models.completeness import day_counts
from reports.monthly import data_completeness, parse_month
from storage import open_store
from tests.support_ledger_world import DAILY, TZ, open_world

HEADER_ROWS = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    registry, store, _, args = open_world(base)
    factors = load_factors()

    def ind(start, end):
        return indicators(energy_use(store, registry, start, end, "day", factors), registry, factors, freq="day")

    api = {"month": ind("2024-03-01", "2024-04-01"), "prev": ind("2023-03-01", "2023-04-01"),
           "ytd": ind("2024-01-01", "2024-04-01")}
    store.close()
    out = base / "report.xlsx"
    assert main(["report", "monthly", "--month", "2024-03", "--out", str(out), *args]) == 0
    return out, registry, api, args


def sheet(path, name) -> pd.DataFrame:
    ws = openpyxl.load_workbook(path, read_only=True)[name]
    rows = list(ws.iter_rows(values_only=True))
    return pd.DataFrame(rows[HEADER_ROWS:], columns=rows[1])


def close(a, b, col):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-9, equal_nan=True,
                               err_msg=col)


def test_institution_sheet_matches_models_api(world):
    out, _, api, _ = world
    inst = sheet(out, "institutions").set_index("institution_id")
    m = api["month"].set_index("institution_id")
    prev = api["prev"].set_index("institution_id")
    ytd = api["ytd"].set_index("institution_id")
    assert sorted(inst.index) == sorted(m.index)
    inst = inst.reindex(m.index)
    for col in ("electricity_kwh", "water_m3", "gas_m3", "heat_gj", "gasoline_kg", "diesel_kg", "kgce", "tce",
                "t_co2", "kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2"):
        close(inst[col], m[col], col)
    close(inst["vehicle_fuel_kg"], m["gasoline_kg"] + m["diesel_kg"], "vehicle")
    close(inst["prev_tce"], prev["tce"], "prev_tce")
    with np.errstate(divide="ignore", invalid="ignore"):
        yoy = np.where(prev["tce"] > 0, (m["tce"] - prev["tce"]) / prev["tce"], np.nan)
    # only where both months are complete: G3's meters were silent 14 days of March 2024
    yoy = np.where(m.index.isin(["G3"]), np.nan, yoy)
    close(inst["yoy_tce"], yoy, "yoy_tce")
    assert inst.at["G3", "yoy_reason"] == "current_incomplete" and pd.isna(inst.at["G3", "yoy_electricity"])
    assert pd.isna(inst.at["S1", "yoy_reason"])  # shown: the reason cell is empty
    close(inst["ytd_tce"], ytd["tce"], "ytd_tce")
    close(inst["ytd_water_m3"], ytd["water_m3"], "ytd_water")
    # Independent: S1 used 2000 kWh/day in March 2024 and 80 % of that in March 2023.
    assert inst.at["S1", "electricity_kwh"] == pytest.approx(31 * DAILY["S1-E0"])
    assert inst.at["S1", "yoy_electricity"] == pytest.approx(0.25)
    assert inst.at["S1", "kgce"] == pytest.approx(31 * DAILY["S1-E0"] * 0.1229)
    assert pd.isna(inst.at["G2", "yoy_water"])  # no water either year: no ratio
    assert inst.at["S1", "completeness"] == pytest.approx(1.0)


def test_group_sheets_match_aggregate(world):
    out, registry, api, _ = world
    regions = sheet(out, "regions").set_index("region")
    agg = aggregate(api["month"], ["region"], regions=registry).set_index("region")
    prev = aggregate(api["prev"], ["region"], regions=registry).set_index("region")
    assert sorted(regions.index) == ["bd", "hebei", "sjz"]
    for col in ("kgce", "tce", "t_co2", "water_m3", "electricity_kwh", "kgce_per_m2", "institutions_with_data"):
        close(regions[col].reindex(agg.index), agg[col], col)
    close(regions["prev_tce"].reindex(agg.index), prev["tce"], "prev")
    assert regions.at["hebei", "tce"] == pytest.approx(api["month"]["tce"].sum(), rel=1e-12)
    cats = sheet(out, "categories").set_index("category")
    cagg = aggregate(api["month"], ["category"]).set_index("category")
    for col in ("tce", "t_co2", "kgce_per_person", "water_m3"):
        close(cats[col].reindex(cagg.index), cagg[col], col)
    rc = sheet(out, "region_category")
    rcagg = aggregate(api["month"], ["region", "category"], regions=registry)
    merged = rc.merge(rcagg, on=["region", "category"], suffixes=("", "_api"))
    assert len(merged) == len(rcagg) == len(rc)
    close(merged["tce"], merged["tce_api"], "rc tce")


def test_incomplete_sheet(world):
    out = world[0]
    inc = sheet(out, "incomplete").set_index("institution_id")
    assert sorted(inc.index) == ["G3", "H1"]
    assert inc.at["H1", "reasons"] == "no_data, meter_without_data" and inc.at["H1", "meters_without_data"] == "H1-E0"
    # G3's two meters sent nothing from 03-06 to 03-19 (14 days each), the gap was interpolated.
    assert inc.at["G3", "incomplete_meter_days"] == 28
    assert "incomplete_days" in inc.at["G3", "reasons"] and "estimated" in inc.at["G3", "reasons"]
    assert inc.at["G3", "worst_day_completeness"] == 0
    assert inc.at["G3", "completeness"] == pytest.approx(17 / 31)


def test_formatting_and_about(world):
    out = world[0]
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["institutions", "regions", "categories", "region_category", "incomplete", "about"]
    ws = wb["institutions"]
    assert ws.freeze_panes == "C4"
    keys = [c.value for c in ws[2]]
    assert ws.cell(row=4, column=keys.index("yoy_tce") + 1).number_format == "0.0%"
    assert ws.cell(row=4, column=keys.index("electricity_kwh") + 1).number_format == "#,##0.00"
    assert ws.cell(row=3, column=keys.index("electricity_kwh") + 1).value == "电 (kWh)"
    about = {r[0]: r[1] for r in wb["about"].iter_rows(min_row=3, values_only=True)}
    assert about["month"] == "2024-03" and about["factor_set"] == "cn-2025" and about["with_data"] == 4


def _counts(samples: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Day counts of raw samples from the lookback before `start` (naive local) on."""
    s0 = start.tz_localize(TZ)
    return day_counts(samples, s0 - pd.Timedelta(days=7), s0 + pd.Timedelta(days=60))


def _counts(samples: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Day counts of raw samples from the lookback before `start` (naive local) on."""
    s0 = start.tz_localize(TZ)
    return day_counts(samples, s0 - pd.Timedelta(days=7), s0 + pd.Timedelta(days=60))


def test_completeness_function():
    meters = pd.DataFrame({"meter_id": ["a", "b", "c"]})
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-03")
    t_a = pd.date_range("2024-01-01", "2024-01-03", freq="15min", tz=TZ, inclusive="left")  # full
    t_b = t_a[(t_a.hour < 20) | (t_a.day == 2)]  # day 1 lost 4 h of 24: 83 %
    s = pd.concat([pd.DataFrame({"meter_id": "a", "time": t_a}), pd.DataFrame({"meter_id": "b", "time": t_b})])
    out = data_completeness(_counts(s, start), meters, start, end, TZ, pd.Series({"a": 900.0, "b": 900.0, "c": 900.0}))
    out = out.set_index("meter_id")
    assert out.at["a", "incomplete_days"] == 0 and out.at["a", "completeness"] == 1.0
    assert out.at["b", "incomplete_days"] == 1 and out.at["b", "worst_day"] == pytest.approx(80 / 96)
    assert out.at["c", "samples"] == 0 and out.at["c", "incomplete_days"] == 2


def test_bad_month(world, tmp_path, capsys):
    args = world[3]
    with pytest.raises(SystemExit) as exc:  # refused while parsing (civicwatt.argtypes)
        main(["report", "monthly", "--month", "2024-3", "--out", str(tmp_path / "r.xlsx"), *args])
    assert exc.value.code == 2
    assert "--month" in capsys.readouterr().err
    with pytest.raises(ValueError):
        parse_month("2024-13")


def test_completeness_of_backfilled_days():
    """Hourly backfilled history of a 15-minute meter is complete; a live day with hourly
    samples is not."""
    from storage import quality

    meters = pd.DataFrame({"meter_id": ["m"]})
    hourly = pd.date_range("2024-01-01", "2024-01-03", freq="h", tz=TZ, inclusive="left")
    q = [quality.BACKFILL if t.day == 1 else 0 for t in hourly]
    s = pd.DataFrame({"meter_id": "m", "time": hourly, "quality": q})
    out = data_completeness(_counts(s, pd.Timestamp("2024-01-01")), meters, pd.Timestamp("2024-01-01"),
                            pd.Timestamp("2024-01-03"), TZ,
                            pd.Series({"m": 900.0})).iloc[0]
    assert out["incomplete_days"] == 1 and out["worst_day"] == pytest.approx(24 / 96)
    assert out["completeness"] == pytest.approx((1 + 24 / 96) / 2)


def test_report_dashboard_and_alert_agree_on_completeness(tmp_path):
    """One institution, February 2026, hand-computed days (every other day complete):
    X-E0 live 15 min with a 6-hour outage on the 24th (72/96 = 75 %), X-E1 live 15 min
    with the 25th backfilled hourly (24/24 = 100 %), X-E2 live 15 min missing 10 polls
    on the 26th (86/96), X-W0 imported hourly water (no poll interval) with 12 of 24
    readings on the 27th (50 %). The report's incomplete sheet, the dashboard's
    data-quality table (the week 22-28 Feb) and the alert of each day say the same."""
    from alerts.meter_rules import meter_alerts
    from core.registry import Institution, Meter, ModbusAddress, Region, Registry
    from dashboard.data import DataService
    from reports.monthly import monthly_report
    from storage import quality

    mb = [ModbusAddress(port=15020, unit=u, profile="dtsu666", interval_s=900) for u in (1, 2, 3)]
    reg = Registry(regions=(Region(id="hebei", name="河北省"),),
                   institutions=(Institution(id="X", name="X", region="hebei", category="government",
                                             floor_area_m2=1000, occupants=50),),
                   meters=(Meter(id="X-E0", institution="X", energy="electricity", modbus=mb[0]),
                           Meter(id="X-E1", institution="X", energy="electricity", modbus=mb[1]),
                           Meter(id="X-E2", institution="X", energy="electricity", modbus=mb[2]),
                           Meter(id="X-W0", institution="X", energy="water")))
    now = pd.Timestamp("2026-03-01 12:00", tz=TZ)

    def day(d: int) -> pd.Timestamp:
        return pd.Timestamp("2026-02-01", tz=TZ) + pd.Timedelta(days=d - 1)

    fine = pd.date_range(day(1), now, freq="15min", inclusive="left")
    hourly = pd.date_range(day(1), now, freq="h", inclusive="left")
    in_day = {d: (fine >= day(d)) & (fine < day(d) + pd.Timedelta(days=1)) for d in (24, 25, 26)}
    e0 = fine[~(in_day[24] & (fine.hour >= 6) & (fine.hour < 12))]
    e1_live = fine[~in_day[25]]
    e1_back = hourly[(hourly >= day(25)) & (hourly < day(26))]
    e2 = fine[~(in_day[26] & np.isin(np.arange(len(fine)), np.flatnonzero(in_day[26])[:10]))]
    w0 = hourly[~((hourly >= day(27) + pd.Timedelta(hours=12)) & (hourly < day(28)))]
    frames = [pd.DataFrame({"meter_id": m, "time": t.tz_convert("UTC"), "quality": q})
              for m, t, q in (("X-E0", e0, 0), ("X-E1", e1_live, 0), ("X-E1", e1_back, quality.BACKFILL),
                              ("X-E2", e2, 0), ("X-W0", w0, quality.IMPORTED))]
    s = pd.concat(frames, ignore_index=True).sort_values(["meter_id", "time"])
    s["value"] = s.groupby("meter_id").cumcount().astype(float) + 100.0
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=TZ)
    try:
        store.set_meters(reg.meters_frame())
        store.write_samples(s)
        day_share = {("X-E0", 24): 0.75, ("X-E2", 26): 86 / 96, ("X-W0", 27): 0.5}  # every other day: 1
        week = {m: (6 + sum(v for (mm, _), v in day_share.items() if mm == m)) / 7
                for m in ("X-E0", "X-E1", "X-E2", "X-W0")}
        week["X-E1"] = 1.0

        # the alert of each day of the week
        alerted = {}
        for d in range(22, 29):
            for a in meter_alerts(store, reg, day(d) + pd.Timedelta(days=1, hours=1)):
                if a.rule == "data_completeness":
                    alerted[(a.scope.removeprefix("meter:"), d)] = a.actual / 100
        assert alerted == pytest.approx({k: round(v * 100, 1) / 100 for k, v in day_share.items()})

        # the dashboard's table of the same week
        q = DataService(reg, store, now=lambda: now).data_quality("X").set_index("meter_id")["completeness"]
        assert q.to_dict() == pytest.approx(week)
        from_alerts = {m: (7 - sum(1 for (mm, _) in alerted if mm == m)
                           + sum(v for (mm, _), v in alerted.items() if mm == m)) / 7 for m in week}
        assert q.to_dict() == pytest.approx(from_alerts, abs=1e-3)  # the alert rounds to 0.1 %

        # the report's function on the same week, and its incomplete sheet for the month
        meters = reg.meters_frame()
        live = pd.Series({"X-E0": 900.0, "X-E1": 900.0, "X-E2": 900.0})
        rep = data_completeness(store.period_counts("day", day(15), day(29), list(meters["meter_id"])), meters,
                                pd.Timestamp("2026-02-22"),
                                pd.Timestamp("2026-03-01"), TZ, live).set_index("meter_id")
        assert rep["completeness"].to_dict() == pytest.approx(week)
        assert rep["worst_day"].to_dict() == pytest.approx({"X-E0": 0.75, "X-E1": 1.0, "X-E2": 86 / 96, "X-W0": 0.5})
        inc = monthly_report(store, reg, "2026-02").incomplete.set_index("institution_id")
        assert "incomplete_days" in inc.at["X", "reasons"] and inc.at["X", "incomplete_meter_days"] == 3
        assert inc.at["X", "worst_meter"] == "X-W0" and inc.at["X", "worst_day_completeness"] == pytest.approx(0.5)
        lost = 0.25 + 10 / 96 + 0.5
        assert inc.at["X", "completeness"] == pytest.approx((4 * 28 - lost) / (4 * 28))
    finally:
        store.close()
