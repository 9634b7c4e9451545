"""`civicwatt import readings|bills FILE.csv`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too. The work is
`storage.imports` (shared with the API's POST /api/v1/readings and /bills).
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from civicwatt.context import open_registry_store, registry_from_args
from storage import ImportRejected
from storage.imports import import_bills, import_readings


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    store = open_registry_store(registry, args.store)
    with tqdm(desc=f"import {args.kind}", unit="row", unit_scale=True, file=sys.stderr) as bar:
        try:
            if args.kind == "readings":
                done = import_readings(store, registry, args.file, progress=bar.update)
            else:
                done = import_bills(store, registry, args.file)
                bar.update(done.new + done.identical + done.replaced)
        except ImportRejected as exc:
            for problem in exc.located:
                print(problem, file=sys.stderr)
            print(f"rejected: nothing was imported from {args.file}", file=sys.stderr)
            return 1
        finally:
            store.close()
    replaced = f", {done.replaced:,} replaced" if done.replaced else ""
    print(f"imported {done.new:,} new {args.kind} from {args.file} into {store.url} ({done.identical:,} identical to "
          f"stored ones, left alone{replaced}) in {time.perf_counter() - started:.1f} s")
    return 0
