"""Helpers shared by the device_sim and collector tests (no tests here).

Registries are built from the lead's sample portfolio (`civicwatt.sample`), cut to a few
institutions, with every gateway moved to a free loopback port.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from civicwatt.commands.simulate import meters_for_sim
from civicwatt.sample import sample_registry_doc
from core.registry import Registry, load_registry
from tests.servers import free_port

# 2026-01-05 (a Monday) 10:00 Beijing time: a working morning in the heating season
T0 = 1767578400.0


class Clock:
    """A clock the tests move by hand (the simulator and the polls read the same time)."""

    def __init__(self, t: float = T0):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def registry_doc(n_institutions: int = 2, interval_s: int = 900, **kw: Any) -> dict[str, Any]:
    """The sample portfolio for `n_institutions`, each gateway on its own free port."""
    doc = copy.deepcopy(sample_registry_doc(n_institutions=n_institutions, base_port=40000,
                                            interval_s=interval_s, **kw))
    ports: dict[int, int] = {}
    for m in doc["meters"]:
        mb = m["modbus"]
        if mb["port"] not in ports:
            port = free_port()
            while port in ports.values():  # free_port may hand out a port twice
                port = free_port()
            ports[mb["port"]] = port
        mb["port"] = ports[mb["port"]]
    return doc


def write_registry(tmp_path: Path, doc: dict[str, Any]) -> tuple[Registry, list[dict[str, Any]], Path]:
    path = tmp_path / "civicwatt.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    registry = load_registry(path)
    return registry, meters_for_sim(registry), path


def sim_reading(sim: Any, meter: dict[str, Any], at: float) -> float:
    """What the meter's energy register holds at `at`, after the register's own rounding."""
    from core.profiles import load_profiles
    from device_sim.codec import served_value

    spec = load_profiles()[meter["profile"]]["registers"]["energy"]
    return served_value(sim.index(meter["id"], at), spec)
