"""Meter profiles (register maps) as data, loaded from `profiles.yaml`.

This module is the only piece of CivicWatt that `device_sim` imports: it must stay free
of any dependency on the registry, the store or the models.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")

REGISTER_WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}


@lru_cache(maxsize=1)
def load_profiles() -> dict[str, dict[str, Any]]:
    """All meter profiles by name (plain dicts, see profiles.yaml for the fields)."""
    return yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))


def profile_names() -> list[str]:
    return sorted(load_profiles())
