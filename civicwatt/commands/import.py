"""`civicwatt import readings|bills FILE.csv [--replace --reason TEXT]`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too (`storage.imports`, shared with
the API's POST /api/v1/readings), and so is a bill that differs from the stored bill of its
institution, energy and period, unless `--replace` (bills are append-only with explicit
correction), or whose period overlaps another. Bills imported or replaced are recorded in
the audit trail (`storage.submissions`: who, when, old -> new, source `import`).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from tqdm import tqdm

from alerts.outbox import default_outbox_dir
from civicwatt.context import open_registry_store, registry_from_args
from core.csvio import parse_bills
from storage import ImportRejected
from storage.imports import import_readings
from storage.submissions import SubmissionBook, bill_audit_rows


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    frame = parse_bills(args.file, registry) if args.kind == "bills" else None
    store = open_registry_store(registry, args.store)
    with tqdm(total=None if frame is None else len(frame), desc=f"import {args.kind}", unit="row", unit_scale=True,
              file=sys.stderr) as bar:
        try:
            if frame is None:
                done = import_readings(store, registry, args.file, progress=bar.update)
                n, note = done.new, f" ({done.identical:,} identical to stored ones, left alone)"
            else:
                n, note = import_bills(store, frame, args, Path(args.registry).parent), ""
                bar.update(len(frame))
        except ImportRejected as exc:
            for problem in getattr(exc, "located", None) or [f"{args.file}: {p}" for p in exc.problems]:
                print(problem, file=sys.stderr)
            print(f"rejected: nothing was imported from {args.file}", file=sys.stderr)
            return 1
        finally:
            store.close()
    print(f"imported {n:,} {args.kind} from {args.file} into {store.url}{note} in {time.perf_counter() - started:.1f} s")
    return 0


def import_bills(store, frame, args: argparse.Namespace, fallback_dir: Path) -> int:
    """Bills into the store and the audit trail, in one transaction of the submission
    book; returns the number of bills written (new or replaced)."""
    book = SubmissionBook(default_outbox_dir(store.url, fallback_dir))
    try:
        with book.transaction():
            result = store.import_bills(frame, replace=args.replace)
            book.add_audit(bill_audit_rows(result, who=os_user(), source="import", reason=args.reason))
    finally:
        book.close()
    if len(result.replaced):
        print(f"replaced {len(result.replaced):,} stored bills (old values in the audit trail)", file=sys.stderr)
    if result.identical:
        print(f"{result.identical:,} bills were already stored unchanged", file=sys.stderr)
    return len(result.new) + len(result.replaced)


def os_user() -> str:
    """Who runs the import, for the audit trail (the login name, else 'cli')."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"
