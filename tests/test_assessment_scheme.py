"""The assessment's scheme, rules and arithmetic on frames: config problems with line and
field, stricter key-user rules, review periods, metering completeness, grades, the plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.quality import open_quality_alerts
from civicwatt.sample import write_sample
from core.registry import load_registry
from core.schemas.quotas import CRITERIA, AssessmentScheme, KeyUsers, Plan, PlanBase, PlanTargets
from models.api import indicators_from_frames, load_factors
from models.completeness import institution_month_completeness
from quotas.assessment import AssessmentInputs, combine, grades, institution_rules, plan_for, review_periods
from quotas.config import QuotaConfig, load_quotas, validate_quotas_file

TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("sample")
    write_sample(d)
    return d, load_registry(d / "civicwatt.yaml")


def test_sample_file_carries_the_documented_scheme(sample):
    d, registry = sample
    q = load_quotas(d / "quotas.yaml", registry)
    assert q.assessment == AssessmentScheme()  # the sample writes out the defaults
    assert q.key_users.threshold_tce == 1500 and q.key_users.rules == KeyUsers().rules
    assert q.plan.base_year == 2020 and q.plan.targets == PlanTargets()
    assert [b.region for b in q.plan.base_values] == ["hebei", "sjz", "bd", "ts"]  # the sample's own (test_demo_plan)
    assert [g.name for g in q.assessment.grades] == ["优秀", "良好", "合格", "不合格"]


BAD = """\
basis: equivalent
assessment:
  weights: {targets: 0, quota: 0, submissions: 0, data_quality: 0, yoy: 0}
  quota_points: {guide: 0.5, baseline: 0.8}
  yoy: {full_at: 0.05, zero_at: -0.05}
  rules: {metering_completeness: 1.5, revieww: monthly}
  grades:
    - {name: A, min_score: 80}
    - {name: B, min_score: 90}
  veto: [everything]
key_users:
  threshold_tce: -1
plan:
  base_year: 2025
  target_year: 2020
  targets: {kgce_per_m2: -1.5, renewable_share: 2}
  base_values:
    - {region: nowhere, kgce_per_m2: 15}
    - {region: sjz, kgce_per_m2: 15}
    - {region: sjz, kgce_per_person: 200}
"""


def test_every_scheme_problem_with_line_and_field(sample, tmp_path):
    _, registry = sample
    f = tmp_path / "quotas.yaml"
    f.write_text(BAD, encoding="utf-8")
    problems = {(p.line, p.field): p.message for p in validate_quotas_file(f, registry)}
    assert set(problems) == {
        (3, "assessment.weights"), (4, "assessment.quota_points"), (5, "assessment.yoy"),
        (6, "assessment.rules.metering_completeness"), (6, "assessment.rules.revieww"),
        (7, "assessment.grades"), (10, "assessment.veto[0]"), (12, "key_users.threshold_tce"),
        (15, "plan.target_year"), (16, "plan.targets.kgce_per_m2"), (16, "plan.targets.renewable_share"),
        (18, "plan.base_values[0].region"), (19, "plan.base_values[1].region"), (20, "plan.base_values[2].region")}
    assert problems[(3, "assessment.weights")] == "at least one weight must be positive"
    assert "baseline=0.8" in problems[(4, "assessment.quota_points")]
    assert "full_at (0.05) must be below zero_at (-0.05)" in problems[(5, "assessment.yoy")]
    assert "A 80, B 90" in problems[(7, "assessment.grades")]
    assert problems[(15, "plan.target_year")] == "must be after base_year (2025), not 2020"
    assert problems[(18, "plan.base_values[0].region")] == "unknown region 'nowhere'"
    assert "more than one base entry" in problems[(20, "plan.base_values[2].region")]
    assert "known: review, metering_completeness" in problems[(6, "assessment.rules.revieww")]


def test_key_user_rules_are_never_laxer(sample, tmp_path):
    _, registry = sample
    f = tmp_path / "quotas.yaml"
    f.write_text("assessment:\n  rules: {review: monthly, metering_completeness: 0.97}\nkey_users:\n  rules:\n"
                 "    review: quarterly\n    max_estimated_share: 0.02\n    max_open_quality_alerts: 5\n"
                 "  threshold_tce: 800\n", encoding="utf-8")
    problems = {(p.line, p.field): p.message for p in validate_quotas_file(f, registry)}
    assert set(problems) == {(5, "key_users.rules.review"), (7, "key_users.rules.max_open_quality_alerts")}
    assert "laxer than assessment.rules.review (monthly)" in problems[(5, "key_users.rules.review")]
    # not written: the stricter of the general rule and the key users' default applies
    f.write_text("assessment:\n  rules: {metering_completeness: 0.97, max_estimated_share: 0.2}\n"
                 "key_users: {threshold_tce: 800, rules: {max_estimated_share: 0.02}}\n", encoding="utf-8")
    q = load_quotas(f, registry)
    assert (q.key_users.rules.review, q.key_users.rules.metering_completeness,
            q.key_users.rules.max_estimated_share, q.key_users.rules.max_open_quality_alerts) == (
        "monthly", 0.97, 0.02, 0)


def test_institution_month_completeness_counts_meter_and_bill_days():
    """Two months: X has two meters, Y one billed energy (heat) and no meter."""
    start, end = pd.Timestamp("2025-01-01", tz=TZ), pd.Timestamp("2025-03-01", tz=TZ)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    daily = pd.concat([
        pd.DataFrame({"meter_id": "X-E", "day": days, "share": 1.0}),
        # X-W: complete in January except 3 days under 90 %, silent (no row) for all of February
        pd.DataFrame({"meter_id": "X-W", "day": days[:31], "share": [0.5, 0.89, 0.2] + [0.95] * 28}),
    ], ignore_index=True)
    meters = pd.DataFrame({"meter_id": ["X-E", "X-W"], "institution_id": "X"})
    billed = pd.DataFrame({"institution_id": ["Y"], "energy": ["heat"]})
    # Y's heat bill covers 10 - 31 January and all of February (a second bill, overlapping by a day)
    bill_days = pd.DataFrame({"institution_id": "Y", "energy": "heat",
                              "period_start": pd.date_range("2025-01-10", "2025-02-28", tz=TZ).append(
                                  pd.DatetimeIndex([pd.Timestamp("2025-02-01", tz=TZ)]))})
    got = institution_month_completeness(daily, meters, billed, bill_days, start, end).set_index(
        ["institution_id", "month"])
    jan, feb = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-02-01")
    assert got.loc[("X", jan), ["days", "expected", "complete"]].tolist() == [31, 62, 31 + 28]
    assert got.loc[("X", feb), ["expected", "complete"]].tolist() == [56, 28]
    assert got.loc[("Y", jan), ["expected", "complete"]].tolist() == [31, 22]
    assert got.loc[("Y", feb), "completeness"] == 1.0


def _rules_for(key: bool, config: QuotaConfig) -> pd.DataFrame:
    cur = pd.DataFrame({"institution_id": ["K", "N"], "has_data": True,
                        "tce": [config.key_users.threshold_tce + (0 if key else -1), 1.0]})
    return institution_rules(cur, config)


def test_key_users_are_reviewed_monthly_and_held_to_higher_completeness():
    config = QuotaConfig()
    rules = _rules_for(True, config)
    assert rules["key_user"].tolist() == [True, False]  # at the threshold (10000 tce by default) is a key user
    assert rules["review"].tolist() == ["monthly", "quarterly"]
    months = pd.DataFrame({
        "institution_id": np.repeat(["K", "N"], 12), "month": list(pd.date_range("2025-01-01", periods=12, freq="MS")) * 2,
        # January 92 %: under the key users' 95 %, over the general 90 %; March 80 %; the rest complete
        "expected": 100, "complete": [92, 100, 80] + [100] * 9 + [92, 100, 80] + [100] * 9})
    months["completeness"] = months["complete"] / months["expected"]
    p = review_periods(months, rules, 2025).set_index(["institution_id", "period"])
    assert p.loc["K"]["on_time"].sum() == 10 and list(p.loc["K"].index[~p.loc["K"]["on_time"]]) == [
        "2025-01", "2025-03"]
    # quarterly: Q1 = (92 + 100 + 80) / 300 = 90.7 % >= 90 %: on time; four quarters
    assert p.loc[("N", "2025Q1"), "completeness"] == pytest.approx(272 / 300)
    assert p.loc["N"]["on_time"].tolist() == [True, True, True, True]
    # a month with no row had nothing complete
    p = review_periods(months[months["month"] != pd.Timestamp("2025-12-01")], rules, 2025).set_index(
        ["institution_id", "period"])
    assert not p.loc[("K", "2025-12"), "on_time"] and p.loc[("N", "2025Q4"), "completeness"] == pytest.approx(200 / 200)


def test_grades_bands_and_veto():
    config = QuotaConfig()
    score = np.array([100, 90, 89.999, 80, 60, 59.9, 0, np.nan, 95])
    veto = np.array([False] * 8 + [True])
    assert grades(score, veto, config).tolist() == ["优秀", "优秀", "良好", "良好", "合格", "不合格", "不合格", "",
                                                    "不合格"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=5, max_size=5),
       st.lists(st.floats(0, 50), min_size=5, max_size=5))
def test_score_is_the_weighted_mean_of_the_criteria_that_apply(fractions, weights):
    scheme = AssessmentScheme.model_validate({"weights": dict(zip(CRITERIA, [w + 0.5 for w in weights],
                                                                  strict=True))})
    config = QuotaConfig(assessment=scheme)
    f = pd.DataFrame([[np.nan if x is None else x for x in fractions]], columns=list(CRITERIA))
    got = combine(f, config).iloc[0]
    w = np.array([getattr(scheme.weights, c) for c in CRITERIA])
    x = f.iloc[0].to_numpy(float)
    ok = np.isfinite(x)
    if not ok.any():
        assert np.isnan(got["score"]) and got["max_points"] == 0
        return
    assert got["max_points"] == pytest.approx(w[ok].sum())
    assert got["score"] == pytest.approx(100 * (w[ok] * x[ok]).sum() / w[ok].sum())
    assert 0 <= got["score"] <= 100 + 1e-9
    for n, c in enumerate(CRITERIA):
        assert np.isnan(got[f"pts_{c}"]) == (not ok[n])


def _ind(rows: list[tuple[str, str, float, float]], year: int) -> pd.DataFrame:
    """Indicators of institutions (id, region, electricity kWh, PV kWh) with 1000 m2 and 10 people each."""
    inst = pd.DataFrame({"institution_id": [r[0] for r in rows], "region": [r[1] for r in rows],
                         "category": "government", "floor_area_m2": 1000.0, "occupants": 10})
    use = pd.DataFrame({"institution_id": [r[0] for r in rows] * 2, "energy": ["electricity"] * len(rows) + [
        "pv"] * len(rows), "period_start": pd.Timestamp(f"{year}-01-01", tz=TZ),
        "quantity": [r[2] for r in rows] + [r[3] for r in rows]})
    return indicators_from_frames(use, inst, load_factors())


def _months(ids: list[str], year: int, ok: bool = True) -> pd.DataFrame:
    return pd.DataFrame({"institution_id": np.repeat(ids, 12),
                         "month": list(pd.date_range(f"{year}-01-01", periods=12, freq="MS")) * len(ids),
                         "expected": 10, "complete": 10 if ok else 0, "completeness": 1.0 if ok else 0.0})


def test_plan_indicators_against_published_and_stored_base_values():
    e = load_factors().coal_kgce_per_unit("electricity")
    cur = _ind([("A", "r1", 90_000, 10_000), ("B", "r1", 100_000, 0), ("C", "r2", 50_000, 0)], 2023)
    base = _ind([("A", "r1", 100_000, 0), ("B", "r1", 100_000, 0), ("C", "r2", 60_000, 0)], 2020)
    levels = pd.DataFrame({"institution_id": ["A", "A", "B", "C"], "indicator": ["kgce_per_m2", "water", "kgce_per_m2",
                                                                                   "kgce_per_m2"],
                           "level": ["baseline", "advanced", "constraint", "guide"], "constraint": [1, np.nan, 1, 1]})
    plan = Plan(base_year=2020, target_year=2025, targets=PlanTargets(renewable_share=0.1, baseline_share=0.5),
                base_values=(PlanBase(region="r1", kgce_per_m2=10.0),))
    inputs = AssessmentInputs(year=2023, current=cur, previous=cur.iloc[:0], targets=pd.DataFrame(), levels=levels,
                              months=_months(["A", "B"], 2023).pipe(
                                  lambda m: pd.concat([m, _months(["C"], 2023, ok=False)])),
                              green_kwh=pd.Series({"B": 20_000.0}), base=base,
                              base_months=_months(["A", "B", "C"], 2020), regions={"r1": None, "r2": None})
    members = pd.DataFrame({"scope": ["r1", "r1", "r2", "all", "all", "all"],
                            "institution_id": ["A", "B", "C", "A", "B", "C"]})
    p = plan_for(inputs, QuotaConfig(plan=plan), members).set_index(["scope", "indicator"])
    # renewable share of r1: (PV 10,000 + green 20,000) / (purchased 190,000 + PV 10,000)
    assert p.loc[("r1", "renewable_share"), "value"] == pytest.approx(30_000 / 200_000)
    assert p.loc[("r1", "renewable_share"), "progress"] == pytest.approx(0.15 / 0.1)
    assert bool(p.loc[("r1", "renewable_share"), "on_track"])
    # at or below baseline: A (its two-level water standard left out), not B; C alone in r2
    assert p.loc[("r1", "baseline_share"), "value"] == 0.5 and p.loc[("all", "baseline_share"), "value"] == 2 / 3
    # r1 against its published base of 10 kgce/m2 (all its institutions with data)
    r1 = p.loc[("r1", "kgce_per_m2")]
    value = 190_000 * e / 2000
    assert (r1["value"], r1["base_value"], r1["base_source"]) == (pytest.approx(value), 10.0, "published")
    assert r1["change"] == pytest.approx(value / 10 - 1) and r1["due"] == pytest.approx(-0.05 * 3 / 5)
    assert r1["progress"] == pytest.approx((value / 10 - 1) / -0.05)
    assert bool(r1["on_track"]) == (value / 10 - 1 <= -0.03)
    # 'all' against the stored 2020: like for like over A and B (C's 2023 is incomplete)
    a = p.loc[("all", "kgce_per_m2")]
    assert (a["base_source"], a["institutions"]) == ("data", 2)
    assert a["change"] == pytest.approx(190_000 / 200_000 - 1) and bool(a["on_track"])  # -5 % <= -3 % due
    # r2 has no published base and C is not complete in both years: no base value
    assert p.loc[("r2", "kgce_per_m2"), "reason"] == "no_base_value"
    assert np.isnan(p.loc[("r2", "kgce_per_m2"), "change"])


def test_open_quality_alerts_counts_open_data_alerts_of_the_year():
    alerts = [
        {"rule": "meter_offline", "institution_id": "A", "status": "open", "first_seen": "2025-12-31T23:00:00+08:00"},
        {"rule": "data_completeness", "institution_id": "A", "status": "open", "first_seen": "2025-03-01T00:00:00Z"},
        {"rule": "data_completeness", "institution_id": "A", "status": "resolved", "first_seen": "2025-03-01"},
        {"rule": "meter_offline", "institution_id": "A", "status": "open", "first_seen": "2026-01-01T00:30:00+08:00"},
        {"rule": "step_change", "institution_id": "B", "status": "open", "first_seen": "2025-05-01T00:00:00+08:00"},
        {"rule": "submeter_imbalance", "institution_id": "B", "first_seen": "2025-05-01T00:00:00+08:00"},
        {"rule": "projected_breach", "institution_id": None, "scope": "region:x", "first_seen": "2025-05-01"},
    ]
    got = open_quality_alerts(alerts, 2025, TZ).set_index("institution_id")["open_quality_alerts"]
    assert got.to_dict() == {"A": 2, "B": 1}
    assert open_quality_alerts([], 2025).empty
