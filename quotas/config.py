"""The quota file (`quotas.yaml`): dual-control targets (双控目标) and quota standards
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

`load_quotas(path, registry)` returns a `QuotaConfig` or raises ConfigError with every
problem (file, line, field); `validate_quotas_file(path, registry)` returns the problems.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.vocab import CATEGORIES
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, mapping_items

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


def _number(v: Any) -> float | None:
    """A finite number, also from text such as '3.57e6' (YAML 1.1 reads 1e6 as a string)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v.replace("_", ""))
        except ValueError:
            return None
    if isinstance(v, int | float) and np.isfinite(v):
        return float(v)
    return None


def _num(v: Any) -> bool:
    x = _number(v)
    return x is not None and x >= 0


def _validate_doc(doc: Any, file: str, registry) -> tuple[QuotaConfig | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(line: int, fld: str, msg: str) -> None:
        problems.append(Problem(file, line, fld, msg))

    if doc is None:
        return QuotaConfig(source=file), []
    if not isinstance(doc, LineDict):
        return None, [Problem(file, 1, "-", "the quota file must be a YAML mapping")]
    for key in doc:
        if key not in {"basis", "projection", "warning_ratio", "targets", "standards"}:
            bad(doc.line_of(key), str(key), "unknown key (expected basis, projection, warning_ratio, targets, "
                                            "standards)")
    basis = doc.get("basis", "equivalent")
    from models.factors import BASIS_ALIASES

    if basis not in BASIS_ALIASES:
        bad(doc.line_of("basis"), "basis", f"unknown basis {basis!r} (equivalent 当量值 or equal_value 等价值)")
    projection = doc.get("projection", "last_year")
    if projection not in PROJECTIONS:
        bad(doc.line_of("projection"), "projection", f"must be one of {', '.join(PROJECTIONS)}")
    ratio = doc.get("warning_ratio", DEFAULT_WARNING_RATIO)
    if not _num(ratio) or not 0 < _number(ratio) <= 1:
        bad(doc.line_of("warning_ratio"), "warning_ratio", "must be a number in (0, 1]")

    regions = set(registry.region_by_id) if registry is not None else None
    insts = set(registry.institution_by_id) if registry is not None else None

    targets: list[Target] = []
    target_items = mapping_items(doc, "targets", file, problems)
    for n, item in target_items:
        where = f"targets[{n}]"
        ok = True
        allowed = {"id", "name", "year", "region", "category", "institution", *TARGET_INDICATORS}
        for key in item:
            if key not in allowed:
                bad(item.line_of(key), f"{where}.{key}",
                    f"unknown key (limits: {', '.join(TARGET_INDICATORS)})")
                ok = False
        tid = item.get("id")
        if not isinstance(tid, str | int) or str(tid) == "":
            bad(item.line, f"{where}.id", "required")
            ok = False
        year = item.get("year")
        if not isinstance(year, int) or isinstance(year, bool) or not 1990 <= year <= 2100:
            bad(item.line_of("year"), f"{where}.year", "required: a year such as 2025")
            ok = False
        region, category, inst = item.get("region"), item.get("category"), item.get("institution")
        if inst is not None:
            if region is not None or category is not None:
                bad(item.line_of("institution"), f"{where}.institution",
                    "an institution target takes no region or category")
                ok = False
            if insts is not None and str(inst) not in insts:
                bad(item.line_of("institution"), f"{where}.institution", f"unknown institution '{inst}'")
                ok = False
        elif region is None:
            bad(item.line, f"{where}.region", "a target needs a region (optionally with a category) or an "
                                              "institution")
            ok = False
        if region is not None and regions is not None and str(region) not in regions:
            bad(item.line_of("region"), f"{where}.region", f"unknown region '{region}'")
            ok = False
        if category is not None and category not in CATEGORIES:
            bad(item.line_of("category"), f"{where}.category",
                f"unknown category '{category}' (one of {', '.join(CATEGORIES)})")
            ok = False
        limits = {}
        for k in TARGET_INDICATORS:
            if k in item:
                if not _num(item[k]) or _number(item[k]) <= 0:
                    bad(item.line_of(k), f"{where}.{k}", f"must be a positive number, not {item[k]!r}")
                    ok = False
                else:
                    limits[k] = _number(item[k])
        if not limits and not any(k in item for k in TARGET_INDICATORS):
            bad(item.line, where, f"no limit given (any of {', '.join(TARGET_INDICATORS)})")
            ok = False
        if ok:
            targets.append(Target(id=str(tid), year=int(year), limits=limits,
                                  region=None if region is None else str(region), category=category,
                                  institution=None if inst is None else str(inst),
                                  name=str(item.get("name", "")), line=item.line))
    tids = Counter(str(t.get("id")) for _, t in target_items)
    for n, item in target_items:
        if tids[str(item.get("id"))] > 1:
            bad(item.line_of("id"), f"targets[{n}].id", f"duplicate id '{item.get('id')}'")

    standards: list[Standard] = []
    standard_items = mapping_items(doc, "standards", file, problems)
    for n, item in standard_items:
        where = f"standards[{n}]"
        ok = True
        for key in item:
            if key not in {"id", "name", "source", "category", "region", *STANDARD_INDICATORS}:
                bad(item.line_of(key), f"{where}.{key}",
                    f"unknown key (indicators: {', '.join(STANDARD_INDICATORS)})")
                ok = False
        sid = item.get("id")
        if not isinstance(sid, str | int) or str(sid) == "":
            bad(item.line, f"{where}.id", "required")
            ok = False
        category, region = item.get("category"), item.get("region")
        if category is not None and category not in CATEGORIES:
            bad(item.line_of("category"), f"{where}.category",
                f"unknown category '{category}' (one of {', '.join(CATEGORIES)})")
            ok = False
        if region is not None and regions is not None and str(region) not in regions:
            bad(item.line_of("region"), f"{where}.region", f"unknown region '{region}'")
            ok = False
        levels: dict[str, dict[str, float]] = {}
        for ind in STANDARD_INDICATORS:
            if ind not in item:
                continue
            lv = item[ind]
            fld = f"{where}.{ind}"
            line = item.line_of(ind)
            if not isinstance(lv, LineDict):
                bad(line, fld, "must be a mapping of levels: {constraint, baseline, guide} or {general, advanced}")
                ok = False
                continue
            keys = set(lv)
            if keys == set(THREE_LEVELS):
                order = THREE_LEVELS
            elif keys == set(TWO_LEVELS):
                order = TWO_LEVELS
            else:
                bad(line, fld, f"levels must be constraint, baseline and guide (约束值/基准值/引导值) or general "
                               f"and advanced (通用值/先进值), not {', '.join(map(str, keys)) or 'none'}")
                ok = False
                continue
            vals_ok = True
            for k in order:
                if not _num(lv[k]) or _number(lv[k]) <= 0:
                    bad(lv.line_of(k), f"{fld}.{k}", f"must be a positive number, not {lv[k]!r}")
                    vals_ok = ok = False
            if vals_ok:
                vals = [_number(lv[k]) for k in order]
                if vals != sorted(vals):
                    bad(line, fld, " <= ".join(order) + " must hold (" +
                        ", ".join(f"{k}={v:g}" for k, v in zip(order, vals, strict=True)) + ")")
                    ok = False
                else:
                    levels[ind] = dict(zip(order, vals, strict=True))
        if not levels and not any(k in item for k in STANDARD_INDICATORS):
            bad(item.line, where, f"no indicator given (any of {', '.join(STANDARD_INDICATORS)})")
            ok = False
        if ok:
            standards.append(Standard(id=str(sid), levels=levels, category=category,
                                      region=None if region is None else str(region),
                                      name=str(item.get("name", "")), source=str(item.get("source", "")),
                                      line=item.line))
    ids = Counter(str(s.get("id")) for _, s in standard_items)
    for n, item in standard_items:
        if ids[str(item.get("id"))] > 1:
            bad(item.line_of("id"), f"standards[{n}].id", f"duplicate id '{item.get('id')}'")

    if problems:
        return None, sorted(problems, key=lambda p: (p.line, p.field))
    return QuotaConfig(targets=tuple(targets), standards=tuple(standards), basis=BASIS_ALIASES[basis],
                       projection=projection, warning_ratio=float(_number(ratio)), source=file), []


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
