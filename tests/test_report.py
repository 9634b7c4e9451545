"""`civicwatt report monthly`: read the workbook back with openpyxl and check every total
against the models API."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from civicwatt.cli import main
from civicwatt.registry import load_registry
from models.api import aggregate, energy_use, indicators, load_factors
from quotas.report import data_completeness, parse_month
from storage import open_store
from tests.test_ledger_world import DAILY, TZ, build

HEADER_ROWS = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    reg_path, q_path, url = build(base)
    registry = load_registry(reg_path)
    store = open_store(url, tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    factors = load_factors()

    def ind(start, end):
        return indicators(energy_use(store, registry, start, end, "day", factors), registry, factors, freq="day")

    api = {"month": ind("2024-03-01", "2024-04-01"), "prev": ind("2023-03-01", "2023-04-01"),
           "ytd": ind("2024-01-01", "2024-04-01")}
    store.close()
    out = base / "report.xlsx"
    args = ["--registry", str(reg_path), "--store", url, "--quotas", str(q_path)]
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
    close(inst["yoy_tce"], yoy, "yoy_tce")
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
    assert about["month"] == "2024-03" and about["factor_set"] == "cn-2024" and about["with_data"] == 4


def test_completeness_function():
    meters = pd.DataFrame({"meter_id": ["a", "b", "c"]})
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-03")
    t_a = pd.date_range("2024-01-01", "2024-01-03", freq="15min", tz=TZ, inclusive="left")  # full
    t_b = t_a[(t_a.hour < 20) | (t_a.day == 2)]  # day 1 lost 4 h of 24: 83 %
    s = pd.concat([pd.DataFrame({"meter_id": "a", "time": t_a}), pd.DataFrame({"meter_id": "b", "time": t_b})])
    out = data_completeness(s, meters, start, end, TZ, pd.Series({"a": 900.0, "b": 900.0, "c": 900.0}))
    out = out.set_index("meter_id")
    assert out.at["a", "incomplete_days"] == 0 and out.at["a", "completeness"] == 1.0
    assert out.at["b", "incomplete_days"] == 1 and out.at["b", "worst_day"] == pytest.approx(80 / 96)
    assert out.at["c", "samples"] == 0 and out.at["c", "incomplete_days"] == 2


def test_bad_month(world, tmp_path, capsys):
    args = world[3]
    assert main(["report", "monthly", "--month", "2024-3", "--out", str(tmp_path / "r.xlsx"), *args]) == 1
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
    out = data_completeness(s, meters, pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-03"), TZ,
                            pd.Series({"m": 900.0}), pd.Series({"m": 3600.0})).iloc[0]
    assert out["incomplete_days"] == 1 and out["worst_day"] == pytest.approx(24 / 96)
    assert out["completeness"] == pytest.approx((1 + 24 / 96) / 2)
