"""Annual carbon ledger for a province-sized portfolio: 31,600 institutions (Hebei, 2020).

Synthetic frames, no store: a monthly use frame (electricity, water, gas or heat,
gasoline for a third of them; about 1.5 million rows) -> `energy_sums` -> the ledger
tables -> xlsx and csv. Prints the time of each step and two ratios measured in this
same process:

* xlsx vs a plain openpyxl write-only dump of the same rows without formats
  (the cost of the readable formatting);
* the full run vs one on a tenth of the institutions (10.0 = linear scaling).

Baselines: the openpyxl dump writes the very rows `write_ledger` writes, from the same
frames, so the ratio is the price of the formatting alone; the tenth-size run is the same
code on a subset. Neither reads a store, and neither does the measured path: this
benchmark prices the ledger's arithmetic and writers only. The `ledger` verb through a
store, against a bare read of the same store, is `benchmarks/bench_consumption.py`.

    python benchmarks/bench_ledger.py [--institutions 31600] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook

from core.vocab import CATEGORIES
from models.factors import load_factors
from models.indicators import energy_sums
from quotas.config import QuotaConfig, Standard
from reports.ledger import ledger_csv_bytes, ledger_from_sums, write_ledger

TZ = "Asia/Shanghai"
REGIONS = [f"city{n:02d}" for n in range(11)]  # Hebei has 11 prefecture-level cities


def portfolio(n: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str | None]]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"HB-{i:06d}" for i in range(n)], dtype=object)
    area = rng.lognormal(np.log(6000), 0.8, n).round()
    inst = pd.DataFrame({
        "institution_id": ids, "name": np.char.add("单位", np.arange(n).astype(str)).astype(object),
        "region": np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n)],
        "category": np.array(CATEGORIES, dtype=object)[rng.integers(0, len(CATEGORIES), n)],
        "floor_area_m2": area, "heated_area_m2": (area * 0.9).round(), "occupants": rng.integers(20, 800, n),
        "factor_region": "hebei", "heating_start": "11-15", "heating_end": "03-15"})
    months = pd.date_range("2025-01-01", periods=12, freq="MS", tz=TZ)
    energies = [("electricity", 12.0), ("water", 1.3), ("natural_gas", 0.9)]
    parts = []
    for energy, per_m2 in energies:
        q = rng.gamma(4.0, per_m2 / 4.0 / 12, (n, 12)) * area[:, None]
        parts.append(pd.DataFrame({"institution_id": np.repeat(ids, 12), "energy": energy,
                                   "period_start": np.tile(months, n), "quantity": q.ravel(),
                                   "estimated_share": 0.0, "heating": energy == "natural_gas", "is_main": True}))
    fleet = ids[::3]
    parts.append(pd.DataFrame({"institution_id": np.repeat(fleet, 12), "energy": "gasoline",
                               "period_start": np.tile(months, len(fleet)),
                               "quantity": rng.gamma(4.0, 60.0, len(fleet) * 12), "estimated_share": 0.0,
                               "heating": False, "is_main": True}))
    use = pd.concat(parts, ignore_index=True)
    parents = {r: "hebei" for r in REGIONS} | {"hebei": None}
    return inst, use, parents


QUOTAS = QuotaConfig(standards=(
    Standard(id="gov", category="government", levels={"nonheating_kgce_per_m2": {"guide": 8, "baseline": 10.5,
                                                                                   "constraint": 14}}),
    Standard(id="all", levels={"kgce_per_person": {"guide": 200, "baseline": 400, "constraint": 600},
                               "water_m3_per_person": {"advanced": 15, "general": 25}}),
))


def run(n: int, out: Path) -> dict[str, float]:
    factors = load_factors()
    inst, use, parents = portfolio(n)
    t = {}
    t0 = time.perf_counter()
    sums = energy_sums(use, inst, period="year", freq="month", tz=TZ)
    t["sums"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = ledger_from_sums(sums, inst, factors, 2025, "equivalent", QUOTAS, regions=parents)
    t["tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    csv = ledger_csv_bytes(tables)
    (out / f"ledger-{n}.csv").write_bytes(csv)
    t["csv"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_ledger(tables, out / f"ledger-{n}.xlsx")
    t["xlsx"] = time.perf_counter() - t0
    t["total"] = t["sums"] + t["tables"] + t["csv"] + t["xlsx"]
    t["rows"] = len(tables.ledger)
    t["use_rows"] = len(use)
    t["tables_obj"] = tables  # type: ignore[assignment]
    return t


def plain_dump(tables, path: Path) -> float:
    """Baseline: the same ledger and summary rows, openpyxl write-only, no formats."""
    t0 = time.perf_counter()
    wb = Workbook(write_only=True)
    for name, df in (("ledger", tables.ledger), ("summary", tables.summary)):
        ws = wb.create_sheet(name)
        ws.append(list(df.columns))
        obj = df.astype(object).where(df.notna(), None)
        for row in obj.itertuples(index=False, name=None):
            ws.append(list(row))
    wb.save(path)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--institutions", type=int, default=31_600)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench-ledger-"))
    out.mkdir(parents=True, exist_ok=True)
    small = run(a.institutions // 10, out)
    full = run(a.institutions, out)
    base = plain_dump(full["tables_obj"], out / "plain.xlsx")
    print(f"institutions: {a.institutions:,}  use rows: {full['use_rows']:,}  ledger rows: {full['rows']:,}")
    for k in ("sums", "tables", "csv", "xlsx", "total"):
        print(f"  {k:>7}: {full[k]:7.2f} s   (tenth of the portfolio: {small[k]:6.2f} s)")
    print(f"xlsx size: {(out / f'ledger-{a.institutions}.xlsx').stat().st_size / 1e6:.1f} MB, "
          f"csv size: {(out / f'ledger-{a.institutions}.csv').stat().st_size / 1e6:.1f} MB  ({out})")
    print(f"ratio formatted xlsx / plain openpyxl dump of the same rows: {full['xlsx'] / base:.2f} "
          f"(plain dump {base:.2f} s)")
    print(f"ratio full / tenth (10.0 = linear): {full['total'] / small['total']:.2f}")


if __name__ == "__main__":
    main()
