"""`civicwatt assess`: scores, grades, key energy users and the notice of a small portfolio, computed by hand.

The portfolio is the ledger world (tests/support_ledger_world.py): five institutions
with daily readings from 2023 (2023 at 80 % of 2024's use), G1's monthly gasoline bills,
G3's meters silent from 6 to 19 March 2024, H1's meter never read. The quota file adds
an institution target for G1 (total missed, intensity met) and S1 (met), and makes
institutions of 100 tce or more key energy users (G1: monthly review, 95 %
completeness, no open data-quality alert). The outbox holds data-quality alerts for G1
(one) and G2 (three), an alert of another kind and one first seen after the year.
"""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from alerts.outbox import Outbox
from alerts.record import Alert
from civicwatt.cli import main
from models.api import load_factors
from tests.support_ledger_world import DAILY, GASOLINE_L_PER_MONTH, QUOTAS, open_world

YEAR = 2024
DAYS, DAYS_BEFORE = 366, 365  # 2024 is a leap year
HEATING_DAYS = 31 + 29 + 15 + 16 + 31  # 1 Jan - 15 Mar and 15 Nov - 31 Dec 2024, inclusive
G1_TCE_LIMIT = 140.0
EXTRA = f"""\
  - {{id: g1-{YEAR}, year: {YEAR}, institution: G1, energy_tce: {G1_TCE_LIMIT}, kgce_per_m2: 15}}
  - {{id: s1-{YEAR}, year: {YEAR}, institution: S1, water_m3: 40000}}
"""
KEY_USERS = "key_users:\n  threshold_tce: 100\n"


def _alert(rule: str, inst: str, n: int, first_seen: str) -> Alert:
    return Alert.new(rule, "warning", f"meter:{inst}-E{n}", "samples", "2024-06-01", message_zh="告警",
                     message_en="alert", first_seen=first_seen, institution_id=inst)


@pytest.fixture(scope="module")
def assessed(tmp_path_factory):
    base = tmp_path_factory.mktemp("assess")
    world = open_world(base)
    world.store.close()
    text = QUOTAS.replace("targets:\n", "targets:\n" + EXTRA) + KEY_USERS
    world.quotas_path.write_text(text, encoding="utf-8")
    Outbox(base / "outbox").submit([
        _alert("meter_offline", "G1", 0, "2024-05-02T08:00:00+08:00"),
        *[_alert("data_completeness", "G2", n, "2024-06-01T08:00:00+08:00") for n in range(3)],
        _alert("step_change", "S1", 0, "2024-07-01T08:00:00+08:00"),  # not a data-quality rule
        _alert("data_completeness", "S1", 1, "2025-02-01T08:00:00+08:00"),  # after the year
    ])
    out, notice, html = base / "assessment.xlsx", base / "notice.xlsx", base / "notice.html"
    args = [*world.args, "--outbox", str(base / "outbox")]
    assert main(["assess", "--year", str(YEAR), "--out", str(out), "--notice", str(notice), *args]) == 0
    assert main(["assess", "--year", str(YEAR), "--out", str(base / "again.xlsx"), "--notice", str(html), *args]) == 0
    return base, out, notice, html


def sheet(path, name: str) -> pd.DataFrame:
    """A sheet read back: the key row (after the notes), the Chinese labels skipped."""
    rows = list(openpyxl.load_workbook(path, read_only=True)[name].iter_rows(values_only=True))
    head = next(n for n, r in enumerate(rows) if r and r[0] in ("rank", "institution_id", "region", "scope", "key"))
    return pd.DataFrame(rows[head + 2:], columns=rows[head])


def figures() -> dict[str, float]:
    """The hand computation of what the quota levels and year-on-year changes depend on."""
    f = load_factors()
    e, h, g, ng = (f.coal_kgce_per_unit(x) for x in ("electricity", "heat", "gasoline", "natural_gas"))
    gasoline = 12 * GASOLINE_L_PER_MONTH * f.density_kg_per_l("gasoline") * g  # kgce of G1's vehicle fuel
    g1 = DAYS * (DAILY["G1-E0"] * e + DAILY["G1-H0"] * h) + gasoline
    g1_before = DAYS_BEFORE * 0.8 * (DAILY["G1-E0"] * e + DAILY["G1-H0"] * h) + gasoline
    g2 = DAYS * (DAILY["G2-E0"] * e + DAILY["G2-G0"] * ng)
    return {
        "g1_tce": g1 / 1000, "g1_tce_before": g1_before / 1000,
        "g1_per_person": g1 / 450, "g1_nonheating": (g1 - HEATING_DAYS * DAILY["G1-H0"] * h - gasoline) / 12000,
        "g1_water": DAYS * DAILY["G1-W0"] / 450, "g1_water_before": DAYS_BEFORE * 0.8 * DAILY["G1-W0"] / 450,
        "g1_yoy": g1 / g1_before - 1,
        "g2_per_person": g2 / 200, "g2_nonheating": (g2 - HEATING_DAYS * DAILY["G2-G0"] * ng) / 8000,
        "g3_per_person": DAYS * DAILY["G3-E0"] * e / 120, "g3_nonheating": DAYS * DAILY["G3-E0"] * e / 5000,
        "g3_water": DAYS * DAILY["G3-W0"] / 120,
        "s1_per_m2": DAYS * DAILY["S1-E0"] * e / 30000, "s1_water": DAYS * DAILY["S1-W0"],
        "leap_yoy": DAYS / (DAYS_BEFORE * 0.8) - 1,  # meters only: the same daily use, 80 % the year before
        "tce_all": (g1 + g2 + DAYS * DAILY["G3-E0"] * e + DAYS * DAILY["S1-E0"] * e) / 1000,
    }


def test_the_hand_computed_figures_fall_in_these_bands():
    """The levels the scores below assume (government standard: non-heating {12, 9, 7}
    kgce/m2, per person {400, 300, 200} kgce, water {general 20, advanced 12} m3/person;
    school: {10, 6, 4} kgce/m2)."""
    x = figures()
    assert x["g1_tce"] > G1_TCE_LIMIT and x["g1_tce"] * 1000 / 12000 <= 15  # total missed, intensity met
    assert 300 < x["g1_per_person"] <= 400 and 9 < x["g1_nonheating"] <= 12 and x["g1_water"] > 20
    assert 200 < x["g2_per_person"] <= 300 and x["g2_nonheating"] <= 7  # baseline, guide; no water: 0 = advanced
    assert x["g3_per_person"] <= 200 and x["g3_nonheating"] <= 7 and 12 < x["g3_water"] <= 20  # guide, guide, general
    assert x["s1_per_m2"] <= 4 and x["s1_water"] <= 40000  # guide; its water target met
    assert x["tce_all"] <= 500  # the province target
    assert x["g1_yoy"] > 0.03 and x["leap_yoy"] > 0.03  # every comparison: no yoy points


def test_scores_and_grades_computed_by_hand(assessed):
    _, out, _, _ = assessed
    res = sheet(out, "考核结果").set_index("institution_id")
    # weights: targets 30, quota 25, submissions 20, data quality 15, yoy 10; quota points guide 1,
    # baseline 0.8, constraint 0.5, advanced 1, general 0.6, exceeds 0
    expected = {
        # G1 (key user): 1 of 2 targets; constraint, constraint, exceeds; 12 of 12 months; estimated 0 but
        # one open alert (key users: none allowed); yoy +24.5 % -> 0
        "G1": (30 * 0.5 + 25 * (0.5 + 0.5 + 0) / 3 + 20 * 12 / 12 + 15 * 0.5 + 10 * 0) / 100 * 100,
        # G2: no target; baseline, guide, advanced; 4 of 4 quarters; three open alerts (> 2); yoy +25.3 %
        "G2": (25 * (0.8 + 1 + 1) / 3 + 20 * 4 / 4 + 15 * 0.5 + 10 * 0) / 70 * 100,
        # G3: no target; guide, guide, general; 3 of 4 quarters (Q1 at 84.6 %); no yoy (2024 incomplete)
        "G3": (25 * (1 + 1 + 0.6) / 3 + 20 * 3 / 4 + 15 * 1) / 60 * 100,
        # S1: its target met; guide; 4 of 4; clean (its other alerts do not count); yoy +25.3 %
        "S1": (30 * 1 + 25 * 1 + 20 * 1 + 15 * 1 + 10 * 0) / 100 * 100,
        # H1: no data: no standard, 0 of 4 quarters, no estimated share to judge (fails), no alerts
        "H1": (20 * 0 + 15 * 0.5) / 35 * 100,
    }
    for inst, score in expected.items():
        assert res.at[inst, "score"] == pytest.approx(score, abs=1e-9), inst
    # S1 scores exactly 90: the 优秀 band starts there; G1 is vetoed (its total target missed)
    assert res["grade"].to_dict() == {"S1": "优秀", "G3": "良好", "G2": "合格", "G1": "不合格", "H1": "不合格"}
    assert res.at["G1", "veto"] == "target_total" and pd.isna(res.at["S1", "veto"])
    assert list(res.index) == ["S1", "G3", "G2", "G1", "H1"] and list(res["rank"]) == [1, 2, 3, 4, 5]
    assert (res.at["G1", "pts_targets"], res.at["G1", "max_points"]) == (15.0, 100.0)
    assert pd.isna(res.at["G2", "pts_targets"]) and res.at["G3", "max_points"] == 60
    # key energy users: G1 alone, held to monthly review
    assert res["key_user"].to_dict() == {"S1": "否", "G3": "否", "G2": "否", "G1": "是", "H1": "否"}
    assert (res.at["G1", "review"], res.at["G1", "periods"], res.at["G1", "metering_completeness"]) == (
        "monthly", 12, 0.95)
    assert (res.at["G3", "review"], res.at["G3", "periods"]) == ("quarterly", 4)
    assert res.at["G3", "late_detail"] == f"{YEAR}Q1 {100 * (182 - 28) / 182:.1f}%"  # 2 units x 14 silent days
    x = figures()
    assert res.at["G1", "yoy_change"] == pytest.approx(x["g1_yoy"], rel=1e-9)
    assert res.at["S1", "yoy_change"] == pytest.approx(x["leap_yoy"], rel=1e-9)
    assert pd.isna(res.at["G3", "yoy_change"]) and res.at["G3", "yoy_reason"] == "本年数据不完整"
    keys = sheet(out, "重点用能单位")
    assert list(keys["institution_id"]) == ["G1"] and keys["tce"].iloc[0] == pytest.approx(x["g1_tce"], rel=1e-9)


def test_regions_scored_from_their_members(assessed):
    _, out, _, _ = assessed
    reg = sheet(out, "地区考核").set_index("region")
    # members' fractions: quota G1 1/3, G2 2.8/3, G3 2.6/3, S1 1; data quality G1 .5, G2 .5, G3 1, S1 1, H1 .5
    quota = {"sjz": (1 / 3 + 2.6 / 3 + 1) / 3, "bd": 2.8 / 3, "hebei": (1 / 3 + 2.8 / 3 + 2.6 / 3 + 1) / 4}
    on_time = {"sjz": (12 + 3 + 4) / 20, "bd": (4 + 0) / 8, "hebei": (12 + 4 + 3 + 4 + 0) / 28}
    quality = {"sjz": (0.5 + 1 + 1) / 3, "bd": (0.5 + 0.5) / 2, "hebei": (0.5 + 0.5 + 1 + 1 + 0.5) / 5}
    targets = {"sjz": None, "bd": None, "hebei": 1.0}  # the province's 500 tce target is met
    for r in ("sjz", "bd", "hebei"):
        got = 25 * quota[r] + 20 * on_time[r] + 15 * quality[r] + 10 * 0 + (30 * targets[r] if targets[r] else 0)
        top = 70 + (30 if targets[r] else 0)
        assert reg.at[r, "score"] == pytest.approx(got / top * 100, abs=1e-9), r
    assert reg["grade"].to_dict() == {"hebei": "合格", "sjz": "合格", "bd": "不合格"}
    assert (reg.at["sjz", "rank"], reg.at["bd", "rank"]) == (1, 2)  # among hebei's cities
    # like-for-like year on year: sjz over G1 and S1 (G3's 2024 is incomplete)
    assert reg.at["sjz", "yoy_institutions"] == 2 and reg.at["bd", "yoy_institutions"] == 1


def test_notice_lists_each_failure_with_its_figures(assessed):
    _, _, notice, html = assessed
    n = sheet(notice, "通报")
    got = list(zip(n["region"], n["institution_id"], n["reason_zh"], n["indicator"], strict=True))
    assert got == [("bd", "G2", "数据质量不达标", "open_quality_alerts"),
                   ("bd", "H1", "数据报送不及时", "late_periods"),
                   ("bd", "H1", "数据质量不达标", "estimated_share"),
                   ("sjz", "G1", "未完成双控目标", "energy_tce"),
                   ("sjz", "G1", "超过定额约束值", "water_m3_per_person"),
                   ("sjz", "G1", "数据质量不达标", "open_quality_alerts"),
                   ("sjz", "G3", "数据报送不及时", "late_periods")]
    x = figures()
    row = n.set_index(["institution_id", "indicator"])
    target = row.loc[("G1", "energy_tce")]
    assert target["actual"] == pytest.approx(x["g1_tce"], rel=1e-9) and target["limit"] == G1_TCE_LIMIT
    assert target["excess"] == pytest.approx(x["g1_tce"] / G1_TCE_LIMIT - 1, rel=1e-9)
    assert target["previous"] == pytest.approx(x["g1_tce_before"], rel=1e-9)
    assert target["change"] == pytest.approx(x["g1_yoy"], rel=1e-9)
    water = row.loc[("G1", "water_m3_per_person")]
    assert (water["actual"], water["limit"]) == (pytest.approx(x["g1_water"]), 20)
    assert water["previous"] == pytest.approx(x["g1_water_before"]) and water["change"] == pytest.approx(
        x["leap_yoy"])
    assert (row.loc[("G1", "open_quality_alerts"), "actual"], row.loc[("G1", "open_quality_alerts"), "limit"]) == (1, 0)
    assert (row.loc[("G2", "open_quality_alerts"), "actual"], row.loc[("G2", "open_quality_alerts"), "limit"]) == (3, 2)
    late = row.loc[("G3", "late_periods")]
    assert (late["actual"], late["previous"], late["detail"]) == (1, 0, f"{YEAR}Q1 84.6%")
    assert row.loc[("H1", "late_periods"), "actual"] == 4 and row.loc[("H1", "late_periods"), "previous"] == 4
    summary = sheet(notice, "地区汇总").set_index("region")
    assert (summary.at["sjz", "entries"], summary.at["sjz", "institutions"]) == (4, 2)
    assert (summary.at["bd", "n_late"], summary.at["bd", "n_data_quality"]) == (1, 2)
    page = html.read_text(encoding="utf-8")
    assert "@media print" in page and page.count('<section class="region">') == 2
    assert page.index("保定市") < page.index("石家庄市") and "G1" in page and "S1" not in page


def test_plan_and_scheme_sheets(assessed):
    _, out, _, _ = assessed
    plan = sheet(out, "规划指标")
    sjz = plan[plan["scope"] == "sjz"].set_index("indicator")
    # sjz: G1 is above its baseline (constraint levels); G3's three-level indicators are at guide (its
    # two-level water standard has no baseline and does not count), S1's at guide: 2 of 3
    assert sjz.at["baseline_share", "value"] == pytest.approx(2 / 3)
    assert sjz.at["renewable_share", "value"] == 0  # no PV, no green power
    assert sjz.at["kgce_per_m2", "reason"] == "无基期值" and sjz.at["kgce_per_m2", "target"] == -0.05
    scheme = sheet(out, "评分办法").set_index("key")["value"]
    assert scheme["grades"] == "优秀 ≥ 90; 良好 ≥ 80; 合格 ≥ 60; 不合格 ≥ 0"
    assert scheme["key_users.rules.review"] == "monthly"


def test_outputs_are_reproducible_and_bad_years_refused(assessed, capsys):
    base, out, _, _ = assessed
    assert out.read_bytes() == (base / "again.xlsx").read_bytes()
    assert main(["assess", "--year", "2099", "--out", str(base / "x.xlsx"), "--registry",
                 str(base / "civicwatt.yaml")]) == 1
    assert "--year: 2099 is not a complete year" in capsys.readouterr().err
    assert main(["assess", "--year", str(YEAR), "--out", str(base / "x.csv"), "--registry",
                 str(base / "civicwatt.yaml")]) == 1
    assert not (base / "x.xlsx").exists() and not (base / "x.csv").exists()


def test_plan_against_a_stored_base_year_like_for_like(tmp_path):
    """Base year 2023 from the store: sjz compares G1 and S1 only (G3's 2024 is incomplete);
    the overview's cheaper plan inputs give the assessment's rows."""
    from dataclasses import replace

    from core.schemas.quotas import Plan, PlanTargets
    from quotas.assessment import plan_for, plan_members
    from quotas.config import load_quotas
    from reports.assessment import build_assessment, plan_inputs

    world = open_world(tmp_path)
    config = replace(load_quotas(world.quotas_path, world.registry),
                     plan=Plan(base_year=2023, target_year=2025, targets=PlanTargets(kgce_per_m2=-0.04)))
    with world.store:
        full = build_assessment(world.store, world.registry, config, YEAR).assessment.plan
        cheap = plan_inputs(world.store, world.registry, config, YEAR)
    rows = full.set_index(["scope", "indicator"])
    x = figures()
    f = load_factors()
    s1, s1_before = (n * DAILY["S1-E0"] * f.coal_kgce_per_unit("electricity") for n in (DAYS, DAYS_BEFORE * 0.8))
    change = (x["g1_tce"] * 1000 + s1) / (x["g1_tce_before"] * 1000 + s1_before) - 1  # same floor areas both years
    sjz = rows.loc[("sjz", "kgce_per_m2")]
    assert (sjz["base_source"], sjz["institutions"]) == ("data", 2)
    assert sjz["change"] == pytest.approx(change, rel=1e-9)
    assert sjz["due"] == pytest.approx(-0.04 / 2) and not sjz["on_track"]  # +25 % against -2 % due
    assert sjz["progress"] == pytest.approx(change / -0.04, rel=1e-9)
    again = plan_for(cheap, config, plan_members(cheap.current, world.registry))
    pd.testing.assert_frame_equal(again.reset_index(drop=True), full.reset_index(drop=True))
