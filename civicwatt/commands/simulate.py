"""`civicwatt simulate`: serve every meter of the registry over Modbus TCP.

Also home of `meters_for_sim(registry)`, the bridge from the registry to the plain meter
dicts that `device_sim` takes (device_sim imports nothing of ours but core), and of the
fault-script loader (`--faults FILE`, schema `core.schemas.faults.FaultScript`):

    - {meter: HB-0001-E0, kind: offline, at_s: 60, duration_s: 300}
    - {meter: HB-0001-E2, kind: exception, code: 4}
    - {meter: HB-0002-W0, kind: slow, delay_s: 3, at_s: 0, duration_s: 600}
    - {meter: HB-0003-E0, kind: reset, at_s: 120}
    - {meter: HB-0003-E1, kind: replacement, new_index: 12.5, at_s: 120}
    - {meter: HB-0004-G0, kind: spike, amount: 5000, at_s: 30, duration_s: 60}
    - {gateway: 15021, kind: hang, at_s: 10, duration_s: 30}

`at_s` counts from the simulator's start; without `duration_s` a fault lasts until the
simulator stops.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from civicwatt.context import registry_from_args
from core.registry import Registry
from core.schemas.faults import Fault, FaultScript
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node


def meters_for_sim(registry: Registry) -> list[dict[str, Any]]:
    """One dict per Modbus meter of the registry, with what the load model and the
    servers need: id, institution, energy, subitem, parent, category, floor_area_m2,
    heated_area_m2, occupants, heating_season ({start, end} as MM-DD), rated, multiplier,
    heating, rollover, host, port, unit, profile, interval_s."""
    out = []
    for m in registry.meters:
        inst = registry.institution_by_id.get(m.institution)
        d: dict[str, Any] = {
            "id": m.id, "institution": m.institution, "energy": m.energy, "subitem": m.subitem,
            "parent": m.parent, "multiplier": m.multiplier, "rated": m.rated, "heating": m.heating,
            "rollover": m.rollover_at,
            "category": inst.category if inst else "other",
            "floor_area_m2": inst.floor_area_m2 if inst else None,
            "heated_area_m2": inst.heated_area_m2 if inst else None,
            "occupants": inst.occupants if inst else None,
            "heating_season": (registry.heating_season_of(inst.region).model_dump() if inst
                               else registry.heating_season.model_dump()),
        }
        if m.modbus is not None:
            d.update(host=m.modbus.host, port=m.modbus.port, unit=m.modbus.unit, profile=m.modbus.profile,
                     interval_s=m.modbus.interval_s)
        out.append(d)
    return out


def load_fault_script(path: str | Path, meter_ids: set[str]) -> list[Fault]:
    """Validated faults (schema: `core.schemas.faults.FaultScript`), each meter one of
    `meter_ids`; ConfigError naming file, line and field otherwise."""
    file = str(path)
    doc = load_yaml(path)
    if not isinstance(doc, list):
        raise ConfigError([Problem(file, 1, "-", "a fault script is a YAML list of faults")])
    problems: list[Problem] = []
    parsed = validate_node(FaultScript, doc, file, "", problems)
    for n, item in enumerate(doc):
        if isinstance(item, LineDict) and "meter" in item and "gateway" not in item and str(item["meter"]) not in meter_ids:
            problems.append(Problem(file, item.line_of("meter"), f"[{n}].meter",
                                    f"unknown Modbus meter {item['meter']!r}"))
    if problems or parsed is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.field)))
    return parsed.root


def apply_faults(sim: Any, faults: list[Fault]) -> None:
    """Schedule every fault of a script on a running simulator."""
    for f in faults:
        if f.gateway is not None:
            sim.inject_gateway(f.gateway, f.kind, duration_s=f.duration_s, start_in_s=f.at_s)
        else:
            sim.inject(f.meter, f.kind, duration_s=f.duration_s, start_in_s=f.at_s, **f.params())


def run(args: argparse.Namespace) -> int:
    from device_sim.server import Simulator

    registry = registry_from_args(args)
    meters = [m for m in meters_for_sim(registry) if m.get("port")]
    if not meters:
        print("civicwatt simulate: the registry has no Modbus meters", file=sys.stderr)
        return 1
    faults = load_fault_script(args.faults, {m["id"] for m in meters}) if args.faults else []
    sim = Simulator(meters, seed=args.seed)
    try:
        sim.start()
    except RuntimeError as exc:  # a port in use, typically
        print(f"civicwatt simulate: {exc}", file=sys.stderr)
        return 1
    apply_faults(sim, faults)
    gateways = sim.gateways()
    print(f"civicwatt simulate: {len(meters)} meters behind {len(gateways)} gateways "
          f"({', '.join(f'{h}:{p}' for h, p in list(gateways)[:5])}{' ...' if len(gateways) > 5 else ''}); "
          f"{len(faults)} fault(s) scheduled. Ctrl-C stops.", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
