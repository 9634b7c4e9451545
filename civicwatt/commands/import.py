"""`civicwatt import readings|bills FILE.csv`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too (a bill replaces the stored
bill of its key: a corrected bill). The last line says how many rows were new,
identical to what was stored (re-importing a file changes nothing), replaced (bills)
or rejected.
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from civicwatt.context import open_registry_store, print_problems, registry_from_args
from core.csvio import parse_bills, parse_readings
from core.yamlfile import ConfigError
from storage import Imported, ImportRejected, quality


def counts(result: Imported, rejected: int = 0) -> str:
    """`new N, identical N[, replaced N], rejected N`."""
    replaced = f", replaced {result.replaced:,}" if result.replaced else ""
    return f"new {result.new:,}, identical {result.identical:,}{replaced}, rejected {rejected:,}"


def _refused(args: argparse.Namespace, rejected: int, rows: int | None) -> None:
    of = f" of {rows:,}" if rows is not None else ""
    print(f"rejected: nothing was imported from {args.file}: {counts(Imported(0, 0), rejected)}{of} "
          "(rows with a problem; a file is imported whole or not at all)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    try:
        frame = parse_readings(args.file, registry) if args.kind == "readings" else parse_bills(args.file, registry)
    except ConfigError as exc:
        code = print_problems(exc)
        _refused(args, len({p.line for p in exc.problems}), None)
        return code
    store = open_registry_store(registry, args.store)
    with tqdm(total=len(frame), desc=f"import {args.kind}", unit="row", unit_scale=True, file=sys.stderr) as bar:
        try:
            if args.kind == "readings":
                frame["quality"] = quality.IMPORTED
                result = store.import_samples(frame, progress=bar.update)
            else:
                result = store.import_bills(frame)
                bar.update(result.rows)
        except ImportRejected as exc:
            for problem in exc.problems:
                print(f"{args.file}: {problem}", file=sys.stderr)
            _refused(args, exc.rejected, len(frame))
            return 1
        finally:
            store.close()
    print(f"imported {args.kind} from {args.file} into {store.url} in {time.perf_counter() - started:.1f} s: "
          f"{counts(result)}")
    return 0
