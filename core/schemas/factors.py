"""Schema of a factor-set file.

Schema of a factor-set file (`models/factorsets/cn-2024.yaml` and users' override files),
and the electricity bases (当量值 / 等价值) that the quota file states too."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.schemas.base import Ident, Integer, NonNegative, Strict
from core.vocab import Energy

BASIS_ALIASES = {"equivalent": "equivalent", "当量值": "equivalent", "calorific": "equivalent",
                 "equal_value": "equal_value", "等价值": "equal_value", "generation": "equal_value"}
#: A basis as a file may write it (normalise with BASIS_ALIASES).
BasisName = Literal["equivalent", "当量值", "calorific", "equal_value", "等价值", "generation"]


class FactorRegion(Strict):
    """A region the lookups know: its level, the grid region it falls back to, its names."""

    level: str | None = None
    grid: str | None = None
    names: tuple[Ident, ...] = ()


class _Entry(Strict):
    """One factor: a non-negative value per canonical unit, where it applies, its source."""

    value: NonNegative
    region: str = "national"
    year: Integer | None = None
    unit: str | None = None
    source: str | None = None
    provisional: bool = False
    check: bool = False  # to verify against the publication before official use


class Conversion(_Entry):
    """Standard-coal coefficient (kgce per unit); `basis: any` applies to both bases.
    `variant`: one of several named choices for an energy (natural gas: gas_field,
    oil_field); the file's `choices` says which one is used."""

    energy: Energy
    basis: Literal[BasisName, "any"] = "any"
    variant: Ident | None = None


class Emission(_Entry):
    """Emission factor (kgCO2 per unit) of a fuel burnt on site (scope 1) or purchased heat (2)."""

    energy: Energy
    scope: Literal[1, 2] | None = None
    variant: Ident | None = None  # as Conversion.variant: coefficient and CO2 factor share one heating value


#: location: the region's average grid factor (location-based Scope 2); market: the
#: national factor for consumers of market-traded green power (market-based Scope 2, on
#: the electricity not covered by green-power purchases); fossil: fossil-fuel power.
GridKind = Literal["location", "market", "fossil"]


class Grid(_Entry):
    """Grid factor (kgCO2/kWh = tCO2/MWh) of a region and year."""

    region: str
    year: Integer
    kind: GridKind = "location"


class Density(_Entry):
    """Density (kg/L) of a liquid fuel."""

    energy: Energy


class FactorSetFile(Strict):
    """A factor-set file; every table is optional (an override file may hold one entry)."""

    id: Ident | None = None
    name: str | None = None
    units: dict[Energy, str] = Field(default_factory=dict)
    choices: dict[Energy, Ident] = Field(default_factory=dict)  # energy -> the variant used
    regions: dict[str, FactorRegion] = Field(default_factory=dict)
    conversion: tuple[Conversion, ...] = ()
    emission: tuple[Emission, ...] = ()
    grid: tuple[Grid, ...] = ()
    densities: tuple[Density, ...] = ()
