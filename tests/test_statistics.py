"""`civicwatt report statistics`: the statistics-system tables read back with openpyxl.

The 合计 rows equal the sums of the rows above; per-area and per-person indicators equal the
ledger's; regions and categories by name; 同比 only where both periods are complete; a bad
--period is exit 2 with nothing written; the registry's new fields are checked with
file, line and field."""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicwatt.cli import main
from core.registry import load_registry
from core.yamlfile import ConfigError
from reports.statistics import FORMS, TOTAL, parse_period
from tests.support_ledger_world import DAILY, build

EXTENSIVE = ["floor_area_m2", "heated_area_m2", "occupants", "electricity_kwh", "water_m3", "gas_m3", "heat_gj",
             "gasoline_kg", "diesel_kg", "lpg_kg", "coal_kg", "pv_kwh", "tce", "institutions", "institutions_with_data",
             "comparable", "heating_heat_gj", "heating_gas_m3", "heating_electricity_kwh", "heating_coal_kg",
             "heating_tce", "dc_area_m2", "dc_electricity_kwh", "prev_tce"]
DEPARTMENTS = {"G1": "省发改委", "G2": "省卫健委", "H1": "省卫健委"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("statistics")
    reg, quotas, url = build(base)
    text = reg.read_text(encoding="utf-8")
    for iid, dept in DEPARTMENTS.items():
        extra = f", department: {dept}"
        if iid == "G1":  # the whole main meter as the rooms' use, its sub-meter as the IT load: PUE 1000/400
            extra += ", data_centre: {area_m2: 80, meters: [G1-E0], it_meters: [G1-E1]}"
        line = next(x for x in text.splitlines() if x.strip().startswith(f"- {{id: {iid},"))
        text = text.replace(line, line[:-1] + extra + "}")
    reg.write_text(text, encoding="utf-8")
    args = ["--registry", str(reg), "--store", url, "--quotas", str(quotas)]
    out = {}
    for period in ("2024", "2024Q1", "2025-01"):
        out[period] = base / f"stat-{period}.xlsx"
        assert main(["report", "statistics", "--period", period, "--out", str(out[period]), "--reporting-unit", "河北省机关事务管理局",
                     "--head", "张三", "--preparer", "李四", "--report-date", "2025-02-10", *args]) == 0
    assert main(["ledger", "--year", "2024", "--out", str(base / "ledger.xlsx"), *args]) == 0
    return base, load_registry(reg), out, args


def read(path, form: str) -> tuple[dict[str, object], pd.DataFrame]:
    """(header block label -> value, table) of one form's sheet."""
    rows = list(openpyxl.load_workbook(path, read_only=True)[FORMS[form][0]].iter_rows(values_only=True))
    key_row = next(i for i, r in enumerate(rows) if r[0] and str(r[0]).isascii())  # the stable keys, then labels
    header = {r[0]: r[1] for r in rows[1:key_row]}
    header["title"] = rows[0][0]
    return header, pd.DataFrame(rows[key_row + 2:], columns=rows[key_row])


def ledger_summary(base) -> pd.DataFrame:
    rows = list(openpyxl.load_workbook(base / "ledger.xlsx", read_only=True)["summary"].iter_rows(values_only=True))
    return pd.DataFrame(rows[3:], columns=rows[1]).set_index("institution_id")


def test_sheets_headers_and_names(world):
    _, _, out, _ = world
    wb = openpyxl.load_workbook(out["2024Q1"], read_only=True)
    assert wb.sheetnames == [name for name, _, _ in FORMS.values()]
    for form, (_, title, number) in FORMS.items():
        header, _ = read(out["2024Q1"], form)
        assert header["title"] == f"{title}（2024年第1季度）"
        assert header["表号"] == number and header["制表机关"] == "国家机关事务管理局"
        assert (header["填报单位"], header["单位负责人"], header["填表人"], header["报出日期"]) == (
            "河北省机关事务管理局", "张三", "李四", "2025-02-10")
        assert header["统计期"].startswith("2024Q1（2024-01-01 至 2024-03-31）")
    _, basic = read(out["2024"], "basic")
    body = basic[basic["name"] != TOTAL].set_index("institution_id")
    assert body.at["G1", "region_name"] == "石家庄市" and body.at["H1", "region_name"] == "保定市"
    assert body.at["S1", "category_name"] == "学校" and body.at["H1", "category_name"] == "医疗机构"
    assert body.at["G2", "department"] == "省卫健委" and body.at["G1", "has_data_centre"] == "有"
    assert body.at["S1", "department"] == "（未填报主管部门）"
    _, region = read(out["2024"], "by_region")
    assert list(region["region_name"]) == ["保定市", "石家庄市", TOTAL]  # names, not codes
    _, cat = read(out["2024"], "by_category")
    assert set(cat["category_name"]) == {"党政机关", "医疗机构", "学校", TOTAL}


@pytest.mark.parametrize("period", ["2024", "2024Q1", "2025-01"])
def test_total_rows_equal_the_sums(world, period):
    _, _, out, _ = world
    totals = {}
    for form in FORMS:
        _, t = read(out[period], form)
        label = "name" if "name" in t else t.columns[0]
        assert list(t[label]).count(TOTAL) == 1 and t[label].iloc[-1] == TOTAL, form
        body, total = t.iloc[:-1], t.iloc[-1]
        checked = [c for c in EXTENSIVE if c in t]
        assert checked, form
        for c in checked:
            assert total[c] == pytest.approx(pd.to_numeric(body[c]).fillna(0).sum(), rel=1e-9, abs=1e-9), (form, c)
        totals[form] = total
    # every roll-up adds up to the same whole, and to the unit-level table
    for form in ("by_department", "by_region", "by_category"):
        assert totals[form]["tce"] == pytest.approx(totals["consumption"]["tce"], rel=1e-12)
        assert totals[form]["institutions"] == len(read(out[period], "basic")[1]) - 1


def test_intensities_equal_the_ledger(world):
    base, _, out, _ = world
    led = ledger_summary(base)
    _, cons = read(out["2024"], "consumption")
    body = cons[cons["name"] != TOTAL].set_index("institution_id")
    assert sorted(body.index) == sorted(led.index)
    for col in ("kgce_per_m2", "kgce_per_person", "water_m3_per_person", "tce", "electricity_kwh", "water_m3"):
        for iid in body.index:
            if pd.isna(led.at[iid, col]):
                assert pd.isna(body.at[iid, col]), (iid, col)
            else:
                assert body.at[iid, col] == pytest.approx(led.at[iid, col], rel=1e-9), (iid, col)
    # independent figure: S1 used 2000 kWh a day in 2024 (366 days) on 30,000 m2, 2,500 people
    assert body.at["S1", "kgce_per_m2"] == pytest.approx(366 * DAILY["S1-E0"] * 0.1229 / 30000)
    assert body.at["S1", "water_m3_per_person"] == pytest.approx(366 * DAILY["S1-W0"] / 2500)
    # the category roll-up equals the ledger's category totals (ratios of sums)
    rows = list(openpyxl.load_workbook(base / "ledger.xlsx", read_only=True)["totals"].iter_rows(values_only=True))
    lt = pd.DataFrame(rows[3:], columns=rows[1])
    lt = lt[lt["group"] == "category"].set_index("key")
    _, cat = read(out["2024"], "by_category")
    cat = cat.set_index("category_name")
    for code, name in (("government", "党政机关"), ("school", "学校")):
        for col in ("kgce_per_m2", "kgce_per_person", "water_m3_per_person"):
            assert cat.at[name, col] == pytest.approx(lt.at[code, col], rel=1e-9)


def test_yoy_only_where_both_periods_complete(world):
    _, _, out, _ = world
    _, cons = read(out["2024"], "consumption")
    body = cons.set_index("institution_id")
    # 2023 ran at 80 % of 2024's daily use (365 against 366 days)
    assert body.at["S1", "yoy_tce"] == pytest.approx(366 / (0.8 * 365) - 1)
    assert body.at["S1", "yoy_kgce_per_person"] == pytest.approx(366 / (0.8 * 365) - 1)
    assert body.at["S1", "complete"] == "是" and body.at["S1", "prev_complete"] == "是"
    # G3 lost two weeks of March 2024: no comparison, with the reason
    assert pd.isna(body.at["G3", "yoy_tce"]) and body.at["G3", "yoy_note"] == "本期数据不完整"
    assert body.at["G3", "complete"] == "否"
    _, jan = read(out["2025-01"], "consumption")
    jan = jan.set_index("institution_id")
    assert jan.at["G3", "yoy_tce"] == pytest.approx(0.0, abs=1e-12)  # January 2024 was complete, same daily use
    assert pd.isna(jan.at["H1", "yoy_tce"])  # no data at all
    # roll-up: ratio of sums over the members complete in both periods (G3 left out)
    _, cat = read(out["2024"], "by_category")
    gov = cat.set_index("category_name").loc["党政机关"]
    assert gov["comparable"] == 2  # G1, G2
    cur = body.loc[["G1", "G2"], "tce"].sum()
    prev = body.loc[["G1", "G2"], "prev_tce"].sum()
    assert gov["yoy_tce"] == pytest.approx(cur / prev - 1, rel=1e-9)


def test_data_centre_and_heating(world):
    _, _, out, _ = world
    _, dc = read(out["2024"], "data_centre")
    g1 = dc.set_index("institution_id").loc["G1"]
    assert list(dc["institution_id"].iloc[:-1]) == ["G1"]
    assert g1["dc_area_m2"] == 80 and g1["dc_electricity_kwh"] == pytest.approx(366 * 1000.0)
    assert g1["dc_pue"] == pytest.approx(1000.0 / 400.0)
    _, heat = read(out["2024"], "heating")
    h = heat.set_index("institution_id")
    assert "G3" not in h.index  # not heated
    # G2's gas is a heating meter: the heating season of 2024 is 75 days to 15 March and 47 from 15 November
    assert h.at["G2", "heating_gas_m3"] == pytest.approx((75 + 47) * DAILY["G2-G0"])
    assert h.at["G1", "heating_heat_gj"] == pytest.approx((75 + 47) * DAILY["G1-H0"])
    assert h.at["G2", "heating_kgce_per_m2"] == pytest.approx(h.at["G2", "heating_tce"] * 1000 / 8000)


@pytest.mark.parametrize("period", ["2024-13", "2024Q5", "24", "2024-1", "2024q1", "", "1850"])
def test_bad_period_is_exit_2_and_nothing_written(world, period, capsys, tmp_path):
    _, _, _, args = world
    out = tmp_path / "s.xlsx"
    assert main(["report", "statistics", "--period", period, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert "--period" in err and "Traceback" not in err
    assert not out.exists()


def test_missing_period_and_bad_date(world, capsys, tmp_path):
    _, _, _, args = world
    out = tmp_path / "s.xlsx"
    assert main(["report", "statistics", "--out", str(out), *args]) == 2
    assert "--period" in capsys.readouterr().err
    assert main(["report", "statistics", "--period", "2024", "--report-date", "10/02/2025", "--out", str(out),
                 *args]) == 2
    assert "--report-date" in capsys.readouterr().err
    assert not out.exists()


@given(st.integers(1990, 2100), st.integers(1, 12))
def test_parse_period_months_quarters_years(year, month):
    p = parse_period(f"{year}-{month:02d}")
    assert (p.start, p.end) == (pd.Timestamp(year, month, 1), pd.Timestamp(year, month, 1) + pd.offsets.MonthBegin(1))
    assert list(p.months) == [p.start] and p.previous().start == pd.Timestamp(year - 1, month, 1)
    q = (month - 1) // 3 + 1
    pq = parse_period(f"{year}Q{q}")
    assert len(pq.months) == 3 and p.start in pq.months and pq.previous().label == f"{year - 1}Q{q}"
    py = parse_period(str(year))
    assert len(py.months) == 12 and py.end == pd.Timestamp(year + 1, 1, 1)


@given(st.text(max_size=12))
def test_parse_period_never_crashes(text):
    try:
        p = parse_period(text)
    except ValueError as exc:
        assert "period" in str(exc)
    else:
        assert p.start < p.end


def test_registry_fields_checked_with_lines(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "regions:\n  - {id: hb, name: 河北省}\ninstitutions:\n"
        "  - id: A\n    name: a\n    region: hb\n    category: school\n    floor_area_m2: 100\n    occupants: 3\n"
        "    department: 省教育厅\n    data_centre:\n      area_m2: 50\n      meters: [A-E0, A-W]\n      it_meters: [B-E]\n"
        "  - {id: B, name: b, region: hb, category: school, floor_area_m2: 1, occupants: 1, department: '', "
        "data_centre: {area_m2: 0, meters: []}}\n"
        "meters:\n  - {id: A-E0, institution: A, energy: electricity}\n  - {id: A-W, institution: A, energy: water}\n"
        "  - {id: B-E, institution: B, energy: electricity}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_registry(path)
    got = [str(p) for p in exc.value.problems]
    f = str(path)
    assert f"{f}:13: institutions[0].data_centre.meters[1]: meter 'A-W' measures water, not electricity" in got
    assert f"{f}:14: institutions[0].data_centre.it_meters[0]: meter 'B-E' belongs to another institution" in got
    assert any(g.startswith(f"{f}:15: institutions[1].data_centre.area_m2:") for g in got)
    assert any(g.startswith(f"{f}:15: institutions[1].data_centre.meters:") for g in got)
    assert any(g.startswith(f"{f}:15: institutions[1].department:") for g in got)
    assert len(got) == 5
