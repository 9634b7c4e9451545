"""The savings-verification project file (interfaces.md): a pydantic model located by line, and its rules.

`load_project(path, registry=None)` validates the YAML and every CSV it names and
raises `ConfigError` listing every problem with file, line and field (schema errors
through the one mapper, core.yamlfile.pydantic_problems); driver CSVs that do not
cover both periods raise `InsufficientData` (a ConfigError). Relative CSV paths are
relative to the project file. With a registry, the meters in scope are resolved and
checked (option C: the institution's main meters of `energy`, i.e. meters with no
parent; option B: the listed meters).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.registry import Energy, Registry
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, mapping_items, validate_node
from verification.driver_files import read_calendar_csv, read_temperature_csv
from verification.findings import Finding, InsufficientData
from verification.frames import describe_dates, missing_dates

ContractType = Literal["shared_savings", "guaranteed_savings", "energy_cost_trusteeship"]
Granularity = Literal["day", "month", "hour", "bill"]
Criterion = Literal["adj_r2", "aic", "bic"]

# ASHRAE Guideline 14 acceptance (domain.md section 7): (CV(RMSE) max, |NMBE| max).
ASHRAE14_LIMITS: dict[str, tuple[float, float]] = {
    "month": (0.15, 0.05),  # monthly: CV(RMSE) <= 15 %, |NMBE| <= 5 %
    "day": (0.25, 0.05),  # whole-building baseline "up to 20-25 %" (G14 5.2.11.3); NMBE as monthly
    "hour": (0.30, 0.10),  # hourly: CV(RMSE) <= 30 %, |NMBE| <= 10 %
    "bill": (0.15, 0.05),  # billing periods: as monthly
}
NORMAL_YEAR_DAYS = (365, 366)
DRIVER_FILES = ("temperature", "normal_year", "calendar")  # keys of the project file naming CSVs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Span(_Strict):
    start: dt.date
    end: dt.date


class _Adjustment(_Strict):
    start: dt.date
    end: dt.date
    quantity_per_day: float | None = None
    quantity: float | None = None
    reason: str = Field(min_length=1)


class _Contract(_Strict):
    type: ContractType
    tariff_cny_per_unit: float = Field(ge=0)
    contractor_share: float | None = Field(default=None, ge=0, le=1)
    guaranteed_quantity: float | None = Field(default=None, ge=0)
    guaranteed_cny: float | None = Field(default=None, ge=0)
    fee_cny: float = Field(default=0.0, ge=0)
    excess_share: float = Field(default=0.0, ge=0, le=1)
    require_significance: bool = True
    baseline_quantity: float | None = Field(default=None, ge=0)
    annual_history: dict[int, float] | None = None


class ProjectFile(_Strict):
    """The project file as written (docs/mv.md); cross-field rules are `_rule_problems`."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    name: str | None = None
    institution: str | None = None
    meters: list[str] | None = None
    energy: Energy = "electricity"
    granularity: Granularity = "day"
    baseline: _Span
    reporting: _Span
    temperature: str
    normal_year: str | None = None
    calendar: str | None = None
    adjustments: list[_Adjustment] = []
    contract: _Contract | None = None
    criterion: Criterion = "adj_r2"
    cvrmse_max: float | None = Field(default=None, gt=0)
    nmbe_max: float | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class Adjustment:
    """A non-routine adjustment: `quantity_per_day` (energy units per day) added to the
    adjusted baseline on every day of [start, end] (positive: load added after the
    baseline, e.g. a new wing; negative: load removed)."""

    start: dt.date
    end: dt.date
    quantity_per_day: float
    reason: str


@dataclass(frozen=True)
class Contract:
    """Contract terms; see verification.contract for how each type is settled."""

    type: str
    tariff_cny_per_unit: float
    contractor_share: float | None = None
    guaranteed_quantity: float | None = None
    guaranteed_cny: float | None = None
    fee_cny: float = 0.0
    excess_share: float = 0.0
    require_significance: bool = True
    baseline_quantity: float | None = None
    annual_history: dict[int, float] | None = None


def _locate(source: str, lines: dict[str, int], key: str, message: str) -> Problem:
    """A Problem at dotted `key` of a project file (else at its first part, else line 0)."""
    return Problem(source, lines.get(key, lines.get(key.split(".")[0], 0)), key, message)


@dataclass
class MVProject:
    """A validated project. Dates are local calendar dates, end inclusive.

    temperature / normal_year: frames of date (datetime64, midnight), temp_c.
    calendar: date, working (0/1) and optionally occupancy; None = Monday-Friday
    are working days.
    """

    id: str
    source: str
    energy: str
    granularity: str
    baseline_start: dt.date
    baseline_end: dt.date
    reporting_start: dt.date
    reporting_end: dt.date
    temperature: pd.DataFrame
    temperature_file: str
    name: str | None = None
    institution: str | None = None
    meters: list[str] | None = None
    meter_ids: list[str] | None = None  # resolved against a registry
    unit: str | None = None
    normal_year: pd.DataFrame | None = None
    normal_year_file: str | None = None
    calendar: pd.DataFrame | None = None
    calendar_file: str | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    contract: Contract | None = None
    criterion: str = "adj_r2"
    cvrmse_max: float = 0.25
    nmbe_max: float = 0.05
    lines: dict[str, int] = field(default_factory=dict)
    file_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def option(self) -> str:
        """IPMVP option: B (retrofit isolation, listed meters) or C (whole facility)."""
        return "B" if self.meters else "C"

    def problem(self, key: str, message: str) -> Problem:
        """A Problem located at `key` (dotted) of the project file."""
        return _locate(self.source, self.lines, key, message)


def _lines(node: Any, prefix: str = "") -> dict[str, int]:
    """Dotted key -> line of every key of a LineDict tree (lists indexed [i])."""
    out: dict[str, int] = {}
    if isinstance(node, LineDict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            out[name] = node.line_of(str(key))
            out.update(_lines(value, name + "."))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            name = f"{prefix[:-1]}[{i}]"
            if isinstance(item, LineDict):
                out[name] = item.line
            out.update(_lines(item, name + "."))
    return out


def _parse(doc: Any, src: str) -> ProjectFile:
    """The file's schema; ConfigError with every pydantic error at FILE:LINE: FIELD.
    List items are validated one by one so that their fields read `adjustments[0].reason`."""
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(src, 1, "-", "the project file must be a YAML mapping")])
    problems: list[Problem] = []
    top = LineDict(doc)
    top.line, top.key_lines = doc.line, doc.key_lines
    if isinstance(doc.get("adjustments"), list):  # anything else: pydantic says it must be a list
        adjustments = [validate_node(_Adjustment, item, src, f"adjustments[{n}]", problems)
                       for n, item in mapping_items(doc, "adjustments", src, problems)]
        top["adjustments"] = [a for a in adjustments if a is not None]
    parsed = validate_node(ProjectFile, top, src, "", problems)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return parsed


def _rule_problems(d: ProjectFile, at) -> list[Problem]:
    """Rules across fields: scope, billing, period order."""
    problems: list[Problem] = []
    if not d.institution and not d.meters:
        problems.append(at("id", "give `institution` (IPMVP option C) or `meters` (option B)"))
    if d.granularity == "bill" and (not d.institution or d.meters):
        problems.append(at("granularity", "billing data are per institution: give `institution` and no `meters`"))
    for key, span in (("baseline", d.baseline), ("reporting", d.reporting)):
        if span.end < span.start:
            problems.append(at(f"{key}.end", f"{key} period ends ({span.end}) before it starts ({span.start})"))
    if d.reporting.start <= d.baseline.end:
        problems.append(at("reporting.start", f"reporting period starts ({d.reporting.start}) before the baseline "
                                              f"period ends ({d.baseline.end}); it must come after the baseline"))
    return problems


def _adjustments(d: ProjectFile, at, problems: list[Problem]) -> list[Adjustment]:
    """Non-routine adjustments inside the reporting period, as quantities per day."""
    out = []
    for i, a in enumerate(d.adjustments):
        key = f"adjustments[{i}]"
        if (a.quantity_per_day is None) == (a.quantity is None):
            problems.append(at(key, "give exactly one of quantity_per_day or quantity"))
        elif a.end < a.start:
            problems.append(at(f"{key}.end", "adjustment ends before it starts"))
        elif a.start < d.reporting.start or a.end > d.reporting.end:
            problems.append(at(f"{key}.start", f"adjustment {a.start}..{a.end} lies outside the reporting period "
                                               f"{d.reporting.start}..{d.reporting.end}"))
        else:
            days = (a.end - a.start).days + 1
            per_day = a.quantity_per_day if a.quantity_per_day is not None else float(a.quantity) / days
            out.append(Adjustment(a.start, a.end, float(per_day), a.reason))
    return out


def _contract(d: ProjectFile, at, problems: list[Problem]) -> Contract | None:
    """The contract terms each type needs."""
    c = d.contract
    if c is None:
        return None
    if c.type == "shared_savings" and c.contractor_share is None:
        problems.append(at("contract", "shared_savings needs contractor_share (0..1)"))
    if c.type == "guaranteed_savings" and c.guaranteed_quantity is None and c.guaranteed_cny is None:
        problems.append(at("contract", "guaranteed_savings needs guaranteed_quantity or guaranteed_cny"))
    if c.annual_history is not None and len(c.annual_history) < 1:
        problems.append(at("contract.annual_history", "give at least one year"))
    return Contract(**c.model_dump())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_drivers(d: ProjectFile, base: Path, at) -> tuple[dict[str, Path], dict[str, pd.DataFrame], dict[str, str]]:
    """Paths, frames and SHA-256 of the driver CSVs the file names; ConfigError for
    missing files, then for every problem in their rows."""
    problems: list[Problem] = []
    paths: dict[str, Path] = {}
    for key in DRIVER_FILES:
        value = getattr(d, key)
        if value:
            p = Path(value)
            paths[key] = p if p.is_absolute() else base / p
            if not paths[key].exists():
                problems.append(at(key, f"file not found: {paths[key]}"))
    if problems:
        raise ConfigError(problems)
    readers = {"temperature": read_temperature_csv, "normal_year": read_temperature_csv, "calendar": read_calendar_csv}
    frames: dict[str, pd.DataFrame] = {}
    hashes: dict[str, str] = {}
    for key, p in paths.items():
        try:
            frames[key] = readers[key](p)
            hashes[str(p)] = _sha256(p)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return paths, frames, hashes


def _gaps(d: ProjectFile, frame: pd.DataFrame, path: Path, code: str, column: str, what: str,
          named_at: str = "") -> list[Finding]:
    """Days of the baseline and reporting periods a driver CSV has no row for."""
    out = []
    for key, span in (("baseline", d.baseline), ("reporting", d.reporting)):
        gap = missing_dates(frame["date"], span.start, span.end)
        if len(gap):
            out.append(Finding(code, f"no {what} for {describe_dates(gap)} of the {key} period {span.start}.."
                                     f"{span.end}{named_at}",
                               {"phase": key, "days_missing": len(gap), "file": str(path)}, column))
    return out


def _normal_year_problems(normal: pd.DataFrame | None, path: Path | None) -> list[Problem]:
    """A normal year is 365 or 366 consecutive days."""
    if normal is None:
        return []
    days = (normal["date"].iloc[-1] - normal["date"].iloc[0]).days + 1
    if len(normal) in NORMAL_YEAR_DAYS and days == len(normal):
        return []
    return [Problem(str(path), 0, "date", f"a normal year needs 365 or 366 consecutive days; found {len(normal)} rows "
                                          f"over {days} days")]


def _in_csv(findings: list[Finding]) -> list[Problem]:
    """Driver-CSV findings as problems of their file (line 0: the file as a whole)."""
    return [Problem(f.values["file"], 0, f.field, f.message) for f in findings]


def _check_drivers(d: ProjectFile, paths: dict[str, Path], frames: dict[str, pd.DataFrame], src: str,
                   lines: dict[str, int]) -> None:
    """Drivers cover every day of both periods (else InsufficientData) and a normal year
    is a year (else ConfigError, listing any gaps too)."""
    temp = _gaps(d, frames["temperature"], paths["temperature"], "temperature_missing", "temp_c", "temperature",
                 f" (named at {src}:{lines.get('temperature', 0)})")
    cal = (_gaps(d, frames["calendar"], paths["calendar"], "calendar_missing", "date", "calendar entry")
           if "calendar" in frames else [])
    wrong = _normal_year_problems(frames.get("normal_year"), paths.get("normal_year"))
    problems = _in_csv(temp) + wrong + _in_csv(cal)
    if wrong:
        raise ConfigError(problems)
    if problems:
        raise InsufficientData(problems, temp + cal)


def resolve_meters(project: MVProject, registry: Registry) -> list[str]:
    """Meter ids in scope; raise ConfigError naming the project file's line."""
    problems: list[Problem] = []
    if project.meters:
        ids = list(project.meters)
        for i, mid in enumerate(ids):
            meter = registry.meter_by_id.get(mid)
            if meter is None:
                problems.append(project.problem(f"meters[{i}]" if f"meters[{i}]" in project.lines else "meters",
                                                f"unknown meter '{mid}' in {registry.source}"))
            elif meter.energy != project.energy:
                problems.append(project.problem("meters", f"meter '{mid}' measures {meter.energy}, not {project.energy}"))
            elif project.institution and meter.institution != project.institution:
                problems.append(project.problem("meters", f"meter '{mid}' belongs to {meter.institution}, "
                                                          f"not {project.institution}"))
    else:
        inst = project.institution
        if inst not in registry.institution_by_id:
            raise ConfigError([project.problem("institution", f"unknown institution '{inst}' in {registry.source}")])
        ids = [m.id for m in registry.meters if m.institution == inst and m.energy == project.energy and m.parent is None]
        if not ids:
            problems.append(project.problem("energy", f"institution '{inst}' has no main meter (no parent) of {project.energy}"))
    if problems:
        raise ConfigError(problems)
    return ids


def _resolve(project: MVProject, registry: Registry) -> None:
    """Check the project against the registry: its institution (bills) or its meters and unit."""
    if project.granularity == "bill":
        if project.institution not in registry.institution_by_id:
            raise ConfigError([project.problem("institution", f"unknown institution '{project.institution}' in "
                                                              f"{registry.source}")])
        return
    project.meter_ids = resolve_meters(project, registry)
    project.unit = registry.meter_by_id[project.meter_ids[0]].unit


def load_project(path: str | Path, registry: Registry | None = None) -> MVProject:
    """Load and validate a project file and its CSVs; with `registry`, resolve meters."""
    path = Path(path)
    src = str(path)
    doc = load_yaml(path)  # reports impossible dates (e.g. 2024-11-31) by line
    d = _parse(doc, src)
    lines = _lines(doc)

    def at(key: str, message: str) -> Problem:
        return _locate(src, lines, key, message)

    problems = _rule_problems(d, at)
    adjustments = _adjustments(d, at, problems)
    contract = _contract(d, at, problems)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    paths, frames, hashes = _read_drivers(d, path.parent, at)
    _check_drivers(d, paths, frames, src, lines)
    cv_max, nmbe_max = ASHRAE14_LIMITS[d.granularity]
    project = MVProject(
        id=d.id, source=src, energy=d.energy, granularity=d.granularity,
        baseline_start=d.baseline.start, baseline_end=d.baseline.end,
        reporting_start=d.reporting.start, reporting_end=d.reporting.end,
        temperature=frames["temperature"], temperature_file=str(paths["temperature"]), name=d.name,
        institution=d.institution, meters=list(d.meters) if d.meters else None,
        normal_year=frames.get("normal_year"), normal_year_file=_optional_path(paths, "normal_year"),
        calendar=frames.get("calendar"), calendar_file=_optional_path(paths, "calendar"),
        adjustments=adjustments, contract=contract, criterion=d.criterion,
        cvrmse_max=d.cvrmse_max or cv_max, nmbe_max=d.nmbe_max or nmbe_max,
        lines=lines, file_hashes=hashes,
    )
    if registry is not None:
        _resolve(project, registry)
    return project


def _optional_path(paths: dict[str, Path], key: str) -> str | None:
    return str(paths[key]) if key in paths else None
