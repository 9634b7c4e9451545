"""`civicwatt import readings|bills FILE.csv`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too. A readings file is read block
by block (`core.csvio.reading_blocks`), twice (checked, then written: `Store.import_stream`),
so memory is bounded by a block, not by the file; a file of up to KEEP_ROWS rows is
parsed once and its blocks kept for the write.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import pandas as pd
from tqdm import tqdm

from civicwatt.context import open_registry_store, registry_from_args
from core.csvio import parse_bills, reading_blocks
from storage import ImportRejected, quality

KEEP_ROWS = 4_000_000  # a readings file of up to this many rows is parsed once (its blocks kept for the write)


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    if args.kind == "readings":
        now = pd.Timestamp.now(tz="UTC")
        kept: list[pd.DataFrame] | None = []  # the blocks of a file of up to KEEP_ROWS rows
        read_whole = False

        def frames() -> Iterator[pd.DataFrame]:
            """The file block by block (memory bounded by a block); a small file's blocks
            are kept from the check for the write, so it is parsed once."""
            nonlocal kept, read_whole
            if read_whole and kept is not None:
                yield from kept
                return
            for block in reading_blocks(args.file, registry, now):
                block = block.assign(quality=quality.IMPORTED)
                if kept is not None:
                    kept.append(block)
                    if sum(map(len, kept)) > KEEP_ROWS:
                        kept = None
                yield block
            read_whole = True

        total = None
    else:
        bills = parse_bills(args.file, registry)
        total = len(bills)
    store = open_registry_store(registry, args.store)
    with tqdm(total=total, desc=f"import {args.kind}", unit="row", unit_scale=True, file=sys.stderr) as bar:
        try:
            if args.kind == "readings":
                n = store.import_stream(frames, progress=bar.update)
            else:
                n = store.write_bills(bills)
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
