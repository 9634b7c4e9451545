"""`civicwatt report monthly|statistics`: the monthly report and statistics tables.

`civicwatt report monthly --month YYYY-MM --out FILE.xlsx`: the monthly statistical report;
`civicwatt report statistics --period YYYY-MM|YYYYQn|YYYY --out F.xlsx`: the statistics-system tables.

The electricity basis is the quota file's (`--quotas`, when it exists), else 当量值;
`--factors FILE` merges a factor set over the shipped one. A missing or malformed
`--month`/`--period` is a usage error (exit 2) and nothing is written."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from civicwatt.context import load_optional_quotas, open_registry_store, output_path, registry_from_args
from core.yamlfile import ConfigError, Problem


def _usage(message: str) -> int:
    print(f"civicwatt report: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.kind == "statistics":
        return run_statistics(args)
    from models.factors import load_factors
    from reports.monthly import monthly_report, parse_month, write_report

    if args.month is None:
        return _usage("report monthly needs --month YYYY-MM")
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


def run_statistics(args: argparse.Namespace) -> int:
    from models.factors import load_factors
    from reports.statistics import FormHeader, build_statistics, parse_period, write_statistics

    if args.period is None:
        return _usage("report statistics needs --period YYYY-MM, YYYYQn or YYYY")
    try:
        period = parse_period(args.period)
    except ValueError as exc:
        return _usage(f"--period: {exc}")
    report_date = args.report_date or date.today().isoformat()
    try:
        date.fromisoformat(report_date)
    except ValueError:
        return _usage(f"--report-date must be YYYY-MM-DD, not {report_date[:40]!r}")
    out = output_path(args.out, (".xlsx",), "the statistics tables are written as .xlsx")
    registry = registry_from_args(args)
    quotas = load_optional_quotas(getattr(args, "quotas", None), registry)
    factors = load_factors(getattr(args, "factors", None))
    started = time.monotonic()
    with open_registry_store(registry, args.store, create=False) as store:
        tables = build_statistics(store, registry, period, factors, quotas.basis if quotas else "equivalent")
    write_statistics(tables, out, FormHeader(args.reporting_unit, args.head, args.preparer, report_date))
    total = tables.consumption.iloc[-1]
    print(f"wrote {out}: {period.label}, {len(tables.consumption) - 1:,} institutions, {total['tce']:,.1f} tce, "
          f"{len(tables.by_department) - 1} departments, {len(tables.by_region) - 1} regions "
          f"in {time.monotonic() - started:.1f}s")
    return 0
