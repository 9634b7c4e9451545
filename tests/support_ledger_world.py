"""Two years of daily readings and fuel bills of a small portfolio, for ledger and report tests.

Written to files (registry, quotas) and an embedded store. No tests live here."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from civicwatt.context import open_registry_store
from core.registry import Registry, load_registry
from storage import Store

TZ = "Asia/Shanghai"

REGISTRY = textwrap.dedent("""\
    timezone: Asia/Shanghai
    regions:
      - {id: hebei, name: 河北省}
      - {id: sjz, name: 石家庄市, parent: hebei}
      - {id: bd, name: 保定市, parent: hebei}
    institutions:
      - {id: G1, name: 省直某厅, region: sjz, category: government, floor_area_m2: 12000, heated_area_m2: 11000, occupants: 450}
      - {id: G2, name: 保定某局, region: bd, category: government, floor_area_m2: 8000, heated_area_m2: 8000, occupants: 200}
      - {id: G3, name: 石家庄某办, region: sjz, category: government, floor_area_m2: 5000, heated_area_m2: 0, occupants: 120}
      - {id: S1, name: 某中学, region: sjz, category: school, floor_area_m2: 30000, heated_area_m2: 28000, occupants: 2500}
      - {id: H1, name: 某医院, region: bd, category: hospital, floor_area_m2: 40000, heated_area_m2: 40000, occupants: 1500}
    meters:
      - {id: G1-E0, institution: G1, energy: electricity}
      - {id: G1-E1, institution: G1, energy: electricity, parent: G1-E0, subitem: hvac}
      - {id: G1-W0, institution: G1, energy: water}
      - {id: G1-H0, institution: G1, energy: heat}
      - {id: G2-E0, institution: G2, energy: electricity}
      - {id: G2-G0, institution: G2, energy: natural_gas, heating: true}
      - {id: G3-E0, institution: G3, energy: electricity}
      - {id: G3-W0, institution: G3, energy: water}
      - {id: S1-E0, institution: S1, energy: electricity}
      - {id: S1-W0, institution: S1, energy: water}
      - {id: H1-E0, institution: H1, energy: electricity}
""")

QUOTAS = textwrap.dedent("""\
    basis: equivalent
    targets:
      - {id: hebei-2024, year: 2024, region: hebei, energy_tce: 500}
    standards:
      - id: gov
        category: government
        region: hebei
        nonheating_kgce_per_m2: {constraint: 12.0, baseline: 9.0, guide: 7.0}
        kgce_per_person: {constraint: 400, baseline: 300, guide: 200}
        water_m3_per_person: {general: 20, advanced: 12}
      - id: school
        category: school
        kgce_per_m2: {constraint: 10.0, baseline: 6.0, guide: 4.0}
""")

#: Daily use per meter in 2024 (2023 is 80 % of it; in 2025 the same as 2024).
DAILY = {"G1-E0": 1000.0, "G1-E1": 400.0, "G1-W0": 30.0, "G1-H0": 8.0, "G2-E0": 500.0, "G2-G0": 60.0,
         "G3-E0": 150.0, "G3-W0": 5.0, "S1-E0": 2000.0, "S1-W0": 90.0}
#: G3 has no readings in 2024 between these days (an outage): its months are incomplete.
OUTAGE = (pd.Timestamp("2024-03-05", tz=TZ), pd.Timestamp("2024-03-20", tz=TZ))
GASOLINE_L_PER_MONTH = 300.0  # G1's vehicle fuel from monthly bills


def build(base: Path, url: str | None = None) -> tuple[Path, Path, str]:
    """Writes civicwatt.yaml, quotas.yaml and the store (under `base`, or at `url`);
    returns their paths and the store URL."""
    reg_path = base / "civicwatt.yaml"
    reg_path.write_text(REGISTRY, encoding="utf-8")
    q_path = base / "quotas.yaml"
    q_path.write_text(QUOTAS, encoding="utf-8")
    url = url or f"embedded:{base / 'store'}"
    registry = load_registry(reg_path)
    store = open_registry_store(registry, url)
    days = pd.date_range("2023-01-01", "2025-03-01", freq="D", tz=TZ)
    frames = []
    for meter, per_day in DAILY.items():
        use = np.where(days[:-1].year == 2023, 0.8 * per_day, per_day)
        idx = 100.0 + np.concatenate([[0.0], np.cumsum(use)])
        keep = np.ones(len(days), bool)
        if meter.startswith("G3"):
            keep = ~((days > OUTAGE[0]) & (days < OUTAGE[1]))
        frames.append(pd.DataFrame({"meter_id": meter, "time": days[keep].tz_convert("UTC"), "value": idx[keep],
                                    "quality": 0}))
    store.write_samples(pd.concat(frames, ignore_index=True))
    months = pd.date_range("2023-01-01", "2025-02-01", freq="MS")
    store.write_bills(pd.DataFrame({
        "institution_id": "G1", "energy": "gasoline", "period_start": months.date,
        "period_end": (months + pd.offsets.MonthEnd(0)).date, "quantity": GASOLINE_L_PER_MONTH, "unit": "L",
        "cost_cny": GASOLINE_L_PER_MONTH * 7.8}))
    store.close()
    return reg_path, q_path, url


class OpenWorld(NamedTuple):
    registry: Registry
    store: Store  # open: close it when done
    quotas_path: Path
    args: list[str]  # --registry, --store and --quotas naming the world, for the CLI


def open_world(base: Path) -> OpenWorld:
    """`build` under `base`, then its registry loaded and its store opened."""
    reg_path, q_path, url = build(base)
    registry = load_registry(reg_path)
    return OpenWorld(registry, open_registry_store(registry, url), q_path,
                     ["--registry", str(reg_path), "--store", url, "--quotas", str(q_path)])
