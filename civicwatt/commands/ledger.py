"""`civicwatt ledger --year YYYY --out FILE.xlsx|FILE.csv`: the annual carbon ledger.

The quota file (`--quotas`, used when it exists) gives the electricity basis and the
quota standards of the summary sheet; `--factors FILE` merges a factor set over the
shipped one (its id is recorded in every row)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from civicwatt.context import open_registry_store, registry_from_args
from civicwatt.yamlfile import ConfigError, Problem


def load_optional_quotas(path: str | None, registry):
    """The quota file when it exists (None otherwise); errors raise ConfigError."""
    if not path or not Path(path).exists():
        return None
    from quotas.config import load_quotas

    return load_quotas(path, registry)


def run(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from quotas.ledger import build_ledger, write_ledger

    out = Path(args.out)
    if out.suffix.lower() not in (".xlsx", ".csv"):
        raise ConfigError([Problem("<command line>", 0, "--out", "must end in .xlsx or .csv")])
    if not out.parent.is_dir():
        raise ConfigError([Problem("<command line>", 0, "--out", f"no such directory: {out.parent}")])
    if not 1990 <= args.year <= 2100:
        raise ConfigError([Problem("<command line>", 0, "--year", f"not a plausible year: {args.year}")])
    registry = registry_from_args(args)
    quotas = load_optional_quotas(getattr(args, "quotas", None), registry)
    factors = load_factors(getattr(args, "factors", None))
    started = time.monotonic()
    store = open_registry_store(registry, args.store)
    try:
        tables = build_ledger(store, registry, args.year, factors, quotas)
    finally:
        store.close()
    write_ledger(tables, out)
    print(f"wrote {out}: {len(tables.ledger):,} ledger rows, {len(tables.summary):,} institutions, "
          f"{tables.summary['t_co2'].sum():,.1f} tCO2, {tables.summary['tce'].sum():,.1f} tce "
          f"({tables.basis}, factor set {tables.factor_set}) in {time.monotonic() - started:.1f}s")
    return 0
