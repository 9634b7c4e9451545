"""The shared vocabulary: categories, energies, sub-items and units (interfaces.md), defined once."""

from __future__ import annotations

from typing import Literal

Category = Literal["government", "school", "hospital", "venue", "other"]
Energy = Literal["electricity", "water", "natural_gas", "heat", "gasoline", "diesel", "lpg", "coal", "pv"]
Subitem = Literal["total", "lighting_socket", "hvac", "power", "special"]
#: The organisational boundary of public-institution energy and carbon accounting (国管局
#: method, following the statistics system): a meter or bill is inside (`included`) or
#: `excluded`, with one of the reasons the method deducts where separately metered.
Boundary = Literal["included", "excluded"]
BoundaryReason = Literal["家属区", "出租", "独立法人"]  # staff housing, space leased out, independent legal entity

CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
ENERGIES: tuple[str, ...] = Energy.__args__  # type: ignore[attr-defined]
SUBITEMS: tuple[str, ...] = Subitem.__args__  # type: ignore[attr-defined]

#: The unit of each energy's cumulative meter index (interfaces.md: kWh, m3, GJ, L, kg).
INDEX_UNIT: dict[str, str] = {
    "electricity": "kWh", "pv": "kWh", "water": "m3", "natural_gas": "m3", "heat": "GJ",
    "gasoline": "L", "diesel": "L", "lpg": "kg", "coal": "kg",
}

#: Canonical unit of every energy in the models (fuels by mass).
CANONICAL_UNIT: dict[str, str] = {
    "electricity": "kWh", "pv": "kWh", "water": "m3", "natural_gas": "m3", "heat": "GJ",
    "gasoline": "kg", "diesel": "kg", "lpg": "kg", "coal": "kg",
}

#: Scale from a stated unit to a canonical unit: (unit, canonical) -> factor. Litres of liquid
#: fuels are not here: they become kg by the factor set's density (`models.factors`).
UNIT_SCALE: dict[tuple[str, str], float] = {
    ("kWh", "kWh"): 1.0, ("MWh", "kWh"): 1000.0, ("万kWh", "kWh"): 1e4,  # 1 MWh = 1000 kWh
    ("m3", "m3"): 1.0, ("万m3", "m3"): 1e4, ("t", "m3"): 1.0,  # water: 1 t = 1 m3
    ("GJ", "GJ"): 1.0, ("MJ", "GJ"): 1e-3,  # 1 GJ = 1000 MJ
    ("kg", "kg"): 1.0, ("t", "kg"): 1000.0, ("kt", "kg"): 1e6,
}

#: Vehicle fuels, excluded from non-heating energy (domain.md §4).
VEHICLE_FUELS: tuple[str, ...] = ("gasoline", "diesel")

#: Category names in Chinese, as the statistics tables and messages write them.
CATEGORY_ZH: dict[str, str] = {"government": "党政机关", "school": "学校", "hospital": "医疗机构", "venue": "场馆",
                               "other": "其他"}

#: Energy names in Chinese, as the statistics forms and the submission messages write them.
ENERGY_ZH: dict[str, str] = {"electricity": "电力", "water": "水", "natural_gas": "天然气", "heat": "热力",
                             "gasoline": "汽油", "diesel": "柴油", "lpg": "液化石油气", "coal": "煤炭", "pv": "光伏发电"}

#: Heating season in Hebei and Beijing (domain.md §4): 15 Nov - 15 Mar, month-day bounds inclusive.
DEFAULT_HEATING_SEASON: dict[str, str] = {"start": "11-15", "end": "03-15"}

#: Liquid fuels, stated in L or by mass; L converts by density.
LIQUID_FUELS: tuple[str, ...] = ("gasoline", "diesel")

#: A bill kind that is not energy use: green power bought on the market (绿电交易, with its
#: certificates). Its kWh are part of the metered or billed electricity; they count only in
#: market-based Scope 2 (`models.indicators.market_scope2_t`), never in totals.
GREEN_POWER = "green_power"
#: What the `energy` column of a bills CSV may say: every energy, and green power.
BILL_KINDS: tuple[str, ...] = (*ENERGIES, GREEN_POWER)
CANONICAL_UNIT[GREEN_POWER] = "kWh"

#: Units a bill may state per energy (interfaces.md: kWh, m3, GJ, L, kg, t).
BILL_UNITS: dict[str, set[str]] = {
    GREEN_POWER: {"kWh", "MWh"},
    "electricity": {"kWh", "MWh"}, "pv": {"kWh", "MWh"},
    "water": {"m3", "t"}, "natural_gas": {"m3"}, "heat": {"GJ", "MJ"},
    "gasoline": {"L", "kg", "t"}, "diesel": {"L", "kg", "t"}, "lpg": {"kg", "t"}, "coal": {"kg", "t"},
}


def unit_scale(unit: str, canonical: str) -> float | None:
    """Factor from `unit` to `canonical` (None when there is no fixed factor)."""
    return UNIT_SCALE.get((unit, canonical))
