"""Acceptance: synthetic projects with known true savings, written into a real
embedded store, verified through `civicwatt mv` (issue 6)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from civicwatt.cli import main
from core.registry import load_registry
from tests.test_mv_synthetic import REGISTRY_YAML, Case, make_case, samples_for, true_use, write_temps
from verification import load_project, verify, verify_file

BASELINE = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
REPORTING = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


def _project(**over: str) -> str:
    fields = {
        "id": "emc-001",
        "institution": "HB-0001",
        "energy": "electricity",
        "granularity": "day",
        "baseline": "{start: 2024-01-01, end: 2024-12-31}",
        "reporting": "{start: 2025-01-01, end: 2025-12-31}",
        "temperature": "temps.csv",
        "contract": "{type: shared_savings, tariff_cny_per_unit: 0.75, contractor_share: 0.7}",
    }
    fields.update(over)
    return "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None)


def _setup(tmp_path: Path, store, case: Case, project_text: str, per_day: int = 1) -> tuple[Path, Path]:
    """Registry, temperatures, project file; E0 (main) gets the case's use, the hvac
    sub-meter E1 and the water meter get other data that must not count."""
    (tmp_path / "civicwatt.yaml").write_text(REGISTRY_YAML, encoding="utf-8")
    write_temps(tmp_path / "temps.csv", case.temps)
    store.write_samples(samples_for("HB-0001-E0", case.daily, per_day=per_day))
    other = case.daily.assign(use_kwh=case.daily["use_kwh"] * 0.3 + 50)
    store.write_samples(samples_for("HB-0001-E1", other))
    store.write_samples(samples_for("HB-0001-W0", other.assign(use_kwh=20.0)))
    project = tmp_path / "project.yaml"
    project.write_text(project_text, encoding="utf-8")
    return project, tmp_path / "report.xlsx"


def _run(tmp_path: Path, project: Path, out: Path) -> int:
    return main(["mv", "--registry", str(tmp_path / "civicwatt.yaml"), "--store", f"embedded:{tmp_path / 'store'}",
                 "--project", str(project), "--out", str(out)])


def _sheet(path: Path, name: str) -> list[tuple]:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return list(wb[name].iter_rows(values_only=True))
    finally:
        wb.close()


def _summary(path: Path, sheet: str = "summary") -> dict:
    """key -> value (a read-only reader drops trailing empty cells: those are None)."""
    return {row[0]: (row[1] if len(row) > 1 else None) for row in _sheet(path, sheet)[1:]}


def test_retrofit_savings_verified_through_the_cli(tmp_path, embedded_store, capsys):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=7)
    project, out = _setup(tmp_path, embedded_store, case, _project())
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    assert s["avoided_low68"] > s["avoided_low90"] and s["avoided_high68"] < s["avoided_high90"]
    assert s["savings_significant"] is True and s["verdict"].startswith("savings verified")
    assert s["savings_verified"] is True and not s["not_verified_because"] and s["fsu68"] < 0.5
    assert s["avoided_fraction"] == pytest.approx(0.15, abs=0.01)
    assert s["model"].startswith("HDD+CDD + day type")
    assert abs(s["heating_balance_point_c"] - 15) <= 1 and abs(s["cooling_balance_point_c"] - 22) <= 1
    assert s["meets_ashrae14"] is True and s["cvrmse"] < 0.08 and s["n"] == 366 and s["p"] == 6
    rep = case.daily[case.daily["date"] >= pd.Timestamp(REPORTING[0])]
    assert s["reporting_actual"] == pytest.approx(rep["use_kwh"].sum())  # the main meter only
    assert s["payment_cny"] == pytest.approx(s["avoided"] * 0.75 * 0.7)
    assert s["option"] == "C" and s["unit"] == "kWh"
    for key in ("model", "n", "p", "r2", "cvrmse", "nmbe", "meets_ashrae14", "adjusted_baseline", "reporting_actual",
                "avoided", "avoided_fraction", "avoided_low68", "avoided_high68", "avoided_low90", "avoided_high90",
                "normalized_savings", "payment_cny"):
        assert key in s

    periods = _sheet(out, "periods")
    assert periods[0][:4] == ("date", "actual", "baseline", "adjusted_baseline")
    assert len(periods) == 1 + 365
    assert sum(r[1] for r in periods[1:]) == pytest.approx(s["reporting_actual"])
    assert sum(r[3] - r[1] for r in periods[1:]) == pytest.approx(s["avoided"])
    wb = openpyxl.load_workbook(out)
    assert len(wb["chart"]._charts) == 1
    assert {"inputs", "baseline_data", "drivers", "models", "project_file"} <= set(wb.sheetnames)
    inputs = _summary(out, "inputs")
    assert inputs["meters"] == "HB-0001-E0"
    assert any(k.startswith("sha256") and k.endswith("temps.csv") for k in inputs)
    assert "savings verified" in capsys.readouterr().out


def test_recompute_from_the_report(tmp_path, embedded_store):
    """A third party recomputes the fit from the report's own sheets."""
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=11)
    project, out = _setup(tmp_path, embedded_store, case, _project())
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    inputs = _summary(out, "inputs")
    rows = _sheet(out, "baseline_data")
    head = rows[0]
    b = pd.DataFrame(rows[1:], columns=head)
    X = np.column_stack([np.ones(len(b)), b["working"], b["hdd"], b["cdd"]])
    coef = [inputs["coefficient days"], inputs["coefficient working_days"], inputs["coefficient hdd"],
            inputs["coefficient cdd"]]
    resid = b["actual"].to_numpy(float) - X @ np.array(coef)
    cv = np.sqrt((resid**2).sum() / (s["n"] - s["p"])) / b["actual"].mean()
    assert cv == pytest.approx(s["cvrmse"], rel=1e-9)


def test_non_routine_adjustment(tmp_path, embedded_store):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=21, nonroutine=(dt.date(2025, 7, 1), 400.0))
    text = _project(adjustments="\n  - {start: 2025-07-01, end: 2025-12-31, quantity_per_day: 400, reason: new wing}")
    project, out = _setup(tmp_path, embedded_store, case, text)
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["non_routine_adjustments"] == pytest.approx(400 * 184)
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    # Without the adjustment the new wing's load hides savings: the truth falls outside.
    project.write_text(_project(), encoding="utf-8")
    assert _run(tmp_path, project, out) == 0
    s2 = _summary(out)
    assert s2["avoided"] == pytest.approx(s["avoided"] - 400 * 184)
    assert not s2["avoided_low90"] <= case.true_savings_kwh <= s2["avoided_high90"]


def test_project_without_savings_is_not_reported_as_saving(tmp_path, embedded_store):
    case = make_case(BASELINE, REPORTING, effect=0.0, seed=5)
    project, out = _setup(tmp_path, embedded_store, case, _project())
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["avoided_low90"] <= 0.0 <= s["avoided_high90"]
    assert s["savings_significant"] is False and s["savings_verified"] is False
    assert s["verdict"].startswith("not verified: ") and "no significant savings" in s["verdict"]
    assert s["payment_cny"] == 0.0


def test_monthly_billing_data_normalized_savings_and_guarantee(tmp_path, embedded_store):
    base = (dt.date(2023, 1, 1), dt.date(2024, 12, 31))
    case = make_case(base, REPORTING, effect=0.15, seed=31)
    normal = case.temps[case.temps["date"].dt.year == 2023]  # a "normal" year of other weather
    write_temps(tmp_path / "normal.csv", normal)
    text = _project(granularity="month", baseline="{start: 2023-01-01, end: 2024-12-31}", normal_year="normal.csv",
                    contract="{type: guaranteed_savings, tariff_cny_per_unit: 0.8, guaranteed_quantity: 250000, "
                             "fee_cny: 100000}")
    project, out = _setup(tmp_path, embedded_store, case, text)
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["n"] == 24 and s["m"] == 12 and s["granularity"] == "month"
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    working = (normal["date"].dt.day_of_week < 5).to_numpy(float)
    normal_truth = 0.15 * true_use(normal["temp_c"].to_numpy(float), working).sum()
    assert s["normalized_savings"] == pytest.approx(normal_truth, rel=0.05)
    assert s["normalized_low90"] <= normal_truth <= s["normalized_high90"]
    assert s["normalized_low90"] < s["normalized_low68"] < s["normalized_savings"] < s["normalized_high68"]
    assert s["normalized_fsu68"] == pytest.approx(s["normalized_uncertainty68"] / s["normalized_savings"])
    assert s["shortfall_quantity"] == pytest.approx(250000 - s["avoided"])
    assert s["payment_cny"] == pytest.approx(100000 - (250000 - s["avoided"]) * 0.8)
    assert len(_sheet(out, "periods")) == 13 and len(_sheet(out, "normal_year")) == 13


def test_hourly_data_option_b(tmp_path, embedded_store):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=7)
    text = _project(institution=None, meters="[HB-0001-E0]", granularity="hour")
    project, out = _setup(tmp_path, embedded_store, case, text, per_day=24)
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["option"] == "B" and s["n"] == 366 * 24 and s["m"] == 365 * 24
    assert s["rho"] > 0.5  # hours of a day share its noise: the correction must widen the interval
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    assert s["meets_ashrae14"] is True


def test_trusteeship_baseline_from_stored_years(tmp_path, embedded_store):
    base = (dt.date(2021, 1, 1), dt.date(2024, 12, 31))
    case = make_case(base, REPORTING, effect=0.1, seed=41)
    year = case.daily["date"].dt.year
    scale = year.map({2021: 1.0, 2022: 1.12, 2023: 1.06, 2024: 1.0, 2025: 1.0}).to_numpy()
    case.daily["use_kwh"] *= scale  # use fell every year 2022-2024
    text = _project(baseline="{start: 2024-01-01, end: 2024-12-31}",
                    contract="{type: energy_cost_trusteeship, tariff_cny_per_unit: 0.7}")
    project, out = _setup(tmp_path, embedded_store, case, text)
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    latest = case.daily.loc[year == 2024, "use_kwh"].sum()
    assert "latest year 2024" in s["trusteeship_rule"]
    assert s["payment_cny"] == pytest.approx(latest * 0.7, rel=1e-6)


@pytest.mark.parametrize("case_name", ["reporting_before_baseline", "missing_temperatures", "too_little_baseline",
                                       "daily_baseline_of_90_days", "offline_meter", "data_end_early",
                                       "hourly_from_daily_readings"])
def test_bad_input_gives_a_clear_message_and_no_report(tmp_path, embedded_store, capsys, case_name):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=3)
    text, expected = _project(), ""
    if case_name == "reporting_before_baseline":
        text = _project(reporting="{start: 2024-10-01, end: 2025-06-30}")
        expected = "project.yaml:6: reporting.start: reporting period starts (2024-10-01) before the baseline"
    elif case_name == "missing_temperatures":
        case.temps = case.temps[~case.temps["date"].between("2024-05-10", "2024-05-20")]
        expected = "temps.csv:0: temp_c: no temperature for 2024-05-10..2024-05-20 (11 days) of the baseline"
    elif case_name == "too_little_baseline":
        case.daily = case.daily[case.daily["date"] >= pd.Timestamp("2024-05-01")].reset_index(drop=True)
        text = _project(granularity="month")
        expected = "baseline.start: baseline has 8 complete month(s) of data; monthly models need at least 12"
    elif case_name == "daily_baseline_of_90_days":
        text = _project(baseline="{start: 2024-10-03, end: 2024-12-31}")
        expected = ("project.yaml:5: baseline.start: baseline spans 90 days; daily models need at least 365 days "
                    "(CalTRACK 2.0: a full year, so that every season is in the model), 90% of them with measured data")
    elif case_name == "offline_meter":
        offline = case.daily["date"].between("2024-03-01", "2024-04-30")
        case.daily.loc[offline, "use_kwh"] = 0.0  # no readings: drop the samples below
    elif case_name == "hourly_from_daily_readings":
        text = _project(granularity="hour")
        expected = "granularity: meter HB-0001-E0 reads every 24 h; hourly models need a reading at least every 1 h"
    elif case_name == "data_end_early":
        case.daily = case.daily[case.daily["date"] < pd.Timestamp("2025-09-01")].reset_index(drop=True)
        expected = "missing: 2025-09-01..2025-12-31 (122 days); the last day with data is 2025-08-31"
    project, out = _setup(tmp_path, embedded_store, case, text)
    if case_name == "offline_meter":
        keep = ~embedded_store.read_samples(meter_ids=["HB-0001-E0"])["time"].between(
            pd.Timestamp("2024-03-01", tz="Asia/Shanghai"), pd.Timestamp("2024-04-30", tz="Asia/Shanghai"))
        samples = embedded_store.read_samples(meter_ids=["HB-0001-E0"])[keep]
        embedded_store.close()
        import shutil

        shutil.rmtree(tmp_path / "store")
        from storage import open_store

        fresh = open_store(f"embedded:{tmp_path / 'store'}")
        fresh.write_samples(samples)
        fresh.close()
        expected = "measured data cover 83% of the baseline days (at least 90% needed); missing: 2024-02-29..2024-04-30"
    assert _run(tmp_path, project, out) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    # the data falling short is said so, one line per problem; a wrong project file is a config problem
    insufficient = case_name != "reporting_before_baseline"
    assert all(line.startswith("insufficient data: ") for line in err.splitlines()) == insufficient
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_baseline_outside_ashrae14_is_not_verified_nor_paid(tmp_path, embedded_store, capsys):
    """Daily use so erratic that the baseline's CV(RMSE) exceeds the daily limit (25 %): the
    savings are reported, "not verified" and why, and nothing is paid."""
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=8, noise_sd=0.30)
    project, out = _setup(tmp_path, embedded_store, case, _project())
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["cvrmse"] > 0.25 == s["cvrmse_max"] and s["meets_ashrae14"] is False
    assert s["savings_verified"] is False and s["payment_cny"] == 0.0
    assert s["verdict"].startswith("not verified: the baseline model does not meet ASHRAE Guideline 14 for daily "
                                   f"data: CV(RMSE) {s['cvrmse']:.1%} (at most 25%)")
    assert s["not_verified_because"] in s["verdict"]
    assert s["payment_basis"].startswith("no payment: savings not verified (the baseline model does not meet")
    assert "warning: the baseline model does not meet ASHRAE Guideline 14" in capsys.readouterr().err


def test_billing_periods_from_stored_bills(tmp_path, embedded_store):
    """Utility bills read on the 20th, in MWh, for an institution without meters of that energy."""
    base, rep = (dt.date(2023, 12, 20), dt.date(2024, 12, 19)), (dt.date(2024, 12, 20), dt.date(2025, 12, 19))
    case = make_case(base, rep, effect=0.15, seed=51)
    starts = pd.date_range("2023-12-01", "2025-11-01", freq="MS") + pd.Timedelta(days=19)
    ends = starts[1:].append(pd.DatetimeIndex(["2025-12-20"])) - pd.Timedelta(days=1)
    period = np.searchsorted(starts, case.daily["date"], side="right") - 1
    mwh = np.bincount(period, weights=case.daily["use_kwh"].to_numpy()) / 1000
    embedded_store.write_bills(pd.DataFrame({
        "institution_id": "HB-0001", "energy": "electricity", "period_start": starts.date, "period_end": ends.date,
        "quantity": mwh, "unit": "MWh", "cost_cny": mwh * 750}))
    text = _project(granularity="bill", baseline="{start: 2023-12-20, end: 2024-12-19}",
                    reporting="{start: 2024-12-20, end: 2025-12-19}")
    project, out = _setup(tmp_path, embedded_store, case, text)
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["n"] == 12 and s["m"] == 12 and s["cvrmse_max"] == 0.15
    assert s["reporting_actual"] == pytest.approx(mwh[12:].sum() * 1000)
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    periods = _sheet(out, "periods")
    assert periods[1][0] == dt.datetime(2024, 12, 20)


def test_calendar_holidays_and_occupancy_drive_the_model(tmp_path, embedded_store):
    """A calendar with holidays on weekdays and an occupancy count: the model takes the
    day types from it, and the savings hold."""
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=61)
    dates = case.daily["date"]
    holidays = dates.dt.strftime("%m-%d").isin(["01-01", "05-01", "05-02", "05-03", "10-01", "10-02", "10-03",
                                                "10-04", "10-05", "10-06", "10-07"]).to_numpy()
    working = (dates.dt.day_of_week < 5).to_numpy() & ~holidays
    occupancy = np.where(working, 450, 30)
    # rebuild use with the calendar's working days (holidays use the weekend level)
    rng = np.random.default_rng(62)
    cf = true_use(case.temps["temp_c"].to_numpy(float), working.astype(float)) * (1 + rng.normal(0, 0.05, len(dates)))
    in_rep = (dates >= pd.Timestamp(REPORTING[0])).to_numpy()
    case.daily["use_kwh"] = np.where(in_rep, 0.85 * cf, cf)
    truth = 0.15 * cf[in_rep].sum()
    pd.DataFrame({"date": dates.dt.strftime("%Y-%m-%d"), "working": working.astype(int),
                  "occupancy": occupancy}).to_csv(tmp_path / "cal.csv", index=False)
    project, out = _setup(tmp_path, embedded_store, case, _project(calendar="cal.csv"))
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert "day type" in s["model"] or "occupancy" in s["model"]
    assert s["cvrmse"] < 0.07
    assert s["avoided_low90"] <= truth <= s["avoided_high90"]
    drivers = pd.DataFrame(_sheet(out, "drivers")[1:], columns=_sheet(out, "drivers")[0])
    assert drivers.loc[drivers["date"] == dt.datetime(2024, 10, 2), "working"].item() == 0


def test_verification_on_both_store_backends(store, tmp_path):
    """The same project verifies the same on the embedded store and on a real influxd."""
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=7)
    store.write_samples(samples_for("HB-0001-E0", case.daily, per_day=4))
    write_temps(tmp_path / "temps.csv", case.temps)
    p = tmp_path / "p.yaml"
    p.write_text(_project(institution=None, meters="[HB-0001-E0]", granularity="month"), encoding="utf-8")
    s = verify(load_project(p), store).summary
    assert json.loads(json.dumps(s)) == s  # plain values: ready for a web page or an API
    rep = case.daily[case.daily["date"] >= pd.Timestamp(REPORTING[0])]
    assert s["reporting_actual"] == pytest.approx(rep["use_kwh"].sum(), rel=1e-9)
    assert s["n"] == 12 and s["m"] == 12
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]


@pytest.mark.parametrize(("unit", "overlap", "expected"), [("kJ", False, "in unit(s) kJ cannot be converted to kWh"),
                                                           ("kWh", True, "bills overlap: 2024-01-01..2024-02-03 and 2024-02-01..2024-03-03")])
def test_bad_bills_are_refused(tmp_path, embedded_store, capsys, unit, overlap, expected):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=3)
    starts = pd.date_range("2024-01-01", "2025-12-01", freq="MS")
    ends = starts + pd.offsets.MonthEnd(0) + (pd.Timedelta(days=3) if overlap else pd.Timedelta(0))
    embedded_store.write_bills(pd.DataFrame({"institution_id": "HB-0001", "energy": "electricity",
                                             "period_start": starts.date, "period_end": ends.date,
                                             "quantity": 1000.0, "unit": unit, "cost_cny": 750.0}))
    project, out = _setup(tmp_path, embedded_store, case, _project(granularity="bill"))
    assert _run(tmp_path, project, out) == 1
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_main_meter_without_data_is_named(tmp_path, embedded_store, capsys):
    case = make_case(BASELINE, REPORTING, effect=0.15, seed=3)
    project, out = _setup(tmp_path, embedded_store, case, _project())
    registry = REGISTRY_YAML + "  - {id: HB-0001-E9, institution: HB-0001, energy: electricity}\n"
    (tmp_path / "civicwatt.yaml").write_text(registry, encoding="utf-8")
    assert verify_file(project, load_registry(tmp_path / "civicwatt.yaml"), embedded_store)[1] == [
        f"{project}:2: institution: meter(s) in scope without any data from 2024-01-01 to 2025-12-31: HB-0001-E9"]
    assert _run(tmp_path, project, out) == 1
    err = capsys.readouterr().err
    assert "project.yaml:2: institution: meter(s) in scope without any data from 2024-01-01 to 2025-12-31: HB-0001-E9" in err
    assert not out.exists()


def test_water_saving_contract_recovers_known_savings(tmp_path, embedded_store):
    """合同节水管理: a water project on the main water meter (m3) is verified as an
    electricity one: 20 % saved on a building whose water use rises with summer heat and
    working days; the true saving lies in the 90 % interval and the report is in m3.
    (One seed: the interval's coverage over many projects is bench_mv's to show.)"""
    from tests.test_mv_synthetic import Building

    water = Building(base_kwh=40.0, heat_slope=0.0, cool_slope=1.5, tb_heat_c=10.0, tb_cool_c=20.0,
                     work_extra_kwh=25.0)  # m3/day, m3/day/K (the generator's names say kWh)
    case = make_case(BASELINE, REPORTING, effect=0.20, seed=7, building=water)
    (tmp_path / "civicwatt.yaml").write_text(REGISTRY_YAML, encoding="utf-8")
    write_temps(tmp_path / "temps.csv", case.temps)
    embedded_store.write_samples(samples_for("HB-0001-W0", case.daily))
    embedded_store.write_samples(samples_for("HB-0001-E0", case.daily.assign(use_kwh=3000.0)))  # not water
    project = tmp_path / "project.yaml"
    project.write_text(_project(id="cws-001", energy="water",
                                contract="{type: shared_savings, tariff_cny_per_unit: 5.8, contractor_share: 0.6}"),
                       encoding="utf-8")
    out = tmp_path / "report.xlsx"
    assert _run(tmp_path, project, out) == 0
    s = _summary(out)
    assert s["unit"] == "m3"
    assert s["avoided_low90"] <= case.true_savings_kwh <= s["avoided_high90"]
    assert s["avoided_fraction"] == pytest.approx(0.20, abs=0.02)
    rep = case.daily[case.daily["date"] >= pd.Timestamp(REPORTING[0])]
    assert s["reporting_actual"] == pytest.approx(rep["use_kwh"].sum())  # the water meter only
    assert s["savings_verified"] is True and s["meets_ashrae14"] is True
    assert s["payment_cny"] == pytest.approx(s["avoided"] * 5.8 * 0.6)
