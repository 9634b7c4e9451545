"""A synthetic national dataset (province partitions written by `national.dataset.write_month`),
shared by the national tests and `benchmarks/bench_national.py`. No tests live here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.vocab import CANONICAL_UNIT
from national.dataset import month_bounds, write_month

TZ = "Asia/Shanghai"
CATEGORIES = np.array(["government", "school", "hospital", "venue", "other"], dtype=object)
#: Daily use per m2 of floor area (canonical units) and whether it is heating energy.
ENERGY_PER_M2 = {"electricity": (0.12, False), "water": (0.004, False), "natural_gas": (0.01, True),
                 "heat": (0.0008, True)}


def institutions(province: str, n: int, seed: int) -> pd.DataFrame:
    """`institution_context`-shaped rows: factor_region is the province when the shipped
    factor set knows it (hebei, beijing, shanxi, ...), else '' (national factors)."""
    rng = np.random.default_rng(seed)
    area = rng.lognormal(np.log(6000), 0.8, n).round() + 100
    occupants = np.maximum(5, (area / rng.uniform(15, 60, n)).round())
    occupants[rng.random(n) < 0.02] = 0  # no occupants: no per-person intensity
    known = province in ("hebei", "beijing", "tianjin", "shanxi", "shandong")
    return pd.DataFrame({
        "institution_id": [f"{province.upper()}-{i:06d}" for i in range(n)],
        "name": [f"{province} 机构 {i}" for i in range(n)],
        "region": [f"{province}-c{i % 4}" for i in range(n)],
        "category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)],
        "floor_area_m2": area, "heated_area_m2": np.where(rng.random(n) < 0.7, area * 0.9, 0.0),
        "occupants": occupants,
        "factor_region": province if known else "", "heating_start": "11-15", "heating_end": "03-15",
    })


def month_use(inst: pd.DataFrame, month: str, seed: int, energies=tuple(ENERGY_PER_M2)) -> pd.DataFrame:
    """A daily use frame (models.energy USE_COLUMNS) of `inst` for `month`: every
    institution has every energy of `energies`, except a few without data this month,
    every 17th without data at all, and a few gaps; some rows are bills, some estimated."""
    rng = np.random.default_rng(seed)
    start, end = month_bounds(month)
    days = pd.date_range(start, end, freq="D", inclusive="left", tz=TZ)
    n, d = len(inst), len(days)
    parts = []
    silent = (rng.random(n) < 0.03) | (np.arange(n) % 17 == 5)  # no data this month; every 17th never
    for k, energy in enumerate(energies):
        per_m2, heating = ENERGY_PER_M2[energy]
        i = np.repeat(np.arange(n), d)
        t = np.tile(np.arange(d), n)
        keep = ~silent[i] & (rng.random(n * d) > 0.01)
        i, t = i[keep], t[keep]
        q = inst["floor_area_m2"].to_numpy()[i] * per_m2 * rng.lognormal(0, 0.3, len(i))
        bill = (k == len(energies) - 1) & (i % 7 == 0)  # the last energy billed for every 7th institution
        ids = inst["institution_id"].to_numpy(object)[i]
        parts.append(pd.DataFrame({
            "institution_id": ids, "meter_id": np.where(bill, None, ids + f"-{energy[:1].upper()}0"),
            "energy": energy, "subitem": "total", "heating": heating, "is_main": True,
            "period_start": days[t], "quantity": q, "unit": CANONICAL_UNIT[energy],
            "estimated_share": np.where(rng.random(len(i)) < 0.05, rng.uniform(0, 1, len(i)), 0.0),
            "source": np.where(bill, "bill", "meter"),
        }))
    return pd.concat(parts, ignore_index=True)


def build_dataset(root: Path, provinces: dict[str, int], months: list[str], seed: int = 1,
                  energies=tuple(ENERGY_PER_M2)) -> dict[str, pd.DataFrame]:
    """Writes `months` of every province (id -> number of institutions) under `root`;
    returns each province's institutions."""
    out = {}
    for p, (province, n) in enumerate(provinces.items()):
        inst = institutions(province, n, seed * 1000 + p)
        for j, month in enumerate(months):
            write_month(root, province, month, month_use(inst, month, seed * 1000 + p * 100 + j, energies), inst,
                        timezone=TZ, factor_set="cn-2024", name=province)
        out[province] = inst
    return out
