"""`civicwatt national`: national indicators, targets and rankings over province partitions, on Dask.

    civicwatt national --dataset DIR [--scheduler tcp://HOST:8786] --year YYYY --out F.xlsx|F.csv [--quotas F]
    civicwatt national export --province ID --month YYYY-MM --dataset DIR

The first runs on a new local cluster (2 worker processes) unless `--scheduler` names an
existing one; the second is run by a province on its own store and registry: it writes one
closed month of its daily consumption and its institutions into the dataset (`national.dataset`).

Output: `.csv` is one table with a `level` column (national, province, category,
institution) and the same indicator columns on every level; `.xlsx` has the sheets
total, provinces, categories, institutions and, with `--quotas`, targets.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pandas as pd

from civicwatt.context import open_registry_store, output_path, registry_from_args
from core.yamlfile import ConfigError, Problem

XLSX_MAX_ROWS = 1_048_576 - 3  # a sheet's rows less the note and the two header rows
RANK_LABELS = {"kgce_per_m2": "单位面积能耗", "kgce_per_person": "人均综合能耗", "water_m3_per_person": "人均用水量",
               "kgco2_per_m2": "单位面积碳排放"}
LEVEL_COLUMNS = ["level", "province", "category", "institution_id", "name", "region", "institutions",
                 "institutions_with_data", "floor_area_m2", "heated_area_m2", "occupants", "electricity_kwh",
                 "water_m3", "gas_m3", "heat_gj", "gasoline_kg", "diesel_kg", "lpg_kg", "coal_kg", "pv_kwh", "kgce",
                 "tce", "t_co2_scope1", "t_co2_scope2", "t_co2", "kgce_per_m2", "kgce_per_person",
                 "water_m3_per_person", "kgco2_per_m2", "heating_kgce_per_m2", "nonheating_kgce_per_m2",
                 "estimated_share", "provisional"]


def _cli(field: str, message: str) -> ConfigError:
    return ConfigError([Problem("<command line>", 0, field, message)])


def _dataset_error(exc) -> ConfigError:
    return ConfigError([Problem(exc.path, 0, exc.field, exc.message)])


def run(args: argparse.Namespace) -> int:
    if args.action not in (None, "export"):
        raise _cli("action", f"unknown action {args.action[:80]!r} (the only one is 'export')")
    return _export(args) if args.action == "export" else _compute(args)


# -- a province delivers a month ------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from national.dataset import DatasetError, export_month, parse_month, require_closed

    for name in ("province", "month"):
        if not getattr(args, name):
            raise _cli(f"--{name}", "required by `national export`")
    try:
        parse_month(args.month)
    except ValueError as exc:
        raise _cli("--month", str(exc)) from None
    registry = registry_from_args(args)
    if args.province not in registry.region_by_id:
        raise _cli("--province", f"unknown region '{args.province}' (the province is a region id of "
                                 f"{registry.source})")
    try:
        require_closed(args.month, registry.timezone)
    except ValueError as exc:
        raise _cli("--month", str(exc)) from None
    factors = load_factors(getattr(args, "factors", None))
    started = time.monotonic()
    store = open_registry_store(registry, args.store, create=False)
    try:
        entry = export_month(store, registry, args.province, args.month, args.dataset, factors)
    except DatasetError as exc:
        raise _dataset_error(exc) from None
    except ValueError as exc:
        raise ConfigError([Problem(registry.source, 0, "-", str(exc))]) from None
    finally:
        store.close()
    print(f"wrote {Path(args.dataset) / f'province={args.province}' / entry['path']}: {entry['rows']:,} daily rows "
          f"of {args.month} (sha256 {entry['sha256'][:12]}…) in {time.monotonic() - started:.1f}s")
    return 0


# -- the national computation -------------------------------------------------------------------
def _compute(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from national.compute import dask_client, national_regions, national_tables, year_parts
    from national.dataset import DatasetError, open_catalog
    from quotas.config import load_quotas

    if args.year is None:
        raise _cli("--year", "required")
    if not args.out:
        raise _cli("--out", "required")
    out = output_path(args.out, (".xlsx", ".csv"), "must end in .xlsx or .csv")
    if not 1990 <= args.year <= 2100:
        raise _cli("--year", f"not a plausible year: {args.year}")
    try:
        catalog = open_catalog(args.dataset)
        parts = year_parts(catalog, args.year)
        provinces = sorted({p.province for p in parts})
        n_inst = sum(p.institutions.rows for p in catalog.provinces if p.province in provinces)
        if out.suffix.lower() == ".xlsx" and n_inst > XLSX_MAX_ROWS:
            raise _cli("--out", f"{n_inst:,} institutions do not fit in an xlsx sheet: write a .csv")
        quotas = load_quotas(args.national_quotas, national_regions(provinces)) if args.national_quotas else None
        factors = load_factors(getattr(args, "factors", None))
        started = time.monotonic()
        with dask_client(args.scheduler, n_workers=args.workers) as client:
            workers = len(client.scheduler_info().get("workers", {}))
            tables = national_tables(catalog, args.year, client, factors, quotas.basis if quotas else "equivalent",
                                     quotas)
    except DatasetError as exc:
        raise _dataset_error(exc) from None
    if out.suffix.lower() == ".csv":
        out.write_bytes(national_csv_bytes(tables))
    else:
        write_national_xlsx(tables, out)
    total = tables.total.iloc[0]
    print(f"wrote {out}: {len(tables.provinces)} provinces ({len(parts)} province-months), "
          f"{int(total['institutions']):,} institutions, {total['tce']:,.1f} tce, {total['t_co2']:,.1f} tCO2, "
          f"{total['kgce_per_m2']:.2f} kgce/m2 ({tables.basis}, factor set {tables.factor_set}) "
          f"on {workers} Dask worker(s) in {time.monotonic() - started:.1f}s")
    for _, t in tables.targets.iterrows():
        print(f"  target {t['target_id']} {t['scope']} {t['indicator']}: {t['actual']:,.2f} of {t['limit']:,.2f} "
              f"{t['unit']} -> {t['status']}")
    return 0


def _levels(tables) -> pd.DataFrame:
    """Every level in one frame (LEVEL_COLUMNS and the rank columns)."""
    ranks = [c for c in tables.institutions if c.startswith(("rank_", "peers_"))]
    inst = tables.institutions.assign(level="institution", institutions=1,
                                      institutions_with_data=tables.institutions["has_data"].astype(int))
    parts = [tables.total.assign(level="national", province=""), tables.provinces.assign(level="province"),
             tables.categories.assign(level="category"), inst]
    frame = pd.concat([p.reindex(columns=[*LEVEL_COLUMNS, *ranks]) for p in parts], ignore_index=True)
    frame["provisional"] = frame["provisional"].astype(bool)
    for c in ranks:
        frame[c] = frame[c].astype("Int64")
    return frame


def national_csv_bytes(tables) -> bytes:
    """The levels table as UTF-8 CSV with a byte-order mark (Excel shows Chinese names)."""
    buf = io.StringIO()
    _levels(tables).to_csv(buf, index=False, lineterminator="\n", float_format="%.6f")
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def write_national_xlsx(tables, out: Path) -> None:
    from models.factors import BASIS_LABEL
    from reports.ledger import LABELS
    from reports.xlsx import INT, PCT, QTY, Col, new_workbook, write_sheet

    labels = {**LABELS, "province": ("省份", None, 10), "scope": ("范围", None, 10), "provinces": ("省份数", INT, 8),
              "months": ("已报送月数", INT, 9), "last_month": ("最近报送月份", None, 10),
              **{f"rank_{k}": (f"{v}省内同类排名", "0", 10) for k, v in RANK_LABELS.items()},
              **{f"peers_{k}": (f"{v}同类参评数", "0", 9) for k, v in RANK_LABELS.items()},
              "limit": ("目标值", QTY, 14), "actual": ("实际值", QTY, 14), "projected": ("预计全年", QTY, 14),
              "projected_ratio": ("预计/目标", PCT, 9), "elapsed_share": ("时间进度", PCT, 9)}

    def cols(keys):
        return [Col(k, *labels.get(k, (k, None, 12))) for k in keys]

    notes = [f"{tables.year} 年度全国公共机构能源资源消费 / National indicators {tables.year} (data to {tables.as_of}) — "
             f"电力折标口径 basis: {BASIS_LABEL[tables.basis]}; 因子集 factor set: {tables.factor_set}"]
    measures = [c for c in LEVEL_COLUMNS[6:] if c != "provisional"]
    ranks = [c for c in tables.institutions if c.startswith(("rank_", "peers_"))]
    wb = new_workbook()
    write_sheet(wb, "total", tables.total, cols(["scope", "provinces", *measures, "provisional"]), 1, notes)
    write_sheet(wb, "provinces", tables.provinces,
                cols(["province", "name", "months", "last_month", *measures, "provisional"]), 2, notes)
    write_sheet(wb, "categories", tables.categories, cols(["province", "category", *measures]), 2, notes)
    write_sheet(wb, "institutions", tables.institutions,
                cols(["province", "institution_id", "name", "region", "category", "has_data", *measures[2:], *ranks]),
                3, notes)
    if len(tables.targets):
        t = tables.targets.assign(projected_ratio=tables.targets["projected_ratio"].astype(float))
        write_sheet(wb, "targets", t, cols(["target_id", "name", "year", "scope", "region", "category", "indicator",
                                            "unit", "limit", "actual", "elapsed_share", "projected",
                                            "projected_ratio", "status", "institutions", "as_of"]), 2, notes)
    wb.save(out)

