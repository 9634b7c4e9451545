"""`civicwatt export readings|consumption`: stored samples or consumption as CSV.

Readings come in the readings format (a round trip of import); consumption per meter
and period.

`--start` and `--end` are local dates of the registry's time zone, both inclusive
(`--start 2025-01-01 --end 2025-01-31` is January); a value with a time of day is taken
as an exact, exclusive end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from civicwatt.context import open_registry_store, registry_from_args
from core.csvio import consumption_csv, readings_csv
from core.yamlfile import ConfigError, Problem
from storage.base import date_range


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    lo, hi = date_range(args.start, args.end, registry.timezone)
    unknown = [m for m in args.meter or [] if m not in registry.meter_by_id]
    if unknown:
        raise ConfigError([Problem("<command line>", 0, "--meter", f"unknown meter '{m}'") for m in unknown])
    with open_registry_store(registry, args.store, create=False) as store:
        if args.kind == "readings":
            text = readings_csv(store.read_samples(lo, hi, args.meter), registry.timezone)
        else:
            text = consumption_csv(store.consumption(args.freq, lo, hi, args.meter), registry)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10)) - 1:,} rows)")
    return 0
