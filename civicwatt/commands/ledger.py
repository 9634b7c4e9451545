"""`civicwatt ledger --year YYYY --out FILE.xlsx|FILE.csv`: the annual carbon ledger.

The quota file (`--quotas`, used when it exists) gives the electricity basis and the
quota standards of the summary sheet; `--factors FILE` merges a factor set over the
shipped one (its id is recorded in every row)."""

from __future__ import annotations

import argparse
import time

from civicwatt.context import load_optional_quotas, open_registry_store, output_path, registry_from_args
from core.yamlfile import ConfigError, Problem


def run(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from reports.ledger import build_ledger, write_ledger

    out = output_path(args.out, (".xlsx", ".csv"), "must end in .xlsx or .csv")
    if not 1990 <= args.year <= 2100:
        raise ConfigError([Problem("<command line>", 0, "--year", f"not a plausible year: {args.year}")])
    registry = registry_from_args(args)
    quotas = load_optional_quotas(getattr(args, "quotas", None), registry)
    factors = load_factors(getattr(args, "factors", None))
    started = time.monotonic()
    with open_registry_store(registry, args.store, create=False) as store:
        tables = build_ledger(store, registry, args.year, factors, quotas)
    write_ledger(tables, out)
    print(f"wrote {out}: {len(tables.ledger):,} ledger rows, {len(tables.summary):,} institutions, "
          f"{tables.summary['t_co2'].sum():,.1f} tCO2, {tables.summary['tce'].sum():,.1f} tce "
          f"({tables.basis}, factor set {tables.factor_set}) in {time.monotonic() - started:.1f}s")
    return 0
