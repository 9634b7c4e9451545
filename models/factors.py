"""Factor sets as data: standard-coal coefficients, emission factors, grid factors.

A factor set is a YAML file (shipped: `models/factorsets/cn-2025.yaml`, the default,
and `cn-2024.yaml`, kept unchanged so earlier results can be reproduced); a
user's file of the same shape merges on top of it: an entry with the same key replaces
the shipped one, a new key is added. The merged set's `id` names every file that went
into it (e.g. ``cn-2024+hebei-2025``) and every result records it.

Lookups go from the most specific to the most general region (province -> grid region
-> national). Within the chosen region the factor of the activity year is used; when
that year is not published the latest earlier year is used (or the earliest, for years
before the first publication) and the figure is marked *provisional* (domain.md §3).
Entries flagged ``provisional`` or ``check`` in the file are provisional too.

Named variants: an energy may carry several coefficients (natural gas: ``gas_field``
气田 and ``oil_field`` 油田), each with the emission factor on the same heating value; the
file's ``choices`` picks one (an override file can pick another). Grid factors have a
``kind``: ``location`` (the region's average, location-based Scope 2), ``market`` (the
national factor for consumers of market-traded green power, market-based Scope 2) and
``fossil``.

All factors are held per *canonical unit* (`core.vocab.CANONICAL_UNIT`): kgce per unit for conversion,
kgCO2 per unit for emissions (a grid factor in tCO2/MWh is the same number in kgCO2/kWh).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.schemas.factors import BASIS_ALIASES, FactorSetFile
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node

FACTORSETS = Path(__file__).with_name("factorsets")
#: The shipped sets by id; `DEFAULT_SET` is used unless another is named.
SHIPPED_SETS = {"cn-2024": FACTORSETS / "cn-2024.yaml", "cn-2025": FACTORSETS / "cn-2025.yaml"}
DEFAULT_SET = "cn-2025"
SHIPPED = SHIPPED_SETS[DEFAULT_SET]

#: Canonical unit of every energy in the models (fuels by mass): `core.vocab.CANONICAL_UNIT`.
#: Energies converted to standard coal (water and on-site PV generation are not).
COAL_ENERGIES = ("electricity", "natural_gas", "heat", "gasoline", "diesel", "lpg", "coal")
#: Vehicle fuels, excluded from non-heating energy (domain.md §4).
#: Scope of each energy's emissions (domain.md §3): fuels burnt on site 1, purchased 2.
SCOPE: dict[str, int] = {"natural_gas": 1, "gasoline": 1, "diesel": 1, "lpg": 1, "coal": 1,
                         "electricity": 2, "heat": 2}

BASIS_LABEL = {"equivalent": "当量值 (calorific equivalent)", "equal_value": "等价值 (equal value)"}
NATIONAL = "national"


def normalize_basis(basis: str) -> str:
    """'equivalent' (当量值, default) or 'equal_value' (等价值); raises ValueError otherwise."""
    try:
        return BASIS_ALIASES[basis]
    except KeyError:
        raise ValueError(f"unknown electricity basis {basis!r}: use 'equivalent' (当量值) "
                         f"or 'equal_value' (等价值)") from None


@dataclass(frozen=True)
class Factor:
    """One factor: value per canonical unit, with where it comes from."""

    value: float
    unit: str
    source: str
    region: str
    year: int | None
    provisional: bool


@dataclass
class FactorSet:
    """A merged factor set. Tables are DataFrames with columns

    * conversion: energy, basis, region, year, value (kgce/unit), unit, source, provisional
    * emission: energy, scope, region, year, value (kgCO2/unit), unit, source, provisional
    * grid: region, year, kind (location | market | fossil), value (kgCO2/kWh =
      tCO2/MWh), unit, source, provisional
    * densities: energy, region, value (kg/L), unit, source, provisional
    """

    id: str
    name: str
    conversion: pd.DataFrame
    emission: pd.DataFrame
    grid: pd.DataFrame
    densities: pd.DataFrame
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    choices: dict[str, str] = field(default_factory=dict)  # energy -> the variant in use

    # -- regions ------------------------------------------------------------------
    def match_region(self, names: list[str]) -> str | None:
        """The first of `names` (a registry region chain: ids and names, nearest first)
        that this set knows as a province or grid region."""
        index: dict[str, str] = {}
        for key, spec in self.regions.items():
            index[key.lower()] = key
            for alias in spec.get("names", []) or []:
                index[str(alias).lower()] = key
        for name in names:
            hit = index.get(str(name).lower())
            if hit is not None and hit != NATIONAL:
                return hit
        return None

    def region_chain(self, region: str | None) -> list[str]:
        """Factor regions to try for `region`, most specific first, ending in national."""
        out: list[str] = []
        cur = region
        while cur and cur not in out and cur != NATIONAL:
            out.append(cur)
            cur = (self.regions.get(cur) or {}).get("grid")
        out.append(NATIONAL)
        return out

    # -- lookups ------------------------------------------------------------------
    @staticmethod
    def _pick(table: pd.DataFrame, chain: list[str], year: int | None) -> Factor | None:
        for reg in chain:
            rows = table[table["region"] == reg]
            if rows.empty:
                continue
            years = rows["year"]
            if year is None:
                row = rows.loc[years.fillna(-1).idxmax()]
                late = True
            else:
                exact = rows[years == year]
                if len(exact):
                    row, late = exact.iloc[-1], False
                else:
                    earlier = rows[years.fillna(-1) < year]
                    row = (earlier.loc[earlier["year"].fillna(-1).idxmax()] if len(earlier)
                           else rows.loc[years.fillna(1 << 30).idxmin()])
                    late = True
            yr = None if pd.isna(row["year"]) else int(row["year"])
            return Factor(float(row["value"]), str(row["unit"]), str(row["source"]), reg, yr,
                          bool(row["provisional"]) or (late and yr is not None and yr != year))
        return None

    def coal_factor(self, energy: str, basis: str = "equivalent", region: str | None = None,
                    year: int | None = None) -> Factor:
        """kgce per canonical unit of `energy` on `basis` (Factor with source)."""
        basis = normalize_basis(basis)
        t = self.conversion[(self.conversion["energy"] == energy)
                            & self.conversion["basis"].isin([basis, "any"])]
        f = self._pick(t, self.region_chain(region), year)
        if f is None:
            raise KeyError(f"factor set {self.id} has no standard-coal coefficient for {energy} ({basis})")
        return f

    def coal_kgce_per_unit(self, energy: str, basis: str = "equivalent", region: str | None = None,
                           year: int | None = None) -> float:
        """kgce per canonical unit (kWh, m3, GJ, kg) of `energy`; 0 for water and PV."""
        if energy not in COAL_ENERGIES:
            return 0.0
        return self.coal_factor(energy, basis, region, year).value

    def emission_factor(self, energy: str, region: str | None = None, year: int | None = None) -> Factor:
        """kgCO2 per canonical unit: the grid factor for electricity (location-based),
        the fuel or heat factor otherwise. Scope is `SCOPE[energy]`."""
        chain = self.region_chain(region)
        if energy == "electricity":
            f = self._pick(self.grid[self.grid["kind"] == "location"], chain, year)
        else:
            f = self._pick(self.emission[self.emission["energy"] == energy], chain, year)
        if f is None:
            raise KeyError(f"factor set {self.id} has no emission factor for {energy}")
        return f

    def market_grid_factor(self, year: int | None = None) -> Factor:
        """kgCO2/kWh for market-based Scope 2: the national factor for consumers of
        market-traded green power, applied to the electricity not covered by green-power
        purchases (those count zero). The latest earlier year (provisional) when `year`
        is not published."""
        f = self._pick(self.grid[self.grid["kind"] == "market"], [NATIONAL], year)
        if f is None:
            raise KeyError(f"factor set {self.id} has no market-based grid factor (kind: market)")
        return f

    def density_kg_per_l(self, energy: str, region: str | None = None) -> float:
        """Density (kg/L) of a liquid fuel, for L -> kg."""
        f = self._pick(self.densities[self.densities["energy"] == energy], self.region_chain(region), None)
        if f is None:
            raise KeyError(f"factor set {self.id} has no density for {energy}")
        return f.value

    # -- vectorised lookups over unique keys ----------------------------------------
    def factor_frame(self, keys: pd.DataFrame, basis: str = "equivalent") -> pd.DataFrame:
        """For each row of `keys` (energy, factor_region, year) the coefficients:
        kgce_per_unit, kgco2_per_unit, scope, provisional (any of the two),
        coal_source, emission_source. Computed once per unique key."""
        basis = normalize_basis(basis)
        keys = keys[["energy", "factor_region", "year"]].astype({"year": float, "energy": object})
        keys = keys.assign(factor_region=keys["factor_region"].astype(object).where(keys["factor_region"].notna(), ""))
        uniq = keys.drop_duplicates().reset_index(drop=True)
        rows = []
        for energy, reg, year in uniq.itertuples(index=False):  # one per unique key (few)
            reg = reg or None
            yr = None if year is None or pd.isna(year) else int(year)
            coal = self.coal_factor(energy, basis, reg, yr) if energy in COAL_ENERGIES else None
            emis = self.emission_factor(energy, reg, yr) if energy in SCOPE else None
            rows.append({
                "kgce_per_unit": coal.value if coal else 0.0,
                "kgco2_per_unit": emis.value if emis else 0.0,
                "scope": SCOPE.get(energy, 0),
                "provisional": bool((coal and coal.provisional) or (emis and emis.provisional)),
                "coal_source": coal.source if coal else "",
                "emission_source": emis.source if emis else "",
                "emission_unit": (emis.unit if emis else ""),
            })
        cols = ["kgce_per_unit", "kgco2_per_unit", "scope", "provisional", "coal_source", "emission_source",
                "emission_unit"]
        out = pd.concat([uniq, pd.DataFrame(rows, index=uniq.index, columns=cols)], axis=1)
        return keys.merge(out, how="left", on=["energy", "factor_region", "year"])

    def to_frame(self) -> pd.DataFrame:
        """Every factor in one table (for the ledger's `factors` sheet): kind, energy,
        basis, scope, region, year, value, unit, source, provisional."""
        conv = self.conversion.assign(kind="conversion", scope=np.nan)
        emis = self.emission.assign(kind="emission", basis="")
        grid = self.grid.assign(kind="grid_" + self.grid["kind"].astype(str), energy="electricity", basis="", scope=2)
        dens = self.densities.assign(kind="density", basis="", scope=np.nan, year=np.nan)
        cols = ["kind", "energy", "basis", "scope", "region", "year", "value", "unit", "source", "provisional"]
        out = pd.concat([t[cols] for t in (conv, emis, grid, dens)], ignore_index=True)
        return out.assign(factor_set=self.id)


#: Key columns of each table: an override entry with the same key replaces the shipped one.
_KEYS: dict[str, list[str]] = {
    "conversion": ["energy", "basis", "region", "year", "variant"],
    "emission": ["energy", "scope", "region", "year", "variant"],
    "grid": ["region", "year", "kind"],
    "densities": ["energy", "region"],
}
_DEFAULT_UNIT = {"grid": "kgCO2/kWh", "densities": "kg/L"}
_COLUMNS = ["energy", "basis", "scope", "region", "year", "value", "unit", "source", "provisional", "variant", "kind"]


def _parse(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    """One factor-set file as tables (see `FactorSet`), or its problems (schema: `FactorSetFile`)."""
    doc = load_yaml(path)
    file = str(path)
    if not isinstance(doc, LineDict):
        return {}, [Problem(file, 1, "-", "a factor set must be a YAML mapping")]
    problems: list[Problem] = []
    parsed = validate_node(FactorSetFile, doc, file, "", problems)
    if parsed is None:
        return {}, problems
    out: dict[str, Any] = {"id": parsed.id or path.stem, "name": parsed.name or "",
                           "regions": {k: r.model_dump(exclude_unset=True) for k, r in parsed.regions.items()},
                           "choices": dict(parsed.choices)}
    for table in _KEYS:
        rows = [{
            "energy": getattr(e, "energy", None),
            "basis": BASIS_ALIASES.get(e.basis, "any") if table == "conversion" else "",
            "scope": getattr(e, "scope", None),
            "region": e.region,
            "year": e.year,
            "value": e.value,
            "unit": e.unit if e.unit is not None else _DEFAULT_UNIT.get(table, ""),
            "source": e.source if e.source is not None else file,
            "provisional": e.provisional or e.check,
            "variant": getattr(e, "variant", None) or "",
            "kind": getattr(e, "kind", ""),
        } for e in getattr(parsed, table)]
        out[table] = pd.DataFrame(rows, columns=_COLUMNS)
    return out, problems


def _merge(base: pd.DataFrame, over: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if over.empty:
        return base
    if base.empty:
        return over
    both = pd.concat([base, over], ignore_index=True)
    k = both[keys].astype(str)
    return both[~k.duplicated(keep="last")].reset_index(drop=True)


def load_factors(path: str | Path | None = None, base: str | Path | None = SHIPPED) -> FactorSet:
    """The shipped factor set, with the user's file at `path` (if any) merged on top.
    `path` or `base` may also name a shipped set by id (``cn-2024``, ``cn-2025``):
    ``load_factors("cn-2024")`` is that set alone.

    Raises ConfigError listing every problem (file, line, field) of either file.
    """
    if path is not None and str(path) in SHIPPED_SETS:
        base, path = SHIPPED_SETS[str(path)], None
    if base is not None and str(base) in SHIPPED_SETS:
        base = SHIPPED_SETS[str(base)]
    files = [Path(p) for p in (base, path) if p is not None]
    parsed = []
    problems: list[Problem] = []
    for f in files:
        doc, probs = _parse(f)
        parsed.append(doc)
        problems += probs
    if problems:
        raise ConfigError(problems)
    merged = parsed[0]
    for doc in parsed[1:]:
        for table, keys in _KEYS.items():
            merged[table] = _merge(merged[table], doc[table], keys)
        merged["regions"] = {**merged["regions"], **doc["regions"]}
        merged["choices"] = {**merged["choices"], **doc["choices"]}
    _choose_variants(merged, files)
    fid = "+".join(d["id"] for d in parsed)
    name = " + ".join(d["name"] or d["id"] for d in parsed)
    for table in _KEYS:
        merged[table]["year"] = pd.to_numeric(merged[table]["year"], errors="coerce").astype(float)
    return FactorSet(id=fid, name=name, conversion=merged["conversion"], emission=merged["emission"],
                     grid=merged["grid"], densities=merged["densities"], regions=merged["regions"],
                     files=tuple(str(f) for f in files), choices=merged["choices"])


def _choose_variants(merged: dict[str, Any], files: list[Path]) -> None:
    """Keep, per energy with named variants, only the rows of the chosen one (in place);
    ConfigError when an energy has variants and none is chosen, or the choice is unknown."""
    problems: list[Problem] = []
    for table in ("conversion", "emission"):
        t = merged[table]
        named = t[t["variant"] != ""]
        for energy, variants in named.groupby("energy")["variant"]:  # few energies
            chosen = merged["choices"].get(energy)
            if chosen not in set(variants):
                problems.append(Problem(str(files[-1]), 1, f"choices.{energy}",
                                        f"choose one of {', '.join(sorted(set(variants)))} for {energy}"
                                        + (f", not '{chosen}'" if chosen else "")))
        chosen = t["energy"].astype(object).map(lambda e: merged["choices"].get(e, ""))  # one per row of a small table
        keep = (t["variant"] == "") | (t["variant"] == chosen)
        merged[table] = t[keep.to_numpy(bool)].reset_index(drop=True)
    if problems:
        raise ConfigError(problems)
