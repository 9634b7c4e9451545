"""Schema of the quota file (`quotas.yaml`).

Schema of the quota file (`quotas.yaml`): dual-control targets, quota standards, the
assessment's scoring scheme, key energy users and the five-year plan.

Cross-references (regions and institutions of the registry, duplicate ids) are checked
by `quotas.config` after this schema, on the raw file, so every problem is listed at once.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from core.schemas.base import Ident, Integer, NonNegative, NonNegativeInt, Number, Positive, Strict
from core.schemas.factors import BasisName
from core.vocab import Category

#: Target indicators and their units.
TARGET_INDICATORS: dict[str, str] = {
    "energy_tce": "tce", "water_m3": "m3", "co2_t": "tCO2",
    "kgce_per_m2": "kgce/m2", "kgce_per_person": "kgce/person", "water_m3_per_person": "m3/person",
    "kgco2_per_m2": "kgCO2/m2",
}
#: Quota-standard indicators (domain.md §1: Hebei's four) and their units.
STANDARD_INDICATORS: dict[str, str] = {
    "heating_kgce_per_m2": "kgce/m2", "nonheating_kgce_per_m2": "kgce/m2",
    "kgce_per_person": "kgce/person", "water_m3_per_person": "m3/person",
    "kgce_per_m2": "kgce/m2", "kgco2_per_m2": "kgCO2/m2",
}
THREE_LEVELS = ("guide", "baseline", "constraint")  # 引导值 <= 基准值 <= 约束值
TWO_LEVELS = ("advanced", "general")  # 先进值 <= 通用值
PROJECTIONS = ("last_year", "flat")
DEFAULT_WARNING_RATIO = 0.95


def _level_keys(levels: Any) -> Any:
    """A mapping with exactly the three levels or the two levels."""
    if not isinstance(levels, dict):
        raise ValueError("must be a mapping of levels: {constraint, baseline, guide} or {general, advanced}")
    if set(levels) not in (set(THREE_LEVELS), set(TWO_LEVELS)):
        raise ValueError("levels must be constraint, baseline and guide (约束值/基准值/引导值) or general and "
                         f"advanced (通用值/先进值), not {', '.join(map(str, levels)) or 'none'}")
    return levels


def _level_order(levels: dict[str, float]) -> dict[str, float]:
    """The levels from the strictest up (guide <= baseline <= constraint, advanced <= general)."""
    order = THREE_LEVELS if len(levels) == len(THREE_LEVELS) else TWO_LEVELS
    values = [levels[k] for k in order]
    if values != sorted(values):
        raise ValueError(" <= ".join(order) + " must hold ("
                         + ", ".join(f"{k}={v:g}" for k, v in zip(order, values, strict=True)) + ")")
    return {k: levels[k] for k in order}


#: An indicator's levels, e.g. {constraint: 12, baseline: 9, guide: 7}.
Levels = Annotated[dict[str, Positive], BeforeValidator(_level_keys), AfterValidator(_level_order)]



class _Target(Strict):
    """A dual-control target: a scope (region, region + category, or institution), a year, limits."""

    id: Ident
    name: str = ""
    year: Annotated[Integer, Field(ge=1990, le=2100)]
    region: Ident | None = None
    category: Category | None = None
    institution: Ident | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> _Target:
        if not self.limits:
            raise ValueError(f"no limit given (any of {', '.join(TARGET_INDICATORS)})")
        return self

    @property
    def limits(self) -> dict[str, float]:
        """The limits given, by indicator (units: TARGET_INDICATORS)."""
        return {k: v for k in TARGET_INDICATORS if (v := getattr(self, k)) is not None}


class _Standard(Strict):
    """A quota standard: per indicator its levels, for a category (and region) or every one."""

    id: Ident
    name: str = ""
    source: str = ""
    category: Category | None = None
    region: Ident | None = None

    @model_validator(mode="after")
    def _some_indicator(self) -> _Standard:
        if not self.levels:
            raise ValueError(f"no indicator given (any of {', '.join(STANDARD_INDICATORS)})")
        return self

    @property
    def levels(self) -> dict[str, dict[str, float]]:
        """Levels by indicator (units: STANDARD_INDICATORS)."""
        return {k: v for k in STANDARD_INDICATORS if (v := getattr(self, k)) is not None}


#: A target: `_Target` plus one optional positive limit per TARGET_INDICATORS.
TargetEntry = create_model("TargetEntry", __base__=_Target, __doc__=_Target.__doc__,
                           **{k: (Positive | None, None) for k in TARGET_INDICATORS})
#: A standard: `_Standard` plus optional levels per STANDARD_INDICATORS.
StandardEntry = create_model("StandardEntry", __base__=_Standard, __doc__=_Standard.__doc__,
                             **{k: (Levels | None, None) for k in STANDARD_INDICATORS})


# -- the year-end assessment (节能考核), key energy users (重点用能单位), the five-year plan ----------

#: What an assessment scores, in the order of its breakdown.
CRITERIA = ("targets", "quota", "submissions", "data_quality", "yoy")
#: The indicators the year-on-year criterion may compare (kgce/m2, kgce/person, m3/person,
#: kgCO2/m2, and total energy in tce).
Comparable = Literal["kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2", "tce"]
COMPARABLE: tuple[str, ...] = Comparable.__args__  # type: ignore[attr-defined]
#: The plan's intensities (the five-year plan's 单位建筑面积能耗, 人均综合能耗, 人均用水量, 单位建筑面积碳排放).
PLAN_INTENSITIES = ("kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2")
#: Conditions that cap the grade at the lowest one whatever the score (一票否决): a total
#: target missed, an intensity target missed, a quota indicator above its constraint value.
Veto = Literal["target_total", "target_intensity", "constraint"]
VETOES: tuple[str, ...] = Veto.__args__  # type: ignore[attr-defined]
#: How often submissions are reviewed: a review period is on time or late as a whole.
Review = Literal["monthly", "quarterly"]
Fraction = Annotated[NonNegative, Field(le=1)]


class Weights(Strict):
    """Points of each criterion (the score is out of the weights that apply, scaled to 100)."""

    targets: NonNegative = 30.0  # dual-control targets met (total and intensity)
    quota: NonNegative = 25.0  # quota level reached
    submissions: NonNegative = 20.0  # monthly submissions on time (data completeness for now)
    data_quality: NonNegative = 15.0  # estimated share, open data-quality alerts
    yoy: NonNegative = 10.0  # year-on-year change

    @model_validator(mode="after")
    def _some_weight(self) -> Weights:
        if sum(getattr(self, c) for c in CRITERIA) <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class QuotaPoints(Strict):
    """Share of the quota criterion's points each level earns (0..1)."""

    guide: Fraction = 1.0  # 引导值
    baseline: Fraction = 0.8  # 基准值
    constraint: Fraction = 0.5  # 约束值
    advanced: Fraction = 1.0  # 先进值
    general: Fraction = 0.6  # 通用值
    exceeds: Fraction = 0.0  # above the constraint / general value

    @model_validator(mode="after")
    def _ordered(self) -> QuotaPoints:
        for order in (("guide", "baseline", "constraint", "exceeds"), ("advanced", "general", "exceeds")):
            values = [getattr(self, k) for k in order]
            if values != sorted(values, reverse=True):
                raise ValueError("a stricter level cannot earn fewer points: " + " >= ".join(order) + " must hold ("
                                 + ", ".join(f"{k}={v:g}" for k, v in zip(order, values, strict=True)) + ")")
        return self


class YoyScoring(Strict):
    """Points for the year-on-year change of `indicator` (a fraction, -0.03 = 3 % lower):
    all at or below `full_at`, none at or above `zero_at`, linear in between."""

    indicator: Comparable = "kgce_per_m2"
    full_at: Number = -0.03
    zero_at: Number = 0.03

    @model_validator(mode="after")
    def _ordered(self) -> YoyScoring:
        if not self.full_at < self.zero_at:
            raise ValueError(f"full_at ({self.full_at:g}) must be below zero_at ({self.zero_at:g})")
        return self


class Rules(Strict):
    """What an institution is held to: how often its submissions are reviewed, the metering
    completeness a review period needs to count as on time, the largest estimated share
    and the most open data-quality alerts its data may have."""

    review: Review = "quarterly"
    metering_completeness: Fraction = 0.90  # domain.md §5: the 90 % completeness target
    max_estimated_share: Fraction = 0.10
    max_open_quality_alerts: NonNegativeInt = 2


class KeyUserRules(Rules):
    """The stricter rules of key energy users (each at least as strict as the general one)."""

    review: Review = "monthly"
    metering_completeness: Fraction = 0.95
    max_estimated_share: Fraction = 0.05
    max_open_quality_alerts: NonNegativeInt = 0


class Grade(Strict):
    """A grade and the lowest score that earns it."""

    name: Annotated[str, StringConstraints(min_length=1)]
    min_score: Annotated[Number, Field(ge=0, le=100)]


def _grade_bands(grades: tuple[Grade, ...]) -> tuple[Grade, ...]:
    """Best grade first, lowest scores strictly falling, the last band starting at 0."""
    if not grades:
        raise ValueError("at least one grade is needed")
    names = [g.name for g in grades]
    if len(set(names)) < len(names):
        raise ValueError(f"grade names must differ: {', '.join(names)}")
    mins = [g.min_score for g in grades]
    if any(a <= b for a, b in itertools.pairwise(mins)):
        raise ValueError("grades go from the best down, each min_score below the one before ("
                         + ", ".join(f"{g.name} {g.min_score:g}" for g in grades) + ")")
    if mins[-1] != 0:
        raise ValueError(f"the last grade ({grades[-1].name}) must start at min_score 0, so every score has a grade")
    return grades


DEFAULT_GRADES = (Grade(name="优秀", min_score=90), Grade(name="良好", min_score=80), Grade(name="合格", min_score=60),
                  Grade(name="不合格", min_score=0))
Grades = Annotated[tuple[Grade, ...], AfterValidator(_grade_bands)]


class AssessmentScheme(Strict):
    """The scoring scheme of the year-end assessment (docs/models.md, "Assessment")."""

    weights: Weights = Weights()
    quota_points: QuotaPoints = QuotaPoints()
    yoy: YoyScoring = YoyScoring()
    rules: Rules = Rules()
    grades: Grades = DEFAULT_GRADES
    veto: tuple[Veto, ...] = ("target_total",)


class KeyUsers(Strict):
    """Key energy users (重点用能单位): institutions whose comprehensive energy of the
    assessed year reaches `threshold_tce`, held to `rules`. Default 10,000 tce: the legal
    threshold (节约能源法 §52; 重点用能单位节能管理办法 2018 §2); provinces may designate
    5,000-10,000 tce users too, and public-institution key users are often set lower."""

    threshold_tce: Positive = 10_000.0
    rules: KeyUserRules = KeyUserRules()


class PlanTargets(Strict):
    """Five-year targets: the change of each intensity from the base year to the target
    year (a fraction, -0.05 = 5 % lower), and shares to reach (0..1) by the target year.
    Defaults: the national 十四五 plan for public institutions (2021-2025)."""

    kgce_per_m2: Annotated[Number, Field(gt=-1)] | None = -0.05  # 单位建筑面积能耗下降 5 %
    kgce_per_person: Annotated[Number, Field(gt=-1)] | None = -0.06  # 人均综合能耗下降 6 %
    water_m3_per_person: Annotated[Number, Field(gt=-1)] | None = -0.06  # 人均用水量下降 6 %
    kgco2_per_m2: Annotated[Number, Field(gt=-1)] | None = -0.07  # 单位建筑面积碳排放下降 7 %
    renewable_share: Fraction | None = None  # on-site PV + green power over total electricity
    baseline_share: Fraction | None = None  # institutions at or below their baseline (基准值)


class PlanBase(Strict):
    """Published base-year values of a region (they win over figures computed from data)."""

    region: Ident
    source: str = ""
    kgce_per_m2: Positive | None = None
    kgce_per_person: Positive | None = None
    water_m3_per_person: Positive | None = None
    kgco2_per_m2: Positive | None = None


class Plan(Strict):
    """The five-year plan's indicators: base year, target year, targets, base values."""

    name: str = "十四五"
    base_year: Annotated[Integer, Field(ge=1990, le=2100)] = 2020
    target_year: Annotated[Integer, Field(ge=1990, le=2100)] = 2025
    targets: PlanTargets = PlanTargets()
    base_values: tuple[PlanBase, ...] = ()

    @field_validator("target_year")
    @classmethod
    def _after_base(cls, target_year: int, info: ValidationInfo) -> int:
        base = info.data.get("base_year")
        if base is not None and not base < target_year:
            raise ValueError(f"must be after base_year ({base}), not {target_year}")
        return target_year


class QuotaFile(Strict):
    """The whole quota file."""

    basis: BasisName = "equivalent"
    projection: Literal["last_year", "flat"] = "last_year"
    warning_ratio: Annotated[Positive, Field(le=1)] = DEFAULT_WARNING_RATIO
    targets: tuple[TargetEntry, ...] = ()  # type: ignore[valid-type]
    standards: tuple[StandardEntry, ...] = ()  # type: ignore[valid-type]
    assessment: AssessmentScheme = AssessmentScheme()
    key_users: KeyUsers = KeyUsers()
    plan: Plan = Plan()


def stricter_rules(general: Rules, key: Rules) -> KeyUserRules:
    """Each of the rules at the stricter of the two values (monthly beats quarterly review,
    the higher completeness, the lower estimated share and alert count): what key energy
    users are held to, so they never get a laxer rule than everyone else."""
    return KeyUserRules(
        review="monthly" if "monthly" in (general.review, key.review) else "quarterly",
        metering_completeness=max(general.metering_completeness, key.metering_completeness),
        max_estimated_share=min(general.max_estimated_share, key.max_estimated_share),
        max_open_quality_alerts=min(general.max_open_quality_alerts, key.max_open_quality_alerts))
