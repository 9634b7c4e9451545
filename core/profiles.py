"""Meter profiles (register maps) as data, loaded from `profiles.yaml` and validated by `Profile`.

This module is the only piece of CivicWatt that `device_sim` imports besides core's
schemas: it must stay free of any dependency on the registry, the store or the models.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from core.schemas.base import Number, Positive, Strict
from core.vocab import INDEX_UNIT, Energy
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")

REGISTER_WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
MODBUS_MAX_READ = 125  # Modbus application protocol v1.1b3, 6.3: at most 125 registers per read


class Register(Strict):
    """One value in the register map: 0-based address, type, word and byte order, scale
    (engineering value = raw x scale), unit, and `ct_pt` (secondary-side: x CT x PT)."""

    address: Annotated[int, Field(strict=True, ge=0, le=0xFFFF)]
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "float64"] = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: Number = 1.0
    unit: str | None = None
    ct_pt: bool = False


class Profile(Strict):
    """A meter model: what it measures, how its registers are read, where the index wraps."""

    description: str
    energy: Energy
    unit: str
    function_code: Literal[3, 4] = 3
    registers: dict[str, Register]
    ct_register: Register | None = None
    pt_register: Register | None = None
    rollover: Positive | None = None  # the index at which the energy register wraps to zero
    max_registers: Annotated[int, Field(strict=True, ge=1, le=MODBUS_MAX_READ)] | None = None

    @model_validator(mode="after")
    def _reads_its_index(self) -> Profile:
        if "energy" not in self.registers:
            raise ValueError("a profile needs an `energy` register (the cumulative index)")
        if self.unit != INDEX_UNIT[self.energy]:
            raise ValueError(f"the index of {self.energy} is in {INDEX_UNIT[self.energy]}, not {self.unit}")
        return self


def parse_profiles(doc: Any, file: str) -> dict[str, dict[str, Any]]:
    """Profiles by name from a loaded document, as plain dicts holding the keys the file
    gives (readers apply the defaults above); ConfigError listing every problem."""
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(file, 1, "-", "the profiles file must be a mapping of profile names")])
    problems: list[Problem] = []
    valid = {name: validate_node(Profile, spec, file, str(name), problems) for name, spec in doc.items()}
    if problems:
        raise ConfigError(problems)
    return {str(name): p.model_dump(exclude_unset=True) for name, p in valid.items()}


@lru_cache(maxsize=1)
def load_profiles() -> dict[str, dict[str, Any]]:
    """All meter profiles by name (plain dicts, see profiles.yaml for the fields)."""
    return parse_profiles(load_yaml(PROFILES_FILE), str(PROFILES_FILE))
