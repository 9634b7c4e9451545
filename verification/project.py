"""The savings-verification project file (interfaces.md) and its driver CSVs.

`load_project(path, registry=None)` validates the YAML and every CSV it names and
raises `ConfigError` listing every problem with file, line and field. Relative CSV
paths are relative to the project file. With a registry, the meters in scope are
resolved and checked (option C: the institution's main meters of `energy`, i.e.
meters with no parent; option B: the listed meters).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.registry import Energy, Registry
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml

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
TEMP_RANGE_C = (-60.0, 60.0)  # plausible daily mean air temperatures
NORMAL_YEAR_DAYS = (365, 366)


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


class _Doc(_Strict):
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
        return Problem(self.source, self.lines.get(key, self.lines.get(key.split(".")[0], 0)), key, message)


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


def _loc_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_csv(path: Path, source_problem: Problem, required: list[str],
              optional: tuple[str, ...] = ()) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A CSV with a header; problems for a missing file or missing columns."""
    if not path.exists():
        return None, [source_problem]
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        return None, [Problem(str(path), 1, "-", f"cannot read CSV: {exc}")]
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        return None, [Problem(str(path), 1, ", ".join(missing),
                              f"missing column(s); the header must have {', '.join(required + list(optional))}")]
    return df, []


def _row_problems(path: Path, bad: np.ndarray, field_name: str, message: str, values: pd.Series,
                  limit: int = 5) -> list[Problem]:
    """One Problem per bad row (at most `limit`, then a summary); line = row + 2."""
    rows = np.flatnonzero(bad)
    out = [Problem(str(path), int(r) + 2, field_name, f"{message}: {values.iloc[r]!r}") for r in rows[:limit]]
    if len(rows) > limit:
        out.append(Problem(str(path), int(rows[limit]) + 2, field_name, f"... and {len(rows) - limit} more such rows"))
    return out


def parse_dates(path: Path, df: pd.DataFrame, problems: list[Problem]) -> pd.Series:
    """The `date` column as datetime64 (midnight); bad or duplicate dates are problems."""
    raw = df["date"].astype(str).str.strip()
    dates = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
    problems += _row_problems(path, dates.isna().to_numpy(), "date", "not a date (YYYY-MM-DD)", raw)
    dup = dates.duplicated(keep="first").to_numpy() & dates.notna().to_numpy()
    problems += _row_problems(path, dup, "date", "date repeated (one row per day expected)", raw)
    return dates


def parse_number(path: Path, df: pd.DataFrame, column: str, problems: list[Problem],
                 lo: float = -np.inf, hi: float = np.inf) -> pd.Series:
    raw = df[column].astype(str).str.strip()
    num = pd.to_numeric(raw, errors="coerce")
    problems += _row_problems(path, num.isna().to_numpy(), column, "not a number", raw)
    out_of_range = num.notna().to_numpy() & ((num < lo) | (num > hi)).to_numpy()
    problems += _row_problems(path, out_of_range, column, f"outside [{lo:g}, {hi:g}]", raw)
    return num.astype(float)


def read_temperature_csv(path: str | Path) -> pd.DataFrame:
    """`date,temp_c` (daily mean air temperature, °C) sorted by date; raise ConfigError."""
    path = Path(path)
    problems: list[Problem] = []
    df, probs = _read_csv(path, Problem(str(path), 0, "-", "file not found"), ["date", "temp_c"])
    if df is None:
        raise ConfigError(probs)
    dates = parse_dates(path, df, problems)
    temp = parse_number(path, df, "temp_c", problems, *TEMP_RANGE_C)
    if problems:
        raise ConfigError(problems)
    return pd.DataFrame({"date": dates.to_numpy(), "temp_c": temp.to_numpy()}).sort_values("date", ignore_index=True)


def read_calendar_csv(path: str | Path) -> pd.DataFrame:
    """`date,working[,occupancy]`: working 0/1 (or true/false), occupancy in persons."""
    path = Path(path)
    problems: list[Problem] = []
    df, probs = _read_csv(path, Problem(str(path), 0, "-", "file not found"), ["date", "working"], ("occupancy",))
    if df is None:
        raise ConfigError(probs)
    dates = parse_dates(path, df, problems)
    raw = df["working"].astype(str).str.strip().str.lower()
    mapping = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}
    working = raw.map(mapping)
    problems += _row_problems(path, working.isna().to_numpy(), "working", "must be 0 or 1", raw)
    out = pd.DataFrame({"date": dates.to_numpy(), "working": working.to_numpy(float)})
    if "occupancy" in df.columns:
        out["occupancy"] = parse_number(path, df, "occupancy", problems, 0.0).to_numpy()
    if problems:
        raise ConfigError(problems)
    return out.sort_values("date", ignore_index=True)


def missing_dates(have: pd.Series, start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """Days of [start, end] absent from `have`."""
    need = pd.date_range(start, end, freq="D")
    return need[~need.isin(pd.DatetimeIndex(have))]


def describe_dates(days: pd.DatetimeIndex, limit: int = 6) -> str:
    """'2024-03-05..2024-03-09, 2024-04-01 (6 days)': runs of consecutive days."""
    if len(days) == 0:
        return ""
    d = pd.DatetimeIndex(days).sort_values()
    breaks = np.flatnonzero(np.diff(d.as_unit("s").asi8) != 86400) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(d) - 1]])
    runs = [d[s].strftime("%Y-%m-%d") if s == e else f"{d[s]:%Y-%m-%d}..{d[e]:%Y-%m-%d}"
            for s, e in zip(starts[:limit], ends[:limit], strict=True)]
    more = f", ... ({len(starts) - limit} more runs)" if len(starts) > limit else ""
    return f"{', '.join(runs)}{more} ({len(d)} day{'s' if len(d) != 1 else ''})"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def load_project(path: str | Path, registry: Registry | None = None) -> MVProject:
    """Load and validate a project file and its CSVs; with `registry`, resolve meters."""
    path = Path(path)
    doc = load_yaml(path)  # reports impossible dates (e.g. 2024-11-31) by line
    src = str(path)
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(src, 1, "-", "the project file must be a YAML mapping")])
    lines = _lines(doc)
    try:
        d = _Doc.model_validate(dict(doc))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = _loc_name(err["loc"])
            line = next((lines[k] for k in (name, name.rsplit(".", 1)[0], name.split(".")[0]) if k in lines), doc.line)
            problems.append(Problem(src, line, name or "-", err["msg"]))
        raise ConfigError(problems) from exc

    def at(key: str, message: str) -> Problem:
        return Problem(src, lines.get(key, lines.get(key.split(".")[0], 0)), key, message)

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
    adjustments = []
    for i, a in enumerate(d.adjustments):
        key = f"adjustments[{i}]"
        if (a.quantity_per_day is None) == (a.quantity is None):
            problems.append(at(key, "give exactly one of quantity_per_day or quantity"))
            continue
        if a.end < a.start:
            problems.append(at(f"{key}.end", "adjustment ends before it starts"))
            continue
        if a.start < d.reporting.start or a.end > d.reporting.end:
            problems.append(at(f"{key}.start", f"adjustment {a.start}..{a.end} lies outside the reporting period "
                                               f"{d.reporting.start}..{d.reporting.end}"))
            continue
        days = (a.end - a.start).days + 1
        per_day = a.quantity_per_day if a.quantity_per_day is not None else float(a.quantity) / days
        adjustments.append(Adjustment(a.start, a.end, float(per_day), a.reason))
    contract = None
    if d.contract is not None:
        c = d.contract
        if c.type == "shared_savings" and c.contractor_share is None:
            problems.append(at("contract", "shared_savings needs contractor_share (0..1)"))
        if c.type == "guaranteed_savings" and c.guaranteed_quantity is None and c.guaranteed_cny is None:
            problems.append(at("contract", "guaranteed_savings needs guaranteed_quantity or guaranteed_cny"))
        if c.annual_history is not None and len(c.annual_history) < 1:
            problems.append(at("contract.annual_history", "give at least one year"))
        contract = Contract(**c.model_dump())
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))

    base = path.parent
    hashes: dict[str, str] = {}

    def csv_path(key: str, value: str) -> Path:
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.exists():
            problems.append(at(key, f"file not found: {p}"))
        return p

    tpath = csv_path("temperature", d.temperature)
    npath = csv_path("normal_year", d.normal_year) if d.normal_year else None
    cpath = csv_path("calendar", d.calendar) if d.calendar else None
    if problems:
        raise ConfigError(problems)

    frames: dict[str, pd.DataFrame | None] = {"temperature": None, "normal_year": None, "calendar": None}
    for key, p, reader in (("temperature", tpath, read_temperature_csv), ("normal_year", npath, read_temperature_csv),
                           ("calendar", cpath, read_calendar_csv)):
        if p is None:
            continue
        try:
            frames[key] = reader(p)
            hashes[str(p)] = _sha256(p)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)

    temps = frames["temperature"]
    assert temps is not None
    for key, span in (("baseline", d.baseline), ("reporting", d.reporting)):
        gap = missing_dates(temps["date"], span.start, span.end)
        if len(gap):
            problems.append(Problem(str(tpath), 0, "temp_c",
                                    f"no temperature for {describe_dates(gap)} of the {key} period "
                                    f"{span.start}..{span.end} (named at {src}:{lines.get('temperature', 0)})"))
    normal = frames["normal_year"]
    if normal is not None:
        days = (normal["date"].iloc[-1] - normal["date"].iloc[0]).days + 1
        if len(normal) not in NORMAL_YEAR_DAYS or days != len(normal):
            problems.append(Problem(str(npath), 0, "date", f"a normal year needs 365 or 366 consecutive days; "
                                                           f"found {len(normal)} rows over {days} days"))
    cal = frames["calendar"]
    if cal is not None:
        for key, span in (("baseline", d.baseline), ("reporting", d.reporting)):
            gap = missing_dates(cal["date"], span.start, span.end)
            if len(gap):
                problems.append(Problem(str(cpath), 0, "date", f"no calendar entry for {describe_dates(gap)} of the "
                                                               f"{key} period {span.start}..{span.end}"))
    if problems:
        raise ConfigError(problems)

    cv_max, nmbe_max = ASHRAE14_LIMITS[d.granularity]
    project = MVProject(
        id=d.id, source=src, energy=d.energy, granularity=d.granularity,
        baseline_start=d.baseline.start, baseline_end=d.baseline.end,
        reporting_start=d.reporting.start, reporting_end=d.reporting.end,
        temperature=temps, temperature_file=str(tpath), name=d.name, institution=d.institution,
        meters=list(d.meters) if d.meters else None,
        normal_year=normal, normal_year_file=str(npath) if npath else None,
        calendar=cal, calendar_file=str(cpath) if cpath else None,
        adjustments=adjustments, contract=contract, criterion=d.criterion,
        cvrmse_max=d.cvrmse_max or cv_max, nmbe_max=d.nmbe_max or nmbe_max,
        lines=lines, file_hashes=hashes,
    )
    if registry is not None and project.granularity == "bill":
        if project.institution not in registry.institution_by_id:
            raise ConfigError([project.problem("institution", f"unknown institution '{project.institution}' in "
                                                              f"{registry.source}")])
    elif registry is not None:
        project.meter_ids = resolve_meters(project, registry)
        project.unit = registry.meter_by_id[project.meter_ids[0]].unit
    return project
