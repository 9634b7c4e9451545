"""`civicwatt report monthly --month YYYY-MM --out FILE.xlsx`: the monthly statistical report.

The electricity basis is the quota file's (`--quotas`, when it exists), else 当量值;
`--factors FILE` merges a factor set over the shipped one."""

from __future__ import annotations

import argparse
import time

from civicwatt.context import load_optional_quotas, open_registry_store, output_path, registry_from_args
from core.yamlfile import ConfigError, Problem


def run(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from reports.monthly import monthly_report, parse_month, write_report

    try:
        parse_month(args.month)
    except ValueError as exc:
        raise ConfigError([Problem("<command line>", 0, "--month", str(exc))]) from exc
    out = output_path(args.out, (".xlsx",), "the monthly report is written as .xlsx")
    registry = registry_from_args(args)
    quotas = load_optional_quotas(getattr(args, "quotas", None), registry)
    factors = load_factors(getattr(args, "factors", None))
    started = time.monotonic()
    with open_registry_store(registry, args.store, create=False) as store:
        tables = monthly_report(store, registry, args.month, factors, quotas.basis if quotas else "equivalent")
    write_report(tables, out)
    print(f"wrote {out}: {args.month}, {len(tables.institutions):,} institutions "
          f"({int(tables.institutions['has_data'].sum()):,} with data, {len(tables.incomplete):,} incomplete), "
          f"{tables.institutions['tce'].sum():,.1f} tce in {time.monotonic() - started:.1f}s")
    return 0
