"""`civicwatt ledger`: the workbook's totals equal the models API; the CSV is reproducible.

The workbook is read back with openpyxl; the CSV is byte-identical from run to run."""

from __future__ import annotations

import csv
import io

import numpy as np
import openpyxl
import pandas as pd
import pytest

from civicwatt.cli import main
from civicwatt.context import open_registry_store
from core.registry import load_registry
from models.api import aggregate, load_factors, rank, year_indicators
from models.indicators import QTY_COL
from quotas.config import load_quotas
from quotas.evaluate import quota_levels
from tests.support_ledger_world import DAILY, GASOLINE_L_PER_MONTH, build, open_world

HEADER_ROWS = 3  # a note, the keys, the Chinese labels


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("ledger")
    registry, store, q_path, args = open_world(base)
    with store:
        ind = year_indicators(store, registry, 2024)
    assert main(["ledger", "--year", "2024", "--out", str(base / "ledger.xlsx"), *args]) == 0
    assert main(["ledger", "--year", "2024", "--out", str(base / "ledger.csv"), *args]) == 0
    assert main(["ledger", "--year", "2024", "--out", str(base / "again.csv"), *args]) == 0
    assert main(["ledger", "--year", "2024", "--out", str(base / "again.xlsx"), *args]) == 0
    return base, registry, load_quotas(q_path, registry), ind, args


def sheet(path, name) -> pd.DataFrame:
    ws = openpyxl.load_workbook(path, read_only=True)[name]
    rows = list(ws.iter_rows(values_only=True))
    return pd.DataFrame(rows[HEADER_ROWS:], columns=rows[1])


def test_ledger_rows_match_models_api(world):
    base, registry, _, ind, _ = world
    led = sheet(base / "ledger.xlsx", "ledger")
    assert list(led.columns[:14]) == ["institution_id", "name", "region", "category", "year", "energy", "quantity",
                                      "unit", "kgce", "scope", "emission_factor", "factor_unit", "factor_source",
                                      "t_co2"]
    assert (led["year"] == 2024).all()
    by = led.groupby("institution_id")
    ind = ind.set_index("institution_id")
    with_data = ind[ind["has_data"]]
    assert sorted(by.groups) == sorted(with_data.index)
    for inst, rows in by:
        assert rows["kgce"].sum() == pytest.approx(ind.at[inst, "kgce"], rel=1e-9)
        assert rows["t_co2"].sum() == pytest.approx(ind.at[inst, "t_co2"], rel=1e-9)
        s1 = rows.loc[rows["scope"] == 1, "t_co2"].sum()
        assert s1 == pytest.approx(ind.at[inst, "t_co2_scope1"], rel=1e-9, abs=1e-12)
        for r in rows.itertuples():
            assert r.quantity == pytest.approx(ind.at[inst, QTY_COL[r.energy]], rel=1e-9)
            assert r.name == registry.institution_by_id[inst].name
    # Independent figures: G1 used 1000 kWh/day in 2024 (366 days), 0.1229 kgce/kWh (GB/T 2589-2020).
    g1 = led[(led["institution_id"] == "G1")].set_index("energy")
    assert g1.at["electricity", "quantity"] == pytest.approx(366 * DAILY["G1-E0"])
    assert g1.at["electricity", "kgce"] == pytest.approx(366 * DAILY["G1-E0"] * 0.1229)
    assert g1.at["electricity", "scope"] == 2 and g1.at["electricity", "factor_unit"] == "kgCO2/kWh"
    assert g1.at["electricity", "t_co2"] == pytest.approx(366 * DAILY["G1-E0"] * g1.at["electricity", "emission_factor"] / 1000)
    assert g1.at["gasoline", "quantity"] == pytest.approx(12 * GASOLINE_L_PER_MONTH * 0.73)  # L -> kg
    assert g1.at["gasoline", "scope"] == 1
    assert pd.isna(g1.at["water", "scope"]) and g1.at["water", "kgce"] == 0  # water: no coal, no CO2
    assert "G1-E1" not in set(led.get("meter_id", []))  # sub-meters never add to totals
    assert g1.at["heat", "emission_factor"] == pytest.approx(110.0)  # 0.11 tCO2/GJ


def test_summary_and_totals_match_models_api(world):
    base, registry, quotas, ind, _ = world
    summ = sheet(base / "ledger.xlsx", "summary").set_index("institution_id")
    i = ind.set_index("institution_id")
    assert sorted(summ.index) == sorted(i.index)  # every institution, with or without data
    for col in ("kgce", "tce", "t_co2", "water_m3", "floor_area_m2", "occupants", "kgce_per_m2",
                "kgce_per_person", "water_m3_per_person", "kgco2_per_m2", "nonheating_kgce_per_m2"):
        a = summ[col].astype(float).reindex(i.index).to_numpy()
        b = i[col].astype(float).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-9, equal_nan=True, err_msg=col)
    assert not summ.at["H1", "has_data"] and pd.isna(summ.at["H1", "kgce_per_m2"])
    r = rank(ind, "kgce_per_m2", peers=("category",)).set_index("institution_id")
    for inst in ("G1", "G2", "G3", "S1"):
        assert summ.at[inst, "rank_in_category"] == r.at[inst, "rank"]
    assert summ.at["G1", "category_peers"] == 3
    levels = quota_levels(ind, quotas, regions=registry).set_index(["institution_id", "indicator"])
    lv = summ.at["G1", "level_water_m3_per_person"]
    assert lv.split()[0] == levels.at[("G1", "water_m3_per_person"), "level"]
    ok = levels["meets_constraint"].groupby(level=0).sum()
    assert summ.at["G1", "quota_within_constraint"] == ok["G1"]
    assert summ.at["S1", "quota_indicators"] == 1  # only the school standard's one indicator
    totals = sheet(base / "ledger.xlsx", "totals")
    agg = aggregate(ind, ["region"], regions=registry).set_index("region")
    reg = totals[totals["group"] == "region"].set_index("key")
    for region in ("hebei", "sjz", "bd"):
        for col in ("kgce", "t_co2", "water_m3", "kgce_per_m2"):
            assert reg.at[region, col] == pytest.approx(agg.at[region, col], rel=1e-9)
    all_row = totals[totals["group"] == "all"].iloc[0]
    assert all_row["tce"] == pytest.approx(ind["tce"].sum(), rel=1e-9)
    assert all_row["institutions_with_data"] == int(ind["has_data"].sum())


def test_factors_sheet_and_formatting(world):
    base = world[0]
    wb = openpyxl.load_workbook(base / "ledger.xlsx")
    assert wb.sheetnames == ["ledger", "summary", "totals", "factors"]
    ws = wb["ledger"]
    assert ws.freeze_panes == "C4"
    keys = [c.value for c in ws[2]]
    kgce = ws.cell(row=4, column=keys.index("kgce") + 1)
    assert kgce.number_format == "#,##0.00" and isinstance(kgce.value, float)
    assert ws.cell(row=2, column=1).font.bold
    assert "kgce" in ws.cell(row=3, column=keys.index("kgce") + 1).value  # the unit in the label row
    assert ws.column_dimensions["M"].width >= 30  # factor_source is readable
    fac = sheet(base / "ledger.xlsx", "factors")
    factors = load_factors()
    assert len(fac) == len(factors.to_frame())
    used = fac[fac["used"] == True]  # noqa: E712 - openpyxl booleans
    led = sheet(base / "ledger.xlsx", "ledger")
    assert set(led["factor_source"].dropna()) <= set(used["source"])
    assert all(isinstance(s, str) and s for s in used["source"])


def test_csv_is_deterministic_and_equals_the_sheet(world):
    base = world[0]
    a, b = (base / "ledger.csv").read_bytes(), (base / "again.csv").read_bytes()
    assert a == b
    assert (base / "ledger.xlsx").read_bytes() == (base / "again.xlsx").read_bytes()  # the workbook too
    assert a.startswith("\ufeff".encode()) and b"\r\n" not in a
    rows = list(csv.DictReader(io.StringIO(a.decode("utf-8-sig"))))
    led = sheet(base / "ledger.xlsx", "ledger")
    assert len(rows) == len(led)
    for r, (_, x) in zip(rows, led.iterrows(), strict=True):
        assert (r["institution_id"], r["energy"]) == (x["institution_id"], x["energy"])
        assert float(r["kgce"]) == pytest.approx(x["kgce"], abs=5e-4)
        assert float(r["t_co2"]) == pytest.approx(x["t_co2"], abs=5e-7)
        assert r["scope"] == ("" if pd.isna(x["scope"]) else str(int(x["scope"])))


def test_bad_arguments(world, tmp_path, capsys):
    args = world[4]
    assert main(["ledger", "--year", "2024", "--out", str(tmp_path / "x.pdf"), *args]) == 1
    assert "--out" in capsys.readouterr().err
    bad = tmp_path / "q.yaml"
    bad.write_text("targets:\n  - {id: t, year: 2024, region: nowhere, energy_tce: 5}\n", encoding="utf-8")
    assert main(["ledger", "--year", "2024", "--out", str(tmp_path / "x.csv"), *args[:4], "--quotas", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: targets[0].region" in err


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from models.indicators import energy_sums  # noqa: E402
from reports.ledger import ledger_csv_bytes, ledger_from_sums  # noqa: E402

_FACTORS = load_factors()
_INST = pd.DataFrame({"institution_id": ["A", "B", "C"], "name": ["甲", "乙", "丙"], "region": "hebei",
                      "category": ["school", "school", "government"], "floor_area_m2": [1000.0, 2000.0, 500.0],
                      "heated_area_m2": [900.0, 0.0, 500.0], "occupants": [50, 80, 10], "factor_region": "hebei",
                      "heating_start": "11-15", "heating_end": "03-15"})


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]),
                          st.sampled_from(["electricity", "water", "natural_gas", "heat", "diesel"]),
                          st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=10**6)),
                min_size=1, max_size=40),
       st.randoms(use_true_random=False))
def test_csv_bytes_do_not_depend_on_row_order(rows, rnd):
    # whole quantities: sums are exact in any order, so the test cannot flake on rounding
    use = pd.DataFrame(rows, columns=["institution_id", "energy", "month", "quantity"]).astype({"quantity": float})
    use = use.drop_duplicates(["institution_id", "energy", "month"]).reset_index(drop=True)
    use["period_start"] = pd.to_datetime({"year": 2025, "month": use["month"], "day": 1}).dt.tz_localize(
        "Asia/Shanghai")
    use = use.drop(columns="month")

    def csv_of(frame: pd.DataFrame) -> bytes:
        sums = energy_sums(frame, _INST, period="year", freq="month", tz="Asia/Shanghai")
        return ledger_csv_bytes(ledger_from_sums(sums, _INST, _FACTORS, 2025))

    order = list(range(len(use)))
    rnd.shuffle(order)
    first = csv_of(use)
    assert csv_of(use.iloc[order].reset_index(drop=True)) == first
    text = first.decode("utf-8-sig")
    body = [line.split(",") for line in text.splitlines()[1:]]
    assert len(body) == use.groupby(["institution_id", "energy"]).ngroups
    water = [r for r in body if r[5] == "water"]
    assert all(r[9] == "" and r[8] == "0.000" for r in water)  # no scope, no coal for water


def test_ledger_and_report_on_influxdb(influxd, tmp_path):
    """The same portfolio in a real InfluxDB gives the same ledger and report totals."""
    from reports.ledger import build_ledger
    from reports.monthly import monthly_report

    for d in ("e", "i"):
        (tmp_path / d).mkdir()
    reg_path, _, embedded_url = build(tmp_path / "e")
    influx_url = influxd.url("ledger_influx")
    build(tmp_path / "i", url=influx_url)
    registry = load_registry(reg_path)
    out = {}
    for name, url in (("embedded", embedded_url), ("influx", influx_url)):
        store = open_registry_store(registry, url)
        try:
            out[name] = (build_ledger(store, registry, 2024), monthly_report(store, registry, "2024-03"))
        finally:
            store.close()
    (le, re_), (li, ri) = out["embedded"], out["influx"]
    pd.testing.assert_frame_equal(le.ledger, li.ledger, rtol=1e-9)
    close = ["kgce", "tce", "t_co2", "water_m3", "yoy_tce", "ytd_tce"]
    pd.testing.assert_frame_equal(re_.institutions[close], ri.institutions[close], rtol=1e-9)
    assert list(re_.incomplete["institution_id"]) == list(ri.incomplete["institution_id"]) == ["G3", "H1"]


def test_level_columns_follow_the_institutions_shown():
    """The summary sheet's quota-level columns are those with a level for a shown institution
    (a download cut to some institutions drops the standards that apply to none of them)."""
    from reports.ledger import level_columns

    summary = pd.DataFrame({"institution_id": ["A", "B"], "level_kgce_per_person": ["guide", None],
                            "level_water_m3_per_person": [None, "no_data"], "tce": [1.0, 2.0]})
    assert level_columns(summary) == ["level_kgce_per_person", "level_water_m3_per_person"]
    assert level_columns(summary.iloc[:1]) == ["level_kgce_per_person"]


@pytest.mark.parametrize("boundary", ["net", "excluded"])
def test_sums_read_from_the_store_equal_the_daily_sums(tmp_path, boundary):
    """`energy_use(..., sums=...)` (what the ledger and the statistics read: meters other
    than heating ones summed per period by the store) gives the same `energy_sums` as the
    daily frame: quantities, estimated parts and the heating-season split (G1-H0, G2-G0),
    bills (G1's gasoline), an excluded sub-meter deducted and an excluded main meter."""
    from models.api import energy_sums, energy_use, institution_context

    reg_path, _, url = build(tmp_path)
    text = reg_path.read_text(encoding="utf-8")
    for meter in ("parent: G1-E0, subitem: hvac", "id: G3-W0, institution: G3, energy: water"):
        text = text.replace(meter + "}", meter + ", boundary: excluded, boundary_reason: 出租}")
    reg_path.write_text(text, encoding="utf-8")
    registry = load_registry(reg_path)
    factors = load_factors()
    inst = institution_context(registry, factors)
    with open_registry_store(registry, url) as store:
        for start, end, period in (("2024-01-01", "2025-01-01", "year"), ("2024-02-10", "2024-12-01", "month")):
            daily = energy_use(store, registry, start, end, "day", factors, boundary=boundary)
            summed = energy_use(store, registry, start, end, "day", factors, boundary=boundary, sums=period)
            assert len(summed) < len(daily) / 2  # the store summed the non-heating meters
            want = energy_sums(daily, inst, period=period, freq="day", tz=registry.timezone).drop(columns="rows")
            got = energy_sums(summed, inst, period=period, freq="day", tz=registry.timezone).drop(columns="rows")
            pd.testing.assert_frame_equal(got, want, rtol=1e-12)
            assert want["heating_quantity"].sum() > 0 or boundary == "excluded"
            assert (want["quantity"] != 0).all() and len(want) >= (8 if boundary == "net" else 2)
