"""The year-end assessment (节能考核): scores and grades, key energy users, the notice's entries, the plan's indicators.

Pure, vectorised arithmetic on frames (`AssessmentInputs`); `reports.assessment.
build_assessment` reads them from the store, the caller hands in the open
data-quality alerts (`alerts.quality.open_quality_alerts`), so nothing here knows
about alerts or storage. The scheme is the quota file's `assessment`, `key_users` and
`plan` sections (`core.schemas.quotas`; documented in docs/models.md, "Assessment").

Per institution, five criteria, each a fraction of its weight (NaN: not applicable,
its weight is left out and the score is out of the weights that apply, scaled to 100):

* targets: the share of its own dual-control target indicators (total and intensity)
  met over the whole year (`quotas.evaluate.evaluate_targets` as of 1 January after);
* quota: the mean of the points its quota levels earn (`quota_points`), over the
  standard indicators that apply and have a value;
* submissions: the share of its review periods (months, or quarters with quarterly
  review) on time: a period is on time when its completeness (`Submissions.months`,
  the units complete over the units due) reaches the rule's `metering_completeness`;
* data quality: half for an estimated share (the larger of energy's and water's) within
  `max_estimated_share`, half for at most `max_open_quality_alerts` open data-quality
  alerts first seen by the end of the year;
* yoy: the change of `yoy.indicator` against the year before (all points at or below
  `full_at`, none at or above `zero_at`), only where both years are complete (every month
  at the general rule's `metering_completeness`); blank with the reason otherwise.

Grade: the first band whose `min_score` the score reaches; a veto (`veto`: a total or
intensity target missed, a quota indicator above its constraint value) gives the lowest
grade whatever the score. Key energy users (tce of the year >= `key_users.threshold_tce`)
are held to `key_users.rules` (monthly review, higher completeness, ...).

Regions (each with its whole subtree): targets from the region's own targets (region and
region + category scopes), submissions as on-time periods over all periods of the
members, quota and data quality as the mean of the members' fractions, yoy from the
ratio of sums over the members complete in both years.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.registry import RegionTree, region_parents
from core.schemas.quotas import CRITERIA, PLAN_INTENSITIES, THREE_LEVELS, stricter_rules
from models.api import aggregate, yoy_change
from models.compare import comparable_change
from models.completeness import complete_months
from models.indicators import in_every_ancestor
from quotas.config import QuotaConfig
from quotas.evaluate import TOTAL_INDICATORS

#: Target indicators -> the indicator frame's column of the same figure.
TARGET_COLUMN = {"energy_tce": "tce", "water_m3": "water_m3", "co2_t": "t_co2", "kgce_per_m2": "kgce_per_m2",
                 "kgce_per_person": "kgce_per_person", "water_m3_per_person": "water_m3_per_person",
                 "kgco2_per_m2": "kgco2_per_m2"}
#: Units of the figures an entry or a plan row can hold.
UNITS = {"energy_tce": "tce", "tce": "tce", "water_m3": "m3", "co2_t": "tCO2", "kgce_per_m2": "kgce/m2",
         "kgce_per_person": "kgce/person", "water_m3_per_person": "m3/person", "kgco2_per_m2": "kgCO2/m2",
         "heating_kgce_per_m2": "kgce/m2", "nonheating_kgce_per_m2": "kgce/m2", "late_periods": "periods",
         "estimated_share": "share", "open_quality_alerts": "alerts", "renewable_share": "share",
         "baseline_share": "share"}
MET_STATUS = ("ok", "warning")  # a complete year's target status that counts as met
#: Why a year-on-year change is blank.
YOY_REASONS = {"current_incomplete": "本年数据不完整", "previous_incomplete": "上年数据不完整",
               "no_previous": "上年无数据"}
#: The notice's reasons (通报事由).
NOTICE_REASONS = {"target_missed": "未完成双控目标", "constraint_exceeded": "超过定额约束值",
                  "late": "数据报送不及时", "data_quality": "数据质量不达标"}
BASIS_OF = {"published": "发布值", "data": "数据计算"}


def no_alerts() -> pd.DataFrame:
    """An empty open-alert count frame (institution_id, open_quality_alerts)."""
    return pd.DataFrame({"institution_id": pd.Series(dtype=object), "open_quality_alerts": pd.Series(dtype=int)})


@dataclass(frozen=True)
class AssessmentInputs:
    """What the assessment of `year` is computed from (all frames one row per institution
    unless said): `current`, `previous` the indicator frames (models.api.indicators) of
    the year and the year before; `targets` evaluate_targets of the year as of its end
    (every scope); `levels` quota_levels(current); `months` Submissions.months of the year
    and the year before (one frame); `quality_alerts` institution_id, open_quality_alerts;
    `green_kwh` green-power purchases of the year per institution (kWh); `base`,
    `base_months` the plan's base year (None when the store has none); `regions` the
    region tree; `region_names` id -> name."""

    year: int
    current: pd.DataFrame
    previous: pd.DataFrame
    targets: pd.DataFrame
    levels: pd.DataFrame
    months: pd.DataFrame
    quality_alerts: pd.DataFrame = field(default_factory=no_alerts)
    green_kwh: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    base: pd.DataFrame | None = None
    base_months: pd.DataFrame | None = None
    regions: RegionTree = None
    region_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """The assessment's tables (columns in each function's docstring)."""

    year: int
    institutions: pd.DataFrame  # `score_institutions`
    regions: pd.DataFrame  # `score_regions`
    periods: pd.DataFrame  # `review_periods` of the year
    notice: pd.DataFrame  # `notice_entries`
    plan: pd.DataFrame  # `plan_indicators` per region and for all
    key_users: pd.DataFrame  # the key energy users' rows of `institutions`


# -- rules and periods ---------------------------------------------------------------------------
def institution_rules(current: pd.DataFrame, config: QuotaConfig) -> pd.DataFrame:
    """Per institution: key_user (tce of the year >= the threshold) and the rules it is
    held to: review, metering_completeness, max_estimated_share, max_open_quality_alerts."""
    key = current["has_data"].to_numpy(bool) & (current["tce"].to_numpy(float) >= config.key_users.threshold_tce)
    general = config.assessment.rules
    strict = stricter_rules(general, config.key_users.rules)  # never laxer, however the config was built
    out = pd.DataFrame({"institution_id": current["institution_id"].to_numpy(object), "key_user": key})
    for name in type(general).model_fields:
        out[name] = np.where(key, getattr(strict, name), getattr(general, name))
    out["metering_completeness"] = out["metering_completeness"].astype(float)
    out["max_estimated_share"] = out["max_estimated_share"].astype(float)
    out["max_open_quality_alerts"] = out["max_open_quality_alerts"].astype(int)
    return out


def review_periods(months: pd.DataFrame, rules: pd.DataFrame, year: int) -> pd.DataFrame:
    """Every review period of `year` of every institution of `rules`: institution_id,
    period ('YYYY-MM' monthly, 'YYYYQn' quarterly), expected, complete, completeness
    (NaN where nothing was due), on_time (completeness >= the institution's
    metering_completeness). A month without a row in `months` had nothing complete."""
    m = months[pd.DatetimeIndex(months["month"]).year == year] if len(months) else months
    grid = pd.DataFrame({"institution_id": np.repeat(rules["institution_id"].to_numpy(object), 12),
                         "m": np.tile(np.arange(1, 13), len(rules))})
    if len(m):
        got = pd.DataFrame({"institution_id": m["institution_id"].to_numpy(object),
                            "m": pd.DatetimeIndex(m["month"]).month, "expected": m["expected"].to_numpy(float),
                            "complete": m["complete"].to_numpy(float)})
        grid = grid.merge(got, on=["institution_id", "m"], how="left")
    else:
        grid = grid.assign(expected=np.nan, complete=np.nan)
    grid = grid.merge(rules[["institution_id", "review", "metering_completeness"]], on="institution_id")
    monthly = (grid["review"] == "monthly").to_numpy()
    m0 = grid["m"].to_numpy() - 1
    month_label = np.array([f"{year}-{k:02d}" for k in range(1, 13)], dtype=object)
    quarter_label = np.array([f"{year}Q{k}" for k in range(1, 5)], dtype=object)
    grid["period"] = np.where(monthly, month_label[m0], quarter_label[m0 // 3])
    g = grid.fillna({"expected": 0.0, "complete": 0.0}).groupby(["institution_id", "period"], sort=True).agg(
        expected=("expected", "sum"), complete=("complete", "sum"), threshold=("metering_completeness", "first"))
    g = g.reset_index()
    e = g["expected"].to_numpy(float)
    g["completeness"] = np.divide(g["complete"].to_numpy(float), e, out=np.full(len(g), np.nan), where=e > 0)
    g["on_time"] = np.nan_to_num(g["completeness"].to_numpy(float), nan=-1.0) >= g["threshold"].to_numpy(float)
    return g.drop(columns="threshold")


def complete_years(months: pd.DataFrame, institution_ids, years, threshold: float) -> pd.DataFrame:
    """Per institution (index) and year (column): every month of the year reaches
    `threshold` completeness (the general rule, `models.completeness.complete_months`):
    the year can be compared."""
    ids = pd.Index(list(institution_ids), name="institution_id")
    return pd.DataFrame({y: complete_months(months, ids, pd.date_range(f"{y}-01-01", periods=12, freq="MS"), threshold)
                         for y in years}, index=ids, columns=list(years))


# -- institutions --------------------------------------------------------------------------------
def _targets_by_institution(targets: pd.DataFrame) -> pd.DataFrame:
    t = targets[targets["institution_id"].notna()] if len(targets) else targets
    return _target_counts(t, "institution_id")


def _target_counts(t: pd.DataFrame, key: str) -> pd.DataFrame:
    cols = ["targets_n", "targets_met", "target_total_missed", "target_intensity_missed"]
    if t.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name=key))
    met = t["status"].isin(MET_STATUS).to_numpy()
    total = t["indicator"].isin(TOTAL_INDICATORS).to_numpy()
    w = pd.DataFrame({key: t[key].to_numpy(object), "n": 1, "met": met, "tm": total & ~met, "im": ~total & ~met})
    g = w.groupby(key).agg(targets_n=("n", "sum"), targets_met=("met", "sum"), target_total_missed=("tm", "any"),
                           target_intensity_missed=("im", "any"))
    return g


def _quota_by_institution(levels: pd.DataFrame, config: QuotaConfig) -> pd.DataFrame:
    cols = ["quota_fraction", "quota_indicators", "constraint_exceeded", "quota_levels"]
    if levels.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="institution_id"))
    lv = levels[levels["level"] != "no_data"]
    pts = lv["level"].map(config.assessment.quota_points.model_dump()).to_numpy(float)
    w = pd.DataFrame({"institution_id": lv["institution_id"].to_numpy(object), "pts": pts,
                      "exceeds": (lv["level"] == "exceeds").to_numpy(),
                      "text": (lv["indicator"].astype(str) + ": " + lv["level_zh"].astype(str)).to_numpy(object)})
    return w.groupby("institution_id").agg(quota_fraction=("pts", "mean"), quota_indicators=("pts", "size"),
                                           constraint_exceeded=("exceeds", "any"), quota_levels=("text", "; ".join))


def _periods_by_institution(periods: pd.DataFrame) -> pd.DataFrame:
    late = periods[~periods["on_time"].to_numpy(bool)]
    text = late["period"].astype(str) + " " + (late["completeness"].fillna(0) * 100).round(1).astype(str) + "%"
    g = periods.groupby("institution_id").agg(periods=("on_time", "size"), periods_on_time=("on_time", "sum"))
    g["late_periods"] = g["periods"] - g["periods_on_time"]
    g["late_detail"] = text.groupby(late["institution_id"]).agg("; ".join).reindex(g.index).fillna("")
    g["worst_completeness"] = periods.groupby("institution_id")["completeness"].min()
    return g


def _ramp(change: np.ndarray, full_at: float, zero_at: float) -> np.ndarray:
    """1 at or below `full_at`, 0 at or above `zero_at`, linear between (NaN stays NaN)."""
    return np.clip((zero_at - change) / (zero_at - full_at), 0.0, 1.0)


def grades(score: np.ndarray, veto: np.ndarray, config: QuotaConfig) -> np.ndarray:
    """The grade of each score (the first band reached; '' for no score), the lowest grade where `veto`."""
    bands = config.assessment.grades
    s = np.asarray(score, dtype=float)
    ok = np.isfinite(s)
    names = np.select([ok & (s >= g.min_score) for g in bands], [g.name for g in bands], "")
    return np.where(ok & np.asarray(veto, bool), bands[-1].name, names).astype(object)


def combine(fractions: pd.DataFrame, config: QuotaConfig) -> pd.DataFrame:
    """Points per criterion (`pts_<criterion>`: weight x fraction, NaN where the criterion
    does not apply), `max_points` (the weights that apply) and `score` (points over
    max_points, scaled to 100; NaN when nothing applies)."""
    w = config.assessment.weights
    out = pd.DataFrame(index=fractions.index)
    pts = np.column_stack([getattr(w, c) * fractions[c].to_numpy(float) for c in CRITERIA])
    weights = np.array([getattr(w, c) for c in CRITERIA], dtype=float)
    applies = np.isfinite(pts) & (weights > 0)
    for n, c in enumerate(CRITERIA):
        out[f"pts_{c}"] = np.where(applies[:, n], pts[:, n], np.nan)
    out["max_points"] = (applies * weights).sum(axis=1)
    got = np.where(applies, pts, 0.0).sum(axis=1)
    out["score"] = np.divide(100.0 * got, out["max_points"].to_numpy(float), out=np.full(len(out), np.nan),
                             where=out["max_points"].to_numpy(float) > 0)
    return out


def _scored(out: pd.DataFrame, f: pd.DataFrame, constraint: pd.Series, config: QuotaConfig) -> pd.DataFrame:
    """`out` (with target_total_missed, target_intensity_missed) plus the fractions
    (`f_<criterion>` from `f`), points, max_points, score, veto (the vetoes that hold, as
    text) and grade; `constraint`: a quota indicator above its constraint value."""
    for c in CRITERIA:
        out[f"f_{c}"] = f[c].to_numpy(float)
    pts = combine(f, config)
    for c in pts.columns:
        out[c] = pts[c].to_numpy(float)
    flags = pd.DataFrame({"target_total": out["target_total_missed"].to_numpy(bool),
                          "target_intensity": out["target_intensity_missed"].to_numpy(bool),
                          "constraint": constraint.to_numpy(bool)})[list(config.assessment.veto)]
    text = np.full(len(out), "", dtype=object)
    for name in flags.columns:  # the (at most three) vetoes of the scheme
        on = flags[name].to_numpy(bool)
        text = np.where(on & (text != ""), text + ", " + name, np.where(on, name, text))
    out["veto"] = text
    out["grade"] = grades(out["score"].to_numpy(float), flags.to_numpy(bool).any(axis=1), config)
    return out


def score_institutions(inputs: AssessmentInputs, config: QuotaConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(institutions, periods): one row per institution of `inputs.current` with
    institution_id, name, region, category, has_data, tce, key_user and its rules
    (review, metering_completeness, max_estimated_share, max_open_quality_alerts), the
    criteria's figures (targets_n, targets_met, target_total_missed,
    target_intensity_missed; quota_indicators, quota_levels, constraint_exceeded;
    periods, periods_on_time, late_periods, late_detail; estimated_share (the larger of
    energy's and water's), open_quality_alerts; yoy_indicator, yoy_current, yoy_previous,
    yoy_change, yoy_reason), the fractions (`f_<criterion>`), points (`pts_<criterion>`),
    max_points, score, veto, grade, rank (1 = best score; ties share a rank); and the
    review periods of the year (`review_periods`)."""
    scheme = config.assessment
    cur = inputs.current.reset_index(drop=True)
    rules = institution_rules(cur, config)
    periods = review_periods(inputs.months, rules, inputs.year)
    ids = cur["institution_id"]
    out = cur[["institution_id", "name", "region", "category", "has_data", "tce"]].copy()
    out = out.merge(rules, on="institution_id")
    t = _targets_by_institution(inputs.targets)
    q = _quota_by_institution(inputs.levels, config)
    p = _periods_by_institution(periods)
    for frame in (t, q, p):
        for col in frame.columns:
            out[col] = ids.map(frame[col]).to_numpy()
    out["targets_n"] = out["targets_n"].fillna(0).astype(int)
    out["targets_met"] = out["targets_met"].fillna(0).astype(int)
    out["quota_indicators"] = out["quota_indicators"].fillna(0).astype(int)
    for col in ("target_total_missed", "target_intensity_missed", "constraint_exceeded"):
        out[col] = out[col].eq(True)
    out["quota_levels"] = out["quota_levels"].fillna("")
    has = cur["has_data"].to_numpy(bool)
    est = np.fmax(cur["estimated_share"].to_numpy(float), cur["water_estimated_share"].to_numpy(float))
    out["estimated_share"] = np.where(has, est, np.nan)
    alerts = inputs.quality_alerts.set_index("institution_id")["open_quality_alerts"] if len(inputs.quality_alerts) \
        else pd.Series(dtype=int)
    out["open_quality_alerts"] = ids.map(alerts).fillna(0).astype(int).to_numpy()
    # year on year, where both years are complete
    col = scheme.yoy.indicator
    both = complete_years(inputs.months, ids, (inputs.year - 1, inputs.year), scheme.rules.metering_completeness)
    prev = inputs.previous.set_index("institution_id")[col] if len(inputs.previous) else pd.Series(dtype=float)
    cur_v = cur[col].to_numpy(float)
    prev_v = ids.map(prev).to_numpy(float)
    change, reason = comparable_change(cur_v, prev_v, both[inputs.year].reindex(ids).to_numpy(bool),
                                       both[inputs.year - 1].reindex(ids).to_numpy(bool))
    out["yoy_indicator"] = col
    out["yoy_current"] = cur_v
    out["yoy_previous"] = prev_v
    out["yoy_change"] = change
    out["yoy_reason"] = reason
    # fractions, points, score, grade
    rules_est = out["max_estimated_share"].to_numpy(float)
    est_ok = np.nan_to_num(out["estimated_share"].to_numpy(float), nan=np.inf) <= rules_est + 1e-12
    alerts_ok = out["open_quality_alerts"].to_numpy(int) <= out["max_open_quality_alerts"].to_numpy(int)
    n_t = out["targets_n"].to_numpy(float)
    f = pd.DataFrame({
        "targets": np.divide(out["targets_met"].to_numpy(float), n_t, out=np.full(len(out), np.nan), where=n_t > 0),
        "quota": out["quota_fraction"].to_numpy(float),
        "submissions": out["periods_on_time"].to_numpy(float) / out["periods"].to_numpy(float),
        "data_quality": 0.5 * est_ok + 0.5 * alerts_ok,
        "yoy": _ramp(out["yoy_change"].to_numpy(float), scheme.yoy.full_at, scheme.yoy.zero_at),
    })
    out = out.drop(columns="quota_fraction")
    out["estimated_ok"] = est_ok
    out["alerts_ok"] = alerts_ok
    out = _scored(out, f, out["constraint_exceeded"], config)
    out["rank"] = out["score"].rank(ascending=False, method="min").astype("Int64")
    out = out.sort_values(["rank", "institution_id"], kind="stable", na_position="last").reset_index(drop=True)
    return out, periods


# -- regions -------------------------------------------------------------------------------------
def _members(frame: pd.DataFrame, regions: RegionTree) -> pd.DataFrame:
    """`frame` (with a region column) once for its region and each ancestor (`region` = that one)."""
    return in_every_ancestor(frame, regions)


def score_regions(institutions: pd.DataFrame, inputs: AssessmentInputs, config: QuotaConfig) -> pd.DataFrame:
    """One row per region with members (each with its subtree): region, name, parent,
    institutions, key_users, targets_n, targets_met, target_total_missed,
    target_intensity_missed, periods, periods_on_time, institutions_constraint_exceeded,
    yoy_indicator, yoy_current, yoy_previous, yoy_change, yoy_reason, yoy_institutions (the
    members complete in both years), f_/pts_ per criterion, max_points, score, veto, grade,
    rank (among the regions with the same parent)."""
    scheme = config.assessment
    inst = institutions[["institution_id", "region", "key_user", "periods", "periods_on_time", "constraint_exceeded",
                         "f_quota", "f_data_quality"]]
    m = _members(inst, inputs.regions)
    g = m.groupby("region").agg(institutions=("institution_id", "size"), key_users=("key_user", "sum"),
                                periods=("periods", "sum"), periods_on_time=("periods_on_time", "sum"),
                                institutions_constraint_exceeded=("constraint_exceeded", "sum"),
                                quota=("f_quota", "mean"), data_quality=("f_data_quality", "mean"))
    t = inputs.targets
    rt = t[t["institution_id"].isna()] if len(t) else t
    counts = _target_counts(rt, "region")
    out = g.reset_index()
    parents = region_parents(inputs.regions)
    out["name"] = out["region"].map(inputs.region_names).fillna(out["region"])
    out["parent"] = out["region"].map(parents)
    for col in counts.columns:
        out[col] = out["region"].map(counts[col]).to_numpy()
    out["targets_n"] = out["targets_n"].fillna(0).astype(int)
    out["targets_met"] = out["targets_met"].fillna(0).astype(int)
    out["target_total_missed"] = out["target_total_missed"].eq(True)
    out["target_intensity_missed"] = out["target_intensity_missed"].eq(True)
    # like-for-like year on year: the members complete in both years, ratio of sums
    col = scheme.yoy.indicator
    both = institutions.loc[institutions["yoy_reason"].isin(["", "no_previous"]), "institution_id"]
    cur = inputs.current[inputs.current["institution_id"].isin(both)]
    prev = inputs.previous[inputs.previous["institution_id"].isin(both)]
    if len(cur):
        a = aggregate(cur, ["region"], regions=inputs.regions).set_index("region")
        b = aggregate(prev, ["region"], regions=inputs.regions).set_index("region") if len(prev) else a.iloc[:0]
        out["yoy_institutions"] = out["region"].map(a["institutions"]).fillna(0).astype(int)
        out["yoy_current"] = out["region"].map(a[col]).to_numpy(float)
        out["yoy_previous"] = out["region"].map(b[col]).to_numpy(float) if len(b) else np.nan
    else:
        out["yoy_institutions"] = 0
        out["yoy_current"] = np.nan
        out["yoy_previous"] = np.nan
    change = yoy_change(out["yoy_current"], out["yoy_previous"])
    reason = np.select([out["yoy_institutions"].to_numpy() == 0, ~np.isfinite(change)],
                       ["current_incomplete", "no_previous"], "").astype(object)
    out["yoy_indicator"] = col
    out["yoy_change"] = change
    out["yoy_reason"] = reason
    n_t = out["targets_n"].to_numpy(float)
    per = out["periods"].to_numpy(float)
    f = pd.DataFrame({
        "targets": np.divide(out["targets_met"].to_numpy(float), n_t, out=np.full(len(out), np.nan), where=n_t > 0),
        "quota": out["quota"].to_numpy(float),
        "submissions": np.divide(out["periods_on_time"].to_numpy(float), per, out=np.full(len(out), np.nan),
                                 where=per > 0),
        "data_quality": out["data_quality"].to_numpy(float),
        "yoy": _ramp(out["yoy_change"].to_numpy(float), scheme.yoy.full_at, scheme.yoy.zero_at),
    })
    out = out.drop(columns=["quota", "data_quality"])
    out = _scored(out, f, out["institutions_constraint_exceeded"] > 0, config)
    out["rank"] = out.groupby(out["parent"].fillna(""))["score"].rank(ascending=False, method="min").astype("Int64")
    return out.sort_values(["parent", "rank", "region"], kind="stable", na_position="first").reset_index(drop=True)


# -- the notice (通报) ----------------------------------------------------------------------------
def _lookup(frame: pd.DataFrame, ids: pd.Series, columns: pd.Series) -> np.ndarray:
    """frame.loc[id, column] for each (id, column) pair; NaN where either is missing."""
    if frame.empty:
        return np.full(len(ids), np.nan)
    cols = [c for c in pd.unique(columns) if c in frame]
    long = frame[cols].stack()
    return long.reindex(pd.MultiIndex.from_arrays([ids.to_numpy(object), columns.to_numpy(object)])).to_numpy(float)


NOTICE_COLUMNS = ["region", "region_name", "institution_id", "name", "category", "key_user", "reason", "reason_zh",
                  "indicator", "unit", "actual", "limit", "excess", "previous", "change", "detail"]


def notice_entries(institutions: pd.DataFrame, inputs: AssessmentInputs, config: QuotaConfig) -> pd.DataFrame:
    """The notice's entries: one row per institution, reason and indicator, for every
    institution that missed a dual-control target (`target_missed`), exceeded a quota
    constraint (or general) value (`constraint_exceeded`), had review periods late
    (`late`: periods under its metering_completeness), or whose data quality was
    insufficient (`data_quality`: estimated share or open data-quality alerts over its
    rule). Columns NOTICE_COLUMNS: the figure (`actual`), what it is held to (`limit`),
    `excess` (actual / limit - 1, for targets and constraints), last year's figure of the
    same indicator (`previous`: the year before's value; for `late` its late periods
    under the same rules) and `change` (yoy_change of actual against previous, for
    targets and constraints, where both years are complete), `detail` (the late periods with their completeness).
    Sorted by region, institution, reason."""
    inst = institutions.set_index("institution_id")
    before = inputs.previous[inputs.previous["has_data"].to_numpy(bool)] if len(inputs.previous) else inputs.previous
    prev = before.set_index("institution_id") if len(before) else pd.DataFrame()  # last year's figures, where any
    parts = []
    t = inputs.targets
    if len(t):
        miss = t[t["institution_id"].notna() & ~t["status"].isin(MET_STATUS)]
        prev_v = _lookup(prev, miss["institution_id"], miss["indicator"].map(TARGET_COLUMN))
        parts.append(pd.DataFrame({"institution_id": miss["institution_id"].to_numpy(object),
                                   "reason": "target_missed", "indicator": miss["indicator"].to_numpy(object),
                                   "actual": miss["actual"].to_numpy(float), "limit": miss["limit"].to_numpy(float),
                                   "previous": prev_v, "detail": miss["target_id"].to_numpy(object)}))
    lv = inputs.levels
    if len(lv):
        over = lv[lv["level"] == "exceeds"]
        limit = np.where(over["constraint"].notna(), over["constraint"], over["general"]).astype(float)
        prev_v = _lookup(prev, over["institution_id"], over["indicator"])
        parts.append(pd.DataFrame({"institution_id": over["institution_id"].to_numpy(object),
                                   "reason": "constraint_exceeded", "indicator": over["indicator"].to_numpy(object),
                                   "actual": over["value"].to_numpy(float), "limit": limit, "previous": prev_v,
                                   "detail": over["standard_id"].to_numpy(object)}))
    late = institutions[institutions["late_periods"] > 0]
    if len(late):
        rules = institution_rules(inputs.current, config)
        before = review_periods(inputs.months, rules, inputs.year - 1)
        prev_late = (~before["on_time"]).groupby(before["institution_id"]).sum()
        parts.append(pd.DataFrame({"institution_id": late["institution_id"].to_numpy(object), "reason": "late",
                                   "indicator": "late_periods", "actual": late["late_periods"].to_numpy(float),
                                   "limit": 0.0, "previous": late["institution_id"].map(prev_late).to_numpy(float),
                                   "detail": late["late_detail"].to_numpy(object)}))
    dq = institutions[~institutions["estimated_ok"].to_numpy(bool)]
    if len(dq):
        p = np.fmax(prev["estimated_share"], prev["water_estimated_share"]) if len(prev) else pd.Series(dtype=float)
        parts.append(pd.DataFrame({"institution_id": dq["institution_id"].to_numpy(object), "reason": "data_quality",
                                   "indicator": "estimated_share", "actual": dq["estimated_share"].to_numpy(float),
                                   "limit": dq["max_estimated_share"].to_numpy(float),
                                   "previous": dq["institution_id"].map(p).to_numpy(float),
                                   "detail": np.where(dq["has_data"], "", "无数据 no data")}))
    al = institutions[~institutions["alerts_ok"].to_numpy(bool)]
    if len(al):
        parts.append(pd.DataFrame({"institution_id": al["institution_id"].to_numpy(object), "reason": "data_quality",
                                   "indicator": "open_quality_alerts",
                                   "actual": al["open_quality_alerts"].to_numpy(float),
                                   "limit": al["max_open_quality_alerts"].to_numpy(float), "previous": np.nan,
                                   "detail": ""}))
    if not parts:
        return pd.DataFrame({c: [] for c in NOTICE_COLUMNS})
    e = pd.concat(parts, ignore_index=True)
    iid = e["institution_id"]
    for c in ("region", "name", "category", "key_user"):
        e[c] = iid.map(inst[c]).to_numpy()
    e["region_name"] = e["region"].map(inputs.region_names).fillna(e["region"])
    e["reason_zh"] = e["reason"].map(NOTICE_REASONS)
    e["unit"] = e["indicator"].map(UNITS)
    ratio = e["reason"].isin(["target_missed", "constraint_exceeded"]).to_numpy()
    lim = e["limit"].to_numpy(float)
    e["excess"] = np.where(ratio, np.divide(e["actual"].to_numpy(float), lim, out=np.full(len(e), np.nan),
                                            where=lim > 0) - 1, np.nan)
    # a change against last year only where both years are complete (models.compare)
    both = ~iid.map(inst["yoy_reason"]).isin(["current_incomplete", "previous_incomplete"]).to_numpy()
    e["change"] = np.where(ratio & both, yoy_change(e["actual"], e["previous"]), np.nan)
    order = {r: n for n, r in enumerate(NOTICE_REASONS)}
    e = e.assign(_o=e["reason"].map(order)).sort_values(["region", "institution_id", "_o", "indicator"],
                                                          kind="stable")
    return e[NOTICE_COLUMNS].reset_index(drop=True)


# -- the five-year plan --------------------------------------------------------------------------
PLAN_COLUMNS = ["scope", "indicator", "unit", "year", "value", "institutions", "base_year", "base_value",
                "base_source", "change", "target", "due", "progress", "on_track", "reason"]


def _at_or_below_baseline(levels: pd.DataFrame) -> pd.Series:
    """Per institution with a three-level standard indicator with a value: all of those
    at guide or baseline level (two-level standards have no baseline and are left out)."""
    three = levels[levels["level"].isin([*THREE_LEVELS, "exceeds"]) & levels["constraint"].notna()]
    return three["level"].isin(["guide", "baseline"]).groupby(three["institution_id"]).all()


def plan_indicators(inputs: AssessmentInputs, config: QuotaConfig, members: pd.DataFrame,
                    base_complete: pd.Series | None = None) -> pd.DataFrame:
    """The plan's indicators of `inputs.year` for each scope of `members` (scope,
    institution_id): one row per scope and indicator (PLAN_COLUMNS):

    * renewable_share: (on-site PV generation + green-power purchases) / (purchased
      electricity + PV generation), over the members with data; target: the plan's
      renewable_share, progress = value / target;
    * baseline_share: the share of the members with a three-level standard whose every
      such indicator is at or below its baseline value (基准值); target and progress alike;
    * each plan intensity: the ratio of sums of the year against the base year, `change` =
      yoy_change(value, base_value); the base value is the plan's published one for the
      scope (`base_source` published) or, when the store has the base year, the ratio
      of sums over the members complete in both years (`base_complete`: institution ->
      bool; base_source data; `value` then over the same members); `target` the plan's
      change by the target year, `due` the change due by this year on a straight line
      from the base year, progress = change / target, on_track = change at or below the
      due one (for a reduction target; at or above for an increase).
    `reason` says why a row is empty (no data, no base value, year not after the base)."""
    plan = config.plan
    year = inputs.year
    cur = inputs.current
    green = cur["institution_id"].map(inputs.green_kwh).fillna(0.0).to_numpy(float) if len(inputs.green_kwh) \
        else np.zeros(len(cur))
    baseline = _at_or_below_baseline(inputs.levels) if len(inputs.levels) else pd.Series(dtype=bool)
    w = members.merge(cur.assign(green_kwh=green), on="institution_id")
    has = w["has_data"].to_numpy(bool)
    w = w.assign(pv=np.where(has, w["pv_kwh"], 0.0), elec=np.where(has, w["electricity_kwh"], 0.0),
                 green=np.where(has, w["green_kwh"], 0.0), with_data=has,
                 std=w["institution_id"].isin(baseline.index) & has,
                 at_base=w["institution_id"].map(baseline).fillna(False).astype(bool) & has)
    g = w.groupby("scope").agg(pv=("pv", "sum"), elec=("elec", "sum"), green=("green", "sum"),
                               with_data=("with_data", "sum"), std=("std", "sum"), at_base=("at_base", "sum"))
    scopes = pd.Index(sorted(members["scope"].unique()), name="scope")
    g = g.reindex(scopes).fillna(0)
    total = (g["elec"] + g["pv"]).to_numpy(float)
    rows = []
    shares = {"renewable_share": (np.divide((g["pv"] + g["green"]).to_numpy(float), total,
                                            out=np.full(len(g), np.nan), where=total > 0), g["with_data"]),
              "baseline_share": (np.divide(g["at_base"].to_numpy(float), g["std"].to_numpy(float),
                                           out=np.full(len(g), np.nan), where=g["std"].to_numpy(float) > 0), g["std"])}
    for name, (value, n) in shares.items():
        target = getattr(plan.targets, name)
        progress = value / target if target else np.full(len(g), np.nan)
        rows.append(pd.DataFrame({
            "scope": scopes, "indicator": name, "value": value, "institutions": n.to_numpy(int),
            "base_year": np.nan, "base_value": np.nan, "base_source": "", "change": np.nan,
            "target": target if target is not None else np.nan, "due": np.nan, "progress": progress,
            "on_track": (value >= target) if target is not None else pd.NA,
            "reason": np.where(np.isfinite(value), "", "no_data")}))
    # intensities against the base year
    published = pd.DataFrame([b.model_dump() for b in plan.base_values], columns=["region", *PLAN_INTENSITIES])
    published = published.set_index("region").astype(float)
    ll = None
    if inputs.base is not None and len(inputs.base) and base_complete is not None and year > plan.base_year:
        ll = set(base_complete[base_complete].index)
    cur_all = cur[cur["has_data"].to_numpy(bool)]
    a_all = _scope_sums(cur_all, members)
    a_ll = _scope_sums(cur[cur["institution_id"].isin(ll)], members) if ll else None
    b_ll = _scope_sums(inputs.base[inputs.base["institution_id"].isin(ll)], members) if ll else None
    steps = (year - plan.base_year) / (plan.target_year - plan.base_year)
    for name in PLAN_INTENSITIES:
        pub = published[name].reindex(scopes).to_numpy(float) if name in published else np.full(len(scopes), np.nan)
        data_base = b_ll[name].reindex(scopes).to_numpy(float) if b_ll is not None else np.full(len(scopes), np.nan)
        data_cur = a_ll[name].reindex(scopes).to_numpy(float) if a_ll is not None else np.full(len(scopes), np.nan)
        use_pub = np.isfinite(pub)
        base_value = np.where(use_pub, pub, data_base)
        value = np.where(use_pub | ~np.isfinite(data_base), a_all[name].reindex(scopes).to_numpy(float), data_cur)
        n_inst = np.where(use_pub | ~np.isfinite(data_base), a_all["institutions_with_data"].reindex(scopes),
                          a_ll["institutions_with_data"].reindex(scopes) if a_ll is not None else 0)
        change = np.where(year > plan.base_year, yoy_change(value, base_value), np.nan)
        target = getattr(plan.targets, name)
        due = target * min(max(steps, 0.0), 1.0) if target is not None else np.nan
        progress = np.divide(change, target) if target else np.full(len(scopes), np.nan)
        on_track = ((change <= due) if target is not None and target < 0 else (change >= due)) \
            if target is not None else np.full(len(scopes), False)
        reason = np.select([year <= plan.base_year, ~np.isfinite(value), ~np.isfinite(base_value)],
                           ["not_after_base_year", "no_data", "no_base_value"], "").astype(object)
        rows.append(pd.DataFrame({
            "scope": scopes, "indicator": name, "value": value, "institutions": np.asarray(n_inst, dtype=float),
            "base_year": plan.base_year, "base_value": base_value,
            "base_source": np.where(use_pub, "published", np.where(np.isfinite(base_value), "data", "")),
            "change": change, "target": target if target is not None else np.nan, "due": due,
            "progress": progress, "on_track": np.where(np.isfinite(change) & (target is not None), on_track, pd.NA),
            "reason": reason}))
    out = pd.concat(rows, ignore_index=True)
    out["unit"] = out["indicator"].map(UNITS)
    out["year"] = year
    out["institutions"] = out["institutions"].fillna(0).astype(int)
    return out[PLAN_COLUMNS]


def _scope_sums(ind: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """`models.api.aggregate` of `ind` per scope of `members` (scope, institution_id): ratios of sums."""
    if ind.empty:
        return pd.DataFrame(columns=["institutions_with_data", *PLAN_INTENSITIES])
    m = members.merge(ind, on="institution_id")
    return aggregate(m, ["scope"]).set_index("scope")


def plan_members(institutions: pd.DataFrame, regions: RegionTree) -> pd.DataFrame:
    """(scope, institution_id) for the plan: every region (with its subtree) and 'all'."""
    m = _members(institutions[["institution_id", "region"]], regions).rename(columns={"region": "scope"})
    whole = pd.DataFrame({"scope": "all", "institution_id": institutions["institution_id"].to_numpy(object)})
    return pd.concat([whole, m[["scope", "institution_id"]]], ignore_index=True)


def plan_for(inputs: AssessmentInputs, config: QuotaConfig, members: pd.DataFrame) -> pd.DataFrame:
    """`plan_indicators` of these scopes (members: scope, institution_id), judging which
    institutions are complete in both the base year and the year (the general rule)."""
    base_complete = None
    if inputs.base_months is not None and inputs.base is not None:
        months = pd.concat([inputs.months, inputs.base_months], ignore_index=True)
        both = complete_years(months.drop_duplicates(["institution_id", "month"]),
                              inputs.current["institution_id"], (config.plan.base_year, inputs.year),
                              config.assessment.rules.metering_completeness)
        base_complete = both.all(axis=1)
    return plan_indicators(inputs, config, members, base_complete)


# -- all of it -----------------------------------------------------------------------------------
def assess(inputs: AssessmentInputs, config: QuotaConfig) -> Assessment:
    """Institutions, regions, periods, notice, plan and key users of `inputs.year`."""
    institutions, periods = score_institutions(inputs, config)
    regions = score_regions(institutions, inputs, config)
    notice = notice_entries(institutions, inputs, config)
    plan = plan_for(inputs, config, plan_members(inputs.current, inputs.regions))
    key_users = institutions[institutions["key_user"].to_numpy(bool)].reset_index(drop=True)
    return Assessment(year=inputs.year, institutions=institutions, regions=regions, periods=periods, notice=notice,
                      plan=plan, key_users=key_users)
