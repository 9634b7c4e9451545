"""The quota file (`quotas.yaml`): targets and quota standards, loaded.

The quota file (`quotas.yaml`): dual-control targets (双控目标) and quota standards
(能耗定额). Format (see quotas/sample_quotas.yaml for a commented example):

    basis: equivalent          # electricity basis of every figure (当量值; or equal_value 等价值)
    projection: last_year      # year-end projection shape: last_year (monthly shape) | flat
    warning_ratio: 0.95        # 'warning' when the projection reaches 95 % of a limit
    targets:
      - id: hebei-2025         # unique
        year: 2025
        region: hebei          # scope: a region (and its subtree) ...
        category: school       # ... optionally one category inside it ...
        institution: HB-0001   # ... or one institution (alone)
        energy_tce: 3570000    # limits: any of TARGET_INDICATORS
        water_m3: 225000000
        co2_t: 13940000
        kgce_per_m2: 17.5
    standards:
      - id: db13-government
        category: government   # optional: every category when omitted
        region: hebei          # optional: every region when omitted
        heating_kgce_per_m2: {constraint: 12.0, baseline: 9.0, guide: 7.0}
        water_m3_per_person: {general: 25, advanced: 15}   # two-level standards
    assessment: {...}          # the year-end assessment's scoring scheme (weights, rules, grades)
    key_users: {...}           # key energy users: threshold (tce) and their stricter rules
    plan: {...}                # the five-year plan: base year, target year, targets, base values

`load_quotas(path, registry)` returns a `QuotaConfig` or raises ConfigError with every
problem (file, line, field); `validate_quotas_file(path, registry)` returns the problems.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.schemas.factors import BASIS_ALIASES
from core.schemas.quotas import (
    DEFAULT_WARNING_RATIO,
    PROJECTIONS,
    STANDARD_INDICATORS,
    TARGET_INDICATORS,
    THREE_LEVELS,
    TWO_LEVELS,
    AssessmentScheme,
    KeyUserRules,
    KeyUsers,
    Plan,
    QuotaFile,
    Rules,
    stricter_rules,
)
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node

__all__ = ["DEFAULT_WARNING_RATIO", "PROJECTIONS", "STANDARD_INDICATORS", "TARGET_INDICATORS", "THREE_LEVELS",
           "TWO_LEVELS", "AssessmentScheme", "KeyUsers", "Plan", "QuotaConfig", "Standard", "Target", "load_quotas",
           "validate_quotas_file"]


@dataclass(frozen=True)
class Target:
    """A dual-control target: limits per indicator for a scope and a year."""

    id: str
    year: int
    limits: dict[str, float]
    region: str | None = None
    category: str | None = None
    institution: str | None = None
    name: str = ""
    line: int = 0

    @property
    def scope(self) -> str:
        if self.institution:
            return f"institution:{self.institution}"
        return f"region:{self.region}" + (f"/category:{self.category}" if self.category else "")


@dataclass(frozen=True)
class Standard:
    """A quota standard: per indicator, its levels (three or two) and values."""

    id: str
    levels: dict[str, dict[str, float]]
    category: str | None = None
    region: str | None = None
    name: str = ""
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class QuotaConfig:
    targets: tuple[Target, ...] = ()
    standards: tuple[Standard, ...] = ()
    basis: str = "equivalent"
    projection: str = "last_year"
    warning_ratio: float = DEFAULT_WARNING_RATIO
    source: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict)
    #: the year-end assessment's scoring scheme, key energy users (their rules already the
    #: stricter of theirs and the general ones: `core.schemas.quotas.stricter_rules`), the plan
    assessment: AssessmentScheme = field(default_factory=AssessmentScheme)
    key_users: KeyUsers = field(default_factory=KeyUsers)
    plan: Plan = field(default_factory=Plan)

    def targets_frame(self) -> pd.DataFrame:
        """One row per target and indicator: target_id, name, year, scope, region,
        category, institution_id, indicator, unit, limit."""
        rows = [{"target_id": t.id, "name": t.name, "year": t.year, "scope": t.scope, "region": t.region,
                 "category": t.category, "institution_id": t.institution, "indicator": k,
                 "unit": TARGET_INDICATORS[k], "limit": v}
                for t in self.targets for k, v in t.limits.items()]
        return pd.DataFrame(rows, columns=["target_id", "name", "year", "scope", "region", "category",
                                           "institution_id", "indicator", "unit", "limit"])

    def standards_frame(self) -> pd.DataFrame:
        """One row per standard and indicator: standard_id, name, source, category,
        region, indicator, unit, guide, baseline, constraint, advanced, general
        (NaN where the standard has no such level)."""
        rows = []
        for s in self.standards:
            for ind, lv in s.levels.items():
                rows.append({"standard_id": s.id, "name": s.name, "source": s.source, "category": s.category,
                             "region": s.region, "indicator": ind, "unit": STANDARD_INDICATORS[ind],
                             **{k: lv.get(k, float("nan")) for k in (*THREE_LEVELS, *TWO_LEVELS)}})
        return pd.DataFrame(rows, columns=["standard_id", "name", "source", "category", "region", "indicator",
                                           "unit", *THREE_LEVELS, *TWO_LEVELS])


def _raw_items(doc: LineDict, key: str) -> list[tuple[int, LineDict]]:
    """(index, item) of the mappings in the list `doc[key]` (the schema reports the rest)."""
    raw = doc.get(key)
    return [(n, item) for n, item in enumerate(raw) if isinstance(item, LineDict)] if isinstance(raw, list) else []


def _reference_problems(doc: LineDict, file: str, registry) -> list[Problem]:
    """What the schema cannot see: a target's scope, duplicate ids, and (with a registry)
    unknown regions and institutions. Checked on the raw file, valid items or not."""
    problems: list[Problem] = []
    regions = set(registry.region_by_id) if registry is not None else None
    insts = set(registry.institution_by_id) if registry is not None else None
    for key in ("targets", "standards"):
        items = _raw_items(doc, key)
        ids = Counter(str(item.get("id")) for _, item in items)
        for n, item in items:
            where = f"{key}[{n}]"
            region, inst = item.get("region"), item.get("institution")
            if key == "targets" and inst is not None and (region is not None or item.get("category") is not None):
                problems.append(Problem(file, item.line_of("institution"), f"{where}.institution",
                                        "an institution target takes no region or category"))
            if key == "targets" and inst is None and region is None:
                problems.append(Problem(file, item.line, f"{where}.region",
                                        "a target needs a region (optionally with a category) or an institution"))
            if inst is not None and insts is not None and str(inst) not in insts:
                problems.append(Problem(file, item.line_of("institution"), f"{where}.institution",
                                        f"unknown institution '{inst}'"))
            if region is not None and regions is not None and str(region) not in regions:
                problems.append(Problem(file, item.line_of("region"), f"{where}.region", f"unknown region '{region}'"))
            if ids[str(item.get("id"))] > 1:
                problems.append(Problem(file, item.line_of("id"), f"{where}.id", f"duplicate id '{item.get('id')}'"))
    return problems


def _section(doc: LineDict, *path: str) -> LineDict | None:
    """The mapping at `doc[path[0]][path[1]]...` (None where any step is missing or not one)."""
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, LineDict) else None
    return node if isinstance(node, LineDict) else None


def _quiet(model: type, node: Any) -> Any | None:
    """`model` of `node`, or None when it is not valid (the schema reports why)."""
    try:
        return model.model_validate(node)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return None


def _assessment_problems(doc: LineDict, file: str, registry) -> list[Problem]:
    """Key-user rules written laxer than the general rules (key energy users are held to
    the stricter ones), and plan base values of unknown or repeated regions; checked on
    the raw sections, so they are reported with the schema's problems."""
    problems: list[Problem] = []
    written = _section(doc, "key_users", "rules")
    general = _quiet(Rules, _section(doc, "assessment", "rules") or {})
    key = _quiet(KeyUserRules, written) if written is not None else None
    if general is not None and key is not None:
        strict = stricter_rules(general, key)
        for name in Rules.model_fields:
            if name in written and getattr(key, name) != getattr(strict, name):
                problems.append(Problem(file, written.line_of(name), f"key_users.rules.{name}",
                                        f"laxer than assessment.rules.{name} ({getattr(general, name)}): key energy "
                                        "users are held to stricter rules"))
    plan = _section(doc, "plan")
    items = _raw_items(plan, "base_values") if plan is not None else []
    regions = set(registry.region_by_id) if registry is not None else None
    seen = Counter(str(item.get("region")) for _, item in items)
    for n, item in items:
        region = item.get("region")
        if region is None:
            continue
        if regions is not None and str(region) not in regions:
            problems.append(Problem(file, item.line_of("region"), f"plan.base_values[{n}].region",
                                    f"unknown region '{region}'"))
        if seen[str(region)] > 1:
            problems.append(Problem(file, item.line_of("region"), f"plan.base_values[{n}].region",
                                    f"region '{region}' has more than one base entry"))
    return problems


def _validate_doc(doc: Any, file: str, registry) -> tuple[QuotaConfig | None, list[Problem]]:
    """The quota config of a loaded document (schema: `core.schemas.quotas.QuotaFile`), or every problem."""
    if doc is None:
        return QuotaConfig(source=file), []
    if not isinstance(doc, LineDict):
        return None, [Problem(file, 1, "-", "the quota file must be a YAML mapping")]
    problems: list[Problem] = []
    parsed = validate_node(QuotaFile, doc, file, "", problems)
    problems += _reference_problems(doc, file, registry)
    problems += _assessment_problems(doc, file, registry)
    if problems or parsed is None:
        return None, sorted(problems, key=lambda p: (p.line, p.field))
    raw = dict(_raw_items(doc, "targets")), dict(_raw_items(doc, "standards"))
    targets = tuple(Target(id=t.id, year=t.year, limits=t.limits, region=t.region, category=t.category,
                           institution=t.institution, name=t.name, line=raw[0][n].line)
                    for n, t in enumerate(parsed.targets))
    standards = tuple(Standard(id=s.id, levels=s.levels, category=s.category, region=s.region, name=s.name,
                               source=s.source, line=raw[1][n].line)
                      for n, s in enumerate(parsed.standards))
    key_users = parsed.key_users.model_copy(
        update={"rules": stricter_rules(parsed.assessment.rules, parsed.key_users.rules)})
    return QuotaConfig(targets=targets, standards=standards, basis=BASIS_ALIASES[parsed.basis],
                       projection=parsed.projection, warning_ratio=parsed.warning_ratio, source=file,
                       assessment=parsed.assessment, key_users=key_users, plan=parsed.plan), []


def validate_quotas_file(path: str | Path, registry=None) -> list[Problem]:
    """Every problem of the quota file at `path` (empty when valid), checked against
    the registry's regions and institutions when given."""
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        return exc.problems
    return _validate_doc(doc, str(path), registry)[1]


def load_quotas(path: str | Path, registry=None) -> QuotaConfig:
    """Load and validate the quota file; raise ConfigError with every problem."""
    doc = load_yaml(path)
    config, problems = _validate_doc(doc, str(path), registry)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config
