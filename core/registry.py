"""The registry (`civicwatt.yaml`): regions, institutions and meters.

`load_registry` returns a validated `Registry` or raises `ConfigError` listing every
problem at once, each with file, line and field (see interfaces.md for the format).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core.filecache import FileCache, cache_dir, content_stamp
from core.profiles import load_profiles
from core.schemas.base import ID_PATTERN
from core.schemas.institution import DataCentre
from core.textfile import echo
from core.vocab import DEFAULT_HEATING_SEASON, INDEX_UNIT, Boundary, BoundaryReason, Category, Energy, Subitem
from core.yamlfile import (
    ConfigError,
    LineDict,
    Problem,
    load_yaml,
    mapping_items,
    pydantic_problems,
    read_config_bytes,
    validate_node,
)

#: A province's registry (Hebei: 31,600 institutions, ~200k meters) is ~55 MB of YAML.
MAX_REGISTRY_BYTES = 256 * 1024 * 1024

# Heating season in Hebei and Beijing (domain.md section 4): 15 Nov - 15 Mar.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _month_day(value: str) -> str:
    """A real calendar day as MM-DD (02-29 included: it exists in leap years)."""
    try:
        date(2000, int(value[:2]), int(value[3:]))
    except ValueError:
        raise ValueError(f"'{echo(value)}' is not a day of the year (MM-DD)") from None
    return value


MonthDay = Annotated[str, Field(pattern=r"^\d{2}-\d{2}$"), AfterValidator(_month_day)]
#: Areas in m2: finite and non-negative, a number (not `yes`, not a quoted string).
Area = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
#: A positive finite number (multipliers, rollovers, ratings).
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
#: No public institution has ten million users; the bound also keeps counts within int64.
MAX_OCCUPANTS = 10_000_000


class HeatingSeason(_Strict):
    """Month-day bounds, inclusive, e.g. start '11-15', end '03-15'."""

    start: MonthDay
    end: MonthDay


class Region(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    parent: str | None = None
    heating_season: HeatingSeason | None = None
    # Energy prices (CNY per canonical unit: kWh, m3, GJ, kg) for cost views of metered
    # use, e.g. {electricity: 0.65, water: 4.2, natural_gas: 3.1}; a region without one
    # inherits its parent's price of that energy.
    tariffs: dict[Energy, Annotated[float, Field(ge=0)]] | None = None


def _boundary_reason(reason: str | None, info: ValidationInfo) -> str | None:
    """An excluded meter or bill needs its reason; an included one has none."""
    excluded = info.data.get("boundary") == "excluded"
    if excluded and reason is None:
        raise ValueError("an excluded meter or bill needs its reason: 家属区, 出租 or 独立法人")
    if not excluded and reason is not None:
        raise ValueError("a reason only goes with boundary: excluded")
    return reason


class ExcludedBills(_Strict):
    """Bills of one energy of an institution outside the accounting boundary, e.g. the
    staff housing's heat billed to the institution: every bill day of `energy` in
    [start, end] (dates inclusive; open when omitted) is deducted."""

    energy: Energy
    boundary: Boundary = "excluded"
    boundary_reason: BoundaryReason | None = Field(default=None, validate_default=True)
    start: date | None = None
    end: date | None = None

    _reason = field_validator("boundary_reason")(_boundary_reason)


class Institution(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    region: str
    category: Category
    floor_area_m2: Area
    heated_area_m2: Area = 0
    occupants: int = Field(ge=0, le=MAX_OCCUPANTS, strict=True)
    department: str | None = Field(default=None, min_length=1, max_length=100)  # 主管部门 (supervising department)
    data_centre: DataCentre | None = None  # 数据中心机房, core/schemas/institution.py
    # The lower-level instance that reports this institution (纵向直报; `with_reported`), None for our own.
    source: str | None = Field(default=None, pattern=ID_PATTERN)
    bills: tuple[ExcludedBills, ...] = ()  # bills outside the boundary (`boundary: excluded`)


class ModbusAddress(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535, strict=True)
    unit: int = Field(default=1, ge=0, le=255, strict=True)
    profile: str
    interval_s: int = Field(default=900, ge=10, le=86400, strict=True)


class Meter(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    institution: str
    energy: Energy
    subitem: Subitem = "total"
    parent: str | None = None
    multiplier: Positive = 1.0
    # Index at which the register wraps to zero; defaults to the profile's rollover.
    rollover: Positive | None = None
    # Rated power (kW) or flow (unit/h) for the plausibility check of domain.md section 5.
    rated: Positive | None = None
    heating: bool = Field(default=False, strict=True)  # a heating meter (boiler gas, heating pumps...) for the heating split
    modbus: ModbusAddress | None = None
    # Outside the accounting boundary (家属区, 出租, 独立法人): a main meter's use is not
    # counted, a sub-meter's is deducted from its institution's (models.energy).
    boundary: Boundary = "included"
    boundary_reason: BoundaryReason | None = Field(default=None, validate_default=True)

    _reason = field_validator("boundary_reason")(_boundary_reason)

    @property
    def unit(self) -> str:
        return INDEX_UNIT[self.energy]

    @property
    def rollover_at(self) -> float | None:
        if self.rollover is not None:
            return self.rollover
        if self.modbus is not None:
            return load_profiles().get(self.modbus.profile, {}).get("rollover")
        return None


DayOfMonth = Annotated[int, Field(ge=1, le=28, strict=True)]


class SubmissionSettings(_Strict):
    """`submissions:` of the registry: the monthly submissions' deadline (day of the next
    month) and the days of that month on which reminders go to those not yet submitted
    (overdue ones are reported to their region managers from the day after the deadline)."""

    deadline_day: DayOfMonth = 15  # domain.md §1: last month's figures by the 15th of the next month
    reminder_days: tuple[DayOfMonth, ...] = (10, 14)  # the defaults: the 10th and the 14th


class Registry(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    timezone: str = "Asia/Shanghai"
    heating_season: HeatingSeason = HeatingSeason(**DEFAULT_HEATING_SEASON)
    submissions: SubmissionSettings = SubmissionSettings()
    regions: tuple[Region, ...] = ()
    institutions: tuple[Institution, ...] = ()
    meters: tuple[Meter, ...] = ()
    source: str = "<memory>"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def region_by_id(self) -> dict[str, Region]:
        return {r.id: r for r in self.regions}

    @cached_property
    def institution_by_id(self) -> dict[str, Institution]:
        return {i.id: i for i in self.institutions}

    @cached_property
    def source_by_id(self) -> dict[str, str | None]:
        """Institution id -> the lower-level instance that reports it (纵向直报), None for our own."""
        return {i.id: i.source for i in self.institutions}

    @cached_property
    def meter_by_id(self) -> dict[str, Meter]:
        return {m.id: m for m in self.meters}

    @cached_property
    def region_parents(self) -> dict[str, str | None]:
        """Region id -> parent id (None for a root)."""
        return {r.id: r.parent for r in self.regions}

    def region_ancestors(self, region_id: str) -> list[str]:
        """The region and its ancestors, nearest first."""
        return region_chain(region_id, self.region_parents)

    def region_subtree(self, region_id: str) -> set[str]:
        """The region and every region below it."""
        return {r.id for r in self.regions if region_id in self.region_ancestors(r.id)}

    def heating_season_of(self, region_id: str) -> HeatingSeason:
        for rid in self.region_ancestors(region_id):
            season = self.region_by_id[rid].heating_season
            if season is not None:
                return season
        return self.heating_season

    def tariffs_of(self, region_id: str) -> dict[str, float]:
        """Energy -> CNY per canonical unit in force in a region: its own tariffs, then
        those of each ancestor for the energies it does not price."""
        out: dict[str, float] = {}
        for rid in reversed(self.region_ancestors(region_id)):
            out.update(self.region_by_id[rid].tariffs or {})
        return out

    def institutions_frame(self) -> pd.DataFrame:
        """One row per institution: id, name, region, category, areas, occupants,
        department (None where not given). Built once per registry; each call gets a copy."""
        return self._frames["institutions"].copy()

    @cached_property
    def _frames(self) -> dict[str, pd.DataFrame]:
        """The institutions and meters frames, built on first use (a province's registry
        has ~160,000 meters: every verb asks for them several times)."""
        cols = [c for c in Institution.model_fields if c != "data_centre"]  # `source`: None for our own
        institutions = pd.DataFrame([i.model_dump(exclude={"data_centre"}) for i in self.institutions], columns=cols)
        rows = [
            {
                "meter_id": m.id,
                "institution_id": m.institution,
                "energy": m.energy,
                "subitem": m.subitem,
                "parent": m.parent,
                "multiplier": m.multiplier,
                "rollover_at": m.rollover_at,
                "rated": m.rated,
                "heating": m.heating,
                "unit": m.unit,
                "boundary": m.boundary,
                "boundary_reason": m.boundary_reason,
                "interval_s": float(m.modbus.interval_s) if m.modbus is not None else np.nan,
            }
            for m in self.meters
        ]
        cols = ["meter_id", "institution_id", "energy", "subitem", "parent", "multiplier",
                "rollover_at", "rated", "heating", "unit", "boundary", "boundary_reason", "interval_s"]
        return {"institutions": institutions, "meters": pd.DataFrame(rows, columns=cols)}

    def excluded_bills_frame(self) -> pd.DataFrame:
        """One row per bill exclusion: institution_id, energy, boundary_reason, start,
        end (dates; NaT: open)."""
        rows = [(i.id, b.energy, b.boundary_reason, b.start, b.end) for i in self.institutions for b in i.bills
                if b.boundary == "excluded"]
        df = pd.DataFrame(rows, columns=["institution_id", "energy", "boundary_reason", "start", "end"])
        return df.assign(start=pd.to_datetime(df["start"]), end=pd.to_datetime(df["end"]))

    def meters_frame(self) -> pd.DataFrame:
        """One row per meter: id, institution, energy, subitem, parent, multiplier,
        rollover_at, rated, heating, unit, boundary, boundary_reason, interval_s (the
        Modbus poll interval of a live meter, NaN for one fed by imports). Built once per
        registry; each call gets a copy."""
        return self._frames["meters"].copy()


# -- the region tree: the one walk, for a Registry or a plain id -> parent mapping ----------
#: A region tree as the arithmetic takes it: a Registry, a frame with `id` and `parent`
#: columns, or a mapping id -> parent id (None for a root); None is no tree (every region
#: stands alone).
RegionTree = Registry | pd.DataFrame | Mapping[str, str | None] | None


def region_parents(tree: RegionTree) -> dict[str, str | None]:
    """Region id -> parent id of any `RegionTree` ({} for None)."""
    if tree is None:
        return {}
    if isinstance(tree, Registry):
        return tree.region_parents
    if isinstance(tree, pd.DataFrame):
        parent = tree["parent"].astype(object)
        return dict(zip(tree["id"], parent.where(parent.notna(), None), strict=True))  # a missing parent: a root
    return dict(tree)


def region_chain(region_id: str, parents: Mapping[str, str | None]) -> list[str]:
    """The region and its ancestors, nearest first; the walk stops at a root, at an id
    the mapping does not know, or where a parent loop would repeat a region."""
    out: list[str] = []
    cur: str | None = region_id
    while cur is not None and cur not in out:
        out.append(cur)
        cur = parents.get(cur)
    return out


def region_ancestors_frame(regions: Iterable[str], tree: RegionTree) -> pd.DataFrame:
    """(region, ancestor, depth) rows: each of `regions` paired with itself (depth 0)
    and with every ancestor (depth 1 = its parent ...). Merge it on `region` to count a
    row in every region above it (a region's figures then cover its whole subtree)."""
    parents = region_parents(tree)
    rows = [(r, a, d) for r in regions for d, a in enumerate(region_chain(r, parents))]  # few distinct regions
    return pd.DataFrame(rows, columns=["region", "ancestor", "depth"])


def _parse_list(file: str, doc: LineDict, key: str, model: type[BaseModel],
                problems: list[Problem]) -> tuple[list[tuple[int, LineDict, Any]], list[str]]:
    """Validate each item of `doc[key]`: (index, raw, object) of the valid ones, and the
    ids of all items, valid or not (so references to an invalid item are not reported twice)."""
    items = mapping_items(doc, key, file, problems)
    ids = [str(item["id"]) for _, item in items if "id" in item]
    out = []
    for n, item in items:
        try:
            out.append((n, item, model.model_validate(dict(item))))
        except ValidationError as exc:
            problems.extend(pydantic_problems(file, item, f"{key}[{n}]", exc))
    counts = Counter(ids)
    for n, item in items:
        if "id" in item and counts[str(item["id"])] > 1:
            problems.append(Problem(file, item.line_of("id"), f"{key}[{n}].id", f"duplicate id '{echo(item['id'])}'"))
    return out, ids


def _find_cycles(parents: dict[str, str | None]) -> set[str]:
    """Ids that sit on a parent cycle."""
    on_cycle: set[str] = set()
    for start in parents:
        seen: list[str] = []
        cur: str | None = start
        while cur is not None and cur in parents and cur not in seen:
            seen.append(cur)
            cur = parents[cur]
        if cur is not None and cur in seen:
            on_cycle.update(seen[seen.index(cur):])
    return on_cycle


def validate_registry_doc(doc: Any, file: str) -> tuple[Registry | None, list[Problem]]:
    """Validate a loaded YAML document; return the registry (when valid) and every problem."""
    problems: list[Problem] = []
    if not isinstance(doc, LineDict):
        return None, [Problem(file, 1, "-", "the registry must be a YAML mapping")]
    known = {"timezone", "heating_season", "submissions", "regions", "institutions", "meters"}
    for key in doc:
        if key not in known:
            problems.append(Problem(file, doc.line_of(key), str(key), "unknown key"))
    tz = doc.get("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(file, doc.line_of("timezone"), "timezone", f"unknown time zone '{echo(tz)}'"))
    season = None
    if "heating_season" in doc:
        node = doc["heating_season"]
        season = validate_node(HeatingSeason, node, file, "heating_season", problems)
        if season is None and not isinstance(node, LineDict):  # the mapper locates inside a mapping only
            problems[-1] = Problem(file, doc.line_of("heating_season"), "heating_season", problems[-1].message)
    submissions = None
    if "submissions" in doc:
        node = doc["submissions"]
        submissions = validate_node(SubmissionSettings, node, file, "submissions", problems)
        if submissions is None and not isinstance(node, LineDict):
            problems[-1] = Problem(file, doc.line_of("submissions"), "submissions", problems[-1].message)

    regions, region_list = _parse_list(file, doc, "regions", Region, problems)
    insts, inst_list = _parse_list(file, doc, "institutions", Institution, problems)
    meters, meter_list = _parse_list(file, doc, "meters", Meter, problems)
    region_ids, inst_ids, meter_ids = set(region_list), set(inst_list), set(meter_list)
    profiles = load_profiles()
    # Items that failed their own validation still get their references checked.
    valid = {("regions", n) for n, _, _ in regions} | {("institutions", n) for n, _, _ in insts} | {
        ("meters", n) for n, _, _ in meters}
    ref_checks = (("regions", "parent", region_ids, "region"), ("institutions", "region", region_ids, "region"),
                  ("meters", "institution", inst_ids, "institution"), ("meters", "parent", meter_ids, "meter"))
    for key, field, known_ids, what in ref_checks:
        items = doc.get(key) if isinstance(doc.get(key), list) else []
        for n, item in enumerate(items):
            if (key, n) in valid or not isinstance(item, LineDict):
                continue
            ref = item.get(field)
            if ref is not None and str(ref) not in known_ids:
                problems.append(Problem(file, item.line_of(field), f"{key}[{n}].{field}", f"unknown {what} '{echo(ref)}'"))

    for n, raw, r in regions:
        if r.parent is not None and r.parent not in region_ids:
            problems.append(Problem(file, raw.line_of("parent"), f"regions[{n}].parent", f"unknown region '{echo(r.parent)}'"))
    region_cycle = _find_cycles({r.id: r.parent for _, _, r in regions})
    for n, raw, r in regions:
        if r.id in region_cycle:
            problems.append(Problem(file, raw.line_of("parent"), f"regions[{n}].parent", f"region loop through '{r.id}'"))

    for n, raw, i in insts:
        if i.region not in region_ids:
            problems.append(Problem(file, raw.line_of("region"), f"institutions[{n}].region", f"unknown region '{echo(i.region)}'"))
        if i.heated_area_m2 > i.floor_area_m2:
            problems.append(Problem(file, raw.line_of("heated_area_m2"), f"institutions[{n}].heated_area_m2",
                                    "heated area exceeds floor area"))

    meter_by_id = {m.id: m for _, _, m in meters}
    for n, raw, i in insts:
        if i.data_centre is None:
            continue
        dc = raw.get("data_centre")
        for field in ("meters", "it_meters"):
            refs = dc.get(field) if isinstance(dc, LineDict) else None
            for k, ref in enumerate(getattr(i.data_centre, field)):
                line = refs.line_of(k) if hasattr(refs, "line_of") else raw.line_of("data_centre")
                where = f"institutions[{n}].data_centre.{field}[{k}]"
                m = meter_by_id.get(ref)
                if ref not in meter_ids:
                    problems.append(Problem(file, line, where, f"unknown meter '{echo(ref)}'"))
                elif m is not None and m.institution != i.id:
                    problems.append(Problem(file, line, where, f"meter '{ref}' belongs to another institution"))
                elif m is not None and m.energy != "electricity":
                    problems.append(Problem(file, line, where, f"meter '{ref}' measures {m.energy}, not electricity"))
    for n, raw, m in meters:
        if m.institution not in inst_ids:
            problems.append(Problem(file, raw.line_of("institution"), f"meters[{n}].institution",
                                    f"unknown institution '{echo(m.institution)}'"))
        if m.parent is not None:
            if m.parent not in meter_ids:
                problems.append(Problem(file, raw.line_of("parent"), f"meters[{n}].parent", f"unknown meter '{echo(m.parent)}'"))
            elif m.parent not in meter_by_id:
                pass  # the parent failed its own validation: reported there
            elif meter_by_id[m.parent].institution != m.institution:
                problems.append(Problem(file, raw.line_of("parent"), f"meters[{n}].parent",
                                        f"parent meter '{m.parent}' belongs to another institution"))
            elif meter_by_id[m.parent].energy != m.energy:
                problems.append(Problem(file, raw.line_of("parent"), f"meters[{n}].parent",
                                        f"parent meter '{m.parent}' measures {meter_by_id[m.parent].energy}, not {m.energy}"))
        if m.modbus is not None and m.modbus.profile not in profiles:
            mb = raw.get("modbus")
            line = mb.line_of("profile") if isinstance(mb, LineDict) else raw.line_of("modbus")
            problems.append(Problem(file, line, f"meters[{n}].modbus.profile",
                                    f"unknown profile '{echo(m.modbus.profile)}' (known: {', '.join(sorted(profiles))})"))
        elif m.modbus is not None and profiles[m.modbus.profile]["energy"] != m.energy:
            mb = raw.get("modbus")
            line = mb.line_of("profile") if isinstance(mb, LineDict) else raw.line_of("modbus")
            problems.append(Problem(file, line, f"meters[{n}].modbus.profile",
                                    f"profile '{m.modbus.profile}' measures {profiles[m.modbus.profile]['energy']}, not {m.energy}"))
    meter_cycle = _find_cycles({m.id: m.parent for _, _, m in meters})
    for n, raw, m in meters:
        if m.id in meter_cycle:
            problems.append(Problem(file, raw.line_of("parent"), f"meters[{n}].parent", f"sub-meter loop through '{m.id}'"))

    endpoints = Counter((m.modbus.host, m.modbus.port, m.modbus.unit) for _, _, m in meters if m.modbus)
    for n, raw, m in meters:
        if m.modbus is not None and endpoints[(m.modbus.host, m.modbus.port, m.modbus.unit)] > 1:
            problems.append(Problem(file, raw.line_of("modbus"), f"meters[{n}].modbus",
                                    f"unit {m.modbus.unit} at {m.modbus.host}:{m.modbus.port} is used by more than one meter"))

    if problems:
        return None, sorted(problems, key=lambda p: (p.line, p.field))
    registry = Registry(
        timezone=str(tz),
        heating_season=season or HeatingSeason(**DEFAULT_HEATING_SEASON),
        submissions=submissions or SubmissionSettings(),
        regions=tuple(r for _, _, r in regions),
        institutions=tuple(i for _, _, i in insts),
        meters=tuple(m for _, _, m in meters),
        source=file,
    )
    return registry, []


def reported_entry(institution: Institution, registry: Registry) -> dict[str, Any]:
    """What a lower level pushes upward about one of its institutions: its basic
    information and its region with every ancestor (nearest first, id, name, parent)."""
    chain = [registry.region_by_id[r] for r in registry.region_ancestors(institution.region)
             if r in registry.region_by_id]
    info = institution.model_dump(include={"id", "name", "region", "category", "floor_area_m2", "heated_area_m2",
                                           "occupants", "department"})
    return {**info, "regions": [{"id": r.id, "name": r.name, "parent": r.parent} for r in chain]}


def with_reported(registry: Registry, reported: Iterable[tuple[str, Mapping[str, Any]]]) -> Registry:
    """`registry` with the institutions lower-level instances reported (instance,
    `reported_entry`), each marked `source` = its instance, and the regions they name
    that the registry lacks (a known region id is kept as it is). An institution whose
    id is one of our own is left out (ours win); one reported before is replaced by its
    new entry (a lower level corrected its area or people). `registry` itself when
    nothing changes."""
    regions = list(registry.regions)
    known = {r.id for r in regions}
    own = {i.id for i in registry.institutions if i.source is None}
    kept = {i.id: i for i in registry.institutions}
    added = []
    for instance, info in reported:
        if info["id"] in own:
            continue
        for r in reversed(info.get("regions", [])):  # ancestors first
            if r["id"] not in known:
                parent = r.get("parent") if r.get("parent") in known else None
                regions.append(Region(id=r["id"], name=r["name"], parent=parent))
                known.add(r["id"])
        inst = Institution(**{k: info[k] for k in ("id", "name", "region", "category", "floor_area_m2",
                                                   "heated_area_m2", "occupants")},
                           department=info.get("department"), source=instance)
        if kept.get(inst.id) != inst:
            kept[inst.id] = inst
            added.append(inst)
    if not added and len(regions) == len(registry.regions):
        return registry
    fields = {name: getattr(registry, name) for name in Registry.model_fields}  # a new object: no stale caches
    return Registry(**{**fields, "regions": tuple(regions), "institutions": tuple(kept.values())})


@lru_cache(maxsize=1)
def snapshot_version() -> str:
    """What a registry snapshot depends on besides the file: the code of `core` (the
    schema, the validation, the profiles it checks against) and the libraries whose
    objects it pickles. A change to any of them makes every snapshot stale."""
    digest = hashlib.sha256(f"{sys.version}|{pydantic.VERSION}|{pd.__version__}|{np.__version__}".encode())
    root = Path(__file__).parent
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.yaml")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_registry(path: str | Path) -> Registry:
    """Load and validate a registry file; raise ConfigError with every problem.

    A province's registry is tens of MB of YAML (~80 s to parse and validate at 31,600
    institutions), so the validated registry, its frames built, is kept as a snapshot
    in the user's cache directory (`core.filecache.cache_dir("registry")`, one file per
    registry path) and served while the file's path, size, mtime and sha256 are the
    ones it was made from; an invalid file gets no snapshot and raises as before."""
    path = Path(path)
    data, st = read_config_bytes(path, MAX_REGISTRY_BYTES)

    def parse() -> Registry:
        doc = load_yaml(path, max_bytes=MAX_REGISTRY_BYTES, data=data)
        registry, problems = validate_registry_doc(doc, str(path))
        if problems:
            raise ConfigError(problems)
        assert registry is not None
        registry._frames  # noqa: B018 -- built once, kept in the snapshot
        return registry

    cache = FileCache(cache_dir("registry"), version=snapshot_version())
    registry = cache.get(("registry", str(path.resolve())), content_stamp(path, data, st), parse)
    # The same file named another way (relative, through a link): messages name it as asked.
    return registry if registry.source == str(path) else registry.model_copy(update={"source": str(path)})
