"""The shared vocabulary: categories, energies, sub-items and units (interfaces.md), defined once."""

from __future__ import annotations

from typing import Literal

Category = Literal["government", "school", "hospital", "venue", "other"]
Energy = Literal["electricity", "water", "natural_gas", "heat", "gasoline", "diesel", "lpg", "coal", "pv"]
Subitem = Literal["total", "lighting_socket", "hvac", "power", "special"]

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

#: Heating season in Hebei and Beijing (domain.md §4): 15 Nov - 15 Mar, month-day bounds inclusive.
DEFAULT_HEATING_SEASON: dict[str, str] = {"start": "11-15", "end": "03-15"}

#: Liquid fuels, stated in L or by mass; L converts by density.
LIQUID_FUELS: tuple[str, ...] = ("gasoline", "diesel")

#: Units a bill may state per energy (interfaces.md: kWh, m3, GJ, L, kg, t).
BILL_UNITS: dict[str, set[str]] = {
    "electricity": {"kWh", "MWh"}, "pv": {"kWh", "MWh"},
    "water": {"m3", "t"}, "natural_gas": {"m3"}, "heat": {"GJ", "MJ"},
    "gasoline": {"L", "kg", "t"}, "diesel": {"L", "kg", "t"}, "lpg": {"kg", "t"}, "coal": {"kg", "t"},
}


def unit_scale(unit: str, canonical: str) -> float | None:
    """Factor from `unit` to `canonical` (None when there is no fixed factor)."""
    return UNIT_SCALE.get((unit, canonical))
