"""Project file and driver CSV loading (line-aware errors), contract arithmetic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.registry import load_registry
from core.yamlfile import ConfigError
from tests.test_mv_synthetic import REGISTRY_YAML
from verification import InsufficientData, load_project
from verification.contract import settle, trusteeship_baseline
from verification.driver_files import read_calendar_csv, read_temperature_csv
from verification.project import Contract

PROJECT = """\
id: emc-001
institution: HB-0001
energy: electricity
baseline: {start: 2024-01-01, end: 2024-12-31}
reporting: {start: 2025-01-01, end: 2025-06-30}
temperature: temps.csv
adjustments:
  - {start: 2025-03-01, end: 2025-03-10, quantity: 500, reason: exhibition}
contract: {type: shared_savings, tariff_cny_per_unit: 0.75, contractor_share: 0.7}
"""


def _temps(path: Path, start: str = "2024-01-01", end: str = "2025-06-30", drop: tuple[str, ...] = ()) -> Path:
    dates = pd.date_range(start, end, freq="D")
    df = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "temp_c": np.linspace(-5, 30, len(dates)).round(1)})
    df[~df["date"].isin(drop)].to_csv(path, index=False)
    return path


def _write(tmp_path: Path, text: str = PROJECT) -> Path:
    _temps(tmp_path / "temps.csv")
    p = tmp_path / "project.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _problems(path: Path, registry=None) -> list:
    with pytest.raises(ConfigError) as exc:
        load_project(path, registry)
    return exc.value.problems


def test_valid_project_resolves_main_meters(tmp_path):
    (tmp_path / "civicwatt.yaml").write_text(REGISTRY_YAML, encoding="utf-8")
    reg = load_registry(tmp_path / "civicwatt.yaml")
    project = load_project(_write(tmp_path), reg)
    assert project.option == "C"
    assert project.meter_ids == ["HB-0001-E0"]  # the hvac sub-meter and the water meter are not in scope
    assert project.unit == "kWh"
    assert project.adjustments[0].quantity_per_day == pytest.approx(50.0)  # 500 over 10 days
    assert project.cvrmse_max == 0.25 and project.granularity == "day"
    assert len(project.temperature) == 547
    assert project.file_hashes and all(len(h) == 64 for h in project.file_hashes.values())


def test_reporting_before_baseline_names_line(tmp_path):
    p = _write(tmp_path, PROJECT.replace("reporting: {start: 2025-01-01", "reporting: {start: 2024-06-01"))
    problems = _problems(p)
    assert [(x.line, x.field) for x in problems] == [(5, "reporting.start")]
    assert "before the baseline period ends" in problems[0].message


def test_schema_errors_are_located(tmp_path):
    text = PROJECT.replace("energy: electricity", "energy: steam").replace("contractor_share: 0.7", "contractor_share: 1.7")
    text += "colour: blue\n"
    problems = _problems(_write(tmp_path, text))
    found = {(p.field, p.line) for p in problems}
    assert ("energy", 3) in found
    assert ("contract.contractor_share", 9) in found
    assert ("colour", 10) in found


def test_nested_errors_are_located(tmp_path):
    text = PROJECT.replace("reason: exhibition", "reason: ''").replace("end: 2024-12-31}", "end: 2024-11-31}")
    problems = _problems(_write(tmp_path, PROJECT.replace("reason: exhibition", "reason: ''")))
    assert [(p.field, p.line) for p in problems] == [("adjustments[0].reason", 8)]
    problems = _problems(_write(tmp_path, text))  # YAML itself refuses an impossible date
    assert [(p.line, p.message) for p in problems] == [(4, "not a valid date: 2024-11-31")]


def test_missing_temperatures_are_listed(tmp_path):
    p = _write(tmp_path)
    _temps(tmp_path / "temps.csv", drop=("2024-03-05", "2024-03-06", "2024-03-07", "2025-02-01"))
    with pytest.raises(InsufficientData) as exc:  # missing drivers: the data, not the file, fall short
        load_project(p)
    problems = exc.value.problems
    text = " | ".join(str(x) for x in problems)
    assert "2024-03-05..2024-03-07 (3 days) of the baseline period" in text
    assert "2025-02-01 (1 day) of the reporting period" in text
    assert all(x.file.endswith("temps.csv") for x in problems)
    assert [(f.code, f.values["phase"], f.values["days_missing"]) for f in exc.value.findings] == [
        ("temperature_missing", "baseline", 3), ("temperature_missing", "reporting", 1)]


def test_a_normal_year_that_is_not_a_year_is_a_config_error(tmp_path):
    _temps(tmp_path / "normal.csv", "2023-01-01", "2023-06-30")
    p = _write(tmp_path, PROJECT + "normal_year: normal.csv\n")
    _temps(tmp_path / "temps.csv", drop=("2025-02-01",))
    with pytest.raises(ConfigError) as exc:
        load_project(p)
    assert not isinstance(exc.value, InsufficientData)  # the file is wrong, whatever else is missing
    assert [(x.file.rsplit("/", 1)[-1], x.field) for x in exc.value.problems] == [("temps.csv", "temp_c"),
                                                                                   ("normal.csv", "date")]
    assert "found 181 rows over 181 days" in exc.value.problems[1].message


def test_adjustment_items_must_be_mappings(tmp_path):
    text = PROJECT.replace("  - {start: 2025-03-01, end: 2025-03-10, quantity: 500, reason: exhibition}",
                           "  - {start: 2025-03-01, end: 2025-03-10, quantity: 500, reason: exhibition}\n  - 5")
    assert [(p.line, p.field) for p in _problems(_write(tmp_path, text))] == [(7, "adjustments[1]")]


def test_temperature_csv_rows_are_located(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("date,temp_c\n2024-01-01,1.5\n2024-13-01,2\n2024-01-03,warm\n2024-01-01,3\n2024-01-05,99\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        read_temperature_csv(path)
    got = {(p.line, p.field) for p in exc.value.problems}
    assert got == {(3, "date"), (4, "temp_c"), (5, "date"), (6, "temp_c")}


def test_missing_column_and_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("day,temp\n2024-01-01,1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing column"):
        read_temperature_csv(path)
    p = _write(tmp_path, PROJECT.replace("temps.csv", "nowhere.csv"))
    problems = _problems(p)
    assert problems[0].line == 6 and "file not found" in problems[0].message


def test_adjustment_and_contract_rules(tmp_path):
    text = PROJECT.replace("end: 2025-03-10, quantity: 500", "end: 2025-08-10, quantity: 500")
    text = text.replace("contractor_share: 0.7", "fee_cny: 10")
    problems = _problems(_write(tmp_path, text))
    messages = " | ".join(p.message for p in problems)
    assert "outside the reporting period" in messages
    assert "needs contractor_share" in messages


def test_unknown_institution_with_registry(tmp_path):
    (tmp_path / "civicwatt.yaml").write_text(REGISTRY_YAML, encoding="utf-8")
    reg = load_registry(tmp_path / "civicwatt.yaml")
    problems = _problems(_write(tmp_path, PROJECT.replace("institution: HB-0001", "institution: HB-9999")), reg)
    assert problems[0].line == 2 and "unknown institution" in problems[0].message
    text = PROJECT.replace("institution: HB-0001", "meters: [HB-0001-W0]")
    problems = _problems(_write(tmp_path, text), reg)
    assert "measures water" in problems[0].message


def test_calendar_csv(tmp_path):
    path = tmp_path / "cal.csv"
    path.write_text("date,working,occupancy\n2024-01-01,0,10\n2024-01-02,1,400\n2024-01-03,maybe,400\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        read_calendar_csv(path)
    assert [(p.line, p.field) for p in exc.value.problems] == [(4, "working")]
    path.write_text("date,working,occupancy\n2024-01-02,true,400\n2024-01-01,0,10\n", encoding="utf-8")
    cal = read_calendar_csv(path)
    assert cal["working"].tolist() == [0.0, 1.0] and cal["occupancy"].tolist() == [10.0, 400.0]


@settings(max_examples=40, deadline=None)
@given(st.dates(dt.date(1990, 1, 1), dt.date(2090, 1, 1)),
       st.lists(st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 2)), min_size=1, max_size=40))
def test_temperature_csv_round_trip(tmp_path_factory, start, temps):
    path = tmp_path_factory.mktemp("t") / "t.csv"
    dates = pd.date_range(start, periods=len(temps), freq="D")
    text = "\ufeffdate,temp_c\n" + "".join(f"{d:%Y-%m-%d},{t}\n" for d, t in zip(dates[::-1], temps[::-1], strict=True))
    path.write_text(text, encoding="utf-8")
    df = read_temperature_csv(path)
    assert list(df["date"]) == list(dates)
    assert np.allclose(df["temp_c"].to_numpy(), temps)


def test_trusteeship_baseline_rules():
    # use fell every year: the latest year
    assert trusteeship_baseline({2022: 120.0, 2023: 110.0, 2024: 100.0})[:2] == (
        100.0, "use fell every year 2022-2024: latest year 2024")
    # within ±10 % of the average (105): the three-year average
    q, rule, ok = trusteeship_baseline({2021: 500.0, 2022: 100.0, 2023: 110.0, 2024: 105.0})
    assert q == pytest.approx(105.0) and ok and "three-year average" in rule
    # neither: average, flagged
    q, rule, ok = trusteeship_baseline({2022: 100.0, 2023: 150.0, 2024: 90.0})
    assert q == pytest.approx(340 / 3) and not ok and "agree the baseline" in rule


def test_settle_by_hand():
    shared = Contract(type="shared_savings", tariff_cny_per_unit=0.8, contractor_share=0.6)
    items, per = settle(shared, np.array([100.0, -20.0, 50.0]), low90_total=10.0, actual_total=1000, reporting_days=90)
    assert items["payment_cny"] == pytest.approx(130 * 0.8 * 0.6)
    assert per.tolist() == pytest.approx([48.0, -9.6, 24.0])
    items, _ = settle(shared, np.array([100.0]), low90_total=-5.0, actual_total=1000, reporting_days=90)
    assert items["payment_cny"] == 0.0 and "not significant" in items["payment_basis"]

    guaranteed = Contract(type="guaranteed_savings", tariff_cny_per_unit=0.5, guaranteed_quantity=1000,
                          fee_cny=300, excess_share=0.5)
    items, _ = settle(guaranteed, np.array([400.0, 400.0]), low90_total=700, actual_total=5000, reporting_days=60)
    assert items["shortfall_quantity"] == 200 and items["shortfall_cny"] == 100
    assert items["payment_cny"] == pytest.approx(300 - 100)
    items, _ = settle(guaranteed, np.array([700.0, 700.0]), low90_total=1300, actual_total=5000, reporting_days=60)
    assert items["guarantee_met"] and items["payment_cny"] == pytest.approx(300 + 400 * 0.5 * 0.5)

    trustee = Contract(type="energy_cost_trusteeship", tariff_cny_per_unit=1.0)
    items, _ = settle(trustee, np.array([10.0]), low90_total=0, actual_total=9000, reporting_days=73,
                      adjustments_total=50, trusteeship_annual=36500)
    assert items["payment_cny"] == pytest.approx(36500 * 73 / 365 + 50)
    assert items["contractor_margin_cny"] == pytest.approx(7300 + 50 - 9000)
