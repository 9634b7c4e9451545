"""Schema of the quota file (`quotas.yaml`): dual-control targets and quota standards.

Cross-references (regions and institutions of the registry, duplicate ids) are checked
by `quotas.config` after this schema, on the raw file, so every problem is listed at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator

from core.schemas.base import Ident, Integer, Positive, Strict
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


class QuotaFile(Strict):
    """The whole quota file."""

    basis: BasisName = "equivalent"
    projection: Literal["last_year", "flat"] = "last_year"
    warning_ratio: Annotated[Positive, Field(le=1)] = DEFAULT_WARNING_RATIO
    targets: tuple[TargetEntry, ...] = ()  # type: ignore[valid-type]
    standards: tuple[StandardEntry, ...] = ()  # type: ignore[valid-type]
