"""`civicwatt import readings|bills FILE.csv`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too.
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from civicwatt.context import open_registry_store, registry_from_args
from core.csvio import parse_bills, parse_readings
from storage import ImportRejected, quality


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    frame = parse_readings(args.file, registry) if args.kind == "readings" else parse_bills(args.file, registry)
    store = open_registry_store(registry, args.store)
    with tqdm(total=len(frame), desc=f"import {args.kind}", unit="row", unit_scale=True, file=sys.stderr) as bar:
        try:
            if args.kind == "readings":
                frame["quality"] = quality.IMPORTED
                n = store.import_samples(frame, progress=bar.update)
            else:
                n = store.write_bills(frame)
                bar.update(n)
        except ImportRejected as exc:
            for problem in exc.problems:
                print(f"{args.file}: {problem}", file=sys.stderr)
            print(f"rejected: nothing was imported from {args.file}", file=sys.stderr)
            return 1
        finally:
            store.close()
    print(f"imported {n:,} {args.kind} from {args.file} into {store.url} in {time.perf_counter() - started:.1f} s")
    return 0
